"""Build the fastopt extension.

The C core (csrc/) is compiled into the extension module fastopt._core. The
kernels are compiled once per instruction set (csrc/fo_kernels_<isa>.c); each
of those files sets its own target with a pragma, so GCC and Clang need no
per-file flags and the rest of the build stays baseline. MSVC has no such
pragma, so setup.py compiles those files with /arch:AVX2 and /arch:AVX512.

Environment toggles (for local builds):
  FASTOPT_DEBUG=1     -O0 -g, assertions on
  FASTOPT_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer (GCC/Clang)
"""
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CORE_SOURCES = [
    "csrc/fo_dispatch.c",
    "csrc/fo_pool.c",
    "csrc/fo_scalars.c",
    "csrc/fo_kernels_scalar.c",
    "csrc/fo_kernels_base.c",
    "csrc/fo_kernels_avx2.c",
    "csrc/fo_kernels_avx512.c",
]
# Files that MSVC must compile with an /arch flag of their own.
MSVC_ARCH_FLAGS = {
    "csrc/fo_kernels_avx2.c": ["/arch:AVX2"],
    "csrc/fo_kernels_avx512.c": ["/arch:AVX512"],
}


def env_flag(name):
    return os.environ.get(name, "") not in ("", "0")


def compile_flags(msvc):
    if msvc:
        return ["/O2", "/fp:precise"] if not env_flag("FASTOPT_DEBUG") else ["/Od", "/Zi"]
    flags = ["-fno-math-errno", "-ffp-contract=off", "-fno-strict-aliasing"]
    if env_flag("FASTOPT_DEBUG") or env_flag("FASTOPT_SANITIZE"):
        flags += ["-O1", "-g", "-UNDEBUG", "-fno-omit-frame-pointer"]
    else:
        flags += ["-O3"]
    if env_flag("FASTOPT_SANITIZE"):
        flags += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    return flags


def link_flags(msvc):
    if not msvc and env_flag("FASTOPT_SANITIZE"):
        return ["-fsanitize=address,undefined"]
    return []


class BuildExt(build_ext):
    def build_extension(self, ext):
        msvc = self.compiler.compiler_type == "msvc"
        ext.extra_compile_args = compile_flags(msvc)
        ext.extra_link_args = link_flags(msvc)
        if msvc:
            special = [s for s in ext.sources if s in MSVC_ARCH_FLAGS]
            ext.sources = [s for s in ext.sources if s not in MSVC_ARCH_FLAGS]
            for src in special:
                ext.extra_objects += self.compiler.compile(
                    [src],
                    output_dir=self.build_temp,
                    include_dirs=ext.include_dirs,
                    extra_postargs=ext.extra_compile_args + MSVC_ARCH_FLAGS[src],
                )
        super().build_extension(ext)


def extension(name, sources):
    return Extension(
        name,
        sources=sources,
        include_dirs=["csrc", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        libraries=[] if sys.platform == "win32" else ["m"],
    )


EXTENSIONS = [
    extension("fastopt._core", ["fastopt/_core.pyx"] + CORE_SOURCES),
    extension("fastopt._schedules", ["fastopt/_schedules.pyx", "csrc/fo_schedules.c"]),
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)

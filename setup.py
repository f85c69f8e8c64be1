"""Build the fastopt extension.

The C core (csrc/) is compiled into the extension module fastopt._core
(fastopt._clip, fastopt._probe, fastopt._average and fastopt._flat call it
through _core). The
kernels are compiled once per instruction set (csrc/fo_kernels_<isa>.c); each
of those files sets its own target with a pragma, so GCC and Clang need no
per-file flags and the rest of the build stays baseline. MSVC has no such
pragma, so setup.py compiles those files with /arch:AVX2 and /arch:AVX512
when the target is x86-64 (on ARM64 they compile to nothing). The build is
portable: no machine-specific flags, so one wheel serves every CPU of its architecture
and the best kernels are picked at run time.

Environment toggles (for local builds):
  FASTOPT_DEBUG=1     -O1 -g, assertions on
  FASTOPT_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer (GCC/Clang)
"""
import glob
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
    "csrc/fo_step.c",
    "csrc/fo_adafactor.c",
    "csrc/fo_q8.c",
    "csrc/fo_kernels_scalar.c",
    "csrc/fo_kernels_base.c",
    "csrc/fo_kernels_avx2.c",
    "csrc/fo_kernels_avx512.c",
]
# The 16-bit conversions of each kernel file alone, for the test-only module
# fastopt._convert (csrc/fo_convert.inc).
CONVERT_SOURCES = [
    "csrc/convert/fo_convert_scalar.c",
    "csrc/convert/fo_convert_base.c",
    "csrc/convert/fo_convert_avx2.c",
    "csrc/convert/fo_convert_avx512.c",
]
# Files that MSVC must compile with an /arch flag of their own.
MSVC_ARCH_FLAGS = {
    "csrc/fo_kernels_avx2.c": ["/arch:AVX2"],
    "csrc/fo_kernels_avx512.c": ["/arch:AVX512"],
    "csrc/convert/fo_convert_avx2.c": ["/arch:AVX2"],
    "csrc/convert/fo_convert_avx512.c": ["/arch:AVX512"],
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
        # -g0 overrides the -g that Python's own build flags add: debug info
        # would make the extension (and each wheel) several times larger.
        # FASTOPT_DEBUG=1 builds with it.
        flags += ["-O3", "-g0"]
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
        # /arch:AVX2 and /arch:AVX512 exist only for x86-64 targets; the kernel
        # files guard themselves with FO_X86_64, so elsewhere they stay plain
        # sources (an ARM64 target compiles them to empty objects).
        if msvc and self.plat_name == "win-amd64":
            self.compile_arch_objects(ext)
        super().build_extension(ext)

    def compile_arch_objects(self, ext):
        """Compile the files of MSVC_ARCH_FLAGS on their own, each with its
        /arch flag, and link them in as extra objects. They get the same
        include dirs, macros and flags as the other sources, so the only
        difference between the objects is the instruction set."""
        special = [s for s in ext.sources if s in MSVC_ARCH_FLAGS]
        ext.sources = [s for s in ext.sources if s not in MSVC_ARCH_FLAGS]
        objects = list(ext.extra_objects or [])
        for src in special:
            for obj in self.compiler.compile(
                [src],
                output_dir=self.build_temp,
                macros=ext.define_macros + [(name,) for name in ext.undef_macros],
                include_dirs=ext.include_dirs,
                debug=self.debug,
                extra_postargs=ext.extra_compile_args + MSVC_ARCH_FLAGS[src],
                depends=ext.depends,
            ):
                if obj not in objects:
                    objects.append(obj)
        ext.extra_objects = objects


def extension(name, sources):
    return Extension(
        name,
        sources=sources,
        include_dirs=["csrc", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        libraries=[] if sys.platform == "win32" else ["m"],
        # headers and kernel bodies: a change to one rebuilds the extension
        # (csrc/convert/ includes the kernel files)
        depends=sorted(glob.glob("csrc/*.h") + glob.glob("csrc/*.inc") + glob.glob("csrc/kernels/*.inc")
                       + glob.glob("csrc/fo_kernels_*.c")),
    )


EXTENSIONS = [
    extension("fastopt._core", ["fastopt/_core.pyx"] + CORE_SOURCES),
    # These reach the C core through fastopt._core (cimported functions), so
    # that there is one thread pool and one SIMD path in the process.
    extension("fastopt._clip", ["fastopt/_clip.pyx"]),
    extension("fastopt._probe", ["fastopt/_probe.pyx"]),
    extension("fastopt._average", ["fastopt/_average.pyx"]),
    extension("fastopt._flat", ["fastopt/_flat.pyx"]),
    extension("fastopt._schedules", ["fastopt/_schedules.pyx", "csrc/fo_schedules.c"]),
    extension("fastopt._convert", ["fastopt/_convert.pyx"] + CONVERT_SOURCES),
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

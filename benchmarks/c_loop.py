"""The plain fused C loop (benchmarks/c_loop.c) as an optimizer over NumPy arrays.

The loop is compiled at first use with the system's C compiler (``$CC``, else
``cc``), ``-O3 -march=native -fno-math-errno -fopenmp`` (without errno, sqrtf
vectorises): the best a plain loop gets on this machine, which is what
fastopt's portable, runtime-dispatched build is held to. It is a benchmark's yardstick only, never part of fastopt.
"""
import ctypes
import hashlib
import os
import shlex
import subprocess
import tempfile

import numpy as np

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c_loop.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC"]
ALGOS = ("adam", "adamw", "adagrad", "rmsprop", "sgd")  # the hyperparameters of fastopt.bench.ALGOS
_lib = None


def library():
    """The compiled loop (ctypes), built once per source text in the temporary folder;
    OSError or CalledProcessError where no C compiler with OpenMP is found."""
    global _lib
    if _lib is not None:
        return _lib
    cc = shlex.split(os.environ.get("CC", "cc"))
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join(cc + FLAGS).encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"fastopt-c-loop-{digest}.so")
    if not os.path.exists(path):
        scratch = f"{path}.{os.getpid()}"
        subprocess.run([*cc, *FLAGS, SOURCE, "-o", scratch, "-lm"], check=True, capture_output=True)
        os.replace(scratch, path)
    lib = ctypes.CDLL(path)
    ptrs, sizes, i32, i64, f64 = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                  ctypes.c_int64, ctypes.c_double)
    lib.c_loop_set_threads.argtypes = [i32]
    lib.c_loop_adam.argtypes = [i32, ptrs, ptrs, ptrs, ptrs, sizes, f64, f64, f64, f64, f64, i32, i64]
    lib.c_loop_adagrad.argtypes = [i32, ptrs, ptrs, ptrs, sizes, f64, f64, f64, i64]
    lib.c_loop_rmsprop.argtypes = [i32, ptrs, ptrs, ptrs, sizes, f64, f64, f64]
    lib.c_loop_sgd.argtypes = [i32, ptrs, ptrs, ptrs, sizes, f64, f64, i64]
    _lib = lib
    return lib


def set_threads(n):
    library().c_loop_set_threads(n)


def _pointers(arrays):
    return np.array([a.ctypes.data for a in arrays], np.uintp)


class CLoopOptimizer:
    """`algo` (one of ALGOS) with torch's hyperparameter names and defaults over
    float32 `params` (contiguous 1-D arrays, updated in place) from `grads`;
    ``step()`` steps them (their addresses are read once, here)."""

    def __init__(self, algo, params, grads, **hyper):
        if algo not in ALGOS:
            raise ValueError(f"the plain C loop has no {algo}")
        for a in (*params, *grads):
            if a.dtype != np.float32 or a.ndim != 1 or not a.flags.c_contiguous:
                raise TypeError("the plain C loop steps contiguous 1-D float32 arrays")
        self.lib, self.algo, self.hyper, self.t = library(), algo, hyper, 0
        self.state = [[np.zeros_like(p) for p in params]
                      for _ in range(2 if algo in ("adam", "adamw") else 1)]
        self.keep = (params, grads)  # alive while their addresses are used
        self.pointers = [_pointers(a) for a in (params, grads, *self.state)]
        self.sizes = np.array([p.size for p in params], np.int64)
        self.arrays = (len(params), *(a.ctypes.data for a in self.pointers), self.sizes.ctypes.data)

    def step(self):
        self.t += 1
        h, lib, args = self.hyper, self.lib, self.arrays
        if self.algo in ("adam", "adamw"):
            b1, b2 = h.get("betas", (0.9, 0.999))
            wd = h.get("weight_decay", 0.01 if self.algo == "adamw" else 0.0)
            lib.c_loop_adam(*args, h.get("lr", 1e-3), b1, b2, h.get("eps", 1e-8), wd,
                            self.algo == "adamw", self.t)
        elif self.algo == "adagrad":
            lib.c_loop_adagrad(*args, h.get("lr", 1e-2), h.get("lr_decay", 0.0),
                               h.get("eps", 1e-10), self.t)
        elif self.algo == "rmsprop":
            lib.c_loop_rmsprop(*args, h.get("lr", 1e-2), h.get("alpha", 0.99), h.get("eps", 1e-8))
        else:
            lib.c_loop_sgd(*args, h["lr"], h.get("momentum", 0.0), self.t)

# cython: language_level=3, boundscheck=False, wraparound=False
"""Test-only: the 16-bit conversion lanes of every compiled SIMD path.

The C core converts bfloat16 and float16 in its kernels' loads and stores
(csrc/fo_vec.h). This module runs those loads and stores alone over whole
arrays (csrc/fo_convert.inc, compiled with each path's target), so the tests
can compare every path with NumPy, ml_dtypes and one another. It is not part
of the API.
"""
import numpy as np

from . import _core

cimport numpy as cnp
from libc.string cimport memset

cnp.import_array()

cdef extern from "fo_convert.h" nogil:
    ctypedef struct fo_item:
        void *param
        const void *grad
        size_t n
    ctypedef void (*fo_kernel)(const fo_item *item, size_t begin, size_t end, double *acc) noexcept
    ctypedef struct fo_convert_table:
        int isa
        fo_kernel kernel[4]
    ctypedef enum fo_isa:
        pass
    const fo_convert_table *fo_convert_compiled(fo_isa isa) noexcept
    enum:
        FO_BF16_TO_F32
        FO_F16_TO_F32
        FO_F32_TO_BF16
        FO_F32_TO_F16

# kind: (index, source dtype, destination dtype); 16-bit values are uint16 bit patterns
KINDS = {
    "bf16_to_f32": (FO_BF16_TO_F32, np.uint16, np.float32),
    "f16_to_f32": (FO_F16_TO_F32, np.uint16, np.float32),
    "f32_to_bf16": (FO_F32_TO_BF16, np.float32, np.uint16),
    "f32_to_f16": (FO_F32_TO_F16, np.float32, np.uint16),
}


cdef const fo_convert_table *table_of(isa) except NULL:
    # _core lists the compiled paths in fo_isa order, so a name's position
    # there is its fo_isa; each table records its own, which is checked.
    compiled = _core.compiled_isa_names()
    if isa not in compiled:
        raise ValueError(f"unknown SIMD path {isa!r}; known: {compiled}")
    if isa not in _core.isa_names():
        raise ValueError(f"SIMD path {isa!r} is not supported on this CPU")
    cdef int index = compiled.index(isa)
    cdef const fo_convert_table *t = fo_convert_compiled(<fo_isa>index)
    if t == NULL or <int>t.isa != index:
        raise RuntimeError(f"no conversions compiled for {isa!r}")
    return t


def check_array(name, a, dtype):
    if a.dtype != dtype or a.ndim != 1 or not a.flags.c_contiguous or not a.flags.aligned:
        raise TypeError(f"{name} must be a 1-D contiguous aligned {np.dtype(dtype)} array, got {a.dtype} "
                        f"of shape {a.shape}")


def convert(str kind, cnp.ndarray dst, cnp.ndarray src, str isa):
    """dst[:] = src converted as ``kind`` (a key of KINDS) by SIMD path ``isa``.

    Both 1-D, C-contiguous, aligned, of the kind's dtypes and one length; dst
    writeable. Only dst[:len(src)] is written and only src is read.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown conversion {kind!r}; known: {list(KINDS)}")
    cdef int index = KINDS[kind][0]
    check_array("src", src, KINDS[kind][1])
    check_array("dst", dst, KINDS[kind][2])
    if not dst.flags.writeable:
        raise ValueError("dst is read-only")
    if dst.shape[0] != src.shape[0]:
        raise ValueError(f"lengths differ: dst {dst.shape[0]}, src {src.shape[0]}")
    cdef const fo_convert_table *t = table_of(isa)
    cdef fo_item item
    memset(&item, 0, sizeof(item))
    item.param = cnp.PyArray_DATA(dst)
    item.grad = cnp.PyArray_DATA(src)
    item.n = <size_t>src.shape[0]
    with nogil:
        t.kernel[index](&item, 0, item.n, NULL)

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""L-BFGS's flat-vector arithmetic in C (fastopt.LBFGS, fastopt.torch.LBFGS):
dot products, sums and maxima of absolute values, non-finite counts, axpys
and the parameter update, over one flat float32/float64 vector (or the
parameters it is laid over), on the thread pool and SIMD path of
``fastopt._core``.

Sums are in double over eight fixed lanes per piece of the job, the pieces
combined in order (csrc/kernels/grad.inc, csrc/fo_pool.c): the same bits for
any thread count and SIMD path.
"""
import numpy as np

cimport numpy as cnp
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from ._core cimport (as_param_array, dtype_code, fo_item, fo_kernel, fo_scalars, fo_table,
                     plan_items, run_planned, table_by_name)

cnp.import_array()

DEF DOT = 0
DEF SUMABS = 1
DEF MAXABS = 2
DEF NONFINITE = 3


cdef cnp.ndarray flat(obj, like, what):
    """obj as a C-contiguous 1-D float32/float64 ndarray (of like's dtype and size when given)."""
    if not isinstance(obj, np.ndarray) or obj.ndim != 1 or dtype_code(obj) < 0 \
            or not obj.flags.c_contiguous or not obj.flags.aligned:
        raise TypeError(f"{what} must be a C-contiguous 1-D float32 or float64 numpy array")
    if like is not None and (obj.dtype != like.dtype or obj.size != like.size):
        raise ValueError(f"{what} must have dtype {like.dtype} and {like.size} elements, "
                         f"got {obj.dtype} and {obj.size}")
    return <cnp.ndarray>obj


cdef double reduce(cnp.ndarray x, cnp.ndarray y, int kind, isa) except? -1.0:
    cdef const fo_table *table = table_by_name(isa)
    cdef fo_item item
    memset(&item, 0, sizeof(item))
    item.param = cnp.PyArray_DATA(x)
    item.grad = cnp.PyArray_DATA(y)
    item.n = <size_t>cnp.PyArray_SIZE(x)
    item.dtype = dtype_code(x)
    if item.n == 0:
        return 0.0
    if kind == DOT:
        item.kernel = table.vec_dot[item.dtype]
    elif kind == SUMABS:
        item.kernel = table.grad_sumabs[item.dtype]
    elif kind == MAXABS:
        item.kernel = table.grad_maxabs[item.dtype]
    else:
        item.kernel = table.count_nonfinite[item.dtype]
    cdef size_t pieces = plan_items(&item, 1), k
    cdef double *partials = <double *>malloc(max(pieces, 1) * sizeof(double))
    cdef double total = 0, v
    if partials == NULL:
        raise MemoryError()
    try:
        with nogil:
            run_planned(&item, 1, pieces, partials)
        for k in range(pieces):  # in piece order
            v = partials[k]
            if kind != MAXABS:
                total += v
            elif v != v:  # NaN wins, as in torch
                return v
            elif v > total:
                total = v
    finally:
        free(partials)
    return total


def dot(x, y, *, isa=None):
    """sum(x * y) in double, in a fixed order."""
    x = flat(x, None, "x")
    return reduce(x, flat(y, x, "y"), DOT, isa)


def sumabs(x, *, isa=None):
    """sum(|x|) in double, in a fixed order."""
    x = flat(x, None, "x")
    return reduce(x, x, SUMABS, isa)


def maxabs(x, *, isa=None):
    """max(|x|) (NaN when x holds one; 0 when empty)."""
    x = flat(x, None, "x")
    return reduce(x, x, MAXABS, isa)


def count_nonfinite(x, *, isa=None):
    """How many elements of x are NaN or infinite."""
    x = flat(x, None, "x")
    return int(reduce(x, x, NONFINITE, isa))


def axpy(y, double a, x, *, isa=None):
    """y += a * x in place, a rounded to y's dtype (torch's y.add_(x, alpha=a))."""
    y = flat(y, None, "y")
    add_([y], a, flat(x, y, "x"), isa=isa)


def add_(params, double a, d, *, isa=None):
    """Each parameter p += a * d[offset:offset + p.size], the parameters laid
    end to end over the flat vector d (torch's LBFGS._add_grad)."""
    d = flat(d, None, "d")
    ps = [as_param_array(p, f"parameter {i}") for i, p in enumerate(params)]
    if any(p.dtype != d.dtype for p in ps) or sum(p.size for p in ps) != d.size:
        raise ValueError(f"the parameters must have d's dtype ({d.dtype}) and {d.size} "
                         "elements in all")
    cdef const fo_table *table = table_by_name(isa)
    cdef Py_ssize_t m = len(ps), i
    if m == 0:
        return
    cdef fo_scalars sc
    memset(&sc, 0, sizeof(sc))
    sc.scale = a
    cdef fo_item *items = <fo_item *>malloc(m * sizeof(fo_item))
    if items == NULL:
        raise MemoryError()
    memset(items, 0, m * sizeof(fo_item))
    cdef char *base = <char *>cnp.PyArray_DATA(<cnp.ndarray>d)
    cdef size_t offset = 0, pieces
    cdef cnp.ndarray p
    try:
        for i in range(m):
            p = <cnp.ndarray>ps[i]
            items[i].param = cnp.PyArray_DATA(p)
            items[i].grad = base + offset * <size_t>cnp.PyArray_ITEMSIZE(p)
            items[i].n = <size_t>cnp.PyArray_SIZE(p)
            items[i].dtype = dtype_code(p)
            items[i].scalars = &sc
            items[i].kernel = table.vec_axpy[items[i].dtype]
            offset += items[i].n
        pieces = plan_items(items, m)
        with nogil:
            run_planned(items, m, pieces, NULL)
    finally:
        free(items)

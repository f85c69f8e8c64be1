# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Gradient clipping in C: torch.nn.utils' clip_grad_norm_ and clip_grad_value_ for arrays.

The arrays are checked as in-place targets first (as ``fastopt._core``
checks parameters), then one pass in C reduces and one scales or clamps,
on the thread pool and SIMD path of ``fastopt._core``.
"""
import numpy as np

from . import _core
from ._validate import as_float

cimport numpy as cnp
from libc.math cimport INFINITY, isfinite, pow
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from ._core cimport (as_param_array, dtype_code, fo_item, fo_scalars, fo_table, plan_items,
                     run_planned, table_by_name)

cnp.import_array()


def grad_arrays(grads):
    """The gradients to clip: one array or a sequence of them (None entries
    skipped), each a valid in-place target, no two sharing memory."""
    if isinstance(grads, np.ndarray):
        grads = [grads]
    grads = [g for g in grads if g is not None]
    arrays = [as_param_array(g, f"gradient {i}") for i, g in enumerate(grads)]
    _core.check_disjoint(arrays, [f"gradient {i}" for i in range(len(arrays))])
    return arrays


cdef fo_item *grad_items(list arrays, const fo_scalars *sc) except NULL:
    """One item per gradient array (param and grad both point at it); free() it."""
    cdef Py_ssize_t m = len(arrays), i
    cdef fo_item *items = <fo_item *>malloc(max(m, 1) * sizeof(fo_item))
    if items == NULL:
        raise MemoryError()
    memset(items, 0, max(m, 1) * sizeof(fo_item))
    cdef cnp.ndarray a
    for i in range(m):
        a = <cnp.ndarray>arrays[i]
        items[i].param = cnp.PyArray_DATA(a)
        items[i].grad = cnp.PyArray_DATA(a)
        items[i].n = <size_t>cnp.PyArray_SIZE(a)
        items[i].dtype = dtype_code(a)
        items[i].scalars = sc
    return items


def clip_grad_norm_(grads, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None, *,
                    isa=None):
    """Scale gradients in place so their total norm is at most ``max_norm``.

    torch.nn.utils.clip_grad_norm_ for arrays: the total norm is the
    ``norm_type``-norm of all gradients together (2, 1, inf or any p > 0),
    computed in one pass in C in double, the same for any thread count. Every
    gradient is then multiplied by ``min(1, max_norm / (total_norm + 1e-6))``.

    Parameters
    ----------
    grads : array or iterable of arrays
        The gradients, scaled in place: writeable, C-contiguous float32 or
        float64 arrays (None entries are skipped).
    max_norm : float
        The largest total norm the gradients keep.
    norm_type : float, default 2.0
        Order p of the norm: any p > 0, or ``float("inf")`` for the largest
        absolute value.
    error_if_nonfinite : bool, default False
        Raise RuntimeError, scaling nothing, when the total norm is NaN or Inf.
    foreach : bool or None, default None
        Accepted for torch's signature; changes nothing.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the
        one in use.

    Returns
    -------
    float
        The total norm of the gradients before clipping.
    """
    max_norm = as_float(max_norm, "max_norm")
    cdef double p = as_float(norm_type, "norm_type")
    if not (p > 0):
        raise ValueError(f"norm_type must be positive or inf, got {norm_type}")
    cdef const fo_table *table = table_by_name(isa)
    arrays = grad_arrays(grads)
    cdef Py_ssize_t m = len(arrays), i
    if m == 0:
        return 0.0
    cdef fo_scalars sc
    memset(&sc, 0, sizeof(sc))
    sc.power = p
    cdef fo_item *items = grad_items(arrays, &sc)
    cdef int kind = 2 if p == 2.0 else (1 if p == 1.0 else (0 if p == INFINITY else 3))
    cdef double total = 0, x
    cdef size_t pieces, k
    cdef double *partials = NULL
    try:
        for i in range(m):
            if kind == 2:
                items[i].kernel = table.grad_sumsq[items[i].dtype]
            elif kind == 1:
                items[i].kernel = table.grad_sumabs[items[i].dtype]
            elif kind == 0:
                items[i].kernel = table.grad_maxabs[items[i].dtype]
            else:
                items[i].kernel = table.grad_sumpow[items[i].dtype]
        pieces = plan_items(items, m)
        partials = <double *>malloc(max(pieces, 1) * sizeof(double))
        if partials == NULL:
            raise MemoryError()
        with nogil:
            run_planned(items, m, pieces, partials)
        for k in range(pieces):
            x = partials[k]
            if kind != 0:
                total += x
            elif x != x:  # NaN wins, as in torch
                total = x
                break
            elif x > total:
                total = x
        if kind == 2:
            total = total ** 0.5
        elif kind == 3:
            total = pow(total, 1.0 / p)
        if error_if_nonfinite and not isfinite(total):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients is non-finite, so it cannot "
                "be clipped. To disable this error and scale the gradients by the non-finite "
                "norm anyway, set `error_if_nonfinite=False`")
        # torch clamps max_norm / (total + 1e-6) at 1; a NaN norm gives NaN
        sc.scale = max_norm / (total + 1e-6)
        if sc.scale > 1.0:
            sc.scale = 1.0
        for i in range(m):
            items[i].kernel = table.grad_scale[items[i].dtype]
        with nogil:
            run_planned(items, m, pieces, NULL)
    finally:
        free(items)
        free(partials)
    return float(total)


def clip_grad_value_(grads, clip_value, foreach=None, *, isa=None):
    """Clamp gradients in place to ``[-clip_value, clip_value]``.

    torch.nn.utils.clip_grad_value_ for arrays, with clip_grad_norm_'s
    arguments: each element becomes ``min(max(g, -clip_value), clip_value)``
    in one pass in C, spread over the thread pool. As torch's clamp, a NaN
    element stays NaN, a negative ``clip_value`` sets every other element to
    ``clip_value``, and a NaN ``clip_value`` makes every element NaN.

    Parameters
    ----------
    grads : array or iterable of arrays
        The gradients, clamped in place: writeable, C-contiguous float32 or
        float64 arrays (None entries are skipped).
    clip_value : float
        The bound: elements end in [-clip_value, clip_value].
    foreach : bool or None, default None
        Accepted for torch's signature; changes nothing.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the
        one in use.
    """
    cdef double c = as_float(clip_value, "clip_value")
    cdef const fo_table *table = table_by_name(isa)
    arrays = grad_arrays(grads)
    cdef Py_ssize_t m = len(arrays), i
    if m == 0:
        return
    cdef fo_scalars sc
    memset(&sc, 0, sizeof(sc))
    sc.clip_value = c
    sc.scale = c  # a NaN bound: scaling by NaN gives torch's all-NaN result
    cdef fo_item *items = grad_items(arrays, &sc)
    cdef size_t pieces
    try:
        for i in range(m):
            if c != c:
                items[i].kernel = table.grad_scale[items[i].dtype]
            else:
                items[i].kernel = table.grad_clip_value[items[i].dtype]
        pieces = plan_items(items, m)
        with nogil:
            run_planned(items, m, pieces, NULL)
    finally:
        free(items)

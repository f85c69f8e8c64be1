# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Weight averaging in C, for fastopt.swa_utils: torch.optim.swa_utils' SWA
and EMA updates over lists of arrays.

Every array is checked first (the averages as in-place targets, as
``fastopt._core`` checks parameters; the parameters as read-only inputs of
the same dtype and shape), then one pass in C (csrc/kernels/average.inc)
updates all of them, on the thread pool and SIMD path of ``fastopt._core``.
"""
from . import _core
from ._validate import as_float, as_int, is_torch_tensor

cimport numpy as cnp
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from ._core cimport (as_grad_array, as_param_array, dtype_code, fo_item, fo_scalars, fo_table,
                     plan_items, run_planned, table_by_name)

cnp.import_array()


def as_arrays(arrays, what):
    """One array or an iterable of them as a list, CPU torch tensors as their
    NumPy views (``what`` and the index name each in errors)."""
    if isinstance(arrays, cnp.ndarray) or is_torch_tensor(arrays):
        arrays = [arrays]
    elif isinstance(arrays, (str, bytes)) or not hasattr(arrays, "__iter__"):
        raise TypeError(f"expected an array or an iterable of arrays, got {type(arrays).__name__}")
    return [_numpy_of(a, f"{what} {i}") for i, a in enumerate(arrays)]


def _numpy_of(obj, what):
    """A CPU torch tensor as the NumPy array sharing its memory; anything else as it is."""
    if not is_torch_tensor(obj):
        return obj
    if obj.device.type != "cpu":
        raise TypeError(f"{what} is a torch tensor on {obj.device}: move it to the CPU first")
    try:
        return obj.detach().numpy()
    except (RuntimeError, TypeError) as e:
        raise TypeError(f"{what}: this torch tensor has no NumPy view ({e})") from None


def checked_pairs(averaged, params):
    """(averages, parameters) as lists of ndarrays, every check done: the
    averages writeable float32/float64 C-contiguous arrays, each parameter of
    its average's dtype and shape and C-contiguous, no two sharing memory."""
    averaged, params = as_arrays(averaged, "averaged"), as_arrays(params, "parameter")
    if len(averaged) != len(params):
        raise ValueError(f"got {len(averaged)} averaged arrays and {len(params)} parameters")
    avgs = [as_param_array(a, f"averaged {i}") for i, a in enumerate(averaged)]
    ps = [as_grad_array(p, a, f"parameter {i}") for i, (a, p) in enumerate(zip(avgs, params))]
    _core.check_disjoint(avgs + ps, [f"averaged {i}" for i in range(len(avgs))]
                         + [f"parameter {i}" for i in range(len(ps))])
    return avgs, ps


cdef run(list avgs, list ps, bint ema, const fo_table *table, const fo_scalars *sc):
    cdef Py_ssize_t m = len(avgs), i
    if m == 0:
        return
    cdef fo_item *items = <fo_item *>malloc(m * sizeof(fo_item))
    if items == NULL:
        raise MemoryError()
    memset(items, 0, m * sizeof(fo_item))
    cdef cnp.ndarray a
    cdef size_t pieces
    try:
        for i in range(m):
            a = <cnp.ndarray>avgs[i]
            items[i].param = cnp.PyArray_DATA(a)
            items[i].grad = cnp.PyArray_DATA(<cnp.ndarray>ps[i])
            items[i].n = <size_t>cnp.PyArray_SIZE(a)
            items[i].dtype = dtype_code(a)
            items[i].scalars = sc
            if ema:
                items[i].kernel = table.average_ema[items[i].dtype]
            else:
                items[i].kernel = table.average_swa[items[i].dtype]
        pieces = plan_items(items, m)
        with nogil:
            run_planned(items, m, pieces, NULL)
    finally:
        free(items)


def check_decay(decay):
    """decay as a float in [0, 1] (torch's range; NaN refused too)."""
    d = as_float(decay, "decay")
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")
    return d


def ema_(averaged, params, decay, *, isa=None):
    """averaged = decay * averaged + (1 - decay) * params, in place (see
    fastopt.swa_utils.ema_)."""
    cdef const fo_table *table = table_by_name(isa)
    cdef fo_scalars sc
    memset(&sc, 0, sizeof(sc))
    sc.avg_decay = check_decay(decay)
    sc.avg_weight = 1.0 - sc.avg_decay  # in double, as torch's Python (1 - decay)
    avgs, ps = checked_pairs(averaged, params)
    run(avgs, ps, True, table, &sc)


def swa_(averaged, params, n_averaged, *, isa=None):
    """averaged += (params - averaged) / (n_averaged + 1), in place (the
    running mean of fastopt.swa_utils.AveragedParams)."""
    cdef const fo_table *table = table_by_name(isa)
    n = as_int(n_averaged, "n_averaged", 0)
    if n >= 2**53:  # n + 1 must be exact in a double, as in torch's int64 tensor
        raise ValueError(f"n_averaged must be < 2**53, got {n}")
    cdef fo_scalars sc
    memset(&sc, 0, sizeof(sc))
    sc.avg_divisor = <double>(n + 1)
    avgs, ps = checked_pairs(averaged, params)
    run(avgs, ps, False, table, &sc)

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Memory-bandwidth probes on fastopt's thread pool (for benchmarks/)."""
from . import _core

cimport numpy as cnp
from libc.string cimport memset

from ._core cimport (FO_F32, FO_PROBE_COPY, FO_PROBE_RMW, FO_PROBE_TRIAD, as_grad_array,
                     as_param_array, dtype_code, fo_item, fo_scalars, fo_table, plan_items,
                     run_planned, table_by_name)

cnp.import_array()


PROBES = {"copy": FO_PROBE_COPY, "triad": FO_PROBE_TRIAD, "rmw": FO_PROBE_RMW}


def bandwidth_probe(kind, a, b, c=None, double s=1.0, *, isa=None):
    """Run one memory-bandwidth probe over float32 arrays, on the thread pool.

    ``kind`` is "copy" (a = b), "triad" (a = b + s * c) or "rmw" (a = a + s * b,
    the in-place read-modify-write an optimizer does). The work is cut and
    spread exactly as an optimizer step is, so its timing (taken by the caller)
    is the memory speed fastopt's steps can reach. Used by ``benchmarks/``.
    """
    if kind not in PROBES:
        raise ValueError(f"unknown probe {kind!r}; known: {sorted(PROBES)}")
    cdef const fo_table *table = table_by_name(isa)
    cdef cnp.ndarray x = as_param_array(a, "a")
    cdef cnp.ndarray y = as_grad_array(b, x, "b")
    cdef cnp.ndarray z = None
    if dtype_code(x) != FO_F32:
        raise TypeError("the bandwidth probe runs on float32 arrays")
    if kind == "triad":
        if c is None:
            raise ValueError("the triad probe needs c")
        z = as_grad_array(c, x, "c")
    _core.check_disjoint([x, y] + ([z] if z is not None else []), ["a", "b", "c"])
    cdef fo_item item
    cdef fo_scalars sc
    memset(&item, 0, sizeof(item))
    memset(&sc, 0, sizeof(sc))
    sc.scale = s
    item.param = cnp.PyArray_DATA(x)
    item.grad = cnp.PyArray_DATA(y)
    item.state[0] = cnp.PyArray_DATA(z) if z is not None else NULL
    item.n = <size_t>cnp.PyArray_SIZE(x)
    item.dtype = FO_F32
    item.scalars = &sc
    item.kernel = table.probe[<int>PROBES[kind]]
    cdef size_t pieces = plan_items(&item, 1)
    with nogil:
        run_planned(&item, 1, pieces, NULL)

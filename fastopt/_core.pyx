# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The Cython layer over the C core.

Everything here validates first and writes after: each public entry point
checks every array (dtype, shape, contiguity, alignment, writeability and
overlap) before the GIL is released and the C core runs, so a bad argument
raises TypeError/ValueError with nothing touched.

Thread-safety: an ``Engine`` keeps its own references to every array it
points at (a step also to its gradients) and cannot be changed while a step
runs with the GIL released (``set_state``, ``extend`` and a second ``step``
raise RuntimeError), so nothing other Python threads do can make the C core
read freed or missing memory. Callers (``fastopt.Optimizer``) serialise
steps of one engine with a lock. Different engines may step concurrently
from different Python threads.
"""
import os
from collections.abc import Mapping

import numpy as np

from . import _spec
from ._validate import as_float

cimport numpy as cnp
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject, PyTypeObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport INFINITY, isfinite, pow
from libc.stdint cimport int64_t, uint8_t, uintptr_t
from libc.stdlib cimport free, malloc, qsort, realloc
from libc.string cimport memcmp, memcpy, memset

cnp.import_array()

cdef PyTypeObject *ndarray_type = <PyTypeObject *>np.ndarray  # the exact type, for fast checks

cdef extern from "Python.h":
    ctypedef struct PyListObject:
        PyObject **ob_item
    ctypedef struct PyTupleObject:
        PyObject *ob_item[1]

# The C core's algorithms by name (FO_ALGOS), and each one's state buffer
# names in C slot order (torch's names), from the spec.
ALGOS = {fo_algo_name(i).decode(): i for i in range(FO_NUM_ALGOS)}
STATE_NAMES = {}
for _row in _spec.SPECS.values():
    if _row.algo not in ALGOS:
        raise ImportError(f"{_row.name}'s algorithm {_row.algo!r} is not in the C core "
                          f"(FO_ALGOS: {list(ALGOS)}): rebuild the extension")
    STATE_NAMES.setdefault(_row.algo, _row.state_names)

# State buffers per parameter (fo_item.state): Adam uses three, Adan four.
NUM_SLOTS = FO_NUM_SLOTS

# fo_hyper's fields by name: (offset, is int)
_HYPER_FIELDS = {fo_hyper_fields[i].name.decode(): (fo_hyper_fields[i].offset, fo_hyper_fields[i].is_int)
                 for i in range(fo_num_hyper_fields)}
# Per algorithm id: (group key, index in the value or None, length of the value,
# field offset, is int, default) for every field besides lr.
_C_FIELDS = {ALGOS[algo]: tuple((key, k, n) + _HYPER_FIELDS[field] + (default,)
                                for key, k, n, field, default in _spec.c_fields(algo))
             for algo in STATE_NAMES}


# ---------------------------------------------------------------- ISA, threads

def isa_names():
    """Names of the SIMD paths this CPU can run, slowest first."""
    return [fo_isa_name(<fo_isa>i).decode() for i in range(FO_NUM_ISAS)
            if fo_isa_supported(<fo_isa>i)]


def compiled_isa_names():
    """Names of every SIMD path built into this library."""
    return [fo_isa_name(<fo_isa>i).decode() for i in range(FO_NUM_ISAS)
            if fo_isa_compiled(<fo_isa>i)]


def active_isa():
    """Name of the SIMD path in use."""
    return fo_isa_name(fo_table_active().isa).decode()


cdef const fo_table *table_by_name(name) except NULL:
    if name is None:
        return fo_table_active()
    cdef int isa = fo_isa_from_name(str(name).encode())
    if isa < 0:
        raise ValueError(f"unknown SIMD path {name!r}; known: {compiled_isa_names()}")
    cdef const fo_table *t = fo_table_for(<fo_isa>isa)
    if t == NULL:
        raise ValueError(f"SIMD path {name!r} is not supported on this CPU; available: {isa_names()}")
    return t


def select_isa(name):
    """Make ``name`` the SIMD path in use (done once at import)."""
    cdef const fo_table *t = table_by_name(name)
    fo_select(t.isa)


def set_num_threads(n):
    """Set the number of threads a step may use (including the caller).

    Parameters
    ----------
    n : int
        Thread count, in [1, 1024]; 1 runs every step in the calling thread.
        Results are the same bits for any count.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}")
    if n < 1 or n > 1024:
        raise ValueError(f"number of threads must be in [1, 1024], got {n}")
    if fo_set_num_threads(<int>n) != 0:
        raise RuntimeError("could not set the number of threads")


def get_num_threads():
    """The number of threads a step may use (including the caller)."""
    return fo_get_num_threads()


def default_num_threads():
    """The number of cores this process may run on."""
    return fo_default_num_threads()


# ------------------------------------------------------------------ validation

cdef inline int dtype_code(cnp.ndarray a):
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT32 and not cnp.PyArray_ISBYTESWAPPED(a):
        return FO_F32
    if t == cnp.NPY_FLOAT64 and not cnp.PyArray_ISBYTESWAPPED(a):
        return FO_F64
    return -1


def describe(name):
    """How error messages name a parameter: by index or by dict key."""
    return f"parameter {name!r}" if isinstance(name, str) else f"parameter {name}"


cdef cnp.ndarray as_param_array(obj, what):
    """A writeable, aligned, C-contiguous float32/float64 ndarray viewing obj's memory."""
    cdef cnp.ndarray a
    if isinstance(obj, np.ndarray):
        a = <cnp.ndarray>obj
    else:
        try:
            a = np.asarray(obj)
        except Exception as e:
            raise TypeError(f"{what} must be a numpy array, got {type(obj).__name__}") from e
        if np.asarray(obj).ctypes.data != a.ctypes.data:
            raise TypeError(f"{what}: a {type(obj).__name__} that numpy can only copy cannot be "
                            "updated in place; pass a numpy array")
    if dtype_code(a) < 0:
        raise TypeError(f"{what} must have dtype float32 or float64 (native byte order), got "
                        f"{a.dtype}: convert it first, w = w.astype(np.float32), and use that "
                        "copy (the array passed is the one updated in place)")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{what} must be C-contiguous: make a contiguous copy first, "
                         "w = np.ascontiguousarray(w), and use that copy (the array passed is "
                         "the one updated in place)")
    if not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{what} is read-only: make a writeable copy first, "
                         "w = np.require(w, requirements='W'), and use that copy (the array "
                         "passed is the one updated in place)")
    if not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"{what} is not aligned to its dtype: make an aligned copy first, "
                         "w = np.require(w, requirements='A'), and use that copy (the array "
                         "passed is the one updated in place)")
    return a


cdef cnp.ndarray as_grad_array(obj, cnp.ndarray like, what):
    """obj as an array with the dtype and shape of `like` (a read-only view is fine)."""
    cdef cnp.ndarray g
    if type(obj) is np.ndarray:
        g = <cnp.ndarray>obj
    else:
        try:
            g = np.asarray(obj)
        except Exception as e:
            raise TypeError(f"{what} must be a numpy array, got {type(obj).__name__}") from e
    if cnp.PyArray_TYPE(g) != cnp.PyArray_TYPE(like) or cnp.PyArray_ISBYTESWAPPED(g):
        raise TypeError(f"{what} must have dtype {like.dtype} like its parameter, got {g.dtype}: "
                        f"pass g.astype(np.{like.dtype})")
    cdef int nd = cnp.PyArray_NDIM(g)
    cdef bint same = nd == cnp.PyArray_NDIM(like)
    cdef int k
    if same:
        for k in range(nd):
            if cnp.PyArray_DIMS(g)[k] != cnp.PyArray_DIMS(like)[k]:
                same = False
                break
    if not same:
        raise ValueError(f"{what} has shape {(<object>g).shape}, expected {(<object>like).shape} like its parameter")
    if not cnp.PyArray_IS_C_CONTIGUOUS(g):
        raise ValueError(f"{what} must be C-contiguous: pass np.ascontiguousarray(g)")
    if not cnp.PyArray_ISALIGNED(g):
        raise ValueError(f"{what} is not aligned to its dtype: pass np.require(g, requirements='A')")
    return g


cdef struct Range:
    uintptr_t lo
    uintptr_t hi
    Py_ssize_t owner


cdef int range_cmp(const void *a, const void *b) noexcept nogil:
    cdef uintptr_t x = (<const Range *>a).lo, y = (<const Range *>b).lo
    return -1 if x < y else (1 if x > y else 0)


# A forked child has none of its parent's threads: an engine one of them was
# stepping when the process forked must not look busy in the child.
cdef unsigned long fork_epoch = 1


def _after_fork_in_child():
    global fork_epoch
    fork_epoch += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def gradient_arrays(grads, names=None):
    """``grads`` as a tuple of ndarrays (None stays None), each object converted once.

    The tuple holds a reference to every gradient for as long as it lives, so
    nothing done meanwhile to the caller's list (by another thread, or by an
    ``__array__`` method) can free or swap what a step reads. ``names`` (by
    default the indices) name the gradients in errors.
    """
    cdef tuple t = grads if type(grads) is tuple else tuple(grads)
    cdef Py_ssize_t i
    cdef list out = None
    cdef PyObject *o
    for i in range(len(t)):
        o = PyTuple_GET_ITEM(t, i)
        if o == <PyObject *>None or o.ob_type == ndarray_type:
            continue
        obj = <object>o
        what = f"gradient of {describe(i if names is None else names[i])}"
        try:
            a = np.asarray(obj)
        except Exception as e:
            raise TypeError(f"{what} must be a numpy array, got {type(obj).__name__}") from e
        if not cnp.PyArray_CheckExact(a):
            raise TypeError(f"{what} must be a numpy array, got {type(obj).__name__}")
        if out is None:
            out = list(t)
        out[i] = a
    return t if out is None else tuple(out)


cpdef tuple params_tuple(params):
    """A group's "params" as a tuple (an array alone counts as a list of one)."""
    if type(params) is list or type(params) is tuple:
        return tuple(params)
    if isinstance(params, np.ndarray) or not hasattr(params, "__iter__"):
        return (params,)
    return tuple(params)


def read_groups(param_groups):
    """Each param group read once: ``(groups, hypers, layout)``, the list of
    group dicts, per group a copy of it without ``"params"``, and per group
    its params: the list itself, else as ``params_tuple`` gives them."""
    cdef list groups = list(param_groups)
    cdef list hypers = [], layout = []
    cdef Py_ssize_t gi
    for gi in range(len(groups)):
        group = groups[gi]
        if not isinstance(group, Mapping):
            raise TypeError(f"param group {gi} must be a dict, got {type(group).__name__}")
        hyper = dict(group)
        params = hyper.pop("params", _NO_PARAMS)
        if params is _NO_PARAMS:
            raise ValueError(f"param group {gi} has no 'params' entry")
        # a list is compared with the engine as it is (in C, no thread can
        # change it meanwhile): copying it at every step would cost more
        layout.append(params if type(params) is list else params_tuple(params))
        hypers.append(hyper)
    return groups, hypers, layout


_NO_PARAMS = object()


cdef class Hypers:
    """Every param group's hyperparameters as the C struct, each dict read once.

    ``Hypers(algo, groups)``: a step decides which state buffers must exist
    (``slots``: per group, which of the NUM_SLOTS slots the algorithm uses) and
    runs its kernels from the same structs, so a value that changes
    meanwhile cannot make the two disagree. ``groups`` keeps the dicts.
    """
    cdef fo_hyper *h
    cdef Py_ssize_t n
    cdef fo_algo algo
    cdef readonly tuple groups
    cdef readonly tuple slots

    def __cinit__(self):
        self.h = NULL

    def __dealloc__(self):
        free(self.h)

    def __init__(self, algo, groups):
        if self.h != NULL:
            raise RuntimeError("Hypers objects are initialised once")
        if algo not in ALGOS:
            raise ValueError(f"unknown algorithm {algo!r}")
        self.algo = ALGOS[algo]
        cdef tuple gs = tuple(groups)
        cdef Py_ssize_t k, n = len(gs)
        self.h = <fo_hyper *>malloc(max(n, 1) * sizeof(fo_hyper))
        if self.h == NULL:
            raise MemoryError()
        cdef unsigned mask
        slots = []
        for k in range(n):
            if not isinstance(gs[k], dict):
                raise TypeError(f"param group {k}'s hyperparameters must be a dict, got "
                                f"{type(gs[k]).__name__}")
            self.h[k] = hyper_from(self.algo, gs[k])
            mask = fo_state_slots(self.algo, &self.h[k])
            slots.append(tuple(bool(mask >> k & 1u) for k in range(FO_NUM_SLOTS)))
        self.n = n
        self.groups = gs
        self.slots = tuple(slots)


cdef tuple state_arrays(bufs, cnp.ndarray param, what):
    """A parameter's state slots as NUM_SLOTS validated arrays (or None), each
    writeable, C-contiguous and aligned, with the parameter's dtype and size."""
    if type(bufs) is not tuple:
        raise TypeError(f"state of {what} must be a tuple of {FO_NUM_SLOTS} arrays or None, "
                        f"got {type(bufs).__name__}")
    if len(bufs) > FO_NUM_SLOTS:
        raise ValueError(f"state of {what}: expected {FO_NUM_SLOTS} state slots (arrays or None), "
                         f"got {len(bufs)}")
    cdef cnp.ndarray a
    out = [None] * FO_NUM_SLOTS
    for k in range(len(bufs)):  # a shorter tuple leaves the last slots empty
        if bufs[k] is None:
            continue
        if not isinstance(bufs[k], np.ndarray):
            raise TypeError(f"state slot {k} of {what} must be a numpy array or None, "
                            f"got {type(bufs[k]).__name__}")
        a = as_param_array(bufs[k], f"state slot {k} of {what}")
        if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(param) or cnp.PyArray_SIZE(a) != cnp.PyArray_SIZE(param):
            raise ValueError(f"state slot {k} of {what} has dtype {a.dtype} and {a.size} elements, "
                             f"its parameter {param.dtype} and {param.size}")
        out[k] = a
    return tuple(out)


cdef class Engine:
    """One optimizer's parameters and state buffers, stepped in one C call.

    ``Engine(algo, params, states, names, group_of)`` takes the parameter
    arrays, per parameter a tuple of NUM_SLOTS state arrays (or None for a slot
    not in use), how each parameter is named in errors, and the index of
    each parameter's group in the ``hypers`` of ``step``. Everything is
    validated here (TypeError/ValueError), and the engine keeps its own
    references to every array it points at. ``steps`` (int64) and
    ``started`` (uint8) are per-parameter counters owned by the engine and
    shared with Python as NumPy arrays.

    While a step runs (the GIL released) the engine cannot be changed:
    ``set_state``, ``extend`` and another ``step`` raise RuntimeError.
    """
    cdef fo_algo algo
    cdef readonly str algo_name
    cdef Py_ssize_t n, cap
    cdef fo_item *items      # per parameter: param and state pointers, n, dtype
    cdef fo_item *run        # per step: the parameters that have a gradient
    cdef Py_ssize_t *run_of  # per step: the parameter index of each run entry
    cdef fo_scalars *scalars # per step: one per distinct (group, step)
    cdef Range *written      # sorted memory ranges of params and state (for overlap checks)
    cdef Py_ssize_t nwritten
    cdef bint written_stale  # state pointers changed since `written` was sorted
    cdef uintptr_t *clear    # per parameter: last gradient range found disjoint from `written`
    cdef int *group_of
    cdef unsigned long busy  # fork_epoch while a step runs, else 0
    cdef list _params        # the engine's own references (never shown as a list)
    cdef list _states
    cdef list _names
    cdef object _steps_buf, _started_buf  # capacity `cap`; steps/started view the first n
    cdef readonly object steps
    cdef readonly object started
    cdef int64_t[::1] steps_view
    cdef uint8_t[::1] started_view

    def __cinit__(self):
        self.items = NULL
        self.run = NULL
        self.run_of = NULL
        self.scalars = NULL
        self.written = NULL
        self.group_of = NULL
        self.clear = NULL
        self._params, self._states, self._names = [], [], []

    def __dealloc__(self):
        free(self.items)
        free(self.run)
        free(self.run_of)
        free(self.scalars)
        free(self.written)
        free(self.group_of)
        free(self.clear)

    def __init__(self, algo, params, states, names, group_of):
        if self.items != NULL:
            raise RuntimeError("an Engine is initialised once")
        if not isinstance(algo, str) or algo not in ALGOS:
            raise ValueError(f"unknown algorithm {algo!r}")
        self.algo = ALGOS[algo]
        self.algo_name = algo
        self.reserve(max(len(params), 1))
        self.append(params, states, names, group_of)
        self.index_written()

    @property
    def params(self):
        return tuple(self._params)

    @property
    def states(self):
        return tuple(self._states)

    @property
    def names(self):
        return tuple(self._names)

    cdef reserve(self, Py_ssize_t cap):
        """Room for `cap` parameters (grows geometrically; nothing moves on failure)."""
        if cap <= self.cap:
            return
        cap = max(cap, 2 * self.cap)
        cdef void *p
        p = realloc(self.items, cap * sizeof(fo_item))
        if p == NULL:
            raise MemoryError()
        self.items = <fo_item *>p
        p = realloc(self.run, cap * sizeof(fo_item))
        if p == NULL:
            raise MemoryError()
        self.run = <fo_item *>p
        p = realloc(self.run_of, cap * sizeof(Py_ssize_t))
        if p == NULL:
            raise MemoryError()
        self.run_of = <Py_ssize_t *>p
        p = realloc(self.scalars, cap * sizeof(fo_scalars))
        if p == NULL:
            raise MemoryError()
        self.scalars = <fo_scalars *>p
        p = realloc(self.group_of, cap * sizeof(int))
        if p == NULL:
            raise MemoryError()
        self.group_of = <int *>p
        p = realloc(self.written, (1 + FO_NUM_SLOTS) * cap * sizeof(Range))
        if p == NULL:
            raise MemoryError()
        self.written = <Range *>p
        p = realloc(self.clear, 2 * cap * sizeof(uintptr_t))
        if p == NULL:
            raise MemoryError()
        self.clear = <uintptr_t *>p
        steps = np.zeros(cap, np.int64)
        started = np.zeros(cap, np.uint8)
        if self._steps_buf is not None:
            steps[: self.n] = self.steps
            started[: self.n] = self.started
        self._steps_buf, self._started_buf = steps, started
        self.steps_view, self.started_view = steps, started
        self.steps, self.started = steps[: self.n], started[: self.n]
        self.cap = cap

    cdef append(self, params, states, names, group_of):
        """Validate parameters and their state and add them after the others."""
        params, states, names, group_of = tuple(params), tuple(states), tuple(names), tuple(group_of)
        cdef Py_ssize_t m = len(params), i, j
        if not len(states) == len(names) == len(group_of) == m:
            raise ValueError(f"got {m} params, {len(states)} states, {len(names)} names and "
                             f"{len(group_of)} group indices: one of each per parameter")
        cdef cnp.ndarray p
        arrays, bufsets = [], []
        for i in range(m):
            what = describe(names[i])
            p = as_param_array(params[i], what)
            bufsets.append(state_arrays(states[i], p, what))
            g = group_of[i]
            if isinstance(g, bool) or not isinstance(g, (int, np.integer)):
                raise TypeError(f"group index of {what} must be an int, got {type(g).__name__}")
            if not 0 <= g < 2**31 - 1:
                raise ValueError(f"group index of {what} must be >= 0, got {g}")
            arrays.append(p)
        self.reserve(self.n + m)
        for i in range(m):  # nothing can fail from here on
            j = self.n + i
            p = <cnp.ndarray>arrays[i]
            self.group_of[j] = group_of[i]
            memset(&self.items[j], 0, sizeof(fo_item))
            self.items[j].param = cnp.PyArray_DATA(p)
            self.items[j].n = <size_t>cnp.PyArray_SIZE(p)
            self.items[j].dtype = dtype_code(p)
            self._states.append(None)
            self.point_state(j, bufsets[i])
        self._params += arrays
        self._names += names
        self.n += m
        self.steps, self.started = self._steps_buf[: self.n], self._started_buf[: self.n]

    def extend(self, params, states, names, group_of):
        """Add parameters (Engine's arguments), checking their memory against
        everything the engine writes; on an error nothing changes."""
        if self.busy == fork_epoch:
            raise RuntimeError("cannot add parameters while the engine runs a step")
        if self.written_stale:
            self.index_written()
        cdef Py_ssize_t n0 = self.n, i, owner, k
        self.append(params, states, names, group_of)
        try:
            k = self.collect_ranges(n0, self.nwritten)
            self.check_sorted(self.written + self.nwritten, k)
            for i in range(self.nwritten, self.nwritten + k):
                owner = self.overlaps_written(self.written[i].lo, self.written[i].hi)
                if owner >= 0:
                    self.raise_overlap(owner, self.written[i].owner)
        except BaseException:
            del self._params[n0:], self._states[n0:], self._names[n0:]
            self.n = n0
            self.steps, self.started = self._steps_buf[: n0], self._started_buf[: n0]
            raise
        merge_sorted(self.written, self.nwritten, k)
        self.nwritten += k
        memset(self.clear, 0, 2 * self.cap * sizeof(uintptr_t))

    def set_state(self, Py_ssize_t i, bufs):
        """Point parameter i's state slots at `bufs` (a tuple of NUM_SLOTS arrays or None)."""
        if not 0 <= i < self.n:
            raise IndexError(f"parameter index {i} out of range")
        if self.busy == fork_epoch:
            raise RuntimeError("cannot change state buffers while the engine runs a step")
        self.point_state(i, state_arrays(bufs, <cnp.ndarray>self._params[i], describe(self._names[i])))
        self.written_stale = True  # re-sorted at the next step

    def matches(self, list layout):
        """True when ``layout`` (per group, a list or tuple of its arrays)
        holds exactly this engine's parameters (the same objects), each in
        its group. Runs in C from start to end, so no other thread changes
        the lists meanwhile."""
        cdef Py_ssize_t gi, j, k = 0, size
        cdef object seq
        cdef PyObject **objs
        for gi in range(len(layout)):
            seq = layout[gi]
            if type(seq) is list:
                size, objs = PyList_GET_SIZE(seq), (<PyListObject *>seq).ob_item
            elif type(seq) is tuple:
                size, objs = PyTuple_GET_SIZE(seq), (<PyTupleObject *>seq).ob_item
            else:
                return False
            if k + size > self.n:
                return False
            if memcmp(objs, (<PyListObject *>self._params).ob_item + k, size * sizeof(PyObject *)) != 0:
                return False
            for j in range(k, k + size):
                if self.group_of[j] != gi:
                    return False
            k += size
        return k == self.n

    cdef point_state(self, Py_ssize_t i, tuple bufs):
        """bufs: NUM_SLOTS validated arrays or None (state_arrays)."""
        cdef Py_ssize_t k
        self._states[i] = bufs
        for k in range(FO_NUM_SLOTS):
            if bufs[k] is None:
                self.items[i].state[k] = NULL
            else:
                self.items[i].state[k] = cnp.PyArray_DATA(<cnp.ndarray>bufs[k])

    cdef Py_ssize_t collect_ranges(self, Py_ssize_t first, Py_ssize_t at) except -1:
        """The memory of parameters first.. and their state, into written[at:],
        sorted; returns how many ranges."""
        cdef Py_ssize_t i, m = at
        cdef cnp.ndarray a
        for i in range(first, self.n):
            for a in [self._params[i]] + [b for b in self._states[i] if b is not None]:
                if cnp.PyArray_NBYTES(a) == 0:
                    continue
                self.written[m].lo = <uintptr_t>cnp.PyArray_DATA(a)
                self.written[m].hi = self.written[m].lo + <uintptr_t>cnp.PyArray_NBYTES(a)
                self.written[m].owner = i
                m += 1
        qsort(self.written + at, m - at, sizeof(Range), range_cmp)
        return m - at

    cdef check_sorted(self, Range *r, Py_ssize_t m):
        cdef Py_ssize_t k
        for k in range(1, m):
            if r[k].lo < r[k - 1].hi:
                self.raise_overlap(r[k - 1].owner, r[k].owner)

    cdef raise_overlap(self, Py_ssize_t a, Py_ssize_t b):
        a_name, b_name = describe(self._names[a]), describe(self._names[b])
        if a == b:
            raise ValueError(f"{a_name} shares memory with its own state")
        raise ValueError(f"{a_name} and {b_name} share memory; "
                         "each parameter must have memory of its own")

    cdef index_written(self):
        """Sort the memory of all params and state buffers; reject overlaps."""
        cdef Py_ssize_t m = self.collect_ranges(0, 0)
        self.check_sorted(self.written, m)
        self.nwritten = m
        self.written_stale = False
        memset(self.clear, 0, 2 * self.cap * sizeof(uintptr_t))

    cdef Py_ssize_t overlaps_written(self, uintptr_t lo, uintptr_t hi) noexcept:
        """Index of a parameter whose memory (or state) meets [lo, hi), else -1."""
        if hi <= lo or self.nwritten == 0:
            return -1
        # last range starting before hi
        cdef Py_ssize_t a = 0, b = self.nwritten, mid
        while a < b:
            mid = (a + b) // 2
            if self.written[mid].lo < hi:
                a = mid + 1
            else:
                b = mid
        if a > 0 and self.written[a - 1].hi > lo:
            return self.written[a - 1].owner
        return -1

    def step(self, grads, hypers, bint skip_nonfinite=False, isa=None):
        """Apply one update to every parameter whose gradient is not None.

        ``hypers``: a ``Hypers`` of this algorithm, or per group a dict of its
        hyperparameters. Returns False (and changes nothing) when
        skip_nonfinite is set and a gradient holds NaN or Inf.
        """
        cdef const fo_table *table = table_by_name(isa)
        # Everything that may run Python code (__array__, __float__) happens
        # before the engine is marked busy and its pointers are read. A tuple
        # is taken as gradient_arrays() made it: anything in it but an
        # ndarray or None is a TypeError.
        cdef tuple gs = grads if type(grads) is tuple else gradient_arrays(grads, self._names)
        if len(gs) != self.n:
            raise ValueError(f"expected {self.n} gradients (one per parameter), got {len(gs)}")
        cdef Hypers h = hypers if type(hypers) is Hypers else Hypers(self.algo_name, hypers)
        if h.algo != self.algo:
            raise ValueError("the hyperparameters are for another algorithm")
        if self.busy == fork_epoch:
            raise RuntimeError("the engine is already running a step")
        self.busy = fork_epoch
        try:
            return self._step(gs, h, table, skip_nonfinite)
        finally:
            self.busy = 0

    cdef object _step(self, tuple grads, Hypers hypers, const fo_table *table, bint skip_nonfinite):
        cdef Py_ssize_t i, k, m = 0, nsc = 0, owner
        cdef cnp.ndarray g, p
        cdef int grp, last_grp = -1
        cdef int64_t step, last_step = -1
        cdef int first, last_first = -1
        cdef unsigned mode = 0, need = 0, missing
        cdef uintptr_t lo, hi
        cdef object obj
        # The common case (an ndarray of the parameter's dtype and shape) is
        # checked in C without building any Python object; anything else goes
        # through as_grad_array(), which raises the named error.
        if self.written_stale:
            self.index_written()
        for i in range(self.n):
            obj = grads[i]
            if obj is None:
                continue
            p = <cnp.ndarray>self._params[i]
            if not cnp.PyArray_ISWRITEABLE(p):
                raise ValueError(f"{describe(self._names[i])} is read-only")
            if not cnp.PyArray_CheckExact(obj):
                raise TypeError(f"gradient of {describe(self._names[i])} must be a numpy array, "
                                f"got {type(obj).__name__}")
            g = <cnp.ndarray>obj
            if not grad_matches(g, p):
                g = as_grad_array(g, p, f"gradient of {describe(self._names[i])}")
            lo = <uintptr_t>cnp.PyArray_DATA(g)
            hi = lo + <uintptr_t>(self.items[i].n * (8 if self.items[i].dtype == FO_F64 else 4))
            # Whether [lo, hi) meets the written memory depends on nothing else,
            # so a range found clear at an earlier step (same `written`) is clear.
            if lo != self.clear[2 * i] or hi != self.clear[2 * i + 1]:
                owner = self.overlaps_written(lo, hi)
                if owner >= 0:
                    raise ValueError(f"gradient of {describe(self._names[i])} shares memory with "
                                     f"{describe(self._names[owner])} or its state; gradients must "
                                     "not alias what the step writes")
                self.clear[2 * i], self.clear[2 * i + 1] = lo, hi
            grp = self.group_of[i]
            if grp >= hypers.n:
                raise ValueError(f"{describe(self._names[i])} is in param group {grp}, but the "
                                 f"step got hyperparameters for {hypers.n} groups")
            self.run[m] = self.items[i]
            self.run_of[m] = i
            self.run[m].grad = cnp.PyArray_DATA(g)
            step = self.steps_view[i] + 1
            first = not self.started_view[i]
            if grp != last_grp or step != last_step or first != last_first:
                nsc += 1
                last_grp, last_step, last_first = grp, step, first
                mode = fo_prepare(self.algo, &hypers.h[grp], step, first, &self.scalars[nsc - 1])
                need = fo_mode_slots(self.algo, mode)
            # every state buffer the loop touches must be there (as fo_prepare_item checks)
            if need and ((need & 1u and self.run[m].state[0] == NULL) or
                         (need & 2u and self.run[m].state[1] == NULL) or
                         (need & 4u and self.run[m].state[2] == NULL) or
                         (need & 8u and self.run[m].state[3] == NULL)):
                missing = fo_missing_slots(self.algo, mode, &self.run[m])
                k = 0
                while not missing >> k & 1u:
                    k += 1
                raise ValueError(f"{describe(self._names[i])} has no "
                                 f"{STATE_NAMES[self.algo_name][k]!r} state buffer, which the "
                                 f"hyperparameters of param group {grp} need")
            # the same scalars and loop as fo_prepare_item(), without redoing the maths
            self.run[m].scalars = &self.scalars[nsc - 1]
            self.run[m].kernel = table.update[<int>self.algo][self.run[m].dtype][mode]
            m += 1
        if skip_nonfinite and count_nonfinite(self.run, m, table) > 0:
            return False
        cdef size_t pieces = fo_plan(self.run, m)
        with nogil:
            fo_run(self.run, m, pieces, NULL)
        for k in range(m):
            self.steps_view[self.run_of[k]] += 1
            self.started_view[self.run_of[k]] = 1
        return True


cdef int merge_sorted(Range *r, Py_ssize_t h, Py_ssize_t k) except -1:
    """Merge the sorted runs r[:h] and r[h:h + k] in place."""
    if k == 0:
        return 0
    cdef Range *tail = <Range *>malloc(k * sizeof(Range))
    if tail == NULL:
        raise MemoryError()
    memcpy(tail, r + h, k * sizeof(Range))
    cdef Py_ssize_t i = h - 1, j = k - 1, out = h + k - 1
    while j >= 0:
        if i >= 0 and r[i].lo > tail[j].lo:
            r[out] = r[i]
            i -= 1
        else:
            r[out] = tail[j]
            j -= 1
        out -= 1
    free(tail)
    return 0


cdef inline bint grad_matches(cnp.ndarray g, cnp.ndarray like) noexcept:
    """True when g can be read as like's gradient as it is (as_grad_array's checks)."""
    if cnp.PyArray_TYPE(g) != cnp.PyArray_TYPE(like) or cnp.PyArray_ISBYTESWAPPED(g):
        return False
    cdef int nd = cnp.PyArray_NDIM(g), k
    if nd != cnp.PyArray_NDIM(like):
        return False
    for k in range(nd):
        if cnp.PyArray_DIMS(g)[k] != cnp.PyArray_DIMS(like)[k]:
            return False
    return cnp.PyArray_IS_C_CONTIGUOUS(g) and cnp.PyArray_ISALIGNED(g)


cdef fo_hyper hyper_from(fo_algo algo, dict h) except *:
    """A group's hyperparameters as the C struct (ranges are checked in Python):
    lr, which every group has, and the fields the spec lists for `algo`, each
    the spec's default when the dict lacks it."""
    if h is None:
        raise TypeError("hyperparameters must be a dict, got None")
    fields = _C_FIELDS.get(<int>algo)
    if fields is None:
        raise ValueError(f"unknown algorithm {<int>algo}")
    cdef fo_hyper c = fo_hyper_defaults(algo)
    cdef char *base = <char *>&c
    cdef size_t offset
    c.lr = h["lr"]
    for key, k, n, offset, is_int, default in fields:
        value = h.get(key, default)
        if k is not None:  # one of the n numbers of a pair such as betas
            value = tuple(value)
            if len(value) != n:
                raise ValueError(f"{key} must hold {n} numbers, got {len(value)}")
            value = value[k]
        if is_int:
            (<int *>(base + offset))[0] = bool(value)
        else:
            (<double *>(base + offset))[0] = value
    return c


def state_slots(algo, dict hyper):
    """Which of the NUM_SLOTS state slots `algo` uses under these hyperparameters."""
    cdef fo_algo a = ALGOS[algo]
    cdef fo_hyper c = hyper_from(a, hyper)
    cdef unsigned mask = fo_state_slots(a, &c)
    return tuple(bool(mask & (1u << k)) for k in range(FO_NUM_SLOTS))


cdef double count_nonfinite(fo_item *src, Py_ssize_t m, const fo_table *table) except -1:
    """How many gradient elements of the items are NaN or Inf (one pass in C)."""
    cdef fo_item *items = <fo_item *>malloc(max(m, 1) * sizeof(fo_item))
    if items == NULL:
        raise MemoryError()
    cdef Py_ssize_t i
    for i in range(m):
        items[i] = src[i]
        items[i].kernel = table.count_nonfinite[items[i].dtype]
    cdef size_t pieces = fo_plan(items, m)
    cdef double *partials = <double *>malloc(max(pieces, 1) * sizeof(double))
    cdef double total = 0
    if partials == NULL:
        free(items)
        raise MemoryError()
    with nogil:
        fo_run(items, m, pieces, partials)
    for i in range(<Py_ssize_t>pieces):
        total += partials[i]
    free(partials)
    free(items)
    return total


# ---------------------------------------------------------- gradient clipping

def grad_arrays(grads):
    """The gradients to clip: one array or a sequence of them (None entries
    skipped), each a valid in-place target, no two sharing memory."""
    if isinstance(grads, np.ndarray):
        grads = [grads]
    grads = [g for g in grads if g is not None]
    arrays = [as_param_array(g, f"gradient {i}") for i, g in enumerate(grads)]
    check_disjoint(arrays, [f"gradient {i}" for i in range(len(arrays))])
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
        pieces = fo_plan(items, m)
        partials = <double *>malloc(max(pieces, 1) * sizeof(double))
        if partials == NULL:
            raise MemoryError()
        with nogil:
            fo_run(items, m, pieces, partials)
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
            fo_run(items, m, pieces, NULL)
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
        pieces = fo_plan(items, m)
        with nogil:
            fo_run(items, m, pieces, NULL)
    finally:
        free(items)


def check_disjoint(arrays, what):
    """Raise ValueError when two of the arrays share memory (``what`` names them)."""
    arrays, what = tuple(arrays), tuple(what)
    cdef Py_ssize_t m = len(arrays), i, k = 0
    if len(what) < m:
        raise ValueError(f"got {m} arrays and only {len(what)} names")
    for i in range(m):
        if not isinstance(arrays[i], np.ndarray):
            raise TypeError(f"{what[i]} must be a numpy array, got {type(arrays[i]).__name__}")
    cdef Range *r = <Range *>malloc(max(m, 1) * sizeof(Range))
    if r == NULL:
        raise MemoryError()
    cdef cnp.ndarray a
    try:
        for i in range(m):
            a = <cnp.ndarray>arrays[i]
            if cnp.PyArray_NBYTES(a) == 0:
                continue
            r[k].lo = <uintptr_t>cnp.PyArray_DATA(a)
            r[k].hi = r[k].lo + <uintptr_t>cnp.PyArray_NBYTES(a)
            r[k].owner = i
            k += 1
        qsort(r, k, sizeof(Range), range_cmp)
        for i in range(1, k):
            if r[i].lo < r[i - 1].hi:
                raise ValueError(f"{what[r[i - 1].owner]} and {what[r[i].owner]} share memory")
    finally:
        free(r)


def as_param(obj, what):
    """Validate obj as an in-place target; returns the ndarray."""
    return as_param_array(obj, what)


# ------------------------------------------------------------ bandwidth probe

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
    check_disjoint([x, y] + ([z] if z is not None else []), ["a", "b", "c"])
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
    cdef size_t pieces = fo_plan(&item, 1)
    with nogil:
        fo_run(&item, 1, pieces, NULL)

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The Cython layer over the C core: the engine that steps an optimizer.

Everything here validates first and writes after: each public entry point
checks every array (dtype, shape, contiguity, alignment, writeability and
overlap) before the GIL is released and the C core runs, so a bad argument
raises TypeError/ValueError with nothing touched.

Thread-safety: an ``Engine`` keeps its own references to every array it
points at (a step also to its gradients) and cannot be changed while a step
runs with the GIL released (``set_state``, ``set_counters``, ``extend`` and a
second ``step`` raise RuntimeError), so nothing other Python threads do can
make the C core read freed or missing memory. The step itself is one call of
``fo_step`` (csrc/fo_step.c), which computes the scalars, picks the loops and
advances the step counts; this layer checks and hands over pointers. Callers (``fastopt.Optimizer``) serialise
steps of one engine with a lock. Different engines may step concurrently
from different Python threads.
"""
import math
import numbers
import os
from collections.abc import Mapping

import numpy as np

from . import _newton_schulz, _spec
from ._sparse import RowSparse, coalesced
from ._validate import as_float

cimport numpy as cnp
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject, PyTypeObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc, qsort, realloc
from libc.string cimport memcmp, memcpy, memset

cnp.import_array()

cdef PyTypeObject *ndarray_type = <PyTypeObject *>np.ndarray  # the exact type, for fast checks

cdef extern from "Python.h":
    ctypedef struct PyListObject:
        PyObject **ob_item
    ctypedef struct PyTupleObject:
        PyObject *ob_item[1]

# The per-gradient check of a step, in C: it runs for every tensor at every
# step, so it reads the arrays' structs without making any Python object.
cdef extern from *:
    """
    static PyObject *fo_descr[FO_NUM_DTYPES];  /* NumPy's own dtypes by fo_dtype; bfloat16: NULL */

    static inline void *fo_array_data(PyObject *a) { return PyArray_DATA((PyArrayObject *)a); }

    static inline int fo_native(PyArrayObject *a, int type)
    {
        return PyArray_TYPE(a) == type && PyArray_ISNBO(PyArray_DESCR(a)->byteorder);
    }

    /* A parameter's shape as the engine took it: read at each step from the
     * engine's own memory (side by side for all parameters), not from the
     * array's dimensions, which live in an allocation of their own. */
    #define FO_SHAPE_DIMS 4
    typedef struct fo_shape { int nd; int type; npy_intp dims[FO_SHAPE_DIMS]; } fo_shape;

    static inline void fo_record_shape(fo_shape *s, PyObject *param)
    {
        PyArrayObject *p = (PyArrayObject *)param;
        s->nd = PyArray_NDIM(p);
        s->type = PyArray_TYPE(p);  /* bfloat16's type number is NumPy's choice */
        for (int k = 0; k < s->nd && k < FO_SHAPE_DIMS; k++) s->dims[k] = PyArray_DIMS(p)[k];
    }

    /* 1 when param, the engine's array of item it, is as the engine took it:
     * at it->param, writeable, C-contiguous and aligned, of its type. */
    static inline int fo_param_fits(PyObject *param, const fo_item *it, const fo_shape *shape)
    {
        PyArrayObject *p = (PyArrayObject *)param;
        const int layout = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_WRITEABLE;
        if ((PyArray_FLAGS(p) & layout) != layout || PyArray_DATA(p) != it->param) return 0;
        PyObject *d = fo_descr[it->dtype];
        return (d && (PyObject *)PyArray_DESCR(p) == d) || fo_native(p, shape->type);
    }

    /* 1 when grad (an exact ndarray) can be read as the gradient of param as
     * the engine holds it (item, shape): param as fo_param_fits() says; grad
     * C-contiguous, aligned, of that dtype and of the parameter's shape,
     * item->n elements. */
    static inline int fo_grad_fits(PyObject *grad, PyObject *param, const fo_item *it,
                                   const fo_shape *shape)
    {
        PyArrayObject *g = (PyArrayObject *)grad, *p = (PyArrayObject *)param;
        const int layout = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED;
        if ((PyArray_FLAGS(g) & layout) != layout || !fo_param_fits(param, it, shape)) return 0;
        PyObject *d = fo_descr[it->dtype];
        if (!(d && (PyObject *)PyArray_DESCR(g) == d) && !fo_native(g, shape->type)) return 0;
        const int nd = PyArray_NDIM(g);
        if (nd != shape->nd) return 0;
        const npy_intp *a = PyArray_DIMS(g);
        const npy_intp *b = nd <= FO_SHAPE_DIMS ? shape->dims : PyArray_DIMS(p);
        if (nd > FO_SHAPE_DIMS && PyArray_NDIM(p) != nd) return 0;
        npy_intp size = 1;
        for (int k = 0; k < nd; k++) {
            if (a[k] != b[k]) return 0;
            size *= a[k];
        }
        return (size_t)size == it->n;
    }

    /* Start loading what the check of a later tensor reads: the structs of
     * its arrays (far ahead), then the gradient's dimensions, which the
     * struct points at (nearer, once the struct is there). Objects other
     * than ndarrays are only touched at their head. */
    static inline void fo_prefetch_arrays(PyObject *grad, PyObject *param)
    {
    #if defined(__GNUC__)
        __builtin_prefetch(grad);
        __builtin_prefetch((char *)grad + 64);
        __builtin_prefetch(param);
        __builtin_prefetch((char *)param + 64);
    #else
        (void)grad; (void)param;
    #endif
    }

    static inline void fo_prefetch_dims(PyObject *grad, PyTypeObject *ndarray)
    {
    #if defined(__GNUC__)
        if (Py_TYPE(grad) == ndarray) __builtin_prefetch(PyArray_DIMS((PyArrayObject *)grad));
    #else
        (void)grad; (void)ndarray;
    #endif
    }
    """
    PyObject *fo_descr[4]
    enum: NPY_USERDEF  # the first type number of a dtype NumPy does not define
    void *fo_array_data(PyObject *a) noexcept
    ctypedef struct fo_shape:
        int nd
        int type
        cnp.npy_intp dims[4]  # FO_SHAPE_DIMS
    void fo_record_shape(fo_shape *s, PyObject *param) noexcept
    bint fo_param_fits(PyObject *param, const fo_item *it, const fo_shape *shape) noexcept
    bint fo_grad_fits(PyObject *grad, PyObject *param, const fo_item *it,
                      const fo_shape *shape) noexcept
    void fo_prefetch_arrays(PyObject *grad, PyObject *param) noexcept
    void fo_prefetch_dims(PyObject *grad, PyTypeObject *ndarray) noexcept

_DESCRS = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16))  # kept alive for fo_descr
fo_descr[<int>FO_F32] = <PyObject *>_DESCRS[0]
fo_descr[<int>FO_F64] = <PyObject *>_DESCRS[1]
fo_descr[<int>FO_F16] = <PyObject *>_DESCRS[2]
fo_descr[<int>FO_BF16] = NULL  # a user dtype (ml_dtypes'): checked by its type number

# The C core's algorithms by name (FO_ALGOS), and each one's state buffer
# names in C slot order (torch's names), from the spec.
ALGOS = {fo_algo_name(i).decode(): i for i in range(FO_NUM_ALGOS)}
# Per algorithm, the spec's rule for row-sparse gradients (absent: dense only).
_SPARSE_RULES = {row.algo: row.sparse for row in _spec.SPECS.values() if row.sparse is not None}
_SPARSE_DENSE = {row.algo: row.sparse_dense for row in _spec.SPECS.values()
                 if row.sparse_dense is not None}
STATE_NAMES = {}
for _row in _spec.SPECS.values():
    if _row.algo not in ALGOS:
        raise ImportError(f"{_row.name}'s algorithm {_row.algo!r} is not in the C core "
                          f"(FO_ALGOS: {list(ALGOS)}): rebuild the extension")
    STATE_NAMES.setdefault(_row.algo, _row.state_names)

# State buffers per parameter (fo_item.state): Adam uses three, Adan four.
NUM_SLOTS = FO_NUM_SLOTS
# A parameter's state tuple may have one entry more, after the slots: its
# float32 master copy (16-bit parameters, master_weights=True), or None.
MASTER = FO_NUM_SLOTS
ROUNDINGS = ("nearest", "stochastic")  # fo_rounding's order
# Per-parameter scalar state values (fo_pscalars: NAdam's mu_product, ASGD's eta and mu).
NUM_PSCALARS = FO_NUM_PSCALARS

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

cdef int dtype_code(cnp.ndarray a) noexcept:
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT32 and not cnp.PyArray_ISBYTESWAPPED(a):
        return FO_F32
    if t == cnp.NPY_FLOAT64 and not cnp.PyArray_ISBYTESWAPPED(a):
        return FO_F64
    return -1


# bfloat16 is no NumPy dtype: ml_dtypes (JAX's) registers one, with a type
# number of its own, recognised by name and size without importing ml_dtypes.
cdef int bf16_type = -1  # its type number once an array of it was seen


cdef bint is_bfloat16(cnp.ndarray a):
    global bf16_type
    cdef int t = cnp.PyArray_TYPE(a)
    if t == bf16_type:
        return True
    if bf16_type >= 0 or t < NPY_USERDEF:
        return False
    d = (<object>a).dtype
    if d.name == "bfloat16" and d.itemsize == 2 and d.kind == "V":
        bf16_type = t
        return True
    return False


cdef int param_code(cnp.ndarray a, bint raw_bf16) noexcept:
    """The fo_dtype of a parameter or gradient: dtype_code's, float16 and
    bfloat16 (and uint16 as bfloat16 bits with raw_bf16: fastopt.torch's
    views of bfloat16 tensors); -1 for anything else."""
    cdef int code = dtype_code(a)
    if code >= 0 or cnp.PyArray_ISBYTESWAPPED(a):
        return code
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT16:
        return FO_F16
    if (raw_bf16 and t == cnp.NPY_UINT16) or is_bfloat16(a):
        return FO_BF16
    return -1


cdef int state_code(int code) noexcept:
    """The fo_dtype of the state of a parameter of dtype `code`: float32 for
    the 16-bit ones (computed in float32), else its own."""
    return FO_F32 if code == FO_BF16 or code == FO_F16 else code


cdef int Q8_CODE = 100  # state_arrays' mark of an 8-bit buffer (no fo_dtype)


cdef int state16_code(int code) noexcept:
    """The 16-bit state a parameter of fo_dtype `code` may have instead
    (fo_item.state16): bfloat16 for float32 and bfloat16 parameters, float16
    for float16 ones; -1 for float64."""
    if code == FO_F32 or code == FO_BF16:
        return FO_BF16
    return FO_F16 if code == FO_F16 else -1


cdef size_t item_bytes_each(const fo_item *it) noexcept:
    return 8 if it.dtype == FO_F64 else (4 if it.dtype == FO_F32 else 2)


cdef size_t item_bytes(const fo_item *it) noexcept:
    return it.n * item_bytes_each(it)


def state_dtype(array, raw_bf16=False):
    """The dtype of the state buffers of parameter `array` (validated):
    float32 for float16 and bfloat16 parameters, else the parameter's."""
    cdef int code = param_code(<cnp.ndarray>array, raw_bf16)
    return np.dtype(np.float32) if state_code(code) == FO_F32 else (<object>array).dtype


# The state_dtype= choices besides None (the default: state_code's dtype).
STATE_DTYPES = ("param", "float32", "bfloat16", "int8")
# The algorithms that step 16-bit state (fo_algo_state16: not Adafactor, Muon),
# and block-wise 8-bit state (fo_algo_state8).
STATE16_ALGOS = frozenset(name for name, i in ALGOS.items() if fo_algo_state16(<fo_algo>i))
STATE8_ALGOS = frozenset(name for name, i in ALGOS.items() if fo_algo_state8(<fo_algo>i))
Q_BLOCK = FO_Q_BLOCK
fo_q8_init()
_CODE_NAMES = {FO_F32: "float32", FO_F64: "float64", FO_BF16: "bfloat16", FO_F16: "float16"}


def check_state_dtype(state_dtype, algo):
    """The optimizers' state_dtype keyword, checked (TypeError/ValueError) and
    returned as None or a name in STATE_DTYPES; a NumPy, ml_dtypes or torch
    dtype stands for its name."""
    if state_dtype is None:
        return None
    name = state_dtype
    if not isinstance(name, str):
        name = str(name)
        if name.startswith("torch."):
            name = name[len("torch."):]
        else:
            try:
                name = np.dtype(state_dtype).name
            except TypeError:
                raise TypeError(f"state_dtype must be None or one of {STATE_DTYPES}, "
                                f"got {state_dtype!r}") from None
    if name not in STATE_DTYPES:
        raise ValueError(f"state_dtype must be None or one of {STATE_DTYPES}, got {state_dtype!r}")
    if name == "bfloat16" and not fo_algo_state16(ALGOS[algo]):
        raise ValueError(f"the {algo} algorithm keeps float32 state: state_dtype='bfloat16' "
                         "is not available for it")
    if name == "int8" and not fo_algo_state8(ALGOS[algo]):
        raise ValueError(f"state_dtype='int8' is for {sorted(STATE8_ALGOS)} (and AdamW), not the "
                         f"{algo} algorithm")
    return name


_NAME_CODES = {name: code for code, name in _CODE_NAMES.items()}


def state_dtype_names(param_dtype, algo):
    """The dtype names the state buffers of a parameter of dtype name
    `param_dtype` ("float32", "float64", "bfloat16" or "float16") may have:
    its default state dtype's (state_code), then, where `algo` steps 16-bit
    state, the 16-bit one (state16_code)."""
    cdef int code = _NAME_CODES[param_dtype]
    names = (_CODE_NAMES[state_code(code)],)
    if fo_algo_state16(ALGOS[algo]) and state16_code(code) >= 0:
        names += (_CODE_NAMES[state16_code(code)],)
    return names


def state_dtype_name(param_dtype, choice, algo, what):
    """The dtype name of the state of a parameter (named `what` in errors) of
    dtype name `param_dtype` under state_dtype `choice` (check_state_dtype's):
    ValueError where it cannot have that state."""
    allowed = state_dtype_names(param_dtype, algo)
    if choice is None:
        return allowed[0]
    if choice == "int8":
        if param_dtype == "float64" or not fo_algo_state8(ALGOS[algo]):
            raise ValueError(f"{what} is {param_dtype}: state_dtype='int8' is for float32, "
                             f"bfloat16 and float16 parameters of {sorted(STATE8_ALGOS)}")
        return "uint8"  # the buffers' bytes (q8_bytes)
    name = param_dtype if choice == "param" else choice
    if name in allowed:
        return name
    raise ValueError(f"{what} is {param_dtype}: its state can be {' or '.join(allowed)} "
                     f"under the {algo} algorithm, not {name} (state_dtype={choice!r})")


def q8_bytes(n):
    """The bytes of an 8-bit state buffer of n values (fastopt.h, FO_Q_BLOCK):
    n codes, zeros to a multiple of 64 bytes, a float32 scale per block."""
    return fo_q8_bytes(<size_t>n)


def q8_code(is_signed):
    """The 256 values of the signed or unsigned dynamic map, increasing (float32)."""
    out = np.empty(256, np.float32)
    fo_q8_code(1 if is_signed else 0, <float *>cnp.PyArray_DATA(out))
    return out


def q8_signed(algo, slot):
    """Whether 8-bit state slot `slot` of `algo` uses the signed map."""
    return bool(fo_q8_signed(<fo_algo>ALGOS[algo], <int>slot))


def q8_encode(values, is_signed):
    """Float32 `values` (any shape, read flat) as an 8-bit state buffer (uint8, q8_bytes)."""
    cdef cnp.ndarray x = np.ascontiguousarray(values, np.float32).reshape(-1)
    cdef size_t n = <size_t>x.size, b, length
    cdef cnp.ndarray out = np.zeros(fo_q8_bytes(n), np.uint8)
    cdef uint8_t *codes = <uint8_t *>cnp.PyArray_DATA(out)
    cdef float *scales = fo_q8_scales(codes, n)
    cdef const float *data = <const float *>cnp.PyArray_DATA(x)
    cdef int s = 1 if is_signed else 0
    with nogil:
        b = 0
        while b < n:
            length = min(<size_t>FO_Q_BLOCK, n - b)
            fo_q8_store_block(codes + b, &scales[b // FO_Q_BLOCK], data + b, length, s)
            b += FO_Q_BLOCK
    return out


def q8_decode(buf, n, is_signed):
    """The n float32 values an 8-bit state buffer holds (flat)."""
    cdef cnp.ndarray raw = np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
    cdef size_t count = <size_t>n, b, length
    if raw.size != fo_q8_bytes(count):
        raise ValueError(f"an 8-bit buffer of {count} values has {fo_q8_bytes(count)} bytes, got {raw.size}")
    cdef cnp.ndarray out = np.empty(count, np.float32)
    cdef uint8_t *codes = <uint8_t *>cnp.PyArray_DATA(raw)
    cdef float *scales = fo_q8_scales(codes, count)
    cdef float *data = <float *>cnp.PyArray_DATA(out)
    cdef int s = 1 if is_signed else 0
    with nogil:
        b = 0
        while b < count:
            length = min(<size_t>FO_Q_BLOCK, count - b)
            fo_q8_load_block(data + b, codes + b, scales[b // FO_Q_BLOCK], length, s)
            b += FO_Q_BLOCK
    return out


def describe(name):
    """How error messages name a parameter: by index or by dict key."""
    return f"parameter {name!r}" if isinstance(name, str) else f"parameter {name}"


cdef cnp.ndarray as_param_array(obj, what, bint half=False, bint raw_bf16=False, bint q8=False):
    """A writeable, aligned, C-contiguous float32/float64 ndarray viewing obj's
    memory; with `half`, float16 and bfloat16 too (param_code); with `q8`,
    uint8 too (an 8-bit state buffer, its start on 4 bytes for its scales)."""
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
    if q8 and cnp.PyArray_TYPE(a) == cnp.NPY_UINT8:
        if <uintptr_t>cnp.PyArray_DATA(a) % 4:
            raise ValueError(f"{what}: an 8-bit state buffer must start on a 4-byte boundary")
    elif (param_code(a, raw_bf16) if half else dtype_code(a)) < 0:
        kinds = "float32, float64, float16 or bfloat16" if half else "float32 or float64"
        raise TypeError(f"{what} must have dtype {kinds} (native byte order), got "
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
        if type(obj) is RowSparse:  # checked against its parameter by the step
            continue
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

    ``Hypers(algo, groups)``: a step runs its kernels from these structs,
    and ``slots`` (per group, which of the NUM_SLOTS state slots the algorithm
    uses, computed from the same structs when first asked) says which state
    buffers must exist, so a value that changes meanwhile cannot make the
    two disagree. ``groups`` keeps the dicts.
    """
    cdef fo_hyper *h
    cdef Py_ssize_t n
    cdef fo_algo algo
    cdef readonly tuple groups
    cdef tuple _slots

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
        for k in range(n):
            if not isinstance(gs[k], dict):
                raise TypeError(f"param group {k}'s hyperparameters must be a dict, got "
                                f"{type(gs[k]).__name__}")
            self.h[k] = hyper_from(self.algo, gs[k])
        self.n = n
        self.groups = gs

    @property
    def slots(self):
        """Per group, which of the NUM_SLOTS state slots its hyperparameters use."""
        cdef unsigned mask
        cdef Py_ssize_t k
        if self._slots is None:
            out = []
            for k in range(self.n):
                mask = fo_state_slots(self.algo, &self.h[k])
                out.append(tuple(bool(mask >> j & 1u) for j in range(FO_NUM_SLOTS)))
            self._slots = tuple(out)
        return self._slots


cdef tuple state_arrays(bufs, cnp.ndarray param, int code, what, tuple sizes, fo_algo algo,
                        bint raw_bf16):
    """A parameter's state slots as NUM_SLOTS validated arrays (or None), each
    writeable, C-contiguous and aligned, of the size `sizes` gives per slot
    (slot_sizes: the parameter's, or None where it has no buffer), all of one
    dtype: its state's (state_code of its fo_dtype `code`) or, where `algo`
    allows it, the 16-bit one (state16_code); then, when `bufs` has one more
    entry that is not None, its master copy (MASTER: float32, a 16-bit
    parameter's only)."""
    if type(bufs) is not tuple:
        raise TypeError(f"state of {what} must be a tuple of {FO_NUM_SLOTS} arrays or None, "
                        f"got {type(bufs).__name__}")
    if len(bufs) > FO_NUM_SLOTS + 1:
        raise ValueError(f"state of {what}: expected {FO_NUM_SLOTS} state slots (arrays or None) "
                         f"and a master copy, got {len(bufs)}")
    cdef cnp.ndarray a
    cdef int scode, first = -1
    out = [None] * FO_NUM_SLOTS
    for k in range(min(len(bufs), FO_NUM_SLOTS)):  # a shorter tuple leaves the last slots empty
        if bufs[k] is None:
            continue
        if not isinstance(bufs[k], np.ndarray):
            raise TypeError(f"state slot {k} of {what} must be a numpy array or None, "
                            f"got {type(bufs[k]).__name__}")
        a = as_param_array(bufs[k], f"state slot {k} of {what}", True, raw_bf16, fo_algo_state8(algo))
        if sizes[k] is None:
            raise ValueError(f"state slot {k} of {what}: a parameter of shape {(<object>param).shape} "
                             "has no buffer there")
        scode = param_code(a, raw_bf16)
        if cnp.PyArray_TYPE(a) == cnp.NPY_UINT8 and fo_algo_state8(algo) and code != FO_F64:
            scode = Q8_CODE  # 8-bit: its bytes (q8_bytes)
        if first < 0:
            first = scode
        if scode == Q8_CODE:
            if first != Q8_CODE or sizes[k] is None or cnp.PyArray_SIZE(a) != fo_q8_bytes(sizes[k]):
                raise ValueError(f"state slot {k} of {what} is 8-bit ({a.size} bytes): expected "
                                 f"{fo_q8_bytes(sizes[k] or 0)} bytes for {sizes[k]} values, and "
                                 "every slot 8-bit")
        elif (scode != state_code(code) and (scode != state16_code(code) or not fo_algo_state16(algo))
                or scode != first or cnp.PyArray_SIZE(a) != sizes[k]):
            expected = "float32" if state_code(code) != code else str(param.dtype)
            if fo_algo_state16(algo) and state16_code(code) >= 0:
                expected += " or " + ("bfloat16" if state16_code(code) == FO_BF16 else "float16")
            raise ValueError(f"state slot {k} of {what} has dtype {a.dtype} and {a.size} elements, "
                             f"expected {expected} (one dtype for all its slots) and {sizes[k]} (its "
                             f"parameter: {param.dtype}, shape {(<object>param).shape})")
        out[k] = a
    if len(bufs) > FO_NUM_SLOTS and bufs[FO_NUM_SLOTS] is not None:
        if code != FO_BF16 and code != FO_F16:
            raise ValueError(f"{what} is {param.dtype}: only 16-bit parameters have a master copy")
        if not isinstance(bufs[FO_NUM_SLOTS], np.ndarray):
            raise TypeError(f"master copy of {what} must be a numpy array, "
                            f"got {type(bufs[FO_NUM_SLOTS]).__name__}")
        a = as_param_array(bufs[FO_NUM_SLOTS], f"master copy of {what}")
        if dtype_code(a) != FO_F32 or cnp.PyArray_SIZE(a) != cnp.PyArray_SIZE(param):
            raise ValueError(f"master copy of {what} has dtype {a.dtype} and {a.size} elements, "
                             f"expected float32 and {param.size}")
        out.append(a)
    return tuple(out)


def check_rounding(master_weights, rounding, seed):
    """The optimizers' master_weights, rounding and seed keywords, checked
    (TypeError/ValueError) and returned as (bool, str, int)."""
    if not isinstance(master_weights, (bool, np.bool_)):
        raise TypeError(f"master_weights must be True or False, got {master_weights!r}")
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return bool(master_weights), rounding, int(seed)


_SHAPED = {row.algo: row for row in _spec.SPECS.values() if any(b.shape for b in row.state)}


cdef tuple slot_sizes(str algo, cnp.ndarray param):
    """Per state slot, the size its buffer has for `param` under `algo`: the
    parameter's, or for an algorithm whose spec shapes its buffers (Adafactor)
    the spec's (None where the parameter has no buffer)."""
    spec = _SHAPED.get(algo)
    if spec is None:
        return (cnp.PyArray_SIZE(param),) * FO_NUM_SLOTS
    out = []
    for k in range(FO_NUM_SLOTS):
        shape = spec.buffer_shape(k, (<object>param).shape)
        out.append(None if shape is None else math.prod(shape))
    return tuple(out)


class MissingState(ValueError):
    """A step found no state buffer where its parameter's loop needs one
    (``index``: the parameter); nothing was written."""

    def __init__(self, message, index):
        super().__init__(message)
        self.index = index


# The largest step count an engine holds: the next update must have a number.
MAX_STEPS = 2**63 - 2


cdef int count_of(object value, int64_t *out) noexcept:
    """value as a step count in [0, MAX_STEPS] into *out: 0, or 1 for a value
    that is not a number (TypeError), 2 for one that is no such count
    (ValueError). Whole floats count (torch keeps steps as float tensors);
    0-d float arrays, such as torch's step tensors' NumPy views, are read
    straight from memory."""
    cdef double x
    cdef int code
    if cnp.PyArray_CheckExact(value) and cnp.PyArray_NDIM(<cnp.ndarray>value) == 0:
        code = dtype_code(<cnp.ndarray>value)
        if code == FO_F32:
            x = (<float *>cnp.PyArray_DATA(<cnp.ndarray>value))[0]
        elif code == FO_F64:
            x = (<double *>cnp.PyArray_DATA(<cnp.ndarray>value))[0]
        else:
            return count_of(value[()], out)
    elif type(value) is int:
        if not 0 <= value <= MAX_STEPS:
            return 2
        out[0] = value
        return 0
    elif isinstance(value, (bool, str, bytes)):
        return 1
    else:
        try:
            if isinstance(value, numbers.Integral):
                return count_of(int(value), out)
            x = value
        except Exception:
            return 1
    # below 2**63 (the first double above MAX_STEPS) a whole double is exact as int64
    if not (x >= 0 and x < 9223372036854775808.0 and x == <double><int64_t>x):
        return 2
    if <int64_t>x > MAX_STEPS:
        return 2
    out[0] = <int64_t>x
    return 0


cdef class Engine:
    """One optimizer's parameters and state buffers, stepped in one C call.

    ``Engine(algo, params, states, names, group_of)`` takes the parameter
    arrays, per parameter a tuple of NUM_SLOTS state arrays (or None for a slot
    not in use), how each parameter is named in errors, and the index of
    each parameter's group in the ``hypers`` of ``step``. Everything is
    validated here (TypeError/ValueError), and the engine keeps its own
    references to every array it points at.

    The engine owns each parameter's step counters: ``steps`` (updates
    done) and ``started`` (whether its state holds an update: SGD's momentum
    buffer starts as the first gradient). ``fo_step`` advances them; from
    Python they are read with ``counters()`` (or the read-only ``steps`` and
    ``started``) and set with ``set_counters()`` only.

    While a step runs (the GIL released) the engine cannot be changed:
    ``set_state``, ``set_counters``, ``extend`` and another ``step`` raise
    RuntimeError.
    """
    cdef fo_algo algo
    cdef readonly str algo_name
    cdef Py_ssize_t n, cap
    cdef fo_item *items      # per parameter: param, state, n, dtype; grad set at each step
    cdef fo_scalars *scalars # fo_step's workspace
    cdef int64_t *counts     # per parameter: updates done
    cdef uint8_t *begun      # per parameter: whether its state holds an update
    cdef fo_pscalars *pscal  # per parameter: its scalar state (fo_step advances it)
    cdef Range *written      # sorted memory ranges of params and state (for overlap checks)
    cdef Py_ssize_t nwritten
    cdef bint written_stale  # state pointers changed since `written` was sorted
    cdef uintptr_t *clear    # per parameter: last gradient range found disjoint from `written`
    cdef fo_shape *shapes    # per parameter: its shape when the engine took it
    cdef int *group_of
    cdef readonly bint raw_bf16  # uint16 arrays hold bfloat16 bits (fastopt.torch)
    cdef unsigned long busy  # fork_epoch while a step runs, else 0
    cdef list _params        # the engine's own references (never shown as a list)
    cdef list _states
    cdef list _names
    cdef list _scratch       # Muon (fo_split_phase): per parameter its update buffer, or None
    cdef int rounding        # fo_rounding of every 16-bit parameter
    cdef uint64_t seed       # stochastic rounding's seed
    cdef list _sparse        # during a step: (index, indices, values) of each row-sparse gradient

    def __cinit__(self):
        self.items = NULL
        self.scalars = NULL
        self.counts = NULL
        self.begun = NULL
        self.pscal = NULL
        self.written = NULL
        self.group_of = NULL
        self.clear = NULL
        self.shapes = NULL
        self._params, self._states, self._names, self._scratch = [], [], [], []
        self._sparse = []

    def __dealloc__(self):
        free(self.items)
        free(self.scalars)
        free(self.counts)
        free(self.begun)
        free(self.pscal)
        free(self.written)
        free(self.group_of)
        free(self.clear)
        free(self.shapes)

    def __init__(self, algo, params, states, names, group_of, *, raw_bf16=False,
                 rounding="nearest", seed=0):
        if self.items != NULL:
            raise RuntimeError("an Engine is initialised once")
        if not isinstance(algo, str) or algo not in ALGOS:
            raise ValueError(f"unknown algorithm {algo!r}")
        self.set_rounding(rounding, seed)  # no items yet: only checked and kept
        self.algo = ALGOS[algo]
        self.algo_name = algo
        self.raw_bf16 = bool(raw_bf16)
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

    # -- step counters: counters() reads them, set_counters() is the only writer

    def counters(self):
        """``(steps, started)``: per parameter the updates done (int64) and
        whether its state holds an update (uint8), as new arrays."""
        steps = np.empty(self.n, np.int64)
        started = np.empty(self.n, np.uint8)
        if self.n:
            memcpy(cnp.PyArray_DATA(steps), self.counts, self.n * sizeof(int64_t))
            memcpy(cnp.PyArray_DATA(started), self.begun, self.n * sizeof(uint8_t))
        return steps, started

    @property
    def steps(self):
        """Updates done per parameter (a read-only copy; see ``set_counters``)."""
        steps = self.counters()[0]
        steps.flags.writeable = False
        return steps

    @property
    def started(self):
        """Whether each parameter's state holds an update (a read-only copy)."""
        started = self.counters()[1]
        started.flags.writeable = False
        return started

    def set_counters(self, steps=None, started=None, index=None):
        """Set step counters, checking every value before any is set.

        ``steps`` (whole numbers in [0, MAX_STEPS]) and ``started`` (truth
        values) hold one value per parameter, or, with ``index`` (parameter
        indices), one per index. None leaves that counter as it is.
        """
        if self.busy == fork_epoch:
            raise RuntimeError("cannot set step counters while the engine runs a step")
        cdef Py_ssize_t i, m = self.n
        cdef tuple where = None  # None: every parameter, in order
        if index is not None:
            where = tuple(index)
            for i in where:
                if not 0 <= i < self.n:
                    raise IndexError(f"parameter index {i} out of range")
            m = len(where)
        cdef int64_t *counts = NULL
        cdef int code
        cdef list begun = None
        if steps is not None:
            steps = tuple(steps)
            if len(steps) != m:
                raise ValueError(f"expected {m} step counts, got {len(steps)}")
        if started is not None:
            started = tuple(started)
            if len(started) != m:
                raise ValueError(f"expected {m} started flags, got {len(started)}")
            begun = [bool(x) for x in started]
        if steps is not None:
            counts = <int64_t *>malloc(max(m, 1) * sizeof(int64_t))
            if counts == NULL:
                raise MemoryError()
            try:
                for i in range(m):
                    code = count_of(steps[i], &counts[i])
                    if code:
                        what = f"step count of {describe(self._names[i if where is None else where[i]])}"
                        if code == 1:
                            raise TypeError(f"{what} must be a whole number, got "
                                            f"{type(steps[i]).__name__}")
                        raise ValueError(f"{what} must be a whole number in [0, {MAX_STEPS}], "
                                         f"got {steps[i]!r}")
                for i in range(m):  # nothing can fail from here on
                    self.counts[i if where is None else where[i]] = counts[i]
            finally:
                free(counts)
        if begun is not None:
            for i in range(m):
                self.begun[i if where is None else where[i]] = begun[i]

    def store_steps(self, targets):
        """Write each parameter's step count into ``targets[i]``, a writeable
        0-d float32/float64 array (torch's step tensors' NumPy views), as
        that float (rounded as torch's ``step += 1`` rounds). Checked first."""
        cdef tuple t = tuple(targets)
        cdef Py_ssize_t i
        cdef cnp.ndarray a
        if len(t) != self.n:
            raise ValueError(f"expected {self.n} step targets, got {len(t)}")
        for i in range(self.n):
            if (not cnp.PyArray_CheckExact(t[i]) or cnp.PyArray_NDIM(<cnp.ndarray>t[i]) != 0
                    or dtype_code(<cnp.ndarray>t[i]) < 0
                    or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>t[i])
                    or not cnp.PyArray_ISALIGNED(<cnp.ndarray>t[i])):
                raise TypeError(f"step target {i} must be a writeable 0-d float32/float64 array")
        for i in range(self.n):
            a = <cnp.ndarray>t[i]
            if dtype_code(a) == FO_F64:
                (<double *>cnp.PyArray_DATA(a))[0] = <double>self.counts[i]
            else:
                (<float *>cnp.PyArray_DATA(a))[0] = <float>self.counts[i]

    # -- per-parameter scalar state (fo_pscalars): read and set only here

    def scalar_state(self):
        """``(values, dtypes)``: per parameter its NUM_PSCALARS scalar state
        values (float64, shape (n, NUM_PSCALARS)) and the dtype each is kept
        in (a NumPy dtype), as new objects. Meaningful once it has started."""
        values = np.empty((self.n, FO_NUM_PSCALARS), np.float64)
        cdef Py_ssize_t i, k
        for i in range(self.n):
            for k in range(FO_NUM_PSCALARS):
                values[i, k] = self.pscal[i].v[k]
        return values, [_DESCRS[self.pscal[i].dtype] for i in range(self.n)]

    def set_scalar_state(self, values, dtypes, index=None):
        """Set the scalar state of the parameters in ``index`` (default:
        all, in order): per parameter a sequence of NUM_PSCALARS numbers and
        a dtype (float32 or float64: each value is rounded to it). Checked
        before anything is set."""
        if self.busy == fork_epoch:
            raise RuntimeError("cannot set scalar state while the engine runs a step")
        where = tuple(range(self.n)) if index is None else tuple(index)
        values, dtypes = tuple(values), tuple(dtypes)
        if not len(values) == len(dtypes) == len(where):
            raise ValueError(f"expected {len(where)} scalar states and dtypes")
        rows = []
        for i, row, dt in zip(where, values, dtypes):
            if not 0 <= i < self.n:
                raise IndexError(f"parameter index {i} out of range")
            dt = np.dtype(dt)
            if dt not in _DESCRS:
                raise TypeError(f"scalar state of {describe(self._names[i])} must be float32 "
                                f"or float64, got {dt}")
            row = [float(np.asarray(x, dt)) for x in row]
            if len(row) > FO_NUM_PSCALARS:
                raise ValueError(f"at most {FO_NUM_PSCALARS} scalar state values per parameter")
            rows.append((i, row + [0.0] * (FO_NUM_PSCALARS - len(row)), _DESCRS.index(dt)))
        cdef Py_ssize_t k
        for i, row, code in rows:  # nothing can fail from here on
            for k in range(FO_NUM_PSCALARS):
                self.pscal[<Py_ssize_t>i].v[k] = row[k]
            self.pscal[<Py_ssize_t>i].dtype = code

    def load_scalars(self, views):
        """Read each parameter's scalar state from ``views[i]``: a tuple of
        0-d float32/float64 arrays (torch's 0-d state tensors' NumPy views),
        values and dtype taken from them (the dtype of the first)."""
        t = tuple(views)
        if len(t) != self.n:
            raise ValueError(f"expected {self.n} scalar state views, got {len(t)}")
        for i in range(self.n):
            for a in t[i]:
                if not isinstance(a, np.ndarray) or a.ndim != 0 or a.dtype not in _DESCRS:
                    raise TypeError(f"scalar state {i} must be 0-d float32/float64 arrays")
        self.set_scalar_state([[a[()] for a in row] for row in t],
                              [row[0].dtype if row else _DESCRS[0] for row in t])

    def store_scalars(self, views):
        """Write each parameter's scalar state into ``views[i]`` (as for
        ``load_scalars``; writeable), each value in its array's dtype."""
        t = tuple(views)
        if len(t) != self.n:
            raise ValueError(f"expected {self.n} scalar state views, got {len(t)}")
        for i in range(self.n):
            for a in t[i]:
                if (not isinstance(a, np.ndarray) or a.ndim != 0 or a.dtype not in _DESCRS
                        or not a.flags.writeable):
                    raise TypeError(f"scalar state {i} must be writeable 0-d float32/float64 arrays")
        cdef Py_ssize_t k
        for i in range(self.n):
            for k, a in enumerate(t[i]):
                a[()] = self.pscal[i].v[k]

    # -- parameters and state

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
        p = realloc(self.scalars, cap * sizeof(fo_scalars))
        if p == NULL:
            raise MemoryError()
        self.scalars = <fo_scalars *>p
        p = realloc(self.counts, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.counts = <int64_t *>p
        p = realloc(self.begun, cap * sizeof(uint8_t))
        if p == NULL:
            raise MemoryError()
        self.begun = <uint8_t *>p
        p = realloc(self.pscal, cap * sizeof(fo_pscalars))
        if p == NULL:
            raise MemoryError()
        self.pscal = <fo_pscalars *>p
        p = realloc(self.group_of, cap * sizeof(int))
        if p == NULL:
            raise MemoryError()
        self.group_of = <int *>p
        p = realloc(self.written, (2 + FO_NUM_SLOTS) * cap * sizeof(Range))
        if p == NULL:
            raise MemoryError()
        self.written = <Range *>p
        p = realloc(self.clear, 2 * cap * sizeof(uintptr_t))
        if p == NULL:
            raise MemoryError()
        self.clear = <uintptr_t *>p
        p = realloc(self.shapes, cap * sizeof(fo_shape))
        if p == NULL:
            raise MemoryError()
        self.shapes = <fo_shape *>p
        self.cap = cap

    cdef append(self, params, states, names, group_of):
        """Validate parameters and their state and add them after the others
        (with zero step counts)."""
        params, states, names, group_of = tuple(params), tuple(states), tuple(names), tuple(group_of)
        cdef Py_ssize_t m = len(params), i, j
        if not len(states) == len(names) == len(group_of) == m:
            raise ValueError(f"got {m} params, {len(states)} states, {len(names)} names and "
                             f"{len(group_of)} group indices: one of each per parameter")
        cdef cnp.ndarray p
        arrays, bufsets = [], []
        for i in range(m):
            what = describe(names[i])
            p = as_param_array(params[i], what, True, self.raw_bf16)
            bufsets.append(state_arrays(states[i], p, param_code(p, self.raw_bf16), what,
                                        slot_sizes(self.algo_name, p), self.algo, self.raw_bf16))
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
            self.counts[j] = 0
            self.begun[j] = 0
            memset(&self.pscal[j], 0, sizeof(fo_pscalars))  # unread until started
            self.pscal[j].dtype = FO_F32  # torch's 0-d state dtype
            memset(&self.items[j], 0, sizeof(fo_item))
            self.items[j].param = cnp.PyArray_DATA(p)
            self.items[j].n = <size_t>cnp.PyArray_SIZE(p)
            self.items[j].dtype = param_code(p, self.raw_bf16)
            self.items[j].rounding = self.rounding
            if cnp.PyArray_NDIM(p) >= 2:  # its last two axes (Adafactor's factors)
                self.items[j].mat_rows = <size_t>cnp.PyArray_DIMS(p)[cnp.PyArray_NDIM(p) - 2]
                self.items[j].mat_cols = <size_t>cnp.PyArray_DIMS(p)[cnp.PyArray_NDIM(p) - 1]
            fo_record_shape(&self.shapes[j], <PyObject *>p)
            self._states.append(None)
            self.point_state(j, bufsets[i])
        self._params += arrays
        self._names += names
        self.n += m

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
            raise
        merge_sorted(self.written, self.nwritten, k)
        self.nwritten += k
        memset(self.clear, 0, 2 * self.cap * sizeof(uintptr_t))

    def set_rounding(self, rounding, seed):
        """How every 16-bit parameter is rounded when stored: ``rounding``
        "nearest" or "stochastic" (ROUNDINGS), with the random bits of
        ``seed`` (an int in [0, 2**64)). Checked before anything is set."""
        if self.busy == fork_epoch:
            raise RuntimeError("cannot change the rounding while the engine runs a step")
        _, rounding, seed = check_rounding(False, rounding, seed)
        self.rounding = ROUNDINGS.index(rounding)
        self.seed = <uint64_t>int(seed)
        cdef Py_ssize_t i
        for i in range(self.n):
            self.items[i].rounding = self.rounding

    def set_state(self, Py_ssize_t i, bufs):
        """Point parameter i's state slots at `bufs` (a tuple of NUM_SLOTS arrays or None)."""
        if not 0 <= i < self.n:
            raise IndexError(f"parameter index {i} out of range")
        if self.busy == fork_epoch:
            raise RuntimeError("cannot change state buffers while the engine runs a step")
        self.point_state(i, state_arrays(bufs, <cnp.ndarray>self._params[i], self.items[i].dtype,
                                         describe(self._names[i]),
                                         slot_sizes(self.algo_name, <cnp.ndarray>self._params[i]),
                                         self.algo, self.raw_bf16))
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
        self.items[i].state16 = 0
        self.items[i].state8 = 0
        for k in range(FO_NUM_SLOTS):
            if bufs[k] is None:
                self.items[i].state[k] = NULL
            else:
                self.items[i].state[k] = cnp.PyArray_DATA(<cnp.ndarray>bufs[k])
                if cnp.PyArray_ITEMSIZE(<cnp.ndarray>bufs[k]) == 2:  # state_arrays checked which
                    self.items[i].state16 = state16_code(self.items[i].dtype)
                elif cnp.PyArray_ITEMSIZE(<cnp.ndarray>bufs[k]) == 1:
                    self.items[i].state8 = 1
        self.items[i].master = NULL
        if len(bufs) > FO_NUM_SLOTS:
            self.items[i].master = <float *>cnp.PyArray_DATA(<cnp.ndarray>bufs[FO_NUM_SLOTS])

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
        skip_nonfinite is set and a gradient holds NaN or Inf. A state buffer
        the hyperparameters need and a parameter lacks raises MissingState
        (a ValueError), with nothing written.
        """
        # Everything that may run Python code (__array__, __float__) happens
        # before the engine is marked busy and its pointers are read. A tuple
        # is taken as gradient_arrays() made it: anything in it but an
        # ndarray or None is a TypeError.
        cdef tuple gs = grads if type(grads) is tuple else gradient_arrays(grads, self._names)
        return self._checked_step(gs, hypers, skip_nonfinite, isa, False)

    def step_at(self, tuple grads, hypers):
        """step(), where a gradient may also be an int: the address of memory
        laid out as its parameter (same dtype, shape and strides), which the
        caller has checked and keeps alive through the call (fastopt.torch:
        a tensor's data_ptr()). ndarrays and None are taken as by step()."""
        return self._checked_step(grads, hypers, False, None, True)

    cdef object _checked_step(self, tuple gs, hypers, bint skip_nonfinite, isa, bint addresses):
        cdef const fo_table *table = table_by_name(isa)
        if len(gs) != self.n:
            raise ValueError(f"expected {self.n} gradients (one per parameter), got {len(gs)}")
        cdef Hypers h = hypers if type(hypers) is Hypers else Hypers(self.algo_name, hypers)
        if h.algo != self.algo:
            raise ValueError("the hyperparameters are for another algorithm")
        if self.busy == fork_epoch:
            raise RuntimeError("the engine is already running a step")
        self.busy = fork_epoch
        try:
            return self._step(gs, h, table, skip_nonfinite, addresses)
        finally:
            self.busy = 0

    cdef object _step(self, tuple grads, Hypers hypers, const fo_table *table, bint skip_nonfinite,
                      bint addresses):
        if self.written_stale:
            self.index_written()
        try:
            self.take_grads(grads, hypers, addresses)
            return self._run_step(hypers, table, skip_nonfinite)
        finally:
            self.dense_again()

    cdef object _run_step(self, Hypers hypers, const fo_table *table, bint skip_nonfinite):
        cdef unsigned split = fo_split_phase(self.algo)
        cdef list stage = self.prepare_stage(hypers) if split else None
        cdef fo_step_args a
        memset(&a, 0, sizeof(a))
        a.table = table
        a.algo = self.algo
        a.hypers = hypers.h
        a.ngroups = <size_t>hypers.n
        a.items = self.items
        a.count = <size_t>self.n
        a.group = self.group_of
        a.steps = self.counts
        a.started = self.begun
        a.scalars = self.scalars
        a.pscalars = self.pscal
        a.skip_nonfinite = skip_nonfinite
        a.seed = self.seed
        cdef int rc
        with nogil:
            rc = fo_step(&a)  # the grads tuple keeps every gradient alive meanwhile
        if rc == FO_STEP_APPLIED and split:
            self.run_stage(stage)  # between the passes: nothing here can fail but MemoryError
            a.phase = split
            a.skip_nonfinite = 0  # the first pass checked the gradients
            with nogil:
                rc = fo_step(&a)
        if rc == FO_STEP_APPLIED:
            return True
        if rc == FO_STEP_SKIPPED:
            return False
        what = describe(self._names[a.bad]) if a.bad < <size_t>self.n else "a parameter"
        grp = self.group_of[a.bad] if a.bad < <size_t>self.n else -1
        if rc == FO_STEP_NO_STATE:
            k = 0 if a.missing & 1u else (1 if a.missing & 2u else 2)
            raise MissingState(f"{what} has no {STATE_NAMES[self.algo_name][k]!r} state buffer, "
                               f"which the hyperparameters of param group {grp} need", a.bad)
        if rc == FO_STEP_BAD_GROUP:
            raise ValueError(f"{what} is in param group {grp}, but the step got "
                             f"hyperparameters for {hypers.n} groups")
        if rc == FO_STEP_BAD_COUNT:
            raise ValueError(f"{what} has done {self.counts[a.bad]} updates: no further update "
                             "can be numbered")
        if rc == FO_STEP_NO_MEMORY:
            raise MemoryError()
        raise RuntimeError(f"the C core refused the step ({rc})")

    cdef list prepare_stage(self, Hypers hypers):
        """Muon, before its first pass writes anything: per parameter with a
        gradient, its Newton-Schulz arguments and learning-rate factor from its
        group (checked: TypeError/ValueError here), its update buffer made and
        pointed at (state slot 1). Returns [(index, buffer, arguments)]."""
        cdef Py_ssize_t i, g
        cdef cnp.ndarray buf
        out = []
        for i in range(self.n):
            if self.items[i].grad == NULL:
                continue
            g = self.group_of[i]
            if not 0 <= g < hypers.n:
                continue  # fo_step reports it
            shape = self.shape_of(i)
            coefficients, steps, eps, ratio = _newton_schulz.prepare(
                hypers.groups[g], shape, describe(self._names[i]))
            while len(self._scratch) <= i:
                self._scratch.append(None)
            buf = self._scratch[i]
            if buf is None or (<object>buf).shape != shape:
                buf = np.empty(shape, _DESCRS[state_code(self.items[i].dtype)])
                self._scratch[i] = buf
            out.append((i, buf, coefficients, steps, eps, ratio))
        for i, buf, _, _, _, ratio in out:  # nothing can fail from here on
            self.items[i].state[1] = cnp.PyArray_DATA(buf)
            self.items[i].ratio = ratio
        return out

    cdef run_stage(self, list stage):
        """Muon, between its passes: each update buffer orthogonalised in place."""
        for i, buf, coefficients, steps, eps, _ in stage:
            np.copyto(buf, _newton_schulz.orthogonalize(buf, coefficients, steps, eps),
                      casting="unsafe")

    cdef int take_grads(self, tuple grads, Hypers hypers, bint addresses) except -1:
        """Point each item at its gradient (NULL for None), each checked first
        as the parameter's gradient (fo_grad_fits: the common case in C,
        without a Python object made; with `addresses`, an int as step_at()
        says, once its parameter fits and it is aligned) and as not meeting
        the memory the step writes. Raises before any pointer is used."""
        cdef Py_ssize_t i, owner
        cdef PyObject *o
        cdef PyObject **params = (<PyListObject *>self._params).ob_item
        cdef uintptr_t lo, hi
        cdef Py_ssize_t ahead = 8  # tensors: what the check reads is scattered over the heap
        for i in range(self.n):
            if i + ahead < self.n:
                fo_prefetch_arrays(PyTuple_GET_ITEM(grads, i + ahead), params[i + ahead])
            if i + ahead // 2 < self.n:
                fo_prefetch_dims(PyTuple_GET_ITEM(grads, i + ahead // 2), ndarray_type)
            o = PyTuple_GET_ITEM(grads, i)
            if o == <PyObject *>None:
                self.items[i].grad = NULL
                continue
            if o.ob_type == <PyTypeObject *>RowSparse:
                self.take_sparse(i, <object>o, hypers)
                continue
            if addresses and o.ob_type == <PyTypeObject *>int:
                lo = <uintptr_t>(<object>o)
                if (not fo_param_fits(params[i], &self.items[i], &self.shapes[i])
                        or lo % item_bytes_each(&self.items[i])
                        or (lo == 0 and self.items[i].n)):
                    self.refuse_grad(i, <object>o)
                if lo == 0:  # empty (torch's null data_ptr()): not read, but NULL means no gradient
                    lo = <uintptr_t>fo_array_data(params[i])
            else:
                if o.ob_type != ndarray_type or not fo_grad_fits(o, params[i], &self.items[i],
                                                                  &self.shapes[i]):
                    self.refuse_grad(i, <object>o)
                lo = <uintptr_t>fo_array_data(o)
            hi = lo + <uintptr_t>item_bytes(&self.items[i])
            # Whether [lo, hi) meets the written memory depends on nothing else,
            # so a range found clear at an earlier step (same `written`) is clear.
            if lo != self.clear[2 * i] or hi != self.clear[2 * i + 1]:
                owner = self.overlaps_written(lo, hi)
                if owner >= 0:
                    raise ValueError(f"gradient of {describe(self._names[i])} shares memory with "
                                     f"{describe(self._names[owner])} or its state; gradients must "
                                     "not alias what the step writes")
                self.clear[2 * i], self.clear[2 * i + 1] = lo, hi
            self.items[i].grad = <const void *>lo
        return 0

    cdef int take_sparse(self, Py_ssize_t i, grad, Hypers hypers) except -1:
        """Point item i at a row-sparse gradient: its coalesced rows (indices of
        the engine's own) and values, n the values' elements, once its group's
        hyperparameters are found to allow one (the spec's rule). dense_again()
        undoes it after the step."""
        what = describe(self._names[i])
        rule = _SPARSE_RULES.get(self.algo_name)
        if rule is None:
            raise TypeError(f"gradient of {what} is a RowSparse: the {self.algo_name} step takes "
                            "dense gradients only (SparseAdam, SGD and Adagrad take row-sparse ones)")
        g = self.group_of[i]
        dense = False
        if 0 <= g < hypers.n:
            why = rule(hypers.groups[g])
            if why is not None:
                raise ValueError(f"gradient of {what} is a RowSparse, which param group {g} "
                                 f"cannot step: {why}")
            dense = _SPARSE_DENSE.get(self.algo_name, lambda group: False)(hypers.groups[g])
        if self.items[i].state8 and not dense:
            raise ValueError(f"gradient of {what} is a RowSparse: 8-bit state (state_dtype='int8') "
                             "steps dense gradients only")
        cdef cnp.ndarray p = <cnp.ndarray>self._params[i]
        cdef tuple shape = (<object>p).shape  # read once: the rows are checked against it and cut by it
        rows, values = coalesced(grad, shape, (<object>p).dtype, f"gradient of {what}")
        if dense:  # the dense gradient it stands for: a new array, so it aliases nothing
            full = np.zeros(shape, (<object>p).dtype)
            full[rows] = values
            self._sparse.append((i, None, full))  # kept alive through the step
            self.items[i].grad = cnp.PyArray_DATA(<cnp.ndarray>full)
            self.clear[2 * i] = self.clear[2 * i + 1] = 0
            return 0
        cdef cnp.ndarray v = <cnp.ndarray>values
        cdef cnp.ndarray r = <cnp.ndarray>rows
        if not cnp.PyArray_ISALIGNED(v):
            v = np.require(v, requirements="A")
        cdef uintptr_t lo = <uintptr_t>cnp.PyArray_DATA(v)
        cdef uintptr_t hi = lo + <uintptr_t>cnp.PyArray_NBYTES(v)
        cdef Py_ssize_t owner = self.overlaps_written(lo, hi)
        if owner >= 0:
            raise ValueError(f"gradient of {what} shares memory with {describe(self._names[owner])} "
                             "or its state; gradients must not alias what the step writes")
        self._sparse.append((i, r, v))
        cdef size_t row_len = <size_t>cnp.PyArray_SIZE(p) // <size_t>max(shape[0], 1)
        self.items[i].grad = cnp.PyArray_DATA(v) if cnp.PyArray_SIZE(v) else cnp.PyArray_DATA(p)
        self.items[i].rows = <const int64_t *>cnp.PyArray_DATA(r)
        self.items[i].row_len = row_len
        self.items[i].n = <size_t>cnp.PyArray_SIZE(v)
        self.clear[2 * i] = self.clear[2 * i + 1] = 0  # the dense gradient's check starts afresh
        return 0

    cdef void dense_again(self):
        """After a step: every item row-sparse for it is its whole parameter again."""
        for entry in self._sparse:
            i = <Py_ssize_t>entry[0]
            self.items[i].rows = NULL
            self.items[i].row_len = 0
            self.items[i].n = <size_t>cnp.PyArray_SIZE(<cnp.ndarray>self._params[i])
        self._sparse = []

    cdef tuple shape_of(self, Py_ssize_t i):
        """Parameter i's shape as the engine took it."""
        cdef fo_shape *s = &self.shapes[i]
        if s.nd > 4:
            return (<object>self._params[i]).shape
        return tuple([s.dims[k] for k in range(s.nd)])

    cdef int refuse_grad(self, Py_ssize_t i, obj) except -1:
        """Raise the error that says why obj cannot be parameter i's gradient."""
        what = describe(self._names[i])
        cdef cnp.ndarray p = <cnp.ndarray>self._params[i]
        if not cnp.PyArray_ISWRITEABLE(p):
            raise ValueError(f"{what} is read-only")
        if type(obj) is not int and not cnp.PyArray_CheckExact(obj):
            raise TypeError(f"gradient of {what} must be a numpy array, got {type(obj).__name__}")
        if (cnp.PyArray_DATA(p) != self.items[i].param
                or param_code(p, self.raw_bf16) != self.items[i].dtype
                or <size_t>cnp.PyArray_SIZE(p) != self.items[i].n
                or not cnp.PyArray_IS_C_CONTIGUOUS(p) or not cnp.PyArray_ISALIGNED(p)):
            raise ValueError(f"{what} was changed in place since the optimizer took it (its "
                             "memory, dtype, size or layout): build the optimizer again")
        if type(obj) is int:
            raise ValueError(f"gradient of {what} is at address {obj:#x}, which is null or not "
                             f"aligned for its {item_bytes_each(&self.items[i])}-byte elements")
        as_grad_array(obj, p, f"gradient of {what}")  # against p's shape now
        raise ValueError(f"gradient of {what} has shape {(<object>obj).shape}, but the parameter "
                         f"had shape {self.shape_of(i)} when the optimizer took it")


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
    c.lr = as_double(h["lr"], "lr")
    for key, k, n, offset, is_int, default in fields:
        value = h.get(key, default)
        if k is not None:  # one of the n numbers of a pair such as betas
            value = tuple(value)
            if len(value) != n:
                raise ValueError(f"{key} must hold {n} numbers, got {len(value)}")
            value = value[k]
            if value is None and default[k] is None:  # Adafactor's eps1: the dtype's epsilon
                value = math.nan
        if is_int:
            (<int *>(base + offset))[0] = bool(value)
        else:
            (<double *>(base + offset))[0] = as_double(value, key)
    return c


cdef inline double as_double(value, key) except? -1.0:
    """A hyperparameter as a double: ValueError (not OverflowError) for a
    number outside float64's range, such as 10**400."""
    if type(value) is float:
        return value
    try:
        return value
    except OverflowError:
        raise ValueError(f"{key} is out of float64's range: {value!r}") from None


def state_slots(algo, dict hyper):
    """Which of the NUM_SLOTS state slots `algo` uses under these hyperparameters."""
    cdef fo_algo a = ALGOS[algo]
    cdef fo_hyper c = hyper_from(a, hyper)
    cdef unsigned mask = fo_state_slots(a, &c)
    return tuple(bool(mask & (1u << k)) for k in range(FO_NUM_SLOTS))


# ---------------------------------------------- for fastopt's other compiled modules

cdef size_t plan_items(fo_item *items, size_t count) noexcept nogil:
    """fo_plan() of this module's C core (the one thread pool and SIMD path)."""
    return fo_plan(items, count)


cdef void run_planned(const fo_item *items, size_t count, size_t pieces, double *partials) noexcept nogil:
    """fo_run() of this module's C core."""
    fo_run(items, count, pieces, partials)


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


def as_param(obj, what, half=True, raw_bf16=False, q8=False):
    """Validate obj as an in-place target (float16 and bfloat16 too unless
    not `half`, uint8 too with `q8`: an 8-bit state buffer); returns the ndarray."""
    return as_param_array(obj, what, half, raw_bf16, q8)

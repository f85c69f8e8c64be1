# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""C-evaluated learning-rate schedules (csrc/fo_schedules.c).

The factories below take arguments that ``fastopt.schedules`` has already
validated and return :class:`Schedule` objects; users call the functions and
classes of ``fastopt.schedules`` instead.
"""
import operator

import numpy as np

from ._validate import shown

cimport cython

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT64_MAX, int64_t


cdef extern from "fo_schedules.h" nogil:
    ctypedef enum fo_sched_kind:
        FO_SCHED_CONSTANT
        FO_SCHED_LINEAR
        FO_SCHED_POLYNOMIAL
        FO_SCHED_STEP
        FO_SCHED_MULTISTEP
        FO_SCHED_EXPONENTIAL
        FO_SCHED_COSINE
        FO_SCHED_WARMUP_COSINE
        FO_SCHED_COSINE_RESTARTS
        FO_SCHED_CYCLIC
        FO_SCHED_ONECYCLE
        FO_SCHED_PIECEWISE
        FO_SCHED_INV_SQRT
        FO_SCHED_JOIN

    ctypedef enum fo_cyclic_mode:
        FO_CYCLIC_TRIANGULAR
        FO_CYCLIC_TRIANGULAR2
        FO_CYCLIC_EXP_RANGE

    ctypedef struct fo_sched_constant_params:
        double value
    ctypedef struct fo_sched_linear_params:
        double init_value, end_value
        int64_t transition_steps, transition_begin
    ctypedef struct fo_sched_polynomial_params:
        double init_value, end_value, power
        int64_t transition_steps, transition_begin
    ctypedef struct fo_sched_step_params:
        double base_lr, gamma, min_lr
        int64_t step_size, offset
    ctypedef struct fo_sched_multistep_params:
        double base_lr, gamma
        const int64_t *milestones
        size_t n
    ctypedef struct fo_sched_exponential_params:
        double init_value, decay_rate, end_value
        int64_t transition_steps, transition_begin
        int staircase, clip
    ctypedef struct fo_sched_cosine_params:
        double init_value, alpha, exponent
        int64_t decay_steps
    ctypedef struct fo_sched_warmup_cosine_params:
        double warmup_begin_lr, base_lr, final_lr
        int64_t warmup_steps, max_update
    ctypedef struct fo_sched_cosine_restarts_params:
        double base_lr, eta_min
        int64_t T_0, T_mult
    ctypedef struct fo_sched_cyclic_params:
        double base_lr, max_lr, step_size_up, step_size_down, gamma
        fo_cyclic_mode mode
    ctypedef struct fo_sched_onecycle_params:
        double initial_lr, max_lr, min_lr, pct_start
        int64_t total_steps
        int linear, three_phase
    ctypedef struct fo_sched_piecewise_params:
        double init_value
        const int64_t *boundaries
        const double *scales
        size_t n
    ctypedef struct fo_sched_inv_sqrt_params:
        double lr
    ctypedef struct fo_sched
    ctypedef struct fo_sched_join_params:
        const fo_sched *schedules
        const int64_t *boundaries
        size_t n

    ctypedef union fo_sched_any_params:
        fo_sched_constant_params constant
        fo_sched_linear_params linear
        fo_sched_polynomial_params polynomial
        fo_sched_step_params step
        fo_sched_multistep_params multistep
        fo_sched_exponential_params exponential
        fo_sched_cosine_params cosine
        fo_sched_warmup_cosine_params warmup_cosine
        fo_sched_cosine_restarts_params cosine_restarts
        fo_sched_cyclic_params cyclic
        fo_sched_onecycle_params onecycle
        fo_sched_piecewise_params piecewise
        fo_sched_inv_sqrt_params inv_sqrt
        fo_sched_join_params join

    ctypedef struct fo_sched:
        fo_sched_kind kind
        fo_sched_any_params p

    double fo_sgdr_at(double base_lr, double eta_min, double T_cur, double T_i)
    double fo_cyclic_cycle(double total, double t)
    double fo_cyclic_scale(fo_cyclic_mode mode, double gamma, double x)
    double fo_cyclic_at(double lo, double hi, double total, double ratio, double t, double scale)
    ctypedef struct fo_phase:
        double end_step, start, end
    double fo_phases_at(const fo_phase *phases, size_t n, int linear, double t, int *empty)

    double fo_sched_eval(const fo_sched *s, int64_t step)
    void fo_sched_eval_array(const fo_sched *s, const int64_t *steps, double *out, size_t n)
    void fo_sched_fill(const fo_sched *s, int64_t start, double *out, size_t n)


cdef int64_t _step(object step) except -1:
    """A Python or NumPy integer as a valid step."""
    try:
        t = operator.index(step)
    except TypeError:
        raise TypeError(
            f"step must be an int or an integer array, not {type(step).__name__}"
        ) from None
    if t < 0 or t > INT64_MAX:
        raise ValueError(f"step must be in [0, 2**63 - 1], got {shown(t)}")
    return t


def _steps_array(step):
    """Steps (an integer array, or a possibly nested list of ints) as an int64 array."""
    a = np.asarray(step)
    if a.dtype == object or not isinstance(step, np.ndarray) and a.dtype.kind in "uf":
        # Python ints (from a list NumPy made uint64, float or object): check each step
        a = np.asarray(step, dtype=object)
        return np.array([_step(t) for t in a.flat], np.int64).reshape(a.shape)
    if a.dtype.kind not in "iu" or not np.can_cast(a.dtype, np.int64):
        raise TypeError(
            f"step array must have an integer dtype that fits int64, not {a.dtype}"
        )
    return np.asarray(a, dtype=np.int64, order="C")  # keeps a 0-d array 0-d


@cython.trashcan(True)  # a deep join_schedules nest is freed without deep C recursion
cdef class Schedule:
    """A learning-rate schedule evaluated in C: ``schedule(step) -> lr``.

    Calling it with an int gives a float; with an integer NumPy array (any
    shape, any integer dtype that fits int64) or a list of ints it gives a
    float64 array of the same shape (a 0-d array for a 0-d array, as NumPy's
    ufuncs do), computed in one call into C with the
    GIL released. Both give the same bits for the same step. The value
    depends on the step alone.

    Thread-safety: a schedule is immutable once built; any number of threads
    may call it at once.
    """

    cdef fo_sched s
    cdef object _keep        # objects whose memory self.s points into
    cdef fo_sched *_children  # join's copies of its schedules, owned
    cdef public object _repr  # (name, kwargs) of the factory, formatted by __repr__

    def __dealloc__(self):
        PyMem_Free(self._children)

    def _adopt(self, Schedule other):
        """Become ``other`` (used by the classes of ``fastopt.schedules``)."""
        self.s = other.s
        self._keep = other

    def __call__(self, step):
        if not isinstance(step, (np.ndarray, list, tuple)):
            return fo_sched_eval(&self.s, _step(step))
        steps = _steps_array(step)
        out = np.empty(steps.shape, np.float64)
        if steps.size == 0:
            return out
        if steps.min() < 0:
            raise ValueError(f"steps must be >= 0, got {steps.min()}")
        cdef const int64_t[::1] sv = steps.reshape(-1)
        cdef double[::1] ov = out.reshape(-1)
        with nogil:
            fo_sched_eval_array(&self.s, &sv[0], &ov[0], <size_t>sv.shape[0])
        return out

    def fill(self, start, out):
        """Write the values at steps ``start, start + 1, ...`` into ``out``.

        Parameters
        ----------
        start : int
            First step, >= 0.
        out : numpy.ndarray
            Writeable, C-contiguous, 1-D float64 array; filled in place.
        """
        cdef int64_t t = _step(start)
        if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.ndim == 1):
            raise TypeError("out must be a 1-D float64 numpy array")
        cdef double[::1] ov = out
        cdef size_t n = <size_t>ov.shape[0]
        if n == 0:
            return
        if <size_t>(INT64_MAX - t) < n - 1:
            raise ValueError("start + len(out) - 1 does not fit int64")
        with nogil:
            fo_sched_fill(&self.s, t, &ov[0], n)

    def __repr__(self):
        return _shown(self)


# Schedules nested deeper than this in a repr show as name(...): the repr of a
# deep join_schedules nest stays short and needs no deep recursion.
_REPR_DEPTH = 4


def _shown(value, int depth=_REPR_DEPTH):
    """repr() of a schedule's argument, nested schedules to a bounded depth."""
    if isinstance(value, Schedule):
        spec = (<Schedule>value)._repr
        if spec is None:
            return f"<{type(value).__name__}>"
        name, kwargs = spec
        if depth == 0:
            return f"{name}(...)"
        return f"{name}({', '.join(f'{k}={_shown(v, depth - 1)}' for k, v in kwargs.items())})"
    if isinstance(value, list):
        return f"[{', '.join(_shown(v, depth) for v in value)}]"
    return shown(value)


cdef Schedule _new(fo_sched_kind kind):
    cdef Schedule s = Schedule.__new__(Schedule)
    s.s.kind = kind
    return s


cdef object _int64_array(values):
    return np.ascontiguousarray(np.asarray(values, dtype=np.int64).reshape(-1))


def constant(double value):
    cdef Schedule s = _new(FO_SCHED_CONSTANT)
    s.s.p.constant.value = value
    return s


def linear(double init_value, double end_value, int64_t transition_steps,
           int64_t transition_begin):
    cdef Schedule s = _new(FO_SCHED_LINEAR)
    s.s.p.linear = fo_sched_linear_params(
        init_value, end_value, transition_steps, transition_begin)
    return s


def polynomial(double init_value, double end_value, double power,
               int64_t transition_steps, int64_t transition_begin):
    cdef Schedule s = _new(FO_SCHED_POLYNOMIAL)
    s.s.p.polynomial = fo_sched_polynomial_params(
        init_value, end_value, power, transition_steps, transition_begin)
    return s


def step(double base_lr, double gamma, int64_t step_size, int64_t offset,
         double min_lr):
    cdef Schedule s = _new(FO_SCHED_STEP)
    s.s.p.step = fo_sched_step_params(base_lr, gamma, min_lr, step_size, offset)
    return s


def multistep(double base_lr, double gamma, milestones):
    """``milestones``: ints in ascending order (repeats allowed)."""
    cdef Schedule s = _new(FO_SCHED_MULTISTEP)
    m = _int64_array(milestones)
    cdef const int64_t[::1] mv = m
    s._keep = m
    s.s.p.multistep.base_lr = base_lr
    s.s.p.multistep.gamma = gamma
    s.s.p.multistep.n = <size_t>mv.shape[0]
    s.s.p.multistep.milestones = &mv[0] if mv.shape[0] else NULL
    return s


def exponential(double init_value, int64_t transition_steps, double decay_rate,
                int64_t transition_begin, bint staircase, double end_value, int clip):
    cdef Schedule s = _new(FO_SCHED_EXPONENTIAL)
    s.s.p.exponential = fo_sched_exponential_params(
        init_value, decay_rate, end_value, transition_steps, transition_begin,
        staircase, clip)
    return s


def cosine(double init_value, int64_t decay_steps, double alpha, double exponent):
    cdef Schedule s = _new(FO_SCHED_COSINE)
    s.s.p.cosine = fo_sched_cosine_params(init_value, alpha, exponent, decay_steps)
    return s


def warmup_cosine(double warmup_begin_lr, double base_lr, double final_lr,
                  int64_t warmup_steps, int64_t max_update):
    cdef Schedule s = _new(FO_SCHED_WARMUP_COSINE)
    s.s.p.warmup_cosine = fo_sched_warmup_cosine_params(
        warmup_begin_lr, base_lr, final_lr, warmup_steps, max_update)
    return s


def cosine_restarts(double base_lr, double eta_min, int64_t T_0, int64_t T_mult):
    cdef Schedule s = _new(FO_SCHED_COSINE_RESTARTS)
    s.s.p.cosine_restarts = fo_sched_cosine_restarts_params(base_lr, eta_min, T_0, T_mult)
    return s


_CYCLIC_MODES = {
    "triangular": FO_CYCLIC_TRIANGULAR,
    "triangular2": FO_CYCLIC_TRIANGULAR2,
    "exp_range": FO_CYCLIC_EXP_RANGE,
}


def cyclic(double base_lr, double max_lr, double step_size_up, double step_size_down,
           str mode, double gamma):
    cdef Schedule s = _new(FO_SCHED_CYCLIC)
    s.s.p.cyclic = fo_sched_cyclic_params(
        base_lr, max_lr, step_size_up, step_size_down, gamma, _CYCLIC_MODES[mode])
    return s


def onecycle(double initial_lr, double max_lr, double min_lr, double pct_start,
             int64_t total_steps, bint linear, bint three_phase):
    cdef Schedule s = _new(FO_SCHED_ONECYCLE)
    s.s.p.onecycle = fo_sched_onecycle_params(
        initial_lr, max_lr, min_lr, pct_start, total_steps, linear, three_phase)
    return s


# torch's CyclicLR, OneCycleLR and CosineAnnealingWarmRestarts at one point:
# fastopt.lr_scheduler's classes call these with the state torch keeps, so
# they and the schedules above share one formula (csrc/fo_schedules.h).

def sgdr_at(double base_lr, double eta_min, double T_cur, double T_i):
    return fo_sgdr_at(base_lr, eta_min, T_cur, T_i)


def cyclic_cycle(double total, double t):
    """The cycle number, an int (torch's ``math.floor``)."""
    return int(fo_cyclic_cycle(total, t))


def cyclic_scale(str mode, double gamma, double x):
    return fo_cyclic_scale(_CYCLIC_MODES[mode], gamma, x)


def cyclic_at(double lo, double hi, double total, double ratio, double t, double scale):
    return fo_cyclic_at(lo, hi, total, ratio, t, scale)


def phases_at(phases, bint linear, double t):
    """``phases``: up to three ``(end_step, start, end)``."""
    cdef fo_phase ph[3]
    cdef int n = len(phases), empty = 0
    if not 1 <= n <= 3:
        raise ValueError(f"OneCycleLR has 2 or 3 phases, got {n}")
    for i in range(n):
        ph[i].end_step, ph[i].start, ph[i].end = phases[i]
    cdef double v = fo_phases_at(ph, n, linear, t, &empty)
    if empty:  # what torch's Python division raises there
        raise ZeroDivisionError("float division by zero")
    return v


def piecewise(double init_value, boundaries, scales):
    """``boundaries``: ascending ints; ``scales``: one float per boundary."""
    cdef Schedule s = _new(FO_SCHED_PIECEWISE)
    b = _int64_array(boundaries)
    c = np.ascontiguousarray(np.asarray(scales, dtype=np.float64).reshape(-1))
    if b.shape[0] != c.shape[0]:
        raise ValueError("piecewise: one scale per boundary")
    cdef const int64_t[::1] bv = b
    cdef const double[::1] cv = c
    s._keep = (b, c)
    s.s.p.piecewise.init_value = init_value
    s.s.p.piecewise.n = <size_t>bv.shape[0]
    s.s.p.piecewise.boundaries = &bv[0] if bv.shape[0] else NULL
    s.s.p.piecewise.scales = &cv[0] if cv.shape[0] else NULL
    return s


def inv_sqrt(double lr):
    cdef Schedule s = _new(FO_SCHED_INV_SQRT)
    s.s.p.inv_sqrt.lr = lr
    return s


def join(schedules, boundaries):
    """``schedules``: Schedule objects; ``boundaries``: one int fewer."""
    children = list(schedules)
    b = _int64_array(boundaries)
    if not children or b.shape[0] != len(children) - 1:
        raise ValueError("join: need one boundary fewer than schedules")
    cdef Schedule s = _new(FO_SCHED_JOIN)
    cdef Schedule child
    s._children = <fo_sched *>PyMem_Malloc(len(children) * sizeof(fo_sched))
    if s._children == NULL:
        raise MemoryError()
    for i, child in enumerate(children):
        s._children[i] = child.s
    cdef const int64_t[::1] bv = b
    s._keep = (children, b)
    s.s.p.join.schedules = s._children
    s.s.p.join.boundaries = &bv[0] if bv.shape[0] else NULL
    s.s.p.join.n = len(children)
    return s

"""Learning-rate schedules as pure callables ``step -> lr``, evaluated in C.

Every schedule here is a :class:`Schedule`: call it with an int to get a
float, or with an integer NumPy array of any shape to get a float64 array of
that shape (one call into C, GIL released; the same bits as the scalar
calls). A schedule is pure: its value depends on the step alone, so it can be
evaluated in any order, shared between threads, and plotted in one call:

>>> import numpy as np
>>> from fastopt import schedules
>>> sched = schedules.cosine_decay_schedule(init_value=1.0, decay_steps=100)
>>> sched(0), sched(100)
(1.0, 0.0)
>>> sched(np.array([[0, 50], [100, 200]]))
array([[1. , 0.5],
       [0. , 0. ]])

Three families:

- the d2l.ai book's schedulers (:class:`FactorScheduler`,
  :class:`MultiFactorScheduler`, :class:`CosineScheduler`,
  :class:`SquareRootScheduler`), with the book's names and arguments; at step
  ``t`` each gives what the book's object returns on its ``t + 1``-th call
  (called with 0, 1, 2, ... in order);
- optax's schedule functions (``constant_schedule``, ``linear_schedule``,
  ``polynomial_schedule``, ``exponential_decay``, ``cosine_decay_schedule``,
  ``warmup_cosine_decay_schedule``, ``piecewise_constant_schedule``,
  ``join_schedules``), with optax's names, arguments and values;
- the closed forms of torch's cyclic schedulers (``cosine_restarts_schedule``,
  ``cyclic_schedule``, ``one_cycle_schedule``), with torch's arguments.

To drive an optimizer's learning rate with one, see
:class:`fastopt.lr_scheduler.ScheduleLR`.
"""
import math
from collections.abc import Mapping, Sequence

from ._schedules import Schedule
from . import _schedules as _c
from ._validate import as_float, as_int64

__all__ = [
    "Schedule",
    "FactorScheduler",
    "MultiFactorScheduler",
    "CosineScheduler",
    "SquareRootScheduler",
    "constant_schedule",
    "linear_schedule",
    "polynomial_schedule",
    "exponential_decay",
    "cosine_decay_schedule",
    "warmup_cosine_decay_schedule",
    "piecewise_constant_schedule",
    "join_schedules",
    "cosine_restarts_schedule",
    "cyclic_schedule",
    "one_cycle_schedule",
]


def _named(sched, name, **kwargs):
    # Kept, not formatted: repr() formats on demand, so a deep nest of
    # join_schedules holds no string per level (quadratic memory).
    sched._repr = (name, kwargs)
    return sched


# ------------------------------------------------------------------- d2l.ai

class FactorScheduler(Schedule):
    """d2l.ai's ``FactorScheduler``: multiply by ``factor`` every step::

        lr(t) = max(stop_factor_lr, base_lr · factor^(t + 1))

    (for ``factor > 1`` with ``base_lr * factor < stop_factor_lr`` the book's
    recursion first clamps to ``stop_factor_lr`` and then grows:
    stop_factor_lr · factor^t; this class gives that too).

    Parameters
    ----------
    factor : float, default 1
        Multiplier per step, > 0.
    stop_factor_lr : float, default 1e-7
        Lower bound of the value.
    base_lr : float, default 0.1
        The value before the first step.

    Examples
    --------
    >>> s = FactorScheduler(factor=0.5, stop_factor_lr=0.01, base_lr=1.0)
    >>> [s(t) for t in range(8)]
    [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.01, 0.01]
    """

    def __init__(self, factor: float = 1, stop_factor_lr: float = 1e-7,
                 base_lr: float = 0.1) -> None:
        self.factor = as_float(factor, "factor", above=0)
        self.stop_factor_lr = as_float(stop_factor_lr, "stop_factor_lr")
        self.base_lr = as_float(base_lr, "base_lr")
        f, stop, base = self.factor, self.stop_factor_lr, self.base_lr
        if f > 1 and base * f < stop:
            self._adopt(_c.step(stop, f, 1, 0, stop))
        else:
            self._adopt(_c.step(base, f, 1, 1, stop))
        _named(self, "FactorScheduler", factor=factor, stop_factor_lr=stop_factor_lr,
               base_lr=base_lr)


class MultiFactorScheduler(Schedule):
    """d2l.ai's ``MultiFactorScheduler``: multiply by ``factor`` at milestones::

        lr(t) = base_lr · factor^(number of milestones <= t)

    Parameters
    ----------
    step : list of int
        Milestones, >= 0, strictly increasing.
    factor : float, default 1
        Multiplier at each milestone, > 0.
    base_lr : float, default 0.1
        The value before the first milestone.

    Examples
    --------
    >>> s = MultiFactorScheduler(step=[2, 4], factor=0.5, base_lr=1.0)
    >>> [s(t) for t in range(6)]
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(self, step: Sequence[int], factor: float = 1, base_lr: float = 0.1) -> None:
        milestones = [as_int64(m, "step[%d]" % i, 0) for i, m in enumerate(step)]
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"step must be strictly increasing, got {milestones}")
        self.step = milestones
        self.factor = as_float(factor, "factor", above=0)
        self.base_lr = as_float(base_lr, "base_lr")
        self._adopt(_c.multistep(self.base_lr, self.factor, milestones))
        _named(self, "MultiFactorScheduler", step=milestones, factor=factor, base_lr=base_lr)


class CosineScheduler(Schedule):
    """d2l.ai's ``CosineScheduler``: linear warmup, then cosine decay.

    With W = ``warmup_steps``, M = ``max_update``, lr₀ = ``base_lr``,
    lr_w = ``warmup_begin_lr`` and lr_T = ``final_lr``::

        t < W:        lr(t) = lr_w + (lr₀ − lr_w) · t / W
        W <= t <= M:  lr(t) = lr_T + (lr₀ − lr_T) · (1 + cos(π·(t − W) / (M − W))) / 2
        t > M:        lr(t) = lr_T

    Parameters
    ----------
    max_update : int
        Step at which the decay ends; > ``warmup_steps``.
    base_lr : float, default 0.01
        Value at the end of the warmup.
    final_lr : float, default 0
        Value from ``max_update`` on.
    warmup_steps : int, default 0
        Steps of linear warmup, >= 0.
    warmup_begin_lr : float, default 0
        Value at step 0 when there is a warmup.

    Examples
    --------
    >>> s = CosineScheduler(10, base_lr=1.0, final_lr=0.0, warmup_steps=2)
    >>> [round(s(t), 4) for t in (0, 1, 2, 6, 10, 20)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """

    def __init__(self, max_update: int, base_lr: float = 0.01, final_lr: float = 0,
                 warmup_steps: int = 0, warmup_begin_lr: float = 0) -> None:
        self.warmup_steps = as_int64(warmup_steps, "warmup_steps", 0)
        self.max_update = as_int64(max_update, "max_update")
        if self.max_update <= self.warmup_steps:
            raise ValueError(
                f"max_update ({self.max_update}) must be > warmup_steps ({self.warmup_steps})"
            )
        self.base_lr = as_float(base_lr, "base_lr")
        self.final_lr = as_float(final_lr, "final_lr")
        self.warmup_begin_lr = as_float(warmup_begin_lr, "warmup_begin_lr")
        self._adopt(_c.warmup_cosine(self.warmup_begin_lr, self.base_lr, self.final_lr,
                                     self.warmup_steps, self.max_update))
        _named(self, "CosineScheduler", max_update=max_update, base_lr=base_lr,
               final_lr=final_lr, warmup_steps=warmup_steps, warmup_begin_lr=warmup_begin_lr)


class SquareRootScheduler(Schedule):
    """d2l.ai's ``SquareRootScheduler``::

        lr(t) = lr / √(t + 1)

    Parameters
    ----------
    lr : float, default 0.1
        Value at step 0.

    Examples
    --------
    >>> s = SquareRootScheduler(lr=1.0)
    >>> s(0), s(3)
    (1.0, 0.5)
    """

    def __init__(self, lr: float = 0.1) -> None:
        self.lr = as_float(lr, "lr")
        self._adopt(_c.inv_sqrt(self.lr))
        _named(self, "SquareRootScheduler", lr=lr)


# -------------------------------------------------------------------- optax

def constant_schedule(value: float) -> Schedule:
    """optax's ``constant_schedule``: ``value`` at every step.

    Parameters
    ----------
    value : float
        The value.

    Examples
    --------
    >>> constant_schedule(5)(100)
    5.0
    """
    return _named(_c.constant(as_float(value, "value")), "constant_schedule", value=value)


def polynomial_schedule(init_value: float, end_value: float, power: float, transition_steps: int,
                        transition_begin: int = 0) -> Schedule:
    """optax's ``polynomial_schedule``.

    With I = ``init_value``, E = ``end_value``, P = ``power``,
    T = ``transition_steps``, B = ``transition_begin`` and
    c = clip(t − B, 0, T)::

        lr(t) = (I − E) · (1 − c / T)^P + E

    As in optax, ``transition_steps <= 0`` gives the constant ``init_value``
    and a negative ``transition_begin`` counts as 0.

    Parameters
    ----------
    init_value : float
        Value I up to transition_begin.
    end_value : float
        Value E from transition_begin + transition_steps on.
    power : float
        The exponent P.
    transition_steps : int
        Steps T of the transition (<= 0: the constant init_value).
    transition_begin : int, default 0
        Steps B before the transition starts (a negative value counts as 0).

    Examples
    --------
    >>> s = polynomial_schedule(1.0, 0.01, power=2, transition_steps=100)
    >>> s(0), s(100), s(500)
    (1.0, 0.01, 0.01)
    """
    sched = _c.polynomial(
        as_float(init_value, "init_value"), as_float(end_value, "end_value"),
        as_float(power, "power"), as_int64(transition_steps, "transition_steps"),
        as_int64(transition_begin, "transition_begin"))
    return _named(sched, "polynomial_schedule", init_value=init_value, end_value=end_value,
                  power=power, transition_steps=transition_steps,
                  transition_begin=transition_begin)


def linear_schedule(init_value: float, end_value: float, transition_steps: int,
                    transition_begin: int = 0) -> Schedule:
    """optax's ``linear_schedule``: :func:`polynomial_schedule` with power 1::

        lr(t) = (I − E) · (1 − c / T) + E,   c = clip(t − B, 0, T)

    Parameters
    ----------
    init_value : float
        Value I up to transition_begin.
    end_value : float
        Value E from transition_begin + transition_steps on.
    transition_steps : int
        Steps T of the transition (<= 0: the constant init_value).
    transition_begin : int, default 0
        Steps B before the transition starts (a negative value counts as 0).

    Examples
    --------
    >>> s = linear_schedule(1.0, 0.0, transition_steps=4)
    >>> [s(t) for t in range(6)]
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """
    sched = _c.linear(
        as_float(init_value, "init_value"), as_float(end_value, "end_value"),
        as_int64(transition_steps, "transition_steps"),
        as_int64(transition_begin, "transition_begin"))
    return _named(sched, "linear_schedule", init_value=init_value, end_value=end_value,
                  transition_steps=transition_steps, transition_begin=transition_begin)


def exponential_decay(init_value: float, transition_steps: int, decay_rate: float,
                      transition_begin: int = 0, staircase: bool = False,
                      end_value: float | None = None) -> Schedule:
    """optax's ``exponential_decay``::

        lr(t) = I                     t <= B
        lr(t) = I · r^((t − B) / T)    t > B   (exponent floored if staircase)

    then, if ``end_value`` is given, bounded by it from below (``decay_rate
    < 1``) or above. As in optax, ``transition_steps <= 0`` or ``decay_rate
    == 0`` give the constant ``init_value``, and a negative
    ``transition_begin`` counts as 0.

    Parameters
    ----------
    init_value : float
        Value I up to transition_begin.
    transition_steps : int
        Steps T per factor of decay_rate.
    decay_rate : float
        The factor r.
    transition_begin : int, default 0
        Steps B before the transition starts (a negative value counts as 0).
    staircase : bool, default False
        Decay in whole steps of T (floor the exponent).
    end_value : float or None, default None
        Bound of the value, or None for none.

    Examples
    --------
    >>> s = exponential_decay(1.0, transition_steps=2, decay_rate=0.5, staircase=True)
    >>> [s(t) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    rate = as_float(decay_rate, "decay_rate")
    clip = 0 if end_value is None else (1 if rate < 1.0 else -1)
    end = 0.0 if end_value is None else as_float(end_value, "end_value")
    sched = _c.exponential(
        as_float(init_value, "init_value"), as_int64(transition_steps, "transition_steps"), rate,
        as_int64(transition_begin, "transition_begin"), bool(staircase), end, clip)
    return _named(sched, "exponential_decay", init_value=init_value,
                  transition_steps=transition_steps, decay_rate=decay_rate,
                  transition_begin=transition_begin, staircase=staircase, end_value=end_value)


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0,
                          exponent: float = 1.0) -> Schedule:
    """optax's ``cosine_decay_schedule``::

        lr(t) = I · ((1 − α) · ((1 + cos(π·min(t, T) / T)) / 2)^p + α)

    Parameters
    ----------
    init_value : float
        Value I at step 0.
    decay_steps : int
        Steps T of the decay, > 0.
    alpha : float, default 0.0
        Final value α as a fraction of ``init_value``.
    exponent : float, default 1.0
        The exponent p of the cosine term.

    Examples
    --------
    >>> s = cosine_decay_schedule(1.0, decay_steps=10, alpha=0.1)
    >>> s(0), s(10), s(99)
    (1.0, 0.1, 0.1)
    """
    sched = _c.cosine(as_float(init_value, "init_value"),
                      as_int64(decay_steps, "decay_steps", 1), as_float(alpha, "alpha"),
                      as_float(exponent, "exponent"))
    return _named(sched, "cosine_decay_schedule", init_value=init_value,
                  decay_steps=decay_steps, alpha=alpha, exponent=exponent)


def warmup_cosine_decay_schedule(init_value: float, peak_value: float, warmup_steps: int,
                                 decay_steps: int, end_value: float = 0.0,
                                 exponent: float = 1.0) -> Schedule:
    """optax's ``warmup_cosine_decay_schedule``: linear warmup, cosine decay.

    :func:`linear_schedule` from ``init_value`` to ``peak_value`` over
    ``warmup_steps``, joined at ``warmup_steps`` with
    :func:`cosine_decay_schedule` from ``peak_value`` over ``decay_steps -
    warmup_steps`` steps with ``alpha = end_value / peak_value`` (0 when
    ``peak_value`` is 0). ``decay_steps`` counts the warmup.

    Parameters
    ----------
    init_value : float
        Value at step 0.
    peak_value : float
        Value at the end of the warmup.
    warmup_steps : int
        Steps of the linear warmup.
    decay_steps : int
        Steps of warmup and decay together.
    end_value : float, default 0.0
        Value from decay_steps on.
    exponent : float, default 1.0
        The exponent of the cosine term.

    Examples
    --------
    >>> s = warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=2, decay_steps=6)
    >>> [round(s(t), 3) for t in range(8)]
    [0.0, 0.5, 1.0, 0.854, 0.5, 0.146, 0.0, 0.0]
    """
    warmup = as_int64(warmup_steps, "warmup_steps")
    decay = as_int64(decay_steps, "decay_steps")
    if decay - warmup <= 0:
        raise ValueError(
            f"decay_steps ({decay}) must be > warmup_steps ({warmup}): "
            "decay_steps counts the warmup"
        )
    cosine_steps = as_int64(decay - warmup, "decay_steps - warmup_steps")
    peak = as_float(peak_value, "peak_value")
    end = as_float(end_value, "end_value")
    alpha = 0.0 if peak == 0.0 else end / peak
    sched = _c.join(
        [_c.linear(as_float(init_value, "init_value"), peak, warmup, 0),
         _c.cosine(peak, cosine_steps, alpha, as_float(exponent, "exponent"))],
        [warmup])
    return _named(sched, "warmup_cosine_decay_schedule", init_value=init_value,
                  peak_value=peak_value, warmup_steps=warmup_steps, decay_steps=decay_steps,
                  end_value=end_value, exponent=exponent)


def piecewise_constant_schedule(init_value: float,
                                boundaries_and_scales: Mapping[int, float] | None = None
                                ) -> Schedule:
    """optax's ``piecewise_constant_schedule``::

        lr(t) = I · (product of the scales whose boundary is <= t)

    Parameters
    ----------
    init_value : float
        Value I before the first boundary.
    boundaries_and_scales : dict of int to float or None, default None
        ``{step: scale}``; the scales must be >= 0.

    Examples
    --------
    >>> s = piecewise_constant_schedule(1.0, {2: 0.5, 4: 0.1})
    >>> [s(t) for t in range(6)]
    [1.0, 1.0, 0.5, 0.5, 0.05, 0.05]
    """
    items = sorted((boundaries_and_scales or {}).items())
    bounds = [as_int64(b, f"boundary {b!r}") for b, _ in items]
    scales = [as_float(s, f"scale at boundary {b}") for b, s in items]
    if any(s < 0 for s in scales):
        raise ValueError(f"scales must be >= 0, got {dict(items)}")
    sched = _c.piecewise(as_float(init_value, "init_value"), bounds, scales)
    return _named(sched, "piecewise_constant_schedule", init_value=init_value,
                  boundaries_and_scales=None if boundaries_and_scales is None
                  else dict(boundaries_and_scales))


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """optax's ``join_schedules``: one schedule after another.

    Schedule k runs from boundary k − 1 on, and sees the steps counted from
    that boundary::

        lr(t) = S_k(t − b_(k−1)),   k = number of boundaries <= t,   b_(−1) = 0

    Parameters
    ----------
    schedules : sequence of Schedule
        Schedules of this module (they are evaluated in C).
    boundaries : sequence of int
        One fewer than ``schedules``.

    Examples
    --------
    >>> s = join_schedules([constant_schedule(1.0), linear_schedule(1.0, 0.0, 2)], [3])
    >>> [s(t) for t in range(6)]
    [1.0, 1.0, 1.0, 1.0, 0.5, 0.0]
    """
    schedules = list(schedules)
    bounds = [as_int64(b, f"boundaries[{i}]") for i, b in enumerate(boundaries)]
    for i, s in enumerate(schedules):
        if not isinstance(s, Schedule):
            raise TypeError(
                f"schedules[{i}] must be a fastopt.schedules schedule, got {type(s).__name__}"
            )
    if not schedules or len(bounds) != len(schedules) - 1:
        raise ValueError(
            f"need one boundary fewer than schedules, got {len(schedules)} schedules "
            f"and {len(bounds)} boundaries"
        )
    return _named(_c.join(schedules, bounds), "join_schedules", schedules=schedules,
                  boundaries=bounds)


# ----------------------------------------------------- torch's closed forms

def cosine_restarts_schedule(init_value: float, T_0: int, T_mult: int = 1,
                             eta_min: float = 0.0) -> Schedule:
    """Cosine annealing with warm restarts (SGDR), as torch's
    ``CosineAnnealingWarmRestarts``.

    The i-th period lasts T_i = T_0 · T_mult^i steps; with T_cur the steps
    since the last restart::

        lr(t) = eta_min + (I − eta_min) · (1 + cos(π·T_cur / T_i)) / 2

    Parameters
    ----------
    init_value : float
        Value I at the start of each period.
    T_0 : int
        Steps of the first period, >= 1.
    T_mult : int, default 1
        Factor by which each period is longer than the last, >= 1.
    eta_min : float, default 0.0
        The smallest value.

    Examples
    --------
    >>> s = cosine_restarts_schedule(1.0, T_0=2)
    >>> [s(t) for t in range(4)]
    [1.0, 0.5, 1.0, 0.5]
    """
    sched = _c.cosine_restarts(as_float(init_value, "init_value"), as_float(eta_min, "eta_min"),
                               as_int64(T_0, "T_0", 1), as_int64(T_mult, "T_mult", 1))
    return _named(sched, "cosine_restarts_schedule", init_value=init_value, T_0=T_0,
                  T_mult=T_mult, eta_min=eta_min)


def cyclic_schedule(base_lr: float, max_lr: float, step_size_up: float = 2000,
                    step_size_down: float | None = None, mode: str = "triangular",
                    gamma: float = 1.0) -> Schedule:
    """Cyclical learning rate, as torch's ``CyclicLR``.

    With S = S_up + S_down, cycle c = ⌊1 + t/S⌋, x = 1 + t/S − c and the
    height h = x/r for x <= r = S_up/S, else (x − 1)/(r − 1)::

        lr(t) = base_lr + (max_lr − base_lr) · h · g

    where g = 1 ("triangular"), 2^(1 − c) ("triangular2") or γ^t
    ("exp_range"). Step sizes with r = 0 (torch divides by it) or a sum that
    is not finite are a ValueError.

    Parameters
    ----------
    base_lr : float
        The lowest value of a cycle.
    max_lr : float
        The highest value of a cycle.
    step_size_up : float, default 2000
        Steps S_up from base_lr up to max_lr.
    step_size_down : float or None, default None
        Steps S_down back down; None means step_size_up.
    mode : {"triangular", "triangular2", "exp_range"}, default "triangular"
        The amplitude's scale per cycle.
    gamma : float, default 1.0
        The base γ of "exp_range"'s scale.

    Examples
    --------
    >>> s = cyclic_schedule(0.0, 1.0, step_size_up=2)
    >>> [s(t) for t in range(5)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    up = as_float(step_size_up, "step_size_up", above=0)
    down = up if step_size_down is None else as_float(step_size_down, "step_size_down", at_least=0)
    if not math.isfinite(up + down):
        raise ValueError(f"step_size_up + step_size_down must be finite, got "
                         f"{step_size_up} + {step_size_down}")
    if not up / (up + down) > 0:
        # torch's CyclicLR divides by this ratio at step 0 and raises
        raise ValueError(f"step_size_up ({step_size_up}) is too small next to step_size_down "
                         f"({step_size_down}): step_size_up / (step_size_up + step_size_down) is 0")
    if mode not in ("triangular", "triangular2", "exp_range"):
        raise ValueError(
            f"mode must be 'triangular', 'triangular2' or 'exp_range', got {mode!r}"
        )
    sched = _c.cyclic(as_float(base_lr, "base_lr"), as_float(max_lr, "max_lr"), up, down, mode,
                      as_float(gamma, "gamma"))
    return _named(sched, "cyclic_schedule", base_lr=base_lr, max_lr=max_lr,
                  step_size_up=step_size_up, step_size_down=step_size_down, mode=mode,
                  gamma=gamma)


def one_cycle_schedule(max_lr: float, total_steps: int, pct_start: float = 0.3,
                       anneal_strategy: str = "cos", div_factor: float = 25.0,
                       final_div_factor: float = 1e4, three_phase: bool = False) -> Schedule:
    """The 1cycle policy, as torch's ``OneCycleLR``.

    From ``max_lr / div_factor`` up to ``max_lr`` over the first
    ``pct_start * total_steps - 1`` steps, then down to ``max_lr /
    (div_factor * final_div_factor)`` at step ``total_steps - 1`` (with
    ``three_phase``, first back down to the initial value, symmetrically).
    Each phase anneals from a to b over its fraction q in [0, 1] as::

        b + (a − b) · (1 + cos(π·q)) / 2     ("cos")
        a + (b − a) · q                      ("linear")

    Steps past ``total_steps - 1`` give the final value (torch's class raises
    there). ``pct_start * total_steps == 1`` (a warm-up of no steps, where
    torch divides by zero) is a ValueError.

    Parameters
    ----------
    max_lr : float
        The peak value.
    total_steps : int
        Steps of the whole cycle.
    pct_start : float, default 0.3
        Fraction of the cycle spent warming up, in [0, 1].
    anneal_strategy : {"cos", "linear"}, default "cos"
        The shape of each phase.
    div_factor : float, default 25.0
        The starting value is max_lr / div_factor.
    final_div_factor : float, default 1e4
        The final value is the starting one / final_div_factor.
    three_phase : bool, default False
        Come back down to the starting value before the final annealing.

    Examples
    --------
    >>> s = one_cycle_schedule(1.0, total_steps=10, anneal_strategy="linear", div_factor=10.0)
    >>> s(0), s(2), round(s(9), 12)
    (0.1, 1.0, 1e-05)
    """
    total = as_int64(total_steps, "total_steps", 1)
    pct = as_float(pct_start, "pct_start")
    if not 0.0 <= pct <= 1.0:
        raise ValueError(f"pct_start must be in [0, 1], got {pct_start}")
    if pct * total - 1.0 == 0.0:
        # the warm-up ends at step 0: torch's OneCycleLR divides 0 by 0 there and raises
        raise ValueError(f"pct_start * total_steps must not be 1 (the warm-up would last no "
                         f"steps), got pct_start={pct_start}, total_steps={total_steps}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    peak = as_float(max_lr, "max_lr")
    initial = peak / as_float(div_factor, "div_factor", above=0)
    final = initial / as_float(final_div_factor, "final_div_factor", above=0)
    sched = _c.onecycle(initial, peak, final, pct, total, anneal_strategy == "linear",
                        bool(three_phase))
    return _named(sched, "one_cycle_schedule", max_lr=max_lr, total_steps=total_steps,
                  pct_start=pct_start, anneal_strategy=anneal_strategy, div_factor=div_factor,
                  final_div_factor=final_div_factor, three_phase=three_phase)

"""torch's learning-rate schedulers, for fastopt optimizers.

The classes, their arguments and their behaviour are those of
``torch.optim.lr_scheduler`` (torch 2.13): the same learning rates come out,
step for step, because each class computes them with torch's own formulas (the
recursive, "chainable" forms of ``get_lr()``, and the closed forms that
``step(epoch)`` and :class:`SequentialLR` use). A scheduler drives any object
with a torch-style ``param_groups`` list of dicts: fastopt optimizers, torch
optimizers, or a stand-in. It changes ``group["lr"]`` (and ``"momentum"`` or
``"betas"`` for :class:`CyclicLR` and :class:`OneCycleLR`), which takes effect
at the optimizer's next step::

    opt = fastopt.SGD(params, lr=0.1, momentum=0.9)
    sched = fastopt.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(100):
        train(opt)
        sched.step()

Constructing a scheduler stores ``initial_lr`` in every group and applies step
0, as torch does; :class:`ReduceLROnPlateau` applies no step then, and
:class:`ChainedScheduler` has no ``last_epoch``. The optimizer's ``step`` is
never wrapped. Arguments torch would accept but that cannot give a schedule
(a step size of 0, a decay factor <= 0, ...) raise ``ValueError`` here.

:class:`ScheduleLR` sets the learning rate from any callable ``step -> lr``,
such as the schedules of :mod:`fastopt.schedules`.

Thread-safety: a scheduler and its optimizer's groups are mutated by
``step()``; use them from one thread at a time.
"""
import copy
import math
import numbers
import types
import warnings
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _schedules as _c
from ._typing import HasParamGroups, ScheduleFn, StateDict
from ._validate import as_float, as_int_float64, is_int, is_torch_tensor

__all__ = [
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "ChainedScheduler",
    "ScheduleLR",
]

_EPOCH_DEPRECATION = (
    "The epoch parameter in `scheduler.step()` is deprecated (as in torch); when "
    "it is given, the closed form is used instead of the chainable form, where "
    "available. Call `scheduler.step()` without arguments instead."
)


def _check_optimizer(optimizer):
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise TypeError(
            f"{type(optimizer).__name__} is not an optimizer: it needs a "
            "`param_groups` list of dicts"
        )
    return optimizer


def _copy(value):
    """A value that does not alias ``value`` (a tensor or array learning rate)."""
    if is_torch_tensor(value):
        return value.clone()
    return value.copy() if isinstance(value, np.ndarray) else value


def _set(group, key, value):
    """Set ``group[key]`` to ``value``, in place when it holds a tensor or array (as torch)."""
    old = group[key]
    if is_torch_tensor(old):
        old.fill_(value.squeeze() if is_torch_tensor(value) and value.dim() else value)
    elif isinstance(old, np.ndarray):
        old[...] = value
    else:
        group[key] = value


def _format_param(name, optimizer, param):
    """One value per param group (copies): ``param`` itself if a list or tuple."""
    if isinstance(param, (list, tuple)):
        if len(param) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(param)} values, param_groups has "
                f"{len(optimizer.param_groups)}."
            )
        values = list(param)
    else:
        values = [param] * len(optimizer.param_groups)
    for v in values:
        if type(v) is int:  # one past float64's range would overflow the lr arithmetic
            as_float(v, name)
    return [_copy(v) for v in values]


def _lrs(optimizer, key="lr"):
    """The groups' ``key`` values (copies: a tensor lr edited later does not change them)."""
    return [_copy(group[key]) for group in optimizer.param_groups]


def _per_group(name, optimizer, fn):
    """A callable or a list of one callable per param group."""
    fns = list(fn) if isinstance(fn, (list, tuple)) else [fn] * len(optimizer.param_groups)
    if len(fns) != len(optimizer.param_groups):
        raise ValueError(
            f"Expected {len(optimizer.param_groups)} {name}s, but got {len(fns)}"
        )
    for f in fns:
        if not callable(f):
            raise TypeError(f"{name} should be a function, but got {type(f).__name__}")
    return fns


class LRScheduler:
    """Base class: subclasses define :meth:`get_lr`.

    Parameters
    ----------
    optimizer : object with ``param_groups``
        The optimizer whose learning rates this scheduler sets.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.

    Attributes
    ----------
    base_lrs : list of float
        The groups' ``initial_lr``.
    last_epoch : int
        Number of :meth:`step` calls since step 0.
    """

    # Attributes that state_dict() leaves out: references, not state.
    _not_state = ("optimizer",)

    def __init__(self, optimizer: HasParamGroups, last_epoch: int = -1) -> None:
        self.optimizer = _check_optimizer(optimizer)
        last_epoch = as_int_float64(last_epoch, "last_epoch", -1)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", _copy(group["lr"]))
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when "
                        "resuming a scheduler with last_epoch >= 0"
                    )
        self.base_lrs = _lrs(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Reset the step count and apply the first step."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rates for ``last_epoch`` (called by :meth:`step`)."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The learning rates the last :meth:`step` set, one per group."""
        return self._last_lr

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch (or, deprecated, jump to ``epoch``) and set the lrs.

        Parameters
        ----------
        epoch : int or None, default None
            None advances one epoch; an int (deprecated, as in torch) jumps
            to that epoch with the closed form where there is one.
        """
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            _set(group, "lr", lr)
        self._last_lr = _lrs(self.optimizer)

    def state_dict(self) -> StateDict:
        """The scheduler's state: a dict of plain values (a copy)."""
        return {
            key: copy.deepcopy(value)
            for key, value in self.__dict__.items()
            if key not in self._not_state
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`.

        Parameters
        ----------
        state_dict : dict
            A dict that ``state_dict()`` returned.
        """
        self.__dict__.update(copy.deepcopy(state_dict))


def _function_state(fns):
    """torch's rule for saving lambdas: callable objects keep their __dict__."""
    return [None if isinstance(f, types.FunctionType) else copy.deepcopy(f.__dict__)
            for f in fns]


def _load_function_state(fns, states):
    for f, state in zip(fns, states):
        if state is not None:
            f.__dict__.update(state)


class _LambdaState:
    """Schedulers driven by user functions ``lr_lambdas`` (one per group), and
    their state_dict."""

    _not_state = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer: HasParamGroups, lr_lambda: ScheduleFn | Sequence[ScheduleFn],
                 last_epoch: int = -1) -> None:
        self.optimizer = _check_optimizer(optimizer)
        self.lr_lambdas = _per_group("lr_lambda", optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def state_dict(self) -> StateDict:
        state = LRScheduler.state_dict(self)
        state["lr_lambdas"] = _function_state(self.lr_lambdas)
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`.

        Parameters
        ----------
        state_dict : dict
            A dict that ``state_dict()`` returned.
        """
        state = dict(state_dict)
        lambdas = state.pop("lr_lambdas")
        LRScheduler.load_state_dict(self, state)
        _load_function_state(self.lr_lambdas, lambdas)


class LambdaLR(_LambdaState, LRScheduler):
    """Learning rate = initial lr times a function of the epoch::

        lr(t) = lr₀ · λ(t)

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    lr_lambda : callable or list of callables
        ``epoch -> factor``, or one per param group.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def get_lr(self) -> list[float]:
        return [base_lr * lmbda(self.last_epoch)
                for lmbda, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]


class MultiplicativeLR(_LambdaState, LRScheduler):
    """Multiply the learning rate by a function of the epoch at every step::

        lr(t) = lr(t − 1) · λ(t),   lr(0) = initial lr

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    lr_lambda : callable or list of callables
        ``epoch -> factor``, or one per param group.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return _lrs(self.optimizer)
        return [group["lr"] * lmbda(self.last_epoch)
                for lmbda, group in zip(self.lr_lambdas, self.optimizer.param_groups,
                                        strict=True)]


class StepLR(LRScheduler):
    """Decay by ``gamma`` every ``step_size`` epochs::

        lr(t) = lr₀ · γ^⌊t / step_size⌋

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    step_size : int
        Epochs between decays, >= 1.
    gamma : float, default 0.1
        Multiplicative factor of the decay, > 0.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size = as_int_float64(step_size, "step_size", 1)
        as_float(gamma, "gamma", above=0)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Decay by ``gamma`` at each milestone (a repeated milestone counts twice)::

        lr(t) = lr₀ · γ^(number of milestones <= t)

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    milestones : iterable of int
        The epochs (>= 0) at which the learning rate is multiplied by gamma.
    gamma : float, default 0.1
        Multiplicative factor of the decay, > 0.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.milestones = Counter(
            as_int_float64(m, f"milestones[{i}]", 0) for i, m in enumerate(milestones))
        as_float(gamma, "gamma", above=0)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return _lrs(self.optimizer)
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        milestones = sorted(Counter(self.milestones).elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch)
                for base_lr in self.base_lrs]


class ConstantLR(LRScheduler):
    """Scale by ``factor`` until epoch ``total_iters``::

        lr(t) = lr₀ · factor   for t < total_iters,   lr₀ after

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    factor : float, default 1/3
        The scale of the learning rate until total_iters, in (0, 1].
    total_iters : int, default 5
        Epochs at the scaled rate, >= 1 (torch accepts 0 but then keeps the
        factor forever, against its closed form; fastopt refuses it).
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        if not 0 < factor <= 1.0:
            raise ValueError(
                f"Constant multiplicative factor expected to be in (0, 1], got {factor}")
        self.factor = factor
        self.total_iters = as_int_float64(total_iters, "total_iters", 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return _lrs(self.optimizer)
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale linearly from ``start_factor`` to ``end_factor`` over ``total_iters``::

        lr(t) = lr₀ · (f_s + (f_e − f_s) · min(t, T) / T)

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    start_factor : float, default 1/3
        The scale f_s at epoch 0, in (0, 1].
    end_factor : float, default 1.0
        The scale f_e from epoch T = total_iters on, in [0, 1].
    total_iters : int, default 5
        Epochs T of the ramp, >= 1.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less "
                f"or equal to 1, got {start_factor}")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(
                f"Ending multiplicative factor expected to be between 0 and 1, got {end_factor}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = as_int_float64(total_iters, "total_iters", 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return _lrs(self.optimizer)
        delta = self.end_factor - self.start_factor
        return [group["lr"] * (1.0 + delta / (self.total_iters * self.start_factor
                                              + (self.last_epoch - 1) * delta))
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * (self.start_factor + (self.end_factor - self.start_factor)
                           * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Decay by ``gamma`` every epoch::

        lr(t) = lr₀ · γ^t

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    gamma : float
        Multiplicative factor per epoch, > 0.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, gamma: float, last_epoch: int = -1) -> None:
        as_float(gamma, "gamma", above=0)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return _lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Polynomial decay to 0 over ``total_iters`` epochs::

        lr(t) = lr₀ · (1 − min(t, T) / T)^p

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    total_iters : int, default 5
        Epochs T of the decay, >= 1.
    power : float, default 1.0
        The exponent p.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1) -> None:
        self.total_iters = as_int_float64(total_iters, "total_iters", 1)
        self.power = power
        as_float(power, "power")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial or self.last_epoch > self.total_iters:
            return _lrs(self.optimizer)
        decay = ((1.0 - self.last_epoch / self.total_iters)
                 / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return [group["lr"] * decay for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters)
                ** self.power for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial lr to ``eta_min`` over ``T_max`` epochs::

        lr(t) = eta_min + (lr₀ − eta_min) · (1 + cos(π·t / T_max)) / 2

    (continued periodically past ``T_max``, as in torch).

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    T_max : int
        Epochs of a half period, >= 1.
    eta_min : float, default 0.0
        The smallest learning rate.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max = as_int_float64(T_max, "T_max", 1)
        self.eta_min = eta_min
        as_float(eta_min, "eta_min")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return _lrs(self.optimizer)
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._step_count == 1 and t > 0:
            return [eta_min + (base_lr - eta_min) * (1 + math.cos(t * math.pi / T)) / 2
                    for base_lr in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups,
                                              strict=True)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (group["lr"] - eta_min) + eta_min
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR).

    Periods last T_i = T_0 · T_mult^i epochs; with T_cur the epochs since the
    last restart::

        lr(t) = eta_min + (lr₀ − eta_min) · (1 + cos(π·T_cur / T_i)) / 2

    ``step(epoch)`` accepts a fractional epoch, as in torch.

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    T_0 : int
        Epochs of the first period, >= 1.
    T_mult : int, default 1
        Factor by which each period is longer than the last, >= 1.
    eta_min : float, default 0.0
        The smallest learning rate.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if not is_int(T_0, 1):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if not is_int(T_mult, 1):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(
                f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        as_float(T_0, "T_0"), as_float(eta_min, "eta_min")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [_c.sgdr_at(base_lr, self.eta_min, self.T_cur, self.T_i)
                for base_lr in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch, or go to ``epoch``.

        Parameters
        ----------
        epoch : float or None, default None
            None advances one epoch; a number (>= 0, may be fractional)
            goes to that epoch.
        """
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            _set(group, "lr", lr)
        self._last_lr = _lrs(self.optimizer)


def _momentum_key(optimizer):
    """'betas' (Adam-like, cycles beta1) or 'momentum' (SGD-like)."""
    defaults = getattr(optimizer, "defaults", {})
    if "momentum" not in defaults and "betas" not in defaults:
        raise ValueError(
            "optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
    return "betas" in defaults


def _set_momentum(group, use_beta1, momentum):
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


class CyclicLR(LRScheduler):
    """Cyclical learning rate (and inverse cyclical momentum).

    With S = S_up + S_down, cycle c = ⌊1 + t/S⌋, x = 1 + t/S − c, r = S_up/S
    and the height h = x/r for x <= r, else (x − 1)/(r − 1)::

        lr(t) = base_lr + (max_lr − base_lr) · h · g
        m(t)  = max_momentum − (max_momentum − base_momentum) · h · g

    with g = ``scale_fn(c)`` (scale_mode "cycle") or ``scale_fn(t)``
    ("iterations"): 1 for "triangular", 2^(1 − c) for "triangular2", γ^t for
    "exp_range". The momentum cycles ``group["momentum"]``, or beta1 of
    ``group["betas"]`` when the optimizer's ``defaults`` have ``betas``.

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    base_lr : float or list of float
        The lowest learning rate of a cycle, for all groups or one per group.
    max_lr : float or list of float
        The highest learning rate of a cycle, for all groups or one per group.
    step_size_up : int or float, default 2000
        Steps S_up from base_lr up to max_lr, > 0.
    step_size_down : int or float or None, default None
        Steps S_down back down, >= 0; None means step_size_up.
    mode : {"triangular", "triangular2", "exp_range"}, default "triangular"
        The amplitude's scale per cycle (ignored when scale_fn is given).
    gamma : float, default 1.0
        The base of "exp_range"'s scale γ^t.
    scale_fn : callable or None, default None
        ``x -> scale`` replacing mode's scale.
    scale_mode : {"cycle", "iterations"}, default "cycle"
        Whether scale_fn takes the cycle number or the step.
    cycle_momentum : bool, default True
        Cycle the momentum (or beta1) inversely to the learning rate.
    base_momentum : float or list of float, default 0.8
        The momentum at max_lr.
    max_momentum : float or list of float, default 0.9
        The momentum at base_lr.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    _not_state = ("optimizer", "_scale_fn_custom")

    def __init__(self, optimizer: HasParamGroups, base_lr: float | Sequence[float],
                 max_lr: float | Sequence[float], step_size_up: float = 2000,
                 step_size_down: float | None = None, mode: str = "triangular", gamma: float = 1.0,
                 scale_fn: Callable[[float], float] | None = None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum: float | Sequence[float] = 0.8,
                 max_momentum: float | Sequence[float] = 0.9, last_epoch: int = -1) -> None:
        self.optimizer = _check_optimizer(optimizer)
        base_lrs = _format_param("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups, strict=True):
                _set(group, "lr", lr)
        self.max_lrs = _format_param("max_lr", optimizer, max_lr)
        step_size_up = as_float(step_size_up, "step_size_up", above=0)
        step_size_down = (step_size_up if step_size_down is None
                          else as_float(step_size_down, "step_size_down", at_least=0))
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        self.mode = mode
        as_float(gamma, "gamma")  # the C formula takes it as a double
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        if scale_fn is None:  # the mode decides the scale mode, as in torch
            self.scale_mode = "iterations" if mode == "exp_range" else "cycle"
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer)
            self.base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            self.max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                for m, b, group in zip(self.max_momentums, self.base_momentums,
                                       optimizer.param_groups, strict=True):
                    _set_momentum(group, self.use_beta1, m)
                    group["max_momentum"] = m
                    group["base_momentum"] = b
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def scale_fn(self, x: float) -> float:
        """The amplitude scale at ``x``.

        Parameters
        ----------
        x : float
            The cycle number or the step, as ``scale_mode`` says.
        """
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        return _c.cyclic_scale(self.mode, self.gamma, x)

    def get_lr(self) -> list[float]:
        t, total, ratio = self.last_epoch, self.total_size, self.step_ratio
        scale = self.scale_fn(_c.cyclic_cycle(total, t) if self.scale_mode == "cycle" else t)
        lrs = [_c.cyclic_at(base_lr, max_lr, total, ratio, t, scale)
               for base_lr, max_lr in zip(self.base_lrs, self.max_lrs, strict=True)]
        if self.cycle_momentum:  # from max_momentum at base_lr to base_momentum at max_lr
            for group, b, m in zip(self.optimizer.param_groups, self.base_momentums,
                                   self.max_momentums, strict=True):
                _set_momentum(group, self.use_beta1, _c.cyclic_at(m, b, total, ratio, t, scale))
        return lrs

    def state_dict(self) -> StateDict:
        state = super().state_dict()
        state["_scale_fn_custom"] = (
            None if self._scale_fn_custom is None
            else _function_state([self._scale_fn_custom])[0])
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`.

        Parameters
        ----------
        state_dict : dict
            A dict that ``state_dict()`` returned.
        """
        state = dict(state_dict)
        fn = state.pop("_scale_fn_custom", None)
        super().load_state_dict(state)
        if fn is not None:
            self._scale_fn_custom.__dict__.update(fn)


def _phase(end_step, start_lr, end_lr, start_momentum, end_momentum):
    """One of OneCycleLR's phases, as torch stores it (state dicts interchange)."""
    return {"end_step": end_step, "start_lr": start_lr, "end_lr": end_lr,
            "start_momentum": start_momentum, "end_momentum": end_momentum}


class OneCycleLR(LRScheduler):
    """The 1cycle policy: warm up to ``max_lr``, then anneal far below the start.

    Phases (two, or three with ``three_phase``) end at steps p·T − 1,
    (2·p·T − 2,) T − 1, for T = ``total_steps`` and p = ``pct_start``; the lr
    goes from ``max_lr / div_factor`` to ``max_lr`` (, back to the start) and
    then to ``max_lr / (div_factor * final_div_factor)``, the momentum the
    opposite way between ``max_momentum`` and ``base_momentum``. Each phase
    anneals from a to b over its fraction q as::

        b + (a − b) · (1 + cos(π·q)) / 2     ("cos")
        a + (b − a) · q                      ("linear")

    Stepping past ``total_steps`` raises ``ValueError``, as in torch.

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    max_lr : float or list of float
        The peak learning rate, for all groups or one per group.
    total_steps : int or None, default None
        Steps T of the whole cycle; None computes epochs * steps_per_epoch.
    epochs : int or None, default None
        Epochs of training (with steps_per_epoch, when total_steps is None).
    steps_per_epoch : int or None, default None
        Steps per epoch (with epochs, when total_steps is None).
    pct_start : float, default 0.3
        Fraction p of the cycle spent warming up, in [0, 1].
    anneal_strategy : {"cos", "linear"}, default "cos"
        The shape of each phase.
    cycle_momentum : bool, default True
        Cycle the momentum (or beta1) inversely to the learning rate.
    base_momentum : float or list of float, default 0.85
        The momentum at the peak learning rate.
    max_momentum : float or list of float, default 0.95
        The momentum at the start and the end.
    div_factor : float, default 25.0
        The starting learning rate is max_lr / div_factor.
    final_div_factor : float, default 1e4
        The final learning rate is the starting one / final_div_factor.
    three_phase : bool, default False
        Come back down to the starting lr before the final annealing.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, max_lr: float | Sequence[float],
                 total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.85,
                 max_momentum: float | Sequence[float] = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        self.optimizer = _check_optimizer(optimizer)
        if total_steps is not None:
            if not is_int(total_steps, 1):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not is_int(epochs, 1):
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not is_int(steps_per_epoch, 1):
                raise ValueError(
                    f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._anneal_func_type = anneal_strategy
        T = self.total_steps
        as_float(T, "total_steps"), as_float(div_factor, "div_factor")
        as_float(final_div_factor, "final_div_factor")
        # torch's phases: (end step, start lr key, end lr key, start momentum key, end momentum key)
        up = (float(pct_start * T) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum")
        if three_phase:
            phases = [
                up,
                (float(2 * pct_start * T) - 2, "max_lr", "initial_lr", "base_momentum",
                 "max_momentum"),
                (T - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            phases = [up, (T - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        self._schedule_phases = [_phase(*p) for p in phases]
        max_lrs = _format_param("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for peak, group in zip(max_lrs, optimizer.param_groups, strict=True):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer)
            max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for m, b, group in zip(max_momentums, base_momentums, optimizer.param_groups,
                                       strict=True):
                    _set_momentum(group, self.use_beta1, m)
                    group["max_momentum"] = m
                    group["base_momentum"] = b
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(
                f"Tried to step {step_num} times. The specified number of total steps is "
                f"{self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            lrs.append(self._at(group, "start_lr", "end_lr"))
            if self.cycle_momentum:
                _set_momentum(group, self.use_beta1,
                              self._at(group, "start_momentum", "end_momentum"))
        return lrs

    def _at(self, group, start, end):
        # each phase's values are keys of the group, read at every step as torch does
        phases = [(p["end_step"], group[p[start]], group[p[end]]) for p in self._schedule_phases]
        return _c.phases_at(phases, self._anneal_func_type == "linear", self.last_epoch)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (torch's, or fastopt's own).

        Parameters
        ----------
        state_dict : dict
            A dict that ``state_dict()`` returned.
        """
        super().load_state_dict(state_dict)
        # earlier fastopt builds stored the phases as tuples
        self._schedule_phases = [p if isinstance(p, dict) else _phase(*p)
                                 for p in self._schedule_phases]


class ReduceLROnPlateau(LRScheduler):
    """Reduce the learning rate when a metric has stopped improving.

    After more than ``patience`` epochs without improvement (then
    ``cooldown`` epochs of rest), each group's lr becomes
    ``max(lr · factor, min_lr)``, unless that changes it by no more than
    ``eps``. A metric a improves on the best b when::

        a < b · (1 − threshold)    ("min", "rel")
        a < b − threshold          ("min", "abs")
        a > b · (1 + threshold)    ("max", "rel")
        a > b + threshold          ("max", "abs")

    Applies no step at construction and sets no ``initial_lr``, as in torch;
    ``step(metrics)`` takes the metric.

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    mode : {"min", "max"}, default "min"
        Whether the metric improves by going down (a loss) or up (an accuracy).
    factor : float, default 0.1
        Multiplier of the learning rate at a reduction, in [0, 1).
    patience : int, default 10
        Epochs without improvement tolerated before a reduction, >= 0.
    threshold : float, default 1e-4
        How much better than the best a metric must be to count.
    threshold_mode : {"rel", "abs"}, default "rel"
        Whether threshold is relative to the best or absolute.
    cooldown : int, default 0
        Epochs after a reduction during which none is counted, >= 0.
    min_lr : float or list of float, default 0
        The lowest learning rate, for all groups or one per group.
    eps : float, default 1e-8
        Reductions smaller than this are not made, >= 0.
    """

    def __init__(self, optimizer: HasParamGroups, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | Sequence[float] = 0,
                 eps: float = 1e-8) -> None:
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if factor < 0:
            raise ValueError(f"Factor should be >= 0, got {factor}")
        self.factor = factor
        self.optimizer = _check_optimizer(optimizer)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(
                    f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = as_int_float64(patience, "patience", 0)
        self.cooldown = as_int_float64(cooldown, "cooldown", 0)
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _lrs(optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode!r} is unknown! Use 'min' or 'max'.")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode!r} is unknown! Use 'rel' or 'abs'.")
        self.mode = mode
        self.threshold = threshold
        as_float(threshold, "threshold")
        self.threshold_mode = threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self._reset()

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: float, epoch: int | None = None) -> None:
        """Record ``metrics`` for one epoch, reducing the lrs on a plateau.

        Parameters
        ----------
        metrics : float
            This epoch's value of the monitored metric.
        epoch : int or None, default None
            Deprecated, as in torch: the epoch number to record instead of
            the next one.
        """
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = _lrs(self.optimizer)

    def _reduce_lr(self):
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The number of param groups in the optimizer "
                    f"({len(self.optimizer.param_groups)}) differs from when "
                    f"ReduceLROnPlateau was initialized ({len(self.min_lrs)}); set "
                    "`min_lrs` to one value per param group.")
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for i, group in enumerate(self.optimizer.param_groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                _set(group, "lr", new_lr)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold


def _check_schedulers(name, optimizer, schedulers):
    if len(schedulers) < 1:
        raise ValueError(f"{name} expects at least one scheduler, but got none.")
    for i, s in enumerate(schedulers):
        if not hasattr(s, "optimizer"):
            raise TypeError(f"{name}: the scheduler at index {i} has no `optimizer` attribute.")
        if isinstance(s, ReduceLROnPlateau):
            raise ValueError(
                f"{name} does not support ReduceLROnPlateau (its step needs a metric), "
                f"but got one at index {i}.")
        if s.optimizer is not optimizer:
            raise ValueError(
                f"{name} expects all schedulers to belong to the same optimizer, but the "
                f"scheduler {type(s).__name__} at index {i} has another one.")


class _NestedState:
    """state_dict holding the state dicts of ``_schedulers``."""

    _not_state = ("optimizer", "_schedulers")

    def state_dict(self) -> StateDict:
        state = LRScheduler.state_dict(self)
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`.

        Parameters
        ----------
        state_dict : dict
            A dict that ``state_dict()`` returned.
        """
        state = dict(state_dict)
        nested = state.pop("_schedulers")
        LRScheduler.load_state_dict(self, state)
        for s, sd in zip(self._schedulers, nested, strict=True):
            s.load_state_dict(sd)


class SequentialLR(_NestedState, LRScheduler):
    """Run schedulers one after another, switching at the milestones.

    At a milestone the next scheduler restarts from its epoch 0 (its closed
    form), as in torch.

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    schedulers : list of schedulers
        All on ``optimizer``; no ReduceLROnPlateau.
    milestones : list of int
        Increasing; one fewer than ``schedulers``.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: HasParamGroups, schedulers: Sequence[LRScheduler],
                 milestones: Iterable[int], last_epoch: int = -1) -> None:
        _check_schedulers(type(self).__name__, optimizer, schedulers)
        milestones = list(milestones)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more "
                f"than the number of milestone points, but got number of schedulers "
                f"{len(schedulers)} and the number of milestones to be equal to {len(milestones)}")
        if any(b < a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"milestones must be in increasing order, got {milestones}")
        self._schedulers = list(schedulers)
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:  # back to the initial lrs
            _set(group, "lr", group["initial_lr"])
        self._undo(self)  # the constructors' steps
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    @classmethod
    def _undo(cls, sched):
        """Take back one step from every (nested) scheduler."""
        if hasattr(sched, "_schedulers"):
            for s in sched._schedulers:
                cls._undo(s)
        elif hasattr(sched, "last_epoch"):
            sched.last_epoch -= 1

    def step(self) -> None:
        """Advance one epoch with the scheduler whose turn it is."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_NestedState, LRScheduler):
    """Step several schedulers together, each on the lrs the previous one set.

    Has no ``last_epoch``, as in torch.

    Parameters
    ----------
    schedulers : sequence of schedulers
        All on one optimizer; no ReduceLROnPlateau.
    optimizer : optimizer or None, default None
        The schedulers' optimizer; None takes the first scheduler's.
    """

    def __init__(self, schedulers: Iterable[LRScheduler],
                 optimizer: HasParamGroups | None = None) -> None:
        schedulers = list(schedulers)
        if optimizer is None and schedulers:
            optimizer = schedulers[0].optimizer
        _check_schedulers(type(self).__name__, optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = _lrs(schedulers[-1].optimizer)

    def step(self) -> None:
        """Step every scheduler, in order."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _lrs(self._schedulers[-1].optimizer)


class ScheduleLR(LRScheduler):
    """Set the learning rate from a schedule::

        lr(t) = schedule(t)

    Drives an optimizer with any callable ``step -> lr``, such as the
    schedules of :mod:`fastopt.schedules`. Unlike :class:`LambdaLR`, the
    value is the learning rate itself, not a factor of the initial one.

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    schedule : callable or list of callables
        ``int -> float``, or one per param group.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.

    Examples
    --------
    >>> from fastopt import schedules
    >>> class Opt:  # any object with torch-style param_groups
    ...     param_groups = [{"lr": 0.0}]
    >>> opt = Opt()
    >>> sched = ScheduleLR(opt, schedules.linear_schedule(1.0, 0.0, transition_steps=4))
    >>> for _ in range(3):
    ...     sched.step()
    >>> sched.get_last_lr(), opt.param_groups[0]["lr"]
    ([0.25], 0.25)
    """

    _not_state = ("optimizer", "schedules")

    def __init__(self, optimizer: HasParamGroups, schedule: ScheduleFn | Sequence[ScheduleFn],
                 last_epoch: int = -1) -> None:
        self.optimizer = _check_optimizer(optimizer)
        self.schedules = _per_group("schedule", optimizer, schedule)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [float(s(self.last_epoch)) for s in self.schedules]

    _get_closed_form_lr = get_lr

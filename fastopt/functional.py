"""In-place updates over explicit arrays, for code that keeps its own state.

Each function updates ``param`` (and the state buffers) in place from
``grad``, exactly as one step of the matching optimizer class: ``step`` is
the number of this update (1 for the first; state buffers are then read as
their initial values, and SGD's momentum buffer starts as the gradient).
A step is a whole number from 1 to 2**63 - 1 (an int, a NumPy integer, an
integral float or a 0-d array), as the step counts ``load_state_dict`` takes.
Arguments are checked before anything is written. ``isa`` forces a SIMD path
by name (for tests and benchmarks); by default the one in use.

Examples
--------
>>> import numpy as np
>>> from fastopt.functional import adam_
>>> p, g = np.ones(4), np.full(4, 0.5)
>>> m, v = np.zeros(4), np.zeros(4)
>>> adam_(p, g, m, v, step=1, lr=0.1)
>>> p
array([0.9, 0.9, 0.9, 0.9])
"""
from . import _core
from ._typing import Array
from .optim import (_MAX_STEP, ADOPT, SGD, AdaBelief, Adagrad, Adam, Adamax, Adan, Lion, RMSprop,
                    _check_step)

__all__ = ["sgd_", "adagrad_", "rmsprop_", "adam_", "adamw_", "adamax_", "lion_",
           "adabelief_", "adopt_", "adan_"]


def _update(cls, param, grad, buffers, step, hyper, isa):
    """One step of optimizer class `cls`; `buffers` in the order of its spec's state."""
    spec = cls._spec
    step = _check_step(step, "step (the number of this update)", low=1, high=_MAX_STEP)
    hyper = {**spec.defaults, **hyper}  # what a function does not take (Adagrad's initial value)
    cls._check_group(hyper, "arguments")
    p = _core.as_param(param, "param")
    needed = _core.state_slots(spec.algo, hyper)
    states = [None] * _core.NUM_SLOTS  # the engine's slots per parameter
    for k, buf in enumerate(spec.state):
        given = buffers[k] if k < len(buffers) else None
        if given is None:
            if needed[buf.slot]:
                raise ValueError(f"{buf.name} is required with these hyperparameters")
            continue
        a = _core.as_param(given, buf.name)
        if a.dtype != p.dtype or a.shape != p.shape:
            raise ValueError(f"{buf.name} must have param's dtype {p.dtype} and shape {p.shape}, "
                             f"got {a.dtype} {a.shape}")
        states[buf.slot] = a if needed[buf.slot] else None
    engine = _core.Engine(spec.algo, [p], [tuple(states)], ["param"], [0])
    engine.steps[0] = step - 1
    engine.started[0] = step > 1
    engine.step([grad], [hyper], False, isa)


def sgd_(param: Array, grad: Array, momentum_buffer: Array | None = None, *, step: int,
         lr: float = 1e-3, momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
         nesterov: bool = False, maximize: bool = False, isa: str | None = None) -> None:
    """One SGD step in place (see ``fastopt.SGD``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    momentum_buffer : ndarray or None, default None
        The momentum buffer, param's shape and dtype, updated in place; required when momentum != 0.
    step : int, keyword-only
        The number of this update, 1 for the first.
    lr : float, default 1e-3
        Learning rate, >= 0.
    momentum : float, default 0
        Momentum factor, >= 0.
    dampening : float, default 0
        Dampening of the gradient's share in the momentum buffer.
    weight_decay : float, default 0
        L2 penalty, >= 0, added to the gradient.
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0 and dampening = 0).
    maximize : bool, default False
        Ascend the gradient instead of descending.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    hyper = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                 nesterov=nesterov, maximize=maximize)
    _update(SGD, param, grad, (momentum_buffer,), step, hyper, isa)


def adagrad_(param: Array, grad: Array, sum: Array, *, step: int, lr: float = 1e-2,
             lr_decay: float = 0, weight_decay: float = 0, eps: float = 1e-10,
             maximize: bool = False, isa: str | None = None) -> None:
    """One Adagrad step in place (see ``fastopt.Adagrad``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    sum : ndarray
        The sum of squared gradients, param's shape and dtype, updated in place.
    step : int, keyword-only
        The number of this update, 1 for the first.
    lr : float, default 1e-2
        Learning rate, >= 0.
    lr_decay : float, default 0
        Learning-rate decay, >= 0: step t uses lr / (1 + (t − 1)·lr_decay).
    weight_decay : float, default 0
        L2 penalty, >= 0, added to the gradient.
    eps : float, default 1e-10
        Added to the denominator, >= 0.
    maximize : bool, default False
        Ascend the gradient instead of descending.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    hyper = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize)
    _update(Adagrad, param, grad, (sum,), step, hyper, isa)


def rmsprop_(param: Array, grad: Array, square_avg: Array, momentum_buffer: Array | None = None,
             grad_avg: Array | None = None, *, step: int, lr: float = 1e-2, alpha: float = 0.99,
             eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
             centered: bool = False, maximize: bool = False, isa: str | None = None) -> None:
    """One RMSprop step in place (see ``fastopt.RMSprop``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    square_avg : ndarray
        The average of squared gradients, param's shape and dtype, updated in place.
    momentum_buffer : ndarray or None, default None
        The momentum buffer, param's shape and dtype, updated in place; required when momentum > 0.
    grad_avg : ndarray or None, default None
        The average gradient, param's shape and dtype, updated in place; required when centered.
    step : int, keyword-only
        The number of this update, 1 for the first.
    lr : float, default 1e-2
        Learning rate, >= 0.
    alpha : float, default 0.99
        Smoothing constant of the averages, >= 0.
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 0
        L2 penalty, >= 0, added to the gradient.
    momentum : float, default 0
        Momentum factor, >= 0.
    centered : bool, default False
        Normalise by the gradient's estimated variance.
    maximize : bool, default False
        Ascend the gradient instead of descending.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    hyper = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                 centered=centered, maximize=maximize)
    _update(RMSprop, param, grad, (square_avg, momentum_buffer, grad_avg), step, hyper, isa)


def adam_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array,
          max_exp_avg_sq: Array | None = None, *, step: int, lr: float = 1e-3,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
          amsgrad: bool = False, maximize: bool = False, decoupled_weight_decay: bool = False,
          isa: str | None = None) -> None:
    """One Adam step in place (see ``fastopt.Adam``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    exp_avg : ndarray
        The first moment, param's shape and dtype, updated in place.
    exp_avg_sq : ndarray
        The second moment, param's shape and dtype, updated in place.
    max_exp_avg_sq : ndarray or None, default None
        The running maximum of exp_avg_sq, param's shape and dtype, updated in
        place; required when amsgrad.
    step : int, keyword-only
        The number of this update, 1 for the first.
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moments, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 0
        Weight decay, >= 0: added to the gradient, or decoupled.
    amsgrad : bool, default False
        Divide by the running maximum of the second moment (AMSGrad).
    maximize : bool, default False
        Ascend the gradient instead of descending.
    decoupled_weight_decay : bool, default False
        Multiply param by (1 − lr·weight_decay) instead (AdamW).
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
    _update(Adam, param, grad, (exp_avg, exp_avg_sq, max_exp_avg_sq), step, hyper, isa)


def adamw_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array,
           max_exp_avg_sq: Array | None = None, *, step: int, lr: float = 1e-3,
           betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
           weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False,
           isa: str | None = None) -> None:
    """One AdamW step in place (see ``fastopt.AdamW``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    exp_avg : ndarray
        The first moment, param's shape and dtype, updated in place.
    exp_avg_sq : ndarray
        The second moment, param's shape and dtype, updated in place.
    max_exp_avg_sq : ndarray or None, default None
        The running maximum of exp_avg_sq, param's shape and dtype, updated in
        place; required when amsgrad.
    step : int, keyword-only
        The number of this update, 1 for the first.
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moments, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 1e-2
        Weight decay, >= 0: param is multiplied by (1 − lr·weight_decay).
    amsgrad : bool, default False
        Divide by the running maximum of the second moment (AMSGrad).
    maximize : bool, default False
        Ascend the gradient instead of descending.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    adam_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step=step, lr=lr, betas=betas,
          eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
          decoupled_weight_decay=True, isa=isa)


def adamax_(param: Array, grad: Array, exp_avg: Array, exp_inf: Array, *, step: int,
            lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
            weight_decay: float = 0, maximize: bool = False, isa: str | None = None) -> None:
    """One Adamax step in place (see ``fastopt.Adamax``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    exp_avg : ndarray
        The first moment, param's shape and dtype, updated in place.
    exp_inf : ndarray
        The infinity norm, param's shape and dtype, updated in place.
    step : int, keyword-only
        The number of this update, 1 for the first.
    lr : float, default 2e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first moment and of the infinity norm, each in [0, 1).
    eps : float, default 1e-8
        Added to |g| in the infinity norm, >= 0.
    weight_decay : float, default 0
        L2 penalty, >= 0, added to the gradient.
    maximize : bool, default False
        Ascend the gradient instead of descending.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize)
    _update(Adamax, param, grad, (exp_avg, exp_inf), step, hyper, isa)


def lion_(param: Array, grad: Array, exp_avg: Array, *, step: int, lr: float = 1e-4,
          betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0,
          maximize: bool = False, isa: str | None = None) -> None:
    """One Lion step in place (see ``fastopt.Lion``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    exp_avg : ndarray
        The momentum, param's shape and dtype, updated in place.
    step : int, keyword-only
        The number of this update, 1 for the first (Lion's update does not depend on it).
    lr : float, default 1e-4
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.99)
        Interpolation factor of the update's sign and decay rate of the momentum, each in [0, 1).
    weight_decay : float, default 0.0
        Decoupled weight decay, >= 0: param is multiplied by 1 - lr * weight_decay.
    maximize : bool, default False
        Ascend the gradient instead of descending.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    hyper = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize)
    _update(Lion, param, grad, (exp_avg,), step, hyper, isa)


def adabelief_(param: Array, grad: Array, exp_avg: Array, exp_avg_var: Array, *, step: int,
               lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-16,
               eps_root: float = 1e-16, weight_decay: float = 0.0,
               isa: str | None = None) -> None:
    """One AdaBelief step in place (see ``fastopt.AdaBelief``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    exp_avg : ndarray
        The first moment, param's shape and dtype, updated in place.
    exp_avg_var : ndarray
        The variance of the gradient around exp_avg, param's shape and dtype, updated in place.
    step : int, keyword-only
        The number of this update, 1 for the first.
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first moment and of the variance, each in [0, 1).
    eps : float, default 1e-16
        Added to the denominator, >= 0.
    eps_root : float, default 1e-16
        Added to the variance at each step, >= 0.
    weight_decay : float, default 0.0
        Decoupled weight decay, >= 0.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, eps_root=eps_root, weight_decay=weight_decay)
    _update(AdaBelief, param, grad, (exp_avg, exp_avg_var), step, hyper, isa)


def adopt_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, *, step: int,
           lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.9999), eps: float = 1e-6,
           weight_decay: float = 0.0, isa: str | None = None) -> None:
    """One ADOPT step in place (see ``fastopt.ADOPT``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    exp_avg : ndarray
        The first moment, param's shape and dtype, updated in place.
    exp_avg_sq : ndarray
        The second moment, param's shape and dtype, updated in place.
    step : int, keyword-only
        The number of this update, 1 for the first (which only sets exp_avg_sq).
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.9999)
        Decay rates of the first and second moments, each in [0, 1).
    eps : float, default 1e-6
        The floor of the denominator, >= 0.
    weight_decay : float, default 0.0
        Decoupled weight decay, >= 0.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    _update(ADOPT, param, grad, (exp_avg, exp_avg_sq), step, hyper, isa)


def adan_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, exp_avg_diff: Array,
          previous_grad: Array, *, step: int, lr: float = 1e-3,
          betas: tuple[float, float, float] = (0.98, 0.92, 0.99), weight_decay: float = 0.0,
          weight_decouple: bool = False, max_grad_norm: float = 0.0, eps: float = 1e-8,
          maximize: bool = False, isa: str | None = None) -> None:
    """One Adan step in place (see ``fastopt.Adan``).

    Parameters
    ----------
    param : ndarray
        The parameter, updated in place (writeable, C-contiguous float32 or float64).
    grad : ndarray
        Its gradient, of param's shape; only read.
    exp_avg : ndarray
        The average of the gradient, param's shape and dtype, updated in place.
    exp_avg_sq : ndarray
        The second moment, param's shape and dtype, updated in place.
    exp_avg_diff : ndarray
        The average of the gradient difference, param's shape and dtype, updated in place.
    previous_grad : ndarray
        The negated previous gradient, param's shape and dtype; read (unless step is 1)
        and set to -grad.
    step : int, keyword-only
        The number of this update, 1 for the first.
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : (float, float, float), default (0.98, 0.92, 0.99)
        Decay rates of the gradient's, the difference's and the second moment's averages.
    weight_decay : float, default 0.0
        Weight decay, >= 0 (param /= 1 + lr * weight_decay after the update).
    weight_decouple : bool, default False
        Multiply param by 1 - lr * weight_decay before the update instead.
    max_grad_norm : float, default 0.0
        Only 0 (no global gradient-norm clipping) is supported.
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    maximize : bool, default False
        Ascend the gradient instead of descending.
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one in use.
    """
    hyper = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                 weight_decouple=weight_decouple, max_grad_norm=max_grad_norm, eps=eps,
                 maximize=maximize)
    _update(Adan, param, grad, (exp_avg, exp_avg_sq, exp_avg_diff, previous_grad), step, hyper,
            isa)

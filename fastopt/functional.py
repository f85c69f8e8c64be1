"""In-place updates over explicit arrays, for code that keeps its own state.

Each function updates ``param`` (and the state buffers) in place from
``grad``, exactly as one step of the matching optimizer class: ``step`` is
the number of this update (1 for the first; state buffers are then read as
their initial values, and SGD's momentum buffer starts as the gradient).
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
import numbers

from . import _core
from ._validate import as_int64
from .optim import SGD, Adagrad, Adam, RMSprop

__all__ = ["sgd_", "adagrad_", "rmsprop_", "adam_", "adamw_"]


def _update(cls, param, grad, buffers, step, hyper, isa):
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an int, got {type(step).__name__}")
    if step < 1:
        raise ValueError(f"step must be >= 1 (the number of this update), got {step}")
    as_int64(step, "step")  # the engine counts in int64
    cls._check_group(hyper, "arguments")
    p = _core.as_param(param, "param")
    needed = _core.state_slots(cls._algo, hyper)
    names = _core.STATE_NAMES[cls._algo]
    states = []
    for k, name in enumerate(names):
        buf = buffers[k] if k < len(buffers) else None
        if buf is None:
            if needed[k]:
                raise ValueError(f"{name} is required with these hyperparameters")
            states.append(None)
            continue
        a = _core.as_param(buf, name)
        if a.dtype != p.dtype or a.shape != p.shape:
            raise ValueError(f"{name} must have param's dtype {p.dtype} and shape {p.shape}, "
                             f"got {a.dtype} {a.shape}")
        states.append(a if needed[k] else None)
    states += [None] * (3 - len(states))  # the engine takes three slots per parameter
    engine = _core.Engine(cls._algo, [p], [tuple(states)], ["param"], [0])
    engine.steps[0] = step - 1
    engine.started[0] = step > 1
    engine.step([grad], [hyper], False, isa)


def sgd_(param, grad, momentum_buffer=None, *, step, lr=1e-3, momentum=0, dampening=0,
         weight_decay=0, nesterov=False, maximize=False, isa=None):
    """One SGD step in place (see :class:`fastopt.SGD`); ``momentum_buffer`` is
    required when ``momentum != 0``."""
    hyper = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                 nesterov=nesterov, maximize=maximize)
    _update(SGD, param, grad, (momentum_buffer,), step, hyper, isa)


def adagrad_(param, grad, sum, *, step, lr=1e-2, lr_decay=0, weight_decay=0, eps=1e-10,
             maximize=False, isa=None):
    """One Adagrad step in place (see :class:`fastopt.Adagrad`)."""
    hyper = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                 initial_accumulator_value=0, maximize=maximize)
    _update(Adagrad, param, grad, (sum,), step, hyper, isa)


def rmsprop_(param, grad, square_avg, momentum_buffer=None, grad_avg=None, *, step, lr=1e-2,
             alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, maximize=False,
             isa=None):
    """One RMSprop step in place (see :class:`fastopt.RMSprop`); ``momentum_buffer``
    is required when ``momentum > 0`` and ``grad_avg`` when ``centered``."""
    hyper = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                 centered=centered, maximize=maximize)
    _update(RMSprop, param, grad, (square_avg, momentum_buffer, grad_avg), step, hyper, isa)


def adam_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step, lr=1e-3,
          betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False,
          decoupled_weight_decay=False, isa=None):
    """One Adam step in place (see :class:`fastopt.Adam`); ``max_exp_avg_sq`` is
    required when ``amsgrad``."""
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
    _update(Adam, param, grad, (exp_avg, exp_avg_sq, max_exp_avg_sq), step, hyper, isa)


def adamw_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step, lr=1e-3,
           betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False,
           isa=None):
    """One AdamW step in place (see :class:`fastopt.AdamW`)."""
    adam_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step=step, lr=lr, betas=betas,
          eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
          decoupled_weight_decay=True, isa=isa)

"""In-place updates over explicit arrays, for code that keeps its own state.

Each function updates ``param`` (and the state buffers) in place from
``grad``, exactly as one step of the matching optimizer class: ``step`` is
the number of this update (1 for the first; state buffers are then read as
their initial values, SGD's momentum buffer starts as the gradient, and
Rprop's prev and step_size start as 0 and lr, whatever they hold).
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
import math

import numpy as np

from . import _core, _docs
from ._sparse import RowSparse
from ._spec import SPECS
from ._typing import Array
from ._validate import as_whole
from .optim import (_MAX_STEP, ADOPT, ASGD, LAMB, LARS, SGD, AdaBelief, Adadelta, Adafactor, Adagrad, Adam,
                    Adamax, Adan, Lion, Muon, NAdam, RAdam, RMSprop, Rprop, ScheduleFreeAdamW,
                    ScheduleFreeSGD, SparseAdam, schedule_free_group)

__all__ = [spec.function + "_" for spec in SPECS.values()]  # one per optimizer of fastopt._spec

# What the functions' docstrings say of the arguments that are not their
# spec's hyperparameters and state buffers.
_ARGS = {
    "param": ("ndarray", "The parameter, updated in place (writeable, C-contiguous float32, "
                         "float64, float16 or bfloat16). The state buffers have one dtype: the "
                         "parameter's (float32 for a 16-bit one), or 16-bit (bfloat16 for float32 "
                         "and bfloat16 parameters, float16 for float16 ones; docs/precision.md)."),
    "grad": ("ndarray", "Its gradient, of param's shape; only read."),
    "step": ("int, keyword-only", "The number of this update, 1 for the first."),
    "isa": (None, "Force a SIMD path by name (tests and benchmarks); None uses the one in use."),
    "lr_max": (None, "The group's ``lr_max`` before this step (-1.0 before the first)."),
    "weight_sum": (None, "The group's ``weight_sum`` before this step (0.0 before the first)."),
}


def _update(cls, param, grad, buffers, step, hyper, isa, scalars=()):
    """One step of optimizer class `cls`; `buffers` in the order of its spec's state,
    `scalars` (0-d arrays, updated in place) in the order of its spec's scalars."""
    spec = cls._spec
    step = as_whole(step, "step (the number of this update)", 1, _MAX_STEP)
    hyper = {**spec.defaults, **hyper}  # what a function does not take (Adagrad's initial value)
    cls._check_group(hyper, "arguments")
    p = _core.as_param(param, "param")
    needed = _core.state_slots(spec.algo, hyper)
    states = [None] * _core.NUM_SLOTS  # the engine's slots per parameter
    for k, buf in enumerate(spec.state):
        given = buffers[k] if k < len(buffers) else None
        shape = buf.shape_for(p.shape)  # None: a parameter of this shape has no such buffer
        if given is None:
            if needed[buf.slot] and shape is not None:
                raise ValueError(f"{buf.name} is required with these hyperparameters")
            continue
        a = _core.as_param(given, buf.name, half=True, q8=spec.algo in _core.STATE8_ALGOS)
        if shape is None:  # a parameter of this shape has no such buffer: unused
            continue
        # float32 for 16-bit parameters, or 16-bit state (docs/precision.md)
        dtypes = _core.state_dtype_names(p.dtype.name, spec.algo)
        if a.dtype == np.uint8 and spec.algo in _core.STATE8_ALGOS and p.dtype != np.float64:
            if a.size != _core.q8_bytes(math.prod(shape)):  # 8-bit state: its codes and scales
                raise ValueError(f"{buf.name} is an 8-bit buffer of {a.size} bytes: "
                                 f"{math.prod(shape)} values take {_core.q8_bytes(math.prod(shape))}")
        elif a.dtype.name not in dtypes or a.shape != shape:
            raise ValueError(f"{buf.name} must have dtype {' or '.join(dtypes)} and shape {shape} "
                             f"(param: {p.dtype} {p.shape}), got {a.dtype} {a.shape}")
        states[buf.slot] = a if needed[buf.slot] else None
    for c, a in zip(spec.scalars, scalars):
        if (not isinstance(a, np.ndarray) or a.ndim != 0 or a.dtype not in (np.float32, np.float64)
                or not a.flags.writeable or a.dtype != scalars[0].dtype):
            raise TypeError(f"{c.name} must be a writeable 0-d float32 or float64 array (all of "
                            f"one dtype), got {a!r}")
    engine = _core.Engine(spec.algo, [p], [tuple(states)], ["param"], [0])
    engine.set_counters([step - 1], [step > 1])  # this update is number `step`
    if scalars:
        engine.load_scalars([tuple(scalars)])
    engine.step([grad], [hyper], False, isa)
    if scalars:
        engine.store_scalars([tuple(scalars)])


def sgd_(param: Array, grad: Array, momentum_buffer: Array | None = None, *, step: int,
         lr: float = 1e-3, momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
         nesterov: bool = False, maximize: bool = False, isa: str | None = None) -> None:
    """One SGD step in place (see ``fastopt.SGD``)."""
    hyper = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                 nesterov=nesterov, maximize=maximize)
    _update(SGD, param, grad, (momentum_buffer,), step, hyper, isa)


def adagrad_(param: Array, grad: Array, sum: Array, *, step: int, lr: float = 1e-2,
             lr_decay: float = 0, weight_decay: float = 0, eps: float = 1e-10,
             maximize: bool = False, isa: str | None = None) -> None:
    """One Adagrad step in place (see ``fastopt.Adagrad``)."""
    hyper = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize)
    _update(Adagrad, param, grad, (sum,), step, hyper, isa)


def rmsprop_(param: Array, grad: Array, square_avg: Array, momentum_buffer: Array | None = None,
             grad_avg: Array | None = None, *, step: int, lr: float = 1e-2, alpha: float = 0.99,
             eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
             centered: bool = False, maximize: bool = False, isa: str | None = None) -> None:
    """One RMSprop step in place (see ``fastopt.RMSprop``)."""
    hyper = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                 centered=centered, maximize=maximize)
    _update(RMSprop, param, grad, (square_avg, momentum_buffer, grad_avg), step, hyper, isa)


def adam_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array,
          max_exp_avg_sq: Array | None = None, *, step: int, lr: float = 1e-3,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
          amsgrad: bool = False, maximize: bool = False, decoupled_weight_decay: bool = False,
          isa: str | None = None) -> None:
    """One Adam step in place (see ``fastopt.Adam``)."""
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
    _update(Adam, param, grad, (exp_avg, exp_avg_sq, max_exp_avg_sq), step, hyper, isa)


def adamw_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array,
           max_exp_avg_sq: Array | None = None, *, step: int, lr: float = 1e-3,
           betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
           weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False,
           isa: str | None = None) -> None:
    """One AdamW step in place (see ``fastopt.AdamW``)."""
    adam_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step=step, lr=lr, betas=betas,
          eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
          decoupled_weight_decay=True, isa=isa)


def adamax_(param: Array, grad: Array, exp_avg: Array, exp_inf: Array, *, step: int,
            lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
            weight_decay: float = 0, maximize: bool = False, isa: str | None = None) -> None:
    """One Adamax step in place (see ``fastopt.Adamax``)."""
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize)
    _update(Adamax, param, grad, (exp_avg, exp_inf), step, hyper, isa)


def adadelta_(param: Array, grad: Array, square_avg: Array, acc_delta: Array, *, step: int,
              lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
              maximize: bool = False, isa: str | None = None) -> None:
    """One Adadelta step in place (see ``fastopt.Adadelta``).
    """
    hyper = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
    _update(Adadelta, param, grad, (square_avg, acc_delta), step, hyper, isa)


def radam_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, *, step: int,
           lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
           weight_decay: float = 0, decoupled_weight_decay: bool = False,
           maximize: bool = False, isa: str | None = None) -> None:
    """One RAdam step in place (see ``fastopt.RAdam``).
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                 decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
    _update(RAdam, param, grad, (exp_avg, exp_avg_sq), step, hyper, isa)


def rprop_(param: Array, grad: Array, prev: Array, step_size: Array, *, step: int,
           lr: float = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
           step_sizes: tuple[float, float] = (1e-6, 50), maximize: bool = False,
           isa: str | None = None) -> None:
    """One Rprop step in place (see ``fastopt.Rprop``).
    """
    hyper = dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), maximize=maximize)
    _update(Rprop, param, grad, (prev, step_size), step, hyper, isa)


def nadam_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, mu_product: Array, *,
           step: int, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
           eps: float = 1e-8, weight_decay: float = 0, momentum_decay: float = 4e-3,
           decoupled_weight_decay: bool = False, maximize: bool = False,
           isa: str | None = None) -> None:
    """One NAdam step in place (see ``fastopt.NAdam``).
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                 momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                 maximize=maximize)
    _update(NAdam, param, grad, (exp_avg, exp_avg_sq), step, hyper, isa, (mu_product,))


def asgd_(param: Array, grad: Array, ax: Array, eta: Array, mu: Array, *, step: int,
          lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
          weight_decay: float = 0, maximize: bool = False, isa: str | None = None) -> None:
    """One ASGD step in place (see ``fastopt.ASGD``).
    """
    hyper = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                 maximize=maximize)
    _update(ASGD, param, grad, (ax,), step, hyper, isa, (eta, mu))


def lion_(param: Array, grad: Array, exp_avg: Array, *, step: int, lr: float = 1e-4,
          betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0,
          maximize: bool = False, isa: str | None = None) -> None:
    """One Lion step in place (see ``fastopt.Lion``).
    """
    hyper = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize)
    _update(Lion, param, grad, (exp_avg,), step, hyper, isa)


def adabelief_(param: Array, grad: Array, exp_avg: Array, exp_avg_var: Array, *, step: int,
               lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-16,
               eps_root: float = 1e-16, weight_decay: float = 0.0,
               isa: str | None = None) -> None:
    """One AdaBelief step in place (see ``fastopt.AdaBelief``).
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, eps_root=eps_root, weight_decay=weight_decay)
    _update(AdaBelief, param, grad, (exp_avg, exp_avg_var), step, hyper, isa)


def adopt_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, *, step: int,
           lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.9999), eps: float = 1e-6,
           weight_decay: float = 0.0, isa: str | None = None) -> None:
    """One ADOPT step in place (see ``fastopt.ADOPT``).
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    _update(ADOPT, param, grad, (exp_avg, exp_avg_sq), step, hyper, isa)


def adan_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, exp_avg_diff: Array,
          previous_grad: Array, *, step: int, lr: float = 1e-3,
          betas: tuple[float, float, float] = (0.98, 0.92, 0.99), weight_decay: float = 0.0,
          weight_decouple: bool = False, max_grad_norm: float = 0.0, eps: float = 1e-8,
          maximize: bool = False, isa: str | None = None) -> None:
    """One Adan step in place (see ``fastopt.Adan``).
    """
    hyper = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                 weight_decouple=weight_decouple, max_grad_norm=max_grad_norm, eps=eps,
                 maximize=maximize)
    _update(Adan, param, grad, (exp_avg, exp_avg_sq, exp_avg_diff, previous_grad), step, hyper,
            isa)


def lamb_(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, *, step: int,
          lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
          weight_decay: float = 0.0, maximize: bool = False, isa: str | None = None) -> None:
    """One LAMB step in place (see ``fastopt.LAMB``); the trust ratio is param's.
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize)
    _update(LAMB, param, grad, (exp_avg, exp_avg_sq), step, hyper, isa)


def lars_(param: Array, grad: Array, momentum_buffer: Array, *, step: int, lr: float = 1.0,
          momentum: float = 0.9, weight_decay: float = 0.0, trust_coefficient: float = 0.001,
          eps: float = 0.0, nesterov: bool = False, isa: str | None = None) -> None:
    """One LARS step in place (see ``fastopt.LARS``); the trust ratio is param's.
    """
    hyper = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                 trust_coefficient=trust_coefficient, eps=eps, nesterov=nesterov)
    _update(LARS, param, grad, (momentum_buffer,), step, hyper, isa)


def _schedule_free(cls, param, grad, buffers, step, hyper, lr_max, weight_sum, isa):
    """One Schedule-Free step: the group arithmetic (step = its k after the
    step), then the update; returns the group's new (lr_max, weight_sum)."""
    k = as_whole(step, "step (the number of this update)", 1, _MAX_STEP) - 1
    group = {**hyper, "k": k, "lr_max": lr_max, "weight_sum": weight_sum, "train_mode": True}
    cls._check_group({**cls._spec.defaults, **group}, "arguments")
    after, ckp1 = schedule_free_group(group)
    _update(cls, param, grad, buffers, step,
            {**group, **after, "lr": after["scheduled_lr"], "ckp1": ckp1}, isa)
    return after["lr_max"], after["weight_sum"]


def schedulefreeadamw_(param: Array, grad: Array, z: Array, exp_avg_sq: Array, *, step: int,
                       lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999),
                       eps: float = 1e-8, weight_decay: float = 0, warmup_steps: int = 0,
                       r: float = 0.0, weight_lr_power: float = 2.0, lr_max: float = -1.0,
                       weight_sum: float = 0.0, isa: str | None = None) -> tuple[float, float]:
    """One Schedule-Free AdamW step in place (see ``fastopt.ScheduleFreeAdamW``).

    ``step`` is the group's step count k after this step; ``z`` must start
    as a copy of ``param``. Returns the group's new ``(lr_max, weight_sum)``,
    for the next call.
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                 warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power)
    return _schedule_free(ScheduleFreeAdamW, param, grad, (z, exp_avg_sq), step, hyper, lr_max,
                          weight_sum, isa)


def schedulefreesgd_(param: Array, grad: Array, z: Array, *, step: int, lr: float = 1.0,
                     momentum: float = 0.9, weight_decay: float = 0, warmup_steps: int = 0,
                     r: float = 0.0, weight_lr_power: float = 2.0, lr_max: float = -1.0,
                     weight_sum: float = 0.0, isa: str | None = None) -> tuple[float, float]:
    """One Schedule-Free SGD step in place (see ``fastopt.ScheduleFreeSGD``).

    As ``schedulefreeadamw_``: returns the group's new ``(lr_max, weight_sum)``.
    """
    hyper = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                 warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power)
    return _schedule_free(ScheduleFreeSGD, param, grad, (z,), step, hyper, lr_max, weight_sum, isa)


def muon_(param: Array, grad: Array, momentum_buffer: Array, *, step: int, lr: float = 1e-3,
          weight_decay: float = 0.1, momentum: float = 0.95, nesterov: bool = True,
          ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
          eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None,
          isa: str | None = None) -> None:
    """One Muon step in place (see ``fastopt.Muon``); param is 2-D.
    """
    hyper = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                 ns_coefficients=tuple(ns_coefficients), eps=eps, ns_steps=ns_steps,
                 adjust_lr_fn=adjust_lr_fn)
    _update(Muon, param, grad, (momentum_buffer,), step, hyper, isa)


def sparse_adam_(param: Array, grad: Array | RowSparse, exp_avg: Array, exp_avg_sq: Array, *, step: int,
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 maximize: bool = False, isa: str | None = None) -> None:
    """One SparseAdam step in place (see ``fastopt.SparseAdam``): ``grad`` is a
    ``fastopt.RowSparse`` (the rows present are updated) or a dense array (every row).
    """
    hyper = dict(lr=lr, betas=tuple(betas), eps=eps, maximize=maximize)
    _update(SparseAdam, param, grad, (exp_avg, exp_avg_sq), step, hyper, isa)


def adafactor_(param: Array, grad: Array, row_var: Array | None = None, col_var: Array | None = None,
               variance: Array | None = None, *, step: int, lr: float = 1e-2,
               beta2_decay: float = -0.8, eps: tuple[float | None, float] = (None, 1e-3),
               d: float = 1.0, weight_decay: float = 0.0, maximize: bool = False,
               isa: str | None = None) -> None:
    """One Adafactor step in place (see ``fastopt.Adafactor``): row_var and
    col_var for a param of two or more dimensions, else variance.
    """
    hyper = dict(lr=lr, beta2_decay=beta2_decay, eps=tuple(eps), d=d, weight_decay=weight_decay,
                 maximize=maximize)
    _update(Adafactor, param, grad, (row_var, col_var, variance), step, hyper, isa)


for _spec in SPECS.values():
    _docs.document(globals()[_spec.function + "_"], _spec, _ARGS)

"""torch.optim optimizers stepped by fastopt's C core.

``fastopt.torch.SGD``, ``Adagrad``, ``RMSprop``, ``Adam`` and ``AdamW`` are
subclasses of the torch.optim classes of the same name, with their
signatures, defaults, ``param_groups`` and state dicts. Only ``step`` is
different: it updates every CPU float32/float64 parameter that has a
gradient in one call into fastopt's C core, on zero-copy NumPy views of
``param.data``, ``param.grad`` and the state tensors, with the GIL released.
The numbers are those of torch's default (single-tensor) path.

>>> import torch
>>> import fastopt.torch
>>> model = torch.nn.Linear(4, 2)
>>> opt = fastopt.torch.Adam(model.parameters(), lr=1e-3)
>>> model(torch.randn(8, 4)).square().mean().backward()
>>> opt.step()

Because the state dicts are torch's own, a checkpoint saved from
``torch.optim.Adam`` loads into ``fastopt.torch.Adam`` and the other way
round, and learning-rate schedulers from ``torch.optim.lr_scheduler`` work
unchanged.

What ``step`` accepts: dense (strided) CPU tensors of dtype float32 or
float64 whose parameter and gradient are contiguous. Anything else (a CUDA,
MPS or meta tensor, float16/bfloat16/complex, a sparse gradient, a
non-contiguous parameter) raises TypeError or ValueError naming the
parameter by its index in ``state_dict()`` order, before any tensor or any
state is changed. ``differentiable=True`` and ``capturable=True`` are not
supported (ValueError); ``foreach`` and ``fused`` are kept in the groups (so
state dicts round-trip) and do not change what runs.

To make a GPU model's optimizer step on the CPU, keep a float32 CPU copy of
the parameters (the "master weights"), copy the gradients to it, step this
optimizer on the copy and copy the parameters back.

Thread-safety: as for torch.optim, one optimizer must not be stepped from two
threads at once; different optimizers may step concurrently (the GIL is
released while the C core runs).
"""
# This module is fastopt.torch; with absolute imports (Python 3's only kind)
# the next line imports the real torch package, never this file.
import sys

import torch
import torch.optim

from . import _core
from . import optim as _optim
from ._validate import as_float

__all__ = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]

_DTYPES = (torch.float32, torch.float64)


def _plain(value):
    """A hyperparameter as a Python scalar (torch allows 0-d tensors for some)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"a tensor hyperparameter must hold one value, got shape {tuple(value.shape)}")
        return value.item()
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return value


_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _local(t):
    """A DTensor's local shard (FSDP2's parameters, gradients and state), else t.

    The updates are elementwise, so stepping each rank's shard is the whole
    update. torch.distributed.tensor is only looked up, never imported: a
    DTensor exists only once it is."""
    if type(t) in _PLAIN:
        return t
    dtensor = getattr(sys.modules.get("torch.distributed.tensor"), "DTensor", None)
    return t.to_local() if dtensor is not None and isinstance(t, dtensor) else t


def _check_sharding(p, what):
    """TypeError unless a DTensor parameter's gradient is laid out as the parameter."""
    if _local(p) is p:
        return
    g = p.grad
    if _local(g) is g or g.placements != p.placements or g.device_mesh != p.device_mesh or \
            any(pl.is_partial() for pl in p.placements):
        raise TypeError(f"gradient of {what} is not a DTensor sharded as its parameter "
                        f"({getattr(g, 'placements', 'a plain tensor')} vs {p.placements}); "
                        "fastopt.torch steps each rank's local shard")


def _check_tensor(t, what):
    """TypeError/ValueError unless t is a dense, contiguous CPU float32/float64 tensor."""
    if t.layout != torch.strided:
        raise TypeError(f"{what} is a {t.layout} tensor; fastopt.torch steps dense tensors only "
                        "(sparse gradients are not supported: use torch.optim.SparseAdam or a dense "
                        "embedding)")
    if t.device.type != "cpu":
        raise TypeError(f"{what} is on {t.device}; fastopt.torch steps CPU tensors only (use "
                        "torch.optim's fused optimizers on the GPU, or step a CPU copy of the "
                        "parameters and copy them back)")
    if t.dtype not in _DTYPES:
        raise TypeError(f"{what} has dtype {t.dtype}; fastopt.torch steps float32 and float64 "
                        "tensors (keep float32 master weights for float16/bfloat16 models)")
    if not t.is_contiguous():
        raise ValueError(f"{what} is not contiguous (strides {t.stride()} for shape "
                         f"{tuple(t.shape)}); fastopt.torch updates contiguous tensors only: make "
                         "the parameter contiguous before creating the optimizer")


class _Stepper:
    """The part shared by all fastopt.torch optimizers: validation, state, one C call.

    A subclass sets ``_fastopt`` (the fastopt.optim class whose ``_algo`` and
    ``_check_group`` it uses), ``_hyper_keys`` (the group keys the C core
    reads) and ``_init_state`` (torch's state entries for a parameter).
    """

    _fastopt = None
    _hyper_keys = ()

    def _fo_setup(self):
        self._fo_plan = None  # the prepared step (_Plan), kept while it matches

    def __setstate__(self, state):
        super().__setstate__(state)
        self._fo_setup()

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        try:
            self._fo_hyper(self.param_groups[-1], f"param group {len(self.param_groups) - 1}")
        except Exception:
            self.param_groups.pop()
            raise

    def _fo_hyper(self, group, where):
        """The group's hyperparameters as plain scalars, checked by fastopt.optim's rules."""
        for flag in ("differentiable", "capturable"):
            if group.get(flag):
                raise ValueError(f"{where}: {flag}=True is not supported by fastopt.torch")
        hyper = {key: _plain(group[key]) for key in self._hyper_keys}
        self._fastopt._check_group(hyper, where)
        return hyper

    def _init_state(self, state, param, hyper):
        """Create torch's state entries that are missing for a parameter about to step."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        """Perform a single optimization step (see torch.optim.Optimizer.step).

        Every parameter with a gradient is updated in one call into the C
        core. Nothing is changed when a parameter, gradient or state tensor
        is not a contiguous CPU float32/float64 tensor: a TypeError or
        ValueError names it first.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        algo = self._fastopt._algo
        hypers = [self._fo_hyper(g, f"param group {gi}") for gi, g in enumerate(self.param_groups)]
        slots = [_core.state_slots(algo, h) for h in hypers]
        active = [(p, gi) for gi, group in enumerate(self.param_groups)
                  for p in group["params"] if p.grad is not None]
        if not active:
            return loss
        plan = self._fo_plan
        if plan is not None and plan.matches(self.state, active, slots):
            try:
                plan.run([_local(p.grad).numpy() for p, _ in active], hypers)
                return loss
            except (TypeError, ValueError, RuntimeError):
                pass  # nothing was written; redo the step with every check below
        self._fo_plan = None
        self._fo_check(active)
        added = [(p, set(self.state[p]) if p in self.state else None) for p, _ in active]
        try:
            plan = _Plan(self, active, hypers, slots)
            plan.run([_local(p.grad).detach().numpy() for p, _ in active], hypers)
        except Exception:
            # Leave the state as it was: drop entries this call created.
            for p, before in added:
                if before is None:
                    self.state.pop(p, None)
                else:
                    for name in set(self.state[p]) - before:
                        del self.state[p][name]
            raise
        self._fo_plan = plan
        return loss

    def _fo_check(self, active):
        """Raise TypeError/ValueError naming the first parameter, gradient or state at fault."""
        index_of = {}
        for group in self.param_groups:
            for p in group["params"]:
                index_of[id(p)] = len(index_of)
        names = _core.STATE_NAMES[self._fastopt._algo]
        for p, _ in active:
            what = f"parameter {index_of[id(p)]}"
            _check_sharding(p, what)
            _check_tensor(_local(p), what)
            _check_tensor(_local(p.grad), f"gradient of {what}")
            if p.grad.dtype != p.dtype or p.grad.shape != p.shape:
                raise TypeError(f"gradient of {what} has dtype {p.grad.dtype} and shape "
                                f"{tuple(p.grad.shape)}, its parameter {p.dtype} and "
                                f"{tuple(p.shape)}")
        for p, _ in active:
            state = self.state.get(p) or {}
            for name in names:
                buf = state.get(name)
                if buf is not None:
                    what = f"state {name!r} of parameter {index_of[id(p)]}"
                    _check_tensor(_local(buf), what)
                    if buf.dtype != p.dtype or buf.shape != p.shape:
                        raise TypeError(f"{what} has dtype {buf.dtype} and shape "
                                        f"{tuple(buf.shape)}, its parameter {p.dtype} and "
                                        f"{tuple(p.shape)}")


class _Plan:
    """One optimizer's step, prepared: a C engine over NumPy views of the tensors.

    It stays valid while the same parameters (same storage) step with the
    same state tensors; ``matches`` checks that cheaply, so a step costs a
    few attribute lookups per parameter plus one call into C. The ``step``
    counts of all parameters live in one float32 tensor, and each
    ``state["step"]`` is a 0-d view of it, so they advance in one operation.
    """

    def __init__(self, opt, active, hypers, slots):
        algo = opt._fastopt._algo
        names = _core.STATE_NAMES[algo]
        self.state = opt.state
        self.params = [p for p, _ in active]
        self.groups = [gi for _, gi in active]
        self.ptrs = [_local(p).data_ptr() for p in self.params]
        self.slots = slots
        self.entries, self.buffers = [], []   # per parameter: its state dict, its tensors
        steps, started, bufsets = [], [], []
        index_of = {}
        for group in opt.param_groups:
            for p in group["params"]:
                index_of[id(p)] = len(index_of)
        for p, gi in active:
            state = opt.state[p] if p in opt.state else {}
            fresh = opt._init_state(state, p, hypers[gi])
            if state and p not in opt.state:  # torch keeps no entry for stateless SGD
                opt.state[p] = state
            bufs = tuple(state.get(name) if used else None for name, used in zip(names, slots[gi]))
            bufs += (None,) * (3 - len(bufs))  # the C core has three state slots
            bufsets.append(bufs)
            self.entries.append(state)
            if "step" in state:
                steps.append(float(state["step"]))
                started.append(steps[-1] > 0)
            else:  # SGD: a fresh momentum buffer starts as the gradient
                steps.append(0.0)
                started.append(not fresh)
        self.has_step = algo != "sgd"
        self.step_counts = torch.tensor(steps, dtype=torch.float32)
        self.step_view = self.step_counts.numpy()
        if self.has_step:
            for k, state in enumerate(self.entries):
                state["step"] = self.step_counts[k]
        for state, bufs in zip(self.entries, bufsets):
            self.buffers.append(tuple((name, state[name]) for name in state))
        self.engine = _core.Engine(
            algo, [_local(p).detach().numpy() for p in self.params],
            [tuple(None if b is None else _local(b).numpy() for b in bufs) for bufs in bufsets],
            [index_of[id(p)] for p in self.params], self.groups)
        self.engine.started[:] = started

    def matches(self, state, active, slots):
        if state is not self.state or slots != self.slots or len(active) != len(self.params):
            return False
        for (p, gi), q, g, ptr, entry, bufs in zip(active, self.params, self.groups, self.ptrs,
                                                    self.entries, self.buffers):
            if p is not q or gi != g or _local(p).data_ptr() != ptr or state.get(p) is not entry:
                return False
            for name, buf in bufs:
                if entry.get(name) is not buf:
                    return False
        return True

    def run(self, grads, hypers):
        engine = self.engine
        if self.has_step:
            engine.steps[:] = self.step_view  # torch's step counts are the truth
        engine.step(grads, hypers)
        if self.has_step:
            self.step_view += 1


class SGD(_Stepper, torch.optim.SGD):
    """torch.optim.SGD stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``momentum_buffer`` (when ``momentum != 0``), which
    starts as the first gradient, as in torch.
    """

    _fastopt = _optim.SGD
    _hyper_keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False, foreach=None, differentiable=False, fused=None):
        self._fo_setup()
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                         foreach=foreach, differentiable=differentiable, fused=fused)

    def _init_state(self, state, param, hyper):
        if hyper["momentum"] != 0 and state.get("momentum_buffer") is None:
            state["momentum_buffer"] = torch.empty_like(param, memory_format=torch.contiguous_format)
            return True
        return False


class Adagrad(_Stepper, torch.optim.Adagrad):
    """torch.optim.Adagrad stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step`` and ``sum`` (which starts at
    ``initial_accumulator_value``), created at construction as torch does.
    """

    _fastopt = _optim.Adagrad
    _hyper_keys = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        self._fo_setup()
        init = initial_accumulator_value
        if type(init) is int and init.bit_length() > 63:  # torch.full_like takes int64-sized ints
            init = as_float(init, "initial_accumulator_value")
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=init, eps=eps,
                         foreach=foreach, maximize=maximize, differentiable=differentiable,
                         fused=fused)

    def _init_state(self, state, param, hyper):
        if "sum" in state:
            return False
        state["step"] = torch.tensor(0.0, dtype=torch.float32)
        state["sum"] = torch.full_like(param, hyper["initial_accumulator_value"],
                                       memory_format=torch.contiguous_format)
        return True


class RMSprop(_Stepper, torch.optim.RMSprop):
    """torch.optim.RMSprop stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (when
    ``momentum > 0``) and ``grad_avg`` (when ``centered``), zeros at first.
    """

    _fastopt = _optim.RMSprop
    _hyper_keys = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        self._fo_setup()
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered, capturable=capturable,
                         foreach=foreach, maximize=maximize, differentiable=differentiable)

    def _init_state(self, state, param, hyper):
        fresh = not state
        if fresh:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["square_avg"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
        if hyper["momentum"] > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
        if hyper["centered"] and "grad_avg" not in state:
            state["grad_avg"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
        return fresh


class Adam(_Stepper, torch.optim.Adam):
    """torch.optim.Adam stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and
    ``max_exp_avg_sq`` (when ``amsgrad``), zeros at first.
    """

    _fastopt = _optim.Adam
    _hyper_keys = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize",
                   "decoupled_weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        self._fo_setup()
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=decoupled_weight_decay)

    def _init_state(self, state, param, hyper):
        fresh = not state
        if fresh:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
        if hyper["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
        return fresh


class AdamW(_Stepper, torch.optim.AdamW):
    """torch.optim.AdamW stepped by fastopt (same signature, defaults and state dict).

    Adam with decoupled weight decay: the parameter is multiplied by
    ``1 - lr * weight_decay`` before the Adam update.
    """

    _fastopt = _optim.AdamW
    _hyper_keys = Adam._hyper_keys
    _init_state = Adam._init_state

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        self._fo_setup()
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                         capturable=capturable, differentiable=differentiable, fused=fused)

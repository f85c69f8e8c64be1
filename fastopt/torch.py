"""torch.optim optimizers stepped by fastopt's C core.

Each of fastopt's optimizers has its class here (``fastopt.torch.SGD``,
``fastopt.torch.Adam``, ...: ``__all__`` lists them), a subclass of the
torch.optim class of the same name, with its signature, defaults,
``param_groups`` and state dicts. Only ``step`` is different: it updates
every CPU float32/float64 parameter that has a gradient in one call into
fastopt's C core, on zero-copy NumPy views of ``param.data`` and
the state tensors and on ``param.grad``'s memory, with the GIL released. The
optimizers torch lacks (``Lion``, ``AdaBelief``, ``ADOPT``, ``Adan``)
subclass ``torch.optim.Optimizer``, with the names, defaults and state of
their reference implementations.
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

What ``step`` accepts: dense CPU tensors of dtype float32, float64, bfloat16
or float16 (a 16-bit parameter keeps float32 state and is stored rounded to
nearest even after an update computed in float32), in any
dimension order (a ``channels_last`` or transposed parameter is stepped as
one flat buffer, its state kept in its layout; a gradient in another layout
is copied into the parameter's for the step). Anything else (a CUDA, MPS or
meta tensor, an integer or complex dtype, a sparse gradient, a parameter that
is a slice or an ``expand()`` of another tensor) raises TypeError or
ValueError naming the parameter by its index in ``state_dict()`` order,
before any tensor or any state is changed. Hyperparameter ranges are
checked at construction and by ``add_param_group``, as torch does; a step
checks only that they are numbers. ``differentiable=True`` and
``capturable=True`` are not supported (ValueError); ``foreach`` and
``fused`` are kept in the groups (so state dicts round-trip) and do not
change what runs.

To make a GPU model's optimizer step on the CPU, keep a float32 CPU copy of
the parameters (the "master weights"), copy the gradients to it, step this
optimizer on the copy and copy the parameters back.

Thread-safety: as for torch.optim, one optimizer must not be stepped from two
threads at once; different optimizers may step concurrently (the GIL is
released while the C core runs).
"""
# This module is fastopt.torch; with absolute imports (Python 3's only kind)
# the next line imports the real torch package, never this file.
import math
import operator
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.optim

from . import _core, _lbfgs
from . import optim as _optim
from . import _docs
from ._sparse import RowSparse
from ._spec import FIRST_GRAD, PARAM, SPECS
from ._validate import as_float

__all__ = [*SPECS, "LBFGS"]  # one class per optimizer of fastopt._spec, and LBFGS

_DTYPES = (torch.float32, torch.float64)
# parameters and gradients may also be 16-bit, with float32 state (API.md)
_HALF = (torch.bfloat16, torch.float16)
_PARAM_DTYPES = _DTYPES + _HALF
_STATE_DTYPES = _PARAM_DTYPES + (torch.uint8,)  # uint8: 8-bit state's codes and scales


def _scalar_dtype():
    """The dtype torch.optim gives step counts (float64 under a float64 default dtype)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _plain(value):
    """A hyperparameter as a Python scalar (torch allows 0-d tensors for some)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"a tensor hyperparameter must hold one value, got shape {tuple(value.shape)}")
        return value.item()
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return value


def _c_scalar(value, key, where):
    """A hyperparameter as the C core reads it (numbers that convert to double), else TypeError."""
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return value
    if isinstance(value, (torch.Tensor, tuple, list)):
        value = _plain(value)
        if type(value) is not tuple:
            return _c_scalar(value, key, where)
        # None where the spec admits it (Adafactor's eps1; the C core checks the rest)
        return tuple(None if v is None else _c_scalar(v, key, where) for v in value)
    if not isinstance(value, (str, bytes)):
        try:
            float(value)  # NumPy scalars and other real numbers
            return value
        except (TypeError, ValueError):
            pass
    raise TypeError(f"{where}: {key} must be a real number, got {type(value).__name__}")


_PLAIN = (torch.Tensor, torch.nn.Parameter)
_PLAIN_TYPES = frozenset(_PLAIN)
# unbound accessors, for C-level map() over lists of plain tensors at every step
_GRAD = operator.attrgetter("grad")
_DATA_PTR = torch.Tensor.data_ptr
_LAYOUT = operator.attrgetter("shape", "dtype")  # `.data =` can change these, and strides,
_STRIDE = torch.Tensor.stride                     # at the same address and version


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


def _check_tensor(t, what, dtypes=_PARAM_DTYPES):
    """TypeError unless t is a dense-layout CPU tensor of one of `dtypes`."""
    if t.layout != torch.strided:
        raise TypeError(f"{what} is a {t.layout} tensor; fastopt.torch steps dense tensors here "
                        "(sparse gradients: fastopt.torch.SparseAdam, SGD and Adagrad)")
    if t.device.type != "cpu":
        raise TypeError(f"{what} is on {t.device}; fastopt.torch steps CPU tensors only (use "
                        "torch.optim's fused optimizers on the GPU, or step a CPU copy of the "
                        "parameters and copy them back)")
    if t.dtype not in dtypes:
        kinds = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise TypeError(f"{what} has dtype {t.dtype}; fastopt.torch steps {kinds} tensors here")


def _dense(t):
    """Whether t's elements fill its memory span once each: contiguous in some dimension
    order (channels_last, a transpose), so it can be stepped as one flat buffer."""
    expected = 1
    for stride, size in sorted((st, n) for n, st in zip(t.shape, t.stride()) if n != 1):
        if stride != expected:
            return t.numel() == 0
        expected *= size
    return True


def _same_layout(a, b):
    """Whether a and b (same shape) keep their elements in the same memory order."""
    return a.numel() == 0 or all(x == y for n, x, y in zip(a.shape, a.stride(), b.stride())
                                 if n != 1)


def _in_layout(t, like):
    """A copy of t with like's strides (a dense tensor's layout is kept by empty_like)."""
    return torch.empty_like(like, memory_format=torch.preserve_format).copy_(t)


def _numpy(t):
    """t.numpy(), and a bfloat16 tensor (NumPy has no such dtype) as its bits, uint16."""
    return t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16 else t.numpy()


def _array(t, flat):
    """A NumPy view of t: as it is (C-contiguous), or, flat, its memory span as 1-D."""
    t = _local(t).detach()
    return _numpy(t.as_strided((t.numel(),), (1,)) if flat else t)


def _row_sparse(grad):
    """A sparse COO gradient (one sparse dimension, as nn.Embedding(sparse=True)
    makes) as the engine reads it: torch's coalesce() (its sums, in its order),
    its rows and values."""
    grad = grad.coalesce()
    return RowSparse(grad._indices()[0].numpy(), _numpy(grad._values().contiguous()))


def _grad_array(grad, param, flat):
    """The gradient as the engine reads it: in its parameter's memory order (a copy if not)."""
    if grad.is_sparse:
        return _row_sparse(grad)
    grad, param = _local(grad), _local(param)
    if not _same_layout(grad, param):
        grad = _in_layout(grad, param)
    return _array(grad, flat)


def _step_tensor(step):
    """torch's step count: a 0-d CPU float tensor of its own (made one if it is not)."""
    if (isinstance(step, torch.Tensor) and step.device.type == "cpu" and step.numel() == 1
            and step.dtype in _DTYPES and not step.requires_grad):
        return step
    return torch.tensor(float(step), dtype=_scalar_dtype())


class _Stepper:
    """The part shared by all fastopt.torch optimizers: validation, state, one C call.

    Each subclass gets ``_fastopt`` (the fastopt.optim class of the same
    name, whose spec, ``_algo`` and ``_check_group`` it uses) and
    ``_hyper_keys`` (the spec's hyperparameters, the group keys read).
    """

    _fastopt = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__:  # fastopt.torch's classes; a user's subclass inherits
            cls._fastopt = getattr(_optim, cls.__name__)
            spec = cls._fastopt._spec
            cls._hyper_keys = tuple(h.name for h in spec.hypers + spec.group_state)
            # what the C core never reads (Muon's Newton-Schulz arguments): passed as they are
            cls._plain_keys = frozenset(h.name for h in spec.hypers if not h.c)
            _docs.document(cls, cls._fastopt._spec, _ARGS)
            # how many numbers betas holds (Adan has three)
            cls._n_betas = next((len(h.c) for h in cls._fastopt._spec.hypers if h.name == "betas"), 2)

    def _fo_setup(self, master_weights=None, rounding=None, seed=None, state_dtype=None):
        """A new optimizer's (or, without arguments, an unpickled one's) fastopt
        state: no prepared step, and the master_weights, rounding, seed and
        state_dtype keywords (checked)."""
        self._fo_plan = None  # the prepared step (_Plan), kept while it matches
        if master_weights is not None:
            self._fo_precision = _core.check_rounding(master_weights, rounding, seed)
            self._fo_state_dtype = _core.check_state_dtype(state_dtype, self._fastopt._algo)
            if self._fo_state_dtype == "int8" and (self._fo_precision[0] or rounding != "nearest"):
                raise ValueError("state_dtype='int8' steps without master weights and rounds to "
                                 "nearest: master_weights=True and rounding='stochastic' are not "
                                 "available with it")
        elif not hasattr(self, "_fo_precision"):  # pickled before these keywords existed
            self._fo_precision = (False, "nearest", 0)
        if not hasattr(self, "_fo_state_dtype"):
            self._fo_state_dtype = None

    def _fo_state_dtype_of(self, p, what="parameter"):
        """The dtype of a parameter's state buffers (state_dtype; by default
        float32 for 16-bit parameters, else its own): ValueError where it
        cannot have the one asked for."""
        name = _core.state_dtype_name(str(p.dtype).removeprefix("torch."), self._fo_state_dtype,
                                      self._fastopt._algo, what)
        return getattr(torch, name)

    def __getstate__(self):
        state = super().__getstate__()
        # not group keys: torch's state dicts stay torch's
        state["_fo_precision"] = self._fo_precision
        state["_fo_state_dtype"] = self._fo_state_dtype
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._fo_setup()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict, as torch.optim does; the state buffers get the
        optimizer's state dtype (state_dtype: by default float32 for a 16-bit
        parameter) from the saved values, and ``master_param`` stays float32
        (torch's load would convert them to the parameter's dtype).

        Parameters
        ----------
        state_dict : dict
            As ``state_dict()`` returns it (or torch.optim's same class).
        """
        super().load_state_dict(state_dict)
        saved = state_dict["state"]
        ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        spec = self._fastopt._spec
        skip = {"step", *spec.scalar_names}
        for pid, p in zip(ids, params):
            if pid not in saved or p not in self.state:
                continue
            want = self._fo_state_dtype_of(p)
            for key, value in saved[pid].items():
                if key in skip or not isinstance(value, torch.Tensor):
                    continue
                if value.is_sparse:  # torch.optim.SGD's momentum for sparse gradients: dense here
                    value = self.state[p][key] = value.detach().to(p.device).to_dense()
                if key in spec.state_names and (want == torch.uint8 or value.dtype == torch.uint8):
                    # 8-bit state here or there: the values converted, as the NumPy class does
                    saved_np = value.detach().cpu()
                    saved_np = (saved_np if saved_np.dtype == torch.uint8 else saved_np.float()).numpy()
                    stored = _optim._as_stored(saved_np, spec, spec.state_names.index(key), tuple(p.shape),
                                               want == torch.uint8, f"state {key!r} of parameter {pid}")
                    self.state[p][key] = torch.from_numpy(np.array(stored)).to(dtype=want)
                    continue
                dtype = torch.float32 if key == "master_param" else want
                if value.is_floating_point() and self.state[p][key].dtype != dtype:
                    self.state[p][key] = value.detach().to(p.device, dtype=dtype, copy=True)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters, as torch.optim does, checking its hyperparameters.

        Parameters
        ----------
        param_group : dict
            ``"params"`` (a tensor or an iterable of tensors) and any
            hyperparameters that differ from the optimizer's defaults.
        """
        super().add_param_group(param_group)
        try:
            self._fo_check_group(self.param_groups[-1], f"param group {len(self.param_groups) - 1}")
        except Exception:
            self.param_groups.pop()
            raise

    def _fo_check_group(self, group, where):
        """Check a new group's hyperparameters by fastopt.optim's rules (torch's ranges).

        This runs where torch checks (construction, add_param_group). A step
        checks types only, so a value a scheduler sets mid-run is used as
        torch uses it.
        """
        for flag in ("differentiable", "capturable"):
            if group.get(flag):
                raise ValueError(f"{where}: {flag}=True is not supported by fastopt.torch")
        _optim._check_state_choice(self._fo_state_dtype, group, where)
        for p in group["params"]:
            if not isinstance(p, torch.Tensor):
                continue
            if self._fo_precision[0] and p.dtype not in _HALF:
                raise ValueError(f"{where}: a {p.dtype} parameter; master_weights=True keeps "
                                 "float32 copies of 16-bit (float16, bfloat16) parameters only")
            if p.dtype in _PARAM_DTYPES:
                self._fo_state_dtype_of(p, f"{where}: a parameter")  # ValueError if it cannot
        self._fastopt._check_group({key: _plain(group[key]) for key in self._hyper_keys}, where)

    def _fo_hypers(self, group_ids):
        """Per group, the hyperparameters as the C core reads them.

        Only the groups in ``group_ids`` (those with a parameter to step) are
        read; the others get a stand-in the engine never uses.
        """
        groups = self.param_groups
        hypers = {}
        for gi in group_ids:
            where = f"param group {gi}"
            hyper = {key: _plain(groups[gi][key]) if key in self._plain_keys
                     else _c_scalar(groups[gi][key], key, where) for key in self._hyper_keys}
            betas = hyper.get("betas", (0,) * self._n_betas)
            if type(betas) is not tuple or len(betas) != self._n_betas:
                raise TypeError(f"{where}: betas must be {self._n_betas} numbers, got {betas!r}")
            hypers[gi] = hyper
        first = hypers[group_ids[0]]
        return [hypers.get(gi, first) for gi in range(len(groups))]

    def _init_state(self, state, param, hyper):
        """Create torch's state entries that are missing for a parameter about
        to step, as the spec says; returns whether a buffer was created."""
        spec = self._fastopt._spec
        fresh = not state
        master_weights, rounding, _ = self._fo_precision
        if fresh and spec.step:
            state["step"] = 0 if spec.int_step else torch.tensor(0.0, dtype=_scalar_dtype())
        elif rounding == "stochastic" and "step" not in state:
            # without torch's step count (SGD), the count stochastic rounding keys on
            state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
        if fresh:  # torch's 0-d state (the first step sets it from torch's initial values)
            for c in spec.scalars:
                state[c.name] = torch.tensor(1.0, dtype=_scalar_dtype())
        created = False
        for buf in spec.state:
            if buf.shape_for(param.shape) is None:
                continue  # a parameter of this shape has no such buffer (Adafactor)
            if buf.when is None:
                if not fresh:
                    continue
            elif not buf.used(hyper):
                continue
            elif buf.init == FIRST_GRAD:
                if state.get(buf.name) is not None:  # torch's SGD may keep a None buffer
                    continue
            elif buf.name in state:
                continue
            state[buf.name] = self._new_buffer(buf, param, hyper)
            created = True
        if master_weights and state.get("master_param") is None:
            state["master_param"] = param.detach().to(torch.float32, copy=True,
                                                      memory_format=torch.preserve_format)
        return created

    def _filled(self, buf, param, value):
        """A new buffer of `param`'s state that holds `value` everywhere, of the
        state dtype (8-bit state: its codes and scales, uint8)."""
        if self._fo_state_dtype == "int8":
            n = param.numel()
            return torch.from_numpy(_core.q8_encode(np.full(n, value, np.float32),
                                                    _optim._q8_signed(self._fastopt._spec, buf.slot)))
        return torch.full_like(param, value, dtype=self._fo_state_dtype_of(param),
                               memory_format=torch.preserve_format)

    def _fo_buffer_shape(self, buf, param):
        """The shape a state buffer of `param` has (8-bit state: its bytes), or None."""
        shape = buf.shape_for(param.shape)
        if shape is not None and self._fo_state_dtype == "int8":
            return (_core.q8_bytes(math.prod(shape)),)
        return shape

    def _new_buffer(self, buf, param, hyper):
        if self._fo_state_dtype == "int8":  # PARAM buffers are not in the 8-bit algorithms
            value = 0.0
            if isinstance(buf.init, str) and buf.init != FIRST_GRAD:
                value = self.defaults[buf.init] if self._fastopt._spec.eager else hyper[buf.init]
            elif not isinstance(buf.init, str):
                value = buf.init
            return self._filled(buf, param, float(_plain(value)))
        if buf.shape is not None:  # not the parameter's shape: C-contiguous (Adafactor's factors)
            return torch.full(buf.shape_for(param.shape), float(buf.init),
                              dtype=self._fo_state_dtype_of(param))
        like = dict(memory_format=torch.preserve_format)
        like["dtype"] = self._fo_state_dtype_of(param)
        if buf.init == FIRST_GRAD:  # the first step writes it
            return torch.empty_like(param, **like)
        if buf.init == PARAM:
            return param.detach().to(copy=True, **like)
        if isinstance(buf.init, str):
            # torch's Adagrad creates such a buffer in its constructor, from the
            # constructor's value (self.defaults), whatever a group's own value says;
            # state made at the first step (Rprop's step_size) takes the group's value
            value = self.defaults[buf.init] if self._fastopt._spec.eager else hyper[buf.init]
            return torch.full_like(param, float(_plain(value)), **like)
        return torch.full_like(param, buf.init, **like)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform a single optimization step (see torch.optim.Optimizer.step).

        Every parameter with a gradient is updated in one call into the C
        core. Nothing is changed when a parameter, gradient or state tensor
        cannot be stepped (not a dense CPU floating-point tensor): a
        TypeError or ValueError names it first.

        Parameters
        ----------
        closure : callable or None, default None
            Re-evaluates the model and returns the loss, as in torch; called
            with gradients enabled before the step.

        Returns
        -------
        object
            The closure's loss; None without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        plan = self._fo_plan
        if plan is not None:
            try:
                current = plan.current_grads(self)
            except (TypeError, ValueError, RuntimeError, AttributeError, LookupError):
                current = None  # not what the plan was made for: the checked path says why
            if current is not None:
                held, grads = current  # held: the tensors at the addresses in grads, kept alive
                try:
                    # a state buffer that new hyperparameters need and the plan
                    # lacks is a MissingState (ValueError): the checked path creates it
                    plan.run(grads, self._fo_hypers(plan.group_ids))
                    return loss
                except (TypeError, ValueError, RuntimeError):
                    pass  # nothing was written; redo the step with every check below
        self._fo_plan = None
        active = [(p, gi) for gi, group in enumerate(self.param_groups)
                  for p in group["params"] if p.grad is not None]
        if not active:
            return loss
        hypers = self._fo_hypers(sorted({gi for _, gi in active}))
        slots = self._fo_slots(hypers)
        self._fo_check(active, hypers)
        before = [(p, dict(self.state[p]) if p in self.state else None) for p, _ in active]
        try:
            plan = _Plan(self, active, hypers, slots)
            plan.run(plan.checked_grads(), hypers)
        except Exception:
            # Leave the state as it was: the entries this call created or replaced.
            for p, entries in before:
                if entries is None:
                    self.state.pop(p, None)
                else:
                    self.state[p].clear()
                    self.state[p].update(entries)
            raise
        self._fo_plan = plan
        return loss

    def _fo_slots(self, hypers):
        return [_core.state_slots(self._fastopt._algo, h) for h in hypers]

    def _fo_check_sparse(self, p, what, hyper):
        """A sparse COO gradient: torch's RuntimeError for hyperparameters it
        refuses with one; TypeError/ValueError for one fastopt cannot step."""
        why = self._fastopt._spec.sparse(hyper)
        if why is not None:
            raise RuntimeError(why)
        g = p.grad
        if g.device.type != "cpu" or g.dtype != p.dtype or g.shape != p.shape:
            raise TypeError(f"gradient of {what} is a {g.device} {g.dtype} sparse tensor of shape "
                            f"{tuple(g.shape)}, its parameter {p.dtype} {tuple(p.shape)}")
        if g.sparse_dim() != 1:
            raise ValueError(f"gradient of {what} is sparse in {g.sparse_dim()} dimensions: "
                             "fastopt.torch steps gradients sparse in rows only (sparse_dim 1, "
                             "as nn.Embedding(sparse=True) makes)")
        if not _local(p).is_contiguous():
            raise ValueError(f"{what} has a sparse gradient and strides {p.stride()}: rows are "
                             "stepped in C-contiguous parameters only")

    def _fo_check(self, active, hypers):
        """Raise TypeError/ValueError naming the first parameter, gradient or state at fault."""
        index_of = {}
        for group in self.param_groups:
            for p in group["params"]:
                index_of[id(p)] = len(index_of)
        spec = self._fastopt._spec
        names = spec.state_names
        shaped = any(b.shape is not None for b in spec.state)
        for p, gi in active:
            what = f"parameter {index_of[id(p)]}"
            _check_sharding(p, what)
            _check_tensor(_local(p), what)
            ndim = self._fastopt._spec.ndim
            if ndim is not None and (p.ndim != ndim or not _local(p).is_contiguous()):
                raise ValueError(f"{what} has shape {tuple(p.shape)} and strides {p.stride()}: "
                                 f"{type(self).__name__} steps C-contiguous {ndim}-D parameters")
            if shaped and not _local(p).is_contiguous():  # its rows are its memory's
                raise ValueError(f"{what} has shape {tuple(p.shape)} and strides {p.stride()}: "
                                 f"{type(self).__name__} steps C-contiguous parameters")
            if not _dense(_local(p)):
                raise ValueError(
                    f"{what} (shape {tuple(p.shape)}, strides {p.stride()}) is a view that skips "
                    "or reuses memory (a slice or an expand() of another tensor), which "
                    "fastopt.torch cannot update in place; give it memory of its own "
                    "(param.data = param.data.clone()) or step it with torch.optim")
            if p.grad.is_sparse and self._fastopt._spec.sparse is not None:
                self._fo_check_sparse(p, what, hypers[gi])
                continue
            if self._fastopt._spec.int_step:  # SparseAdam: torch's error
                raise RuntimeError(f"{type(self).__name__} does not support dense gradients, "
                                   "please consider Adam instead")
            _check_tensor(_local(p.grad), f"gradient of {what}")
            if p.grad.dtype != p.dtype or p.grad.shape != p.shape:
                raise TypeError(f"gradient of {what} has dtype {p.grad.dtype} and shape "
                                f"{tuple(p.grad.shape)}, its parameter {p.dtype} and "
                                f"{tuple(p.shape)}")
        for p, _ in active:
            state = self.state.get(p) or {}
            for b in spec.state:
                buf = state.get(b.name)
                if buf is not None:
                    what = f"state {b.name!r} of parameter {index_of[id(p)]}"
                    _check_tensor(_local(buf), what, _STATE_DTYPES)
                    shape = self._fo_buffer_shape(b, p)
                    if shape is None:
                        raise ValueError(f"{what}: a parameter of shape {tuple(p.shape)} has "
                                         f"no {b.name!r}")
                    want = self._fo_state_dtype_of(p)
                    if buf.dtype != want or buf.shape != shape:
                        raise TypeError(f"{what} has dtype {buf.dtype} and shape "
                                        f"{tuple(buf.shape)}, expected {want} and "
                                        f"{shape} (its parameter: {p.dtype})")


class _Plan:
    """One optimizer's step, prepared: a C engine over NumPy views of the tensors.

    A dense parameter that is not C-contiguous (channels_last, transposed)
    is stepped as one flat buffer over its memory span, with its state in
    the same layout (elementwise updates do not care about the order). The
    plan stays valid while the same parameters (same memory) step with the
    same state tensors (same memory); ``current_grads`` checks that at every
    step, cheaply, so a step costs a few attribute lookups per tensor plus
    one call into C. Each parameter keeps its own 0-d ``step`` tensor, as
    in torch; ``run`` is the one place those meet the engine's counts.
    """

    def __init__(self, opt, active, hypers, slots):
        spec = opt._fastopt._spec
        names = spec.state_names
        self.state = opt.state
        everything = [p for group in opt.param_groups for p in group["params"]]
        self.ids = list(map(id, everything))
        self.sizes = [len(group["params"]) for group in opt.param_groups]
        self.params = [p for p, _ in active]
        self.idle = [p for p in everything if p.grad is None]
        groups = [gi for _, gi in active]
        self.group_ids = sorted(set(groups))
        self.ptrs = [_local(p).data_ptr() for p in self.params]
        self.flat = [not _local(p).is_contiguous() for p in self.params]
        self.bf16 = any(p.dtype == torch.bfloat16 for p in self.params)  # grads need _numpy
        # parameters whose gradient is not in their memory order (the engine reads a copy)
        self.fix = [k for k, p in enumerate(self.params)
                    if not p.grad.is_sparse and not _same_layout(_local(p.grad), _local(p))]
        entries, bufsets, started = [], [], []
        index_of = {id(p): i for i, p in enumerate(everything)}
        for p, gi in active:
            state = opt.state[p] if p in opt.state else {}
            fresh = opt._init_state(state, p, hypers[gi])
            if state and p not in opt.state:  # torch keeps no entry for stateless SGD
                opt.state[p] = state
            # the slots its group uses that a parameter of its shape has
            used = [u and b.shape_for(p.shape) is not None for u, b in zip(slots[gi], spec.state)]
            for b in spec.state:  # a loaded buffer in another layout: copied into the param's
                buf = state.get(b.name)
                if buf is None:
                    continue
                flat = b.shape is not None or buf.dtype == torch.uint8  # 8-bit: its bytes
                if flat and not buf.is_contiguous():
                    state[b.name] = buf.contiguous()
                elif not flat and not _same_layout(buf, p):
                    state[b.name] = _in_layout(buf, p)
            needed = [name for name, u in zip(names, used) if u]
            for name in (["step"] if spec.step else []) + needed:
                if state.get(name) is None:  # the C core would write through a null pointer
                    raise ValueError(
                        f"the state of parameter {index_of[id(p)]} has no {name!r} (deleted, or "
                        "loaded from an incomplete state dict); restore it, or clear the "
                        "parameter's state (optimizer.state[param] = {}) to start afresh")
            bufs = tuple(state.get(name) if u else None for name, u in zip(names, used))
            bufs += (None,) * (_core.NUM_SLOTS - len(bufs))  # the C core's slots
            master = state.get("master_param") if opt._fo_precision[0] else None
            if master is not None:
                if not _same_layout(master, p):
                    state["master_param"] = master = _in_layout(master, p)
                _check_tensor(_local(master), f"state 'master_param' of parameter {index_of[id(p)]}",
                              (torch.float32,))
                if master.shape != p.shape:
                    raise TypeError(f"state 'master_param' of parameter {index_of[id(p)]} has "
                                    f"shape {tuple(master.shape)}, expected {tuple(p.shape)}")
                bufs += (master,)
            bufsets.append(bufs)
            entries.append(state)
            for name in spec.scalar_names:
                if state.get(name) is None:
                    raise ValueError(f"the state of parameter {index_of[id(p)]} has no {name!r}")
                state[name] = _step_tensor(state[name])  # a 0-d CPU float tensor of its own
            if "step" in state and spec.int_step:  # torch's SparseAdam counts in an int
                started.append(state["step"] > 0)
            elif "step" in state:
                state["step"] = _step_tensor(state["step"])
                started.append(float(state["step"]) > 0 if spec.step else not fresh)
            else:  # SGD: a fresh momentum buffer starts as the gradient
                started.append(not fresh)
        self.int_steps = entries if spec.int_step else None
        steps = [] if spec.int_step else [state["step"].detach().reshape(()) for state in entries
                                          if "step" in state]
        # the parameters whose gradient is sparse (None: none): each must stay so
        sparse = [p.grad.is_sparse for p in self.params]
        self.sparse = sparse if any(sparse) else None
        self.step_views = tuple(t.numpy() for t in steps)  # torch's counts, see run()
        # torch's 0-d state tensors (mu_product; eta, mu), the truth as the counts are
        self.scalar_views = tuple(tuple(state[name].detach().reshape(()).numpy()
                                        for name in spec.scalar_names)
                                  for state in entries) if spec.scalars else ()
        self.items = list(opt.state.items())  # keeps every key and entry alive: ids stay theirs
        self.item_ids = (list(map(id, opt.state)), list(map(id, opt.state.values())))
        # every state tensor, by where it is and where its memory is
        self.where = [(state, key) for state in entries for key, t in state.items()
                      if isinstance(t, torch.Tensor)]
        self.where_dicts = [state for state, _ in self.where]
        self.where_keys = [key for _, key in self.where]
        self.state_ptrs = [_local(state[key]).data_ptr() for state, key in self.where]
        # plain tensors (no DTensor): the checks at each step are C-level map() calls
        self.plain = all(type(t) in _PLAIN for t in self.params) and \
            all(type(state[key]) in _PLAIN for state, key in self.where)
        if self.plain and self.sparse is None:  # what current_grads() finds at each step
            grads = [p.grad for p in self.params]
            self.grad_layouts = list(map(_LAYOUT, grads))
            self.grad_strides = list(map(_STRIDE, grads))
        self.engine = _core.Engine(
            spec.algo, [_array(p, flat) for p, flat in zip(self.params, self.flat)],
            [tuple(None if b is None else _array(b, flat) for b in bufs)
             for bufs, flat in zip(bufsets, self.flat)],
            [index_of[id(p)] for p in self.params], groups, raw_bf16=True,
            rounding=opt._fo_precision[1], seed=opt._fo_precision[2])
        self.engine.set_counters(started=started)

    def current_grads(self, opt):
        """(tensors, grads): the gradients as the engine reads them (``grads``,
        for Engine.step_at) and what keeps their memory alive meanwhile, or
        None when the plan no longer fits (other parameters, groups or
        gradients, other memory, other state tensors).

        This runs at every step: each check is a C-level map() over a whole
        list. Comparing ids is comparing objects because the plan keeps every
        object it compares alive (the params, the state's keys and entries).
        A plain gradient is handed over as its address once it has the type,
        shape, dtype and strides the plan was made for (``.data =``, set_()
        and resize_() can change the last three in place); its device is its
        parameter's, which torch's ``grad`` setter, ``.data =`` and set_()
        enforce.
        """
        state, groups = opt.state, opt.param_groups
        if (state is not self.state or len(state) != len(self.items)
                or [len(group["params"]) for group in groups] != self.sizes
                or [i for group in groups for i in map(id, group["params"])] != self.ids
                or list(map(id, state)) != self.item_ids[0]
                or list(map(id, state.values())) != self.item_ids[1]):
            return None
        if not self.plain or self.sparse is not None:
            grads = self._current_grads_local()
            return None if grads is None else (None, tuple(grads))
        params = self.params
        tensors = list(map(_GRAD, params))
        if (not set(map(type, tensors)) <= _PLAIN_TYPES  # None too: a gradient is gone
                or list(map(_LAYOUT, tensors)) != self.grad_layouts
                or list(map(_STRIDE, tensors)) != self.grad_strides):
            return None
        grads = list(map(_DATA_PTR, tensors))
        if list(map(_DATA_PTR, params)) != self.ptrs:
            return None
        for g in map(_GRAD, self.idle):
            if g is not None:
                return None
        if list(map(_DATA_PTR, map(dict.__getitem__, self.where_dicts, self.where_keys))) \
                != self.state_ptrs:
            return None  # replaced, or set_() to other memory
        for k in self.fix:  # in another layout than its parameter: a copy in the parameter's
            grads[k] = _grad_array(tensors[k], params[k], self.flat[k])
        return tensors, tuple(grads)

    def _current_grads_local(self):
        """current_grads for DTensor plans: each tensor through its local shard."""
        try:
            if self.sparse is not None:
                if [p.grad.is_sparse for p in self.params] != self.sparse:
                    return None
                grads = [_row_sparse(p.grad) if sparse else _grad_array(p.grad, p, flat)
                         for p, sparse, flat in zip(self.params, self.sparse, self.flat)]
            elif self.bf16:
                grads = [_numpy(_local(p.grad)) for p in self.params]
            else:
                grads = [_local(p.grad).numpy() for p in self.params]
        except AttributeError:  # a gradient is None now
            return None
        if [_local(p).data_ptr() for p in self.params] != self.ptrs:
            return None
        for p in self.idle:
            if p.grad is not None:
                return None
        if [_local(entry[key]).data_ptr() for entry, key in self.where] != self.state_ptrs:
            return None  # replaced, or set_() to other memory
        for k in ([] if self.sparse is not None else self.fix):
            p = self.params[k]
            grads[k] = _grad_array(p.grad, p, self.flat[k])
        return grads

    def checked_grads(self):
        """The gradients as the engine reads them (after _Stepper._fo_check)."""
        return tuple(_grad_array(p.grad.detach(), p, flat) for p, flat in zip(self.params, self.flat))

    def run(self, grads, hypers):
        """One step. torch's ``state["step"]`` tensors are the visible truth,
        and this is the one place they meet the engine's counts: read into
        the engine before the step, written back from it after (the value
        torch's ``step += 1`` gives)."""
        engine = self.engine
        if self.int_steps is not None:
            engine.set_counters(steps=[state["step"] for state in self.int_steps])
        if self.step_views:
            engine.set_counters(steps=self.step_views)
        if self.scalar_views:
            engine.load_scalars(self.scalar_views)
        engine.step_at(grads, hypers)
        if self.int_steps is not None:
            for state, count in zip(self.int_steps, engine.counters()[0].tolist()):
                state["step"] = count
        if self.step_views:
            engine.store_steps(self.step_views)
        if self.scalar_views:
            engine.store_scalars(self.scalar_views)


# What the classes' docstrings say of the arguments that are not their spec's
# hyperparameters (torch's own, which fastopt keeps or refuses).
_ARGS = {
    "params": ("iterable of tensors or of param-group dicts",
               "The parameters to optimise (``model.parameters()``), as for torch.optim."),
    "foreach": (None, "Kept in the groups for torch's state dicts; fastopt always steps all "
                      "parameters in one call into its C core."),
    "fused": (None, "Kept in the groups for torch's state dicts; changes nothing (fastopt's "
                    "step is its own fused CPU kernel)."),
    "differentiable": (None, "Autograd through the step in torch; not supported by fastopt "
                             "(ValueError for True)."),
    "capturable": (None, "For CUDA graphs in torch; fastopt steps on the CPU and raises "
                         "ValueError for True."),
    **_optim._PRECISION_ARGS,
}


class SGD(_Stepper, torch.optim.SGD):
    """torch.optim.SGD stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``momentum_buffer`` (when ``momentum != 0``), which
    starts as the first gradient, as in torch.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False,
                 fused: bool | None = None, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                         foreach=foreach, differentiable=differentiable, fused=fused)


class Adagrad(_Stepper, torch.optim.Adagrad):
    """torch.optim.Adagrad stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step`` and ``sum`` (which starts at
    ``initial_accumulator_value``), created at construction as torch does.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10,
                 foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        init = initial_accumulator_value
        if type(init) is int and init.bit_length() > 63:  # torch.full_like takes int64-sized ints
            init = as_float(init, "initial_accumulator_value")
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=init, eps=eps,
                         foreach=foreach, maximize=maximize, differentiable=differentiable,
                         fused=fused)
        for group in self.param_groups:  # torch made "sum" in the parameter's dtype
            for p in group["params"]:
                if p.dtype not in _PARAM_DTYPES:
                    continue  # the step refuses it
                if self._fo_state_dtype_of(p) != p.dtype:  # float32 for a 16-bit one, by default
                    self.state[p]["sum"] = self._filled(self._fastopt._spec.state[0], p,
                                                        float(_plain(init)))


class RMSprop(_Stepper, torch.optim.RMSprop):
    """torch.optim.RMSprop stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (when
    ``momentum > 0``) and ``grad_avg`` (when ``centered``), zeros at first.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False, *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered, capturable=capturable,
                         foreach=foreach, maximize=maximize, differentiable=differentiable)


class Adam(_Stepper, torch.optim.Adam):
    """torch.optim.Adam stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and
    ``max_exp_avg_sq`` (when ``amsgrad``), zeros at first.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=decoupled_weight_decay)


class AdamW(_Stepper, torch.optim.AdamW):
    """torch.optim.AdamW stepped by fastopt (same signature, defaults and state dict).

    Adam with decoupled weight decay: the parameter is multiplied by
    ``1 - lr * weight_decay`` before the Adam update.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                         capturable=capturable, differentiable=differentiable, fused=fused)


class Adamax(_Stepper, torch.optim.Adamax):
    """torch.optim.Adamax stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``exp_avg`` and ``exp_inf``, zeros at first.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         foreach=foreach, maximize=maximize, differentiable=differentiable,
                         capturable=capturable)


class Adadelta(_Stepper, torch.optim.Adadelta):
    """torch.optim.Adadelta stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``square_avg`` and ``acc_delta``, zeros at first.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach: bool | None = None, *,
                 capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                         foreach=foreach, capturable=capturable, maximize=maximize,
                         differentiable=differentiable)


class RAdam(_Stepper, torch.optim.RAdam):
    """torch.optim.RAdam stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``exp_avg`` and ``exp_avg_sq``, zeros at first.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         decoupled_weight_decay=decoupled_weight_decay, foreach=foreach,
                         maximize=maximize, capturable=capturable, differentiable=differentiable)


class Rprop(_Stepper, torch.optim.Rprop):
    """torch.optim.Rprop stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``prev`` (zeros at first) and
    ``step_size`` (the group's ``lr`` at the parameter's first step).
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, etas=etas, step_sizes=step_sizes, capturable=capturable,
                         foreach=foreach, maximize=maximize, differentiable=differentiable)


class NAdam(_Stepper, torch.optim.NAdam):
    """torch.optim.NAdam stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``mu_product`` (a 0-d tensor, 1 at first),
    ``exp_avg`` and ``exp_avg_sq`` (zeros at first).
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         momentum_decay=momentum_decay,
                         decoupled_weight_decay=decoupled_weight_decay, foreach=foreach,
                         maximize=maximize, capturable=capturable, differentiable=differentiable)


class ASGD(_Stepper, torch.optim.ASGD):
    """torch.optim.ASGD stepped by fastopt (same signature, defaults and state dict).

    State per parameter: ``step``, ``eta`` (a 0-d tensor, the group's ``lr``
    at the first step), ``mu`` (a 0-d tensor, 1 at first) and ``ax`` (zeros).
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float | torch.Tensor = 1e-2, lambd: float = 1e-4, alpha: float = 0.75,
                 t0: float = 1e6, weight_decay: float = 0, foreach: bool | None = None,
                 maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False, *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                         weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                         differentiable=differentiable, capturable=capturable)


class _NotInTorch:
    """Mixed in before _Stepper for an algorithm torch lacks: the defaults are
    the spec's, and a state dict saved without one of them (by the reference
    implementation, which may have fewer options) loads with that default."""

    def __init__(self, params: Any, defaults: dict[str, Any], *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self._fastopt._spec.defaults.items():
                group.setdefault(key, value)


class Lion(_NotInTorch, _Stepper, torch.optim.Optimizer):
    """Lion stepped by fastopt: lion-pytorch's ``Lion`` (signature, defaults, state dict).

    State per parameter: ``exp_avg``, zeros at first (no step count, as in
    lion-pytorch). See ``fastopt.Lion`` for the update.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, *, maximize: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                                      maximize=maximize),
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class AdaBelief(_NotInTorch, _Stepper, torch.optim.Optimizer):
    """AdaBelief stepped by fastopt, with optax.adabelief's numbers and the arguments of ``fastopt.AdaBelief``.

    State per parameter: ``step``, ``exp_avg`` and ``exp_avg_var`` (optax's
    ``mu`` and ``nu``), zeros at first.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-16,
                 eps_root: float = 1e-16, weight_decay: float = 0.0, *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, eps_root=eps_root,
                                      weight_decay=weight_decay),
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class ADOPT(_NotInTorch, _Stepper, torch.optim.Optimizer):
    """ADOPT stepped by fastopt, with optax.contrib.adopt's numbers and the arguments of ``fastopt.ADOPT``.

    State per parameter: ``step``, ``exp_avg`` and ``exp_avg_sq`` (optax's
    ``mu`` and ``nu``), zeros at first.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.9999), eps: float = 1e-6,
                 weight_decay: float = 0.0, *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay),
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Adan(_NotInTorch, _Stepper, torch.optim.Optimizer):
    """Adan stepped by fastopt: pytorch-optimizer's ``Adan`` (signature, defaults, buffer names).

    State per parameter: ``step`` (pytorch-optimizer counts steps per group
    instead), ``exp_avg``, ``exp_avg_sq``, ``exp_avg_diff`` and
    ``previous_grad`` (the negated previous gradient). See ``fastopt.Adan``.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1e-3, betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
                 weight_decay: float = 0.0, weight_decouple: bool = False,
                 max_grad_norm: float = 0.0, foreach: bool | None = None, eps: float = 1e-8,
                 maximize: bool = False, *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                                      weight_decouple=weight_decouple,
                                      max_grad_norm=max_grad_norm, foreach=foreach, eps=eps,
                                      maximize=maximize),
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class LAMB(_NotInTorch, _Stepper, torch.optim.Optimizer):
    """LAMB stepped by fastopt, with optax.lamb's numbers and the arguments of ``fastopt.LAMB``.

    State per parameter: ``step``, ``exp_avg`` and ``exp_avg_sq`` (optax's
    ``mu`` and ``nu``), zeros at first.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, maximize=maximize),
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class LARS(_NotInTorch, _Stepper, torch.optim.Optimizer):
    """LARS stepped by fastopt, with optax.lars's numbers and the arguments of ``fastopt.LARS``.

    State per parameter: ``momentum_buffer`` (optax's ``trace``), zeros at
    first (no step count, as optax's trace has none).
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 0.0,
                 nesterov: bool = False, *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient, eps=eps,
                                      nesterov=nesterov),
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class _ScheduleFree:
    """Mixed in before _NotInTorch for the Schedule-Free optimizers: the
    package's group state, its step-time group arithmetic (in double, the
    one formula of fastopt.optim) and its train()/eval() (torch's lerp_, as
    the package runs it)."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform a single optimization step, in train mode only (as the package).

        Parameters
        ----------
        closure : callable or None, default None
            Re-evaluates the model and returns the loss, as in torch.

        Returns
        -------
        object
            The closure's loss; None without a closure.
        """
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError("Optimizer was not in train mode when step is called. Please "
                               "insert .train() and .eval() calls on the optimizer. See "
                               "documentation for details.")
        for gi, group in enumerate(self.param_groups):
            self._fo_check_group(group, f"param group {gi}")  # loaded or edited group state
        self._sf_after = [_optim.schedule_free_group({k: _plain(v) for k, v in group.items()
                                                      if k != "params"})
                          for group in self.param_groups]
        loss = super().step(closure)
        for group, (after, _) in zip(self.param_groups, self._sf_after):
            group.update(after)  # every group counts the step, as in the package
        return loss

    def _fo_hypers(self, group_ids):
        hypers = super()._fo_hypers(group_ids)
        return [{**h, **after, "lr": after["scheduled_lr"], "ckp1": ckp1}
                for h, (after, ckp1) in zip(hypers, self._sf_after)]

    @torch.no_grad()
    def train(self) -> None:
        """Move the parameters to y, where gradients are taken (as the package)."""
        self._switch(True)

    @torch.no_grad()
    def eval(self) -> None:
        """Move the parameters to the average x, to evaluate or save (as the package)."""
        self._switch(False)

    def _switch(self, train):
        for gi, group in enumerate(self.param_groups):
            self._fo_check_group(group, f"param group {gi}")  # beta > 0, before any move
        beta_of = self._fastopt._beta
        for group in self.param_groups:
            if bool(group["train_mode"]) == train:
                continue
            beta = _plain(beta_of(self._fastopt, group))
            weight = 1 - beta if train else 1 - 1 / beta
            for p in group["params"]:
                state = self.state.get(p)
                if state and "z" in state:
                    master = state.get("master_param")
                    if master is None:
                        p.lerp_(end=state["z"].to(p.device), weight=weight)
                    else:  # the master moves; the parameter gets its rounding
                        master.lerp_(end=state["z"], weight=weight)
                        p.copy_(master)
            group["train_mode"] = train


class ScheduleFreeAdamW(_ScheduleFree, _NotInTorch, _Stepper, torch.optim.Optimizer):
    """Schedule-Free AdamW stepped by fastopt: the schedulefree package's ``AdamWScheduleFree``.

    Its signature, defaults, group keys (``k``, ``lr_max``, ``weight_sum``,
    ``scheduled_lr``, ``train_mode``) and state (``z``, ``exp_avg_sq``), so
    state dicts move between the two. Call ``train()`` before stepping and
    ``eval()`` before evaluating or saving. See ``fastopt.ScheduleFreeAdamW``.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, warmup_steps: int = 0,
                 r: float = 0.0, weight_lr_power: float = 2.0,
                 foreach: bool | None = hasattr(torch, "_foreach_mul_"), *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, r=r, k=0,
                                      warmup_steps=warmup_steps, train_mode=False,
                                      weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0,
                                      weight_lr_power=weight_lr_power,
                                      weight_decay=weight_decay, foreach=foreach),
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class ScheduleFreeSGD(_ScheduleFree, _NotInTorch, _Stepper, torch.optim.Optimizer):
    """Schedule-Free SGD stepped by fastopt: the schedulefree package's ``SGDScheduleFree``.

    As ``ScheduleFreeAdamW`` (state ``z`` only). See ``fastopt.ScheduleFreeSGD``.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0,
                 warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0,
                 foreach: bool | None = hasattr(torch, "_foreach_mul_"), *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, r=r, k=0,
                                      warmup_steps=warmup_steps, train_mode=False,
                                      weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0,
                                      weight_lr_power=weight_lr_power,
                                      weight_decay=weight_decay, foreach=foreach),
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Muon(_Stepper, torch.optim.Muon):
    """torch.optim.Muon stepped by fastopt (signature, defaults, state dict).

    State per parameter: ``momentum_buffer``, zeros at first (no step count,
    as in torch). Parameters are 2-D and C-contiguous. The Newton-Schulz
    iteration runs in float32 through NumPy's matmul, where torch runs it in
    bfloat16; see ``fastopt.Muon``.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
                 eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None, *,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                         nesterov=nesterov, ns_coefficients=ns_coefficients, eps=eps,
                         ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)


class LBFGS(torch.optim.LBFGS):
    """torch.optim.LBFGS stepped by fastopt: torch's signature, closure
    protocol (``closure()`` zeroes the gradients, runs backward and returns
    the loss), state (in the first parameter's state) and state dict.

    Parameters are CPU float32 or float64 tensors of one dtype, contiguous.
    The flat-vector arithmetic runs in C with sums in a fixed order (see
    ``fastopt.LBFGS``); a step whose closure raises, or returns a non-finite
    loss or gradient, puts the parameters back and leaves the state as it was.

    Parameters
    ----------
    params : iterable of tensors or of one group dict
        The parameters: CPU float32 or float64 tensors of one dtype, contiguous.
    """

    __doc__ = __doc__.rstrip(" ") + _docs.LBFGS_PARAMETERS  # its hyperparameters, written once

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None) -> None:
        super().__init__(params, lr=lr, max_iter=max_iter, max_eval=max_eval,
                         tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                         history_size=history_size, line_search_fn=line_search_fn)
        _lbfgs.hypers(self._fo_group())
        self._fo_arrays()

    def _fo_group(self):
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        group = dict(self.param_groups[0])
        if isinstance(group["lr"], torch.Tensor):
            group["lr"] = float(group["lr"])
        return group

    def _fo_arrays(self):
        """The parameters' NumPy views (the arrays the step updates in place)."""
        params = list(self.param_groups[0]["params"])
        for i, p in enumerate(params):
            _check_tensor(p, f"parameter {i}", (torch.float32, torch.float64))
            if not p.is_contiguous():
                raise ValueError(f"parameter {i} must be contiguous")
        arrays = [p.detach().numpy() for p in params]
        _lbfgs.check_params(arrays)
        return params, arrays

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run one L-BFGS step (up to max_iter iterations); returns the first loss.

        Parameters
        ----------
        closure : callable
            Zeroes the gradients, computes the loss, runs ``backward()`` and returns the loss.
        """
        group = self._fo_group()
        params, arrays = self._fo_arrays()
        closure = torch.enable_grad()(closure)

        def evaluate(count):
            loss = closure()
            value = _lbfgs.checked_loss(loss, count)
            views = []
            for p, a in zip(params, arrays):
                g = p.grad
                if g is None:
                    views.append(np.zeros(a.size, a.dtype))
                    continue
                g = g.to_dense() if g.is_sparse else g
                if g.shape != p.shape or g.dtype != p.dtype or g.device != p.device:
                    raise ValueError("LBFGS: a gradient does not match its parameter's shape, "
                                     "dtype or device")
                views.append(g.detach().reshape(-1).numpy())
            return loss, value, _lbfgs.checked_grad(np.concatenate(views), count)

        state = self.state[params[0]]
        loss, new = _lbfgs.step(arrays, evaluate, _state_arrays(state, arrays[0].dtype.type), group)
        state.clear()
        state.update(_state_tensors(new))
        return loss


def _state_arrays(state, dt):
    """torch's LBFGS state with NumPy arrays and dtype scalars for its tensors."""
    def of(v):
        if isinstance(v, torch.Tensor):
            return dt(v.item()) if v.ndim == 0 else v.detach().numpy()
        return [of(x) for x in v] if isinstance(v, list) else v
    return {k: of(v) for k, v in state.items()}


def _state_tensors(state):
    """The inverse of _state_arrays: tensors (sharing the arrays' memory) and 0-d tensors."""
    def of(v):
        if isinstance(v, np.ndarray):
            return torch.from_numpy(v)
        if isinstance(v, np.floating):
            return torch.tensor(v)
        return [of(x) for x in v] if isinstance(v, list) else v
    return {k: of(v) for k, v in state.items()}


class SparseAdam(_Stepper, torch.optim.SparseAdam):
    """torch.optim.SparseAdam stepped by fastopt (same signature, defaults and state dict).

    Gradients are sparse COO tensors with one sparse dimension (rows), as
    ``nn.Embedding(sparse=True)`` makes; they are coalesced by torch's
    ``coalesce()`` and only the rows present are updated, in one C pass.
    A dense gradient is torch's RuntimeError. State per parameter: ``step``
    (an int, as in torch), ``exp_avg`` and ``exp_avg_sq``, zeros at first.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 maximize: bool = False, *, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, betas=betas, eps=eps, maximize=maximize)


class Adafactor(_Stepper, torch.optim.Adafactor):
    """torch.optim.Adafactor stepped by fastopt (signature, defaults, state dict).

    State per parameter: ``step``; ``row_var`` and ``col_var`` (shapes
    p.shape[:-1] + (1,) and p.shape[:-2] + (1, p.shape[-1])) for a parameter
    of two or more dimensions, else ``variance``; zeros at first, as in
    torch. Parameters are C-contiguous; see ``fastopt.Adafactor``.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0,
                 weight_decay: float = 0.0, *, foreach: bool | None = None,
                 maximize: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self._fo_setup(master_weights, rounding, seed, state_dtype)
        super().__init__(params, lr=lr, beta2_decay=beta2_decay, eps=eps, d=d,
                         weight_decay=weight_decay, foreach=foreach, maximize=maximize)

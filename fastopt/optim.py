"""Stateful optimizers over NumPy arrays, with torch.optim's names and layout.

An optimizer owns its state buffers and steps all its parameters in one call
into C per ``step()``. Hyperparameters live in ``param_groups`` (a list of
dicts, as in torch) and are read at every step, so editing ``group["lr"]``
takes effect at the next one.

Thread-safety: ``step``, ``state_dict``, ``load_state_dict`` and
``add_param_group`` of one optimizer are serialised by a lock, so two
threads stepping the same optimizer take turns. Different optimizers step
concurrently, and the GIL is released while the C core runs. A step reads
each group once (a copy of its hyperparameters, a tuple of its arrays) and
holds its own references to every array it touches, gradients included, so
what other threads do meanwhile to the lists, dicts and arrays they hold
cannot crash it. A forked child gets fresh locks.
"""
import bisect
import math
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _core, _lbfgs
from ._typing import Grads, Params, StateDict
from . import _docs
from ._spec import FIRST_GRAD, PARAM, SPECS, Spec, range_rules
from ._validate import as_whole, float_array, in_range

# A literal list, not one made from SPECS: ``fastopt`` re-exports it with
# ``from .optim import *``, which type checkers read statically (a test checks
# that it names every optimizer of the spec).
__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax",
           "Adadelta", "RAdam", "Rprop", "NAdam", "ASGD",
           "Lion", "AdaBelief", "ADOPT", "Adan", "LAMB", "LARS",
           "ScheduleFreeAdamW", "ScheduleFreeSGD", "Muon", "SparseAdam", "Adafactor", "LBFGS"]


# Every live optimizer, so that a forked child can replace their locks: a
# thread of the parent may hold one at the fork, and the child has no such
# thread to release it.
_live = weakref.WeakSet()


def _reset_locks_in_child():
    for opt in list(_live):
        opt._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_in_child)


class Optimizer:
    """Base class of fastopt's optimizers.

    What each optimizer is comes from its row in ``fastopt._spec`` (``_spec``,
    found by the class name for fastopt's own classes; a subclass of one of
    them inherits it): the C algorithm that steps it (``_algo``), its
    hyperparameters' defaults and range rules (which ``_check_group``
    applies, torch's rules), its state buffers (names, C slots, initial
    values, when each exists) and whether it counts steps. A subclass such as
    ``SGD`` only gives its signature and the docstring text particular to it;
    the docstring's "Parameters" section is written from the spec.

    Parameters
    ----------
    params : sequence of arrays, dict of arrays, or list of group dicts
        The arrays to update in place: writeable, C-contiguous float32,
        float64, float16 or bfloat16 (``ml_dtypes.bfloat16``, with float32
        state) ndarrays (or objects NumPy views without a copy, such as CPU
        torch tensors). A dict gives each parameter a name; ``step`` then
        takes a dict of gradients with the same keys. Group dicts hold
        ``"params"`` and any hyperparameters that differ from ``defaults``.
    defaults : dict
        Hyperparameters of groups that do not set them.
    skip_nonfinite : bool, default False
        When True, a step whose gradients hold any NaN or Inf changes
        nothing and returns False.
    master_weights : bool, default False
        Keep a float32 copy of each (16-bit) parameter in its state
        (``"master_param"``, made at its first step), step it as a float32
        parameter, and store its rounding into the parameter. Every parameter
        must be float16 or bfloat16 (a ValueError otherwise).
    rounding : {"nearest", "stochastic"}, default "nearest"
        How 16-bit parameters are rounded when stored: to nearest even, or
        stochastically with random bits from ``(seed, step, parameter index,
        element index)`` (the same for any thread count or SIMD path).
        float32 and float64 parameters store what they compute either way.
    seed : int, default 0
        The stochastic rounding's seed, in [0, 2**64).
    state_dtype : {None, "param", "float32", "bfloat16", "int8"}, default None
        The dtype of the state buffers (a NumPy, ml_dtypes or torch dtype of
        those names stands for it). None: float32 for 16-bit parameters, the
        parameter's own otherwise. ``"param"``: the parameter's dtype (as
        torch's fused CPU path keeps it). ``"bfloat16"``: bfloat16 for
        float32 and bfloat16 parameters (NumPy arrays of it need
        ``ml_dtypes``). 16-bit state is computed with in float32 and stored
        rounded to nearest even (docs/precision.md). ``"int8"``: block-wise
        8-bit moments (256 values per block, a float32 scale each, the
        dynamic map of Dettmers et al. 2022) for float32 and 16-bit
        parameters of SGD, Adam, AdamW, Lion, Adagrad and RMSprop; each
        buffer is a uint8 array of its codes and scales. A parameter that
        cannot have the state asked for (float64 with ``"bfloat16"``, any
        16-bit state under Adafactor or Muon) is a ValueError.

    Notes
    -----
    A group's ``"params"`` is the truth, as in torch: groups may be
    reordered, removed or added, and arrays replaced, between steps. State
    follows each array wherever it moves (an array that leaves and comes
    back finds its state again, as in torch); a new array is checked as in
    the constructor and gets fresh state at its first step; gradients line
    up with the groups as they are at the step. An optimizer built from a
    dict refuses such edits with a ValueError at the next step: its
    parameters are named by key.
    """

    _spec: Spec | None = None  # the optimizer's row in fastopt._spec
    _algo: str | None = None  # its C algorithm, _spec.algo
    param_groups: list[dict[str, Any]]
    defaults: dict[str, Any]
    skip_nonfinite: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__ and cls.__name__ in SPECS:  # a user's subclass inherits
            cls._spec = SPECS[cls.__name__]
            _docs.document(cls, cls._spec, _ARGS)
        cls._algo = cls._spec.algo if cls._spec is not None else None

    def __init__(self, params: Params, defaults: Mapping[str, Any], *,
                 skip_nonfinite: bool = False, master_weights: bool = False,
                 rounding: str = "nearest", seed: int = 0, state_dtype: Any = None) -> None:
        self.master_weights, self.rounding, self.seed = _core.check_rounding(master_weights, rounding, seed)
        self.state_dtype = _core.check_state_dtype(state_dtype, self._algo)
        if self.state_dtype == "int8" and (self.master_weights or self.rounding != "nearest"):
            raise ValueError("state_dtype='int8' steps without master weights and rounds to "
                             "nearest: master_weights=True and rounding='stochastic' are not "
                             "available with it")
        self.defaults = dict(defaults)
        self.skip_nonfinite = bool(skip_nonfinite)
        self.param_groups = []
        self._lock = threading.RLock()
        self._keys = None
        self._params = []      # validated ndarrays, in group order (as the engine has them)
        self._group_of = []    # group index of each parameter (non-decreasing)
        self._states = []      # per parameter: tuple of _core.NUM_SLOTS state arrays or None
        self._slots = []       # per group: which state slots are allocated
        self._retired = {}     # id -> (array, states, step, started, scalars) of arrays taken out
        self._engine = None
        if isinstance(params, Mapping):
            self._keys = list(params.keys())
            groups = [{"params": list(params.values())}] if params else []
        elif isinstance(params, np.ndarray) or not hasattr(params, "__iter__"):
            raise TypeError("params must be a list of arrays, a dict of arrays or a list of "
                            f"param-group dicts, got {type(params).__name__}")
        else:
            groups = list(params)
            if groups and not isinstance(groups[0], Mapping):
                groups = [{"params": groups}]
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        for group in groups:
            self._append_group(group)
        self._rebuild_engine()
        self._sync_state()
        _live.add(self)

    # -- groups and state ----------------------------------------------------

    def _name(self, index):
        return index if self._keys is None else self._keys[index]

    def _append_group(self, group):
        if not isinstance(group, Mapping):
            raise TypeError(f"param group must be a dict, got {type(group).__name__}")
        if "params" not in group:
            raise ValueError("param group must have a 'params' entry")
        arrays = list(_core.params_tuple(group["params"]))
        group = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        gi = len(self.param_groups)
        self._check_group(group, f"param group {gi}")
        _check_state_choice(self.state_dtype, group, f"param group {gi}")
        start = len(self._params)
        validated = [self._as_param(a, start + k) for k, a in enumerate(arrays)]
        group["params"] = validated
        self.param_groups.append(group)
        self._params += validated
        self._group_of += [gi] * len(validated)
        self._states += [(None,) * _core.NUM_SLOTS] * len(validated)
        self._slots.append((False,) * _core.NUM_SLOTS)

    def _as_param(self, array, index):
        """`array` validated as parameter `index` (an in-place target)."""
        what = _core.describe(self._name(index))
        if isinstance(array, Mapping):
            raise TypeError(f"{what} is a dict: param groups cannot be nested (params is a "
                            "list of arrays, a dict of arrays or a list of group dicts)")
        if type(array).__module__.partition(".")[0] == "torch":
            try:
                np.asarray(array)
            except Exception:  # requires grad, not on the CPU, a dtype NumPy lacks, ...
                name = type(self).__name__
                raise TypeError(f"{what} must be a numpy array, got a torch {type(array).__name__}: "
                                f"for torch tensors use fastopt.torch.{name}") from None
        param = _core.as_param(array, what)
        if self.master_weights and param.dtype.itemsize != 2:
            raise ValueError(f"{what} is {param.dtype}: master_weights=True keeps float32 copies "
                             "of 16-bit (float16, bfloat16) parameters only")
        _core.state_dtype_name(param.dtype.name, self.state_dtype, self._algo, what)  # ValueError if not
        ndim = self._spec.ndim
        if ndim is not None and param.ndim != ndim:
            raise ValueError(f"{what} has shape {param.shape}: {type(self).__name__} only steps "
                             f"{ndim}-D parameters (step the others with another optimizer)")
        return param

    @classmethod
    def _check_group(cls, group, where):
        """Raise TypeError/ValueError when a hyperparameter is out of range
        (the spec's range rules, torch's)."""
        for key, count, rules in range_rules(cls._spec):
            value = group[key]
            if not count:
                in_range(value, key, where, *rules)
                continue
            # a pair such as betas: each number by its own name
            if not isinstance(value, (tuple, list)) or len(value) != count:
                raise TypeError(f"{where}: {key} must be {'a pair of' if count == 2 else count} "
                                f"numbers, got {value!r}")
            for v, (name, rule, none_ok) in zip(value, rules):
                if rule is not None and not (none_ok and v is None):
                    in_range(v, name, where, *rule)
        if cls._spec.check is not None:
            cls._spec.check(group, where)

    def _initial_value(self, group, slot):
        """What a new state buffer holds (torch's initial value)."""
        for buf in self._spec.state:
            if buf.slot == slot:
                return buf.initial(group)
        return 0.0

    def _rebuild_engine(self, steps=None, started=None, scalars=None):
        """A new engine over the parameters and state (counters from `steps`
        and `started`, else zero; per-parameter scalar state from `scalars`,
        the engine's ``scalar_state()``)."""
        names = list(range(len(self._params))) if self._keys is None else self._keys
        engine = _core.Engine(self._algo, self._params, self._states, names, self._group_of,
                              rounding=self.rounding, seed=self.seed)
        if steps is not None:
            engine.set_counters(steps, started)
        if scalars is not None:
            engine.set_scalar_state(*scalars)
        self._engine = engine

    def _snapshot(self, check=True):
        """The groups as a step sees them, each read once: per group a copy of
        its hyperparameters (checked, unless `check` is false). When the
        groups' arrays are not the engine's (groups reordered, removed or
        added, arrays replaced) the engine is rebuilt for them first."""
        groups, hypers, layout = _core.read_groups(self.param_groups)
        if len(layout) != len(self._slots) or not self._engine.matches(layout):
            self._relayout(groups, [_core.params_tuple(p) for p in layout])
        if check:
            for gi, hyper in enumerate(hypers):
                try:
                    self._check_group(hyper, f"param group {gi}")
                    _check_state_choice(self.state_dtype, hyper, f"param group {gi}")
                except KeyError as e:  # a group dict put in by hand without every hyperparameter
                    raise ValueError(f"param group {gi} has no {e.args[0]!r}") from None
        return hypers

    def _relayout(self, groups, layout):
        """Rebuild the engine for the arrays the groups now hold (`layout`: per
        group, a tuple). Each array keeps its state and step count (torch keys
        state by the parameter); an array taken out keeps them aside in case
        it comes back; a new one is validated as in the constructor."""
        if self._keys is not None:
            raise ValueError("an optimizer built from a dict has fixed parameters (state and "
                             "gradients are matched to them by key): param_groups cannot be "
                             "reordered, removed or added to, nor its arrays replaced")
        steps, started = self._engine.counters()
        values, dtypes = self._engine.scalar_state()
        index = {id(p): i for i, p in enumerate(self._params)}
        entries, group_of = [], []
        for gi, objs in enumerate(layout):
            for obj in objs:
                i = index.get(id(obj))  # both alive: the same id is the same object
                if i is not None:
                    entry = (obj, self._states[i], int(steps[i]), int(started[i]),
                             (values[i], dtypes[i]))
                else:
                    entry = self._retired.get(id(obj))
                    if entry is None or entry[0] is not obj:
                        entry = (self._as_param(obj, len(entries)), (None,) * _core.NUM_SLOTS, 0, 0,
                                 ((0.0,) * _core.NUM_PSCALARS, np.float32))
                entries.append(entry)
                group_of.append(gi)
        params = [e[0] for e in entries]
        engine = _core.Engine(self._algo, params, [e[1] for e in entries],
                              list(range(len(params))), group_of,  # rejects shared memory
                              rounding=self.rounding, seed=self.seed)
        engine.set_counters([e[2] for e in entries], [e[3] for e in entries])
        engine.set_scalar_state([e[4][0] for e in entries], [e[4][1] for e in entries])
        kept = {id(p) for p in params}
        retired = {k: e for k, e in self._retired.items() if k not in kept}
        for i, p in enumerate(self._params):
            if id(p) not in kept:
                retired[id(p)] = (p, self._states[i], int(steps[i]), int(started[i]),
                                  (values[i], dtypes[i]))
        self._engine, self._retired = engine, retired
        self._params, self._states, self._group_of = params, [e[1] for e in entries], group_of
        self._slots = [None] * len(layout)  # _sync_state rechecks every group
        start = 0
        for group, objs in zip(groups, layout):
            arrays = params[start:start + len(objs)]
            start += len(objs)
            # what the constructor does: a group lists the validated arrays
            if type(group["params"]) is not list or any(a is not o for a, o in zip(arrays, objs)):
                group["params"] = arrays

    def _sync_state(self, hypers=None):
        """Allocate the state slots each group's hyperparameters need.
        `hypers` is the step's _core.Hypers (by default read and checked from
        param_groups). Returns a function that takes the allocations back,
        for a step that fails afterwards (a failed step leaves the state as
        it was)."""
        if hypers is None:
            hypers = _core.Hypers(self._algo, self._snapshot())
        old_slots, old_states = {}, {}
        for gi, slots in enumerate(hypers.slots):
            if slots != self._slots[gi]:
                old_slots[gi] = self._slots[gi]
                self._allocate(gi, hypers.groups[gi], slots, old_states)
                self._slots[gi] = slots

        def undo():
            for i, (bufs, _) in old_states.items():
                self._states[i] = bufs
                self._engine.set_state(i, bufs)
            self._engine.set_counters(started=[s for _, s in old_states.values()],
                                      index=list(old_states))
            for gi, slots in old_slots.items():
                self._slots[gi] = slots
        return undo

    def _allocate(self, gi, group, slots, saved):
        """Create the state buffers of group gi that `slots` needs and it lacks;
        `saved` gets what each member had before."""
        members = range(bisect.bisect_left(self._group_of, gi), bisect.bisect_right(self._group_of, gi))
        started = self._engine.counters()[1]
        for i in members:
            saved.setdefault(i, (self._states[i], int(started[i])))
        new = sorted(self._new_buffers(members, group, slots))
        for i in members:
            self._engine.set_state(i, self._states[i])
        if any(b.init == FIRST_GRAD for b in self._spec.state):
            self._engine.set_counters(started=[0] * len(new), index=new)  # the buffer starts as the grad

    def _new_buffers(self, members, group, slots):
        """Put new buffers in the state slots of `members` that `slots` needs
        and they lack; returns the members that got one."""
        changed = set()
        for k in range(_core.NUM_SLOTS):
            missing = [i for i in members if slots[k] and self._states[i][k] is None
                       and self._buffer_shape(k, i) is not None]
            new = _state_buffers([self._params[i] for i in missing], self._initial_value(group, k),
                                 [self._buffer_shape(k, i) for i in missing],
                                 [self._state_dtype(self._params[i]) for i in missing])
            for i, buf in zip(missing, new):
                if self._starts_as_param(k):
                    np.copyto(buf, self._params[i])
                elif self.state_dtype == "int8":
                    self._fill(buf, k, i, self._initial_value(group, k))
                self._states[i] = self._states[i][:k] + (buf,) + self._states[i][k + 1:]
                changed.add(i)
        return changed

    def _state_dtype(self, param):
        """The dtype of a (validated) parameter's state buffers (state_dtype)."""
        name = _core.state_dtype_name(param.dtype.name, self.state_dtype, self._algo, "parameter")
        if name != "bfloat16":  # uint8 for int8: the buffers' bytes
            return np.dtype(name)
        if param.dtype.name == "bfloat16":
            return param.dtype
        try:
            import ml_dtypes
        except ImportError:
            raise ValueError("state_dtype='bfloat16' for NumPy arrays needs the ml_dtypes "
                             "package (pip install ml_dtypes), whose bfloat16 dtype the "
                             "state buffers have") from None
        return np.dtype(ml_dtypes.bfloat16)

    def _buffer_shape(self, slot, i):
        """The shape of parameter i's buffer in `slot` (None: it has none there);
        8-bit state: its bytes (_core.q8_bytes of its values)."""
        shape = self._spec.buffer_shape(slot, self._params[i].shape)
        if shape is not None and self.state_dtype == "int8":
            return (_core.q8_bytes(math.prod(shape)),)
        return shape

    def _fill(self, buf, slot, i, value):
        """Set parameter i's buffer in `slot` to `value` everywhere (8-bit state:
        its codes and scales); returns it."""
        if self.state_dtype != "int8":
            buf[...] = value
            return buf
        shape = self._spec.buffer_shape(slot, self._params[i].shape)
        buf[...] = _core.q8_encode(np.full(math.prod(shape), value, np.float32),
                                   _q8_signed(self._spec, slot))
        return buf

    def _starts_as_param(self, slot):
        """Whether a new buffer in `slot` is a copy of its parameter (Schedule-Free's z)."""
        return any(b.slot == slot and b.init == PARAM for b in self._spec.state)

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group of parameters, as in torch.

        Parameters
        ----------
        param_group : dict
            ``"params"`` (an array or a list of arrays) and any
            hyperparameters that differ from the optimizer's defaults. Not
            available when the optimizer's params are a dict.
        """
        if self._keys is not None:
            raise TypeError("add_param_group is not available for dict params")
        with self._lock:
            if len(self.param_groups) != len(self._slots):
                self._snapshot(check=False)  # groups added or removed by hand: catch up first
            try:
                self._add_group(param_group)
            except ValueError:
                # the overlap found may be with an array replaced by hand since the last step
                engine = self._engine
                self._snapshot(check=False)
                if self._engine is engine:
                    raise
                self._add_group(param_group)

    def _add_group(self, param_group):
        """Append a group, with its state (created now, as the constructor
        does), and grow the engine by it: no rebuild, so adding many groups
        one by one stays linear."""
        n_params, n_groups = len(self._params), len(self.param_groups)
        try:
            self._append_group(param_group)
            group = self.param_groups[n_groups]
            slots = _core.state_slots(self._algo, group)
            new = range(n_params, len(self._params))
            self._new_buffers(new, group, slots)
            self._engine.extend(self._params[n_params:], self._states[n_params:],
                                [self._name(i) for i in new], self._group_of[n_params:])
        except Exception:
            del self._params[n_params:], self._group_of[n_params:], self._states[n_params:]
            del self.param_groups[n_groups:], self._slots[n_groups:]
            raise
        self._slots[n_groups] = slots

    def __getstate__(self):
        with self._lock:
            self._snapshot(check=False)  # the state of the arrays param_groups holds now
            state = {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_engine")}
            state["_retired"] = list(self._retired.values())
            state["_counters"] = self._engine.counters()
            state["_scalars"] = self._engine.scalar_state()
        return state

    def __setstate__(self, state):
        state = dict(state)
        steps, started = state.pop("_counters")
        scalars = state.pop("_scalars", None)
        state["_retired"] = {id(e[0]): e for e in state["_retired"]}
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._rebuild_engine(steps, started, scalars)
        _live.add(self)

    # -- stepping ------------------------------------------------------------

    def _grad_list(self, grads):
        """The gradients as a tuple of ndarrays in parameter order, converted
        once, before the step reads anything else (so nothing an ``__array__``
        or another thread does to the caller's list matters)."""
        if self._keys is not None:
            if not isinstance(grads, Mapping):
                raise TypeError("this optimizer's params are a dict: step() takes a dict of "
                                f"gradients with the same keys, got {type(grads).__name__}")
            missing = [k for k in self._keys if k not in grads]
            if missing:
                raise ValueError(f"no gradient for parameter {missing[0]!r}")
            if len(grads) != len(self._keys):
                extra = [k for k in grads if k not in set(self._keys)]
                raise ValueError(f"gradient for unknown parameter {extra[0]!r}")
            return _core.gradient_arrays([grads[k] for k in self._keys], self._keys)
        if type(grads) is not list and (isinstance(grads, (np.ndarray, Mapping))
                                        or not hasattr(grads, "__iter__")):
            raise TypeError("step() takes a list of gradients, one per parameter in group "
                            f"order, got {type(grads).__name__}")
        return _core.gradient_arrays(grads)

    def step(self, grads: Grads) -> bool:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : list of arrays (or dict, for dict params)
            One gradient per parameter, in group order, each of its
            parameter's shape and dtype; None skips that parameter (its
            state and step count stay as they are). Gradients are only read.

        Returns
        -------
        bool
            True when the update was applied; False when ``skip_nonfinite``
            is set and a gradient held NaN or Inf (then nothing changed).
        """
        grads = self._grad_list(grads)
        with self._lock:
            # each group read once: the same structs run the kernels and, when
            # a state buffer they need is missing, decide which to create
            hypers = _core.Hypers(self._algo, self._step_groups(self._snapshot()))
            applied = self._step_with(grads, hypers)
            if applied:
                self._stepped(hypers.groups)
            return applied

    def _step_groups(self, hypers):
        """The groups' copies a step passes to the C core (optimizers that
        compute per-step group values add them here)."""
        return hypers

    def _stepped(self, hypers):
        """After an applied step: what it changes in the groups themselves."""

    def _step_with(self, grads, hypers):
        undo_masters = self._new_masters(grads)
        try:
            try:
                applied = self._engine.step(grads, hypers, self.skip_nonfinite)
            except _core.MissingState:
                # nothing was written: create the state the groups need, then step
                undo = self._sync_state(hypers)
                try:
                    applied = self._engine.step(grads, hypers, self.skip_nonfinite)
                except BaseException:
                    undo()
                    raise
                if not applied:
                    undo()  # skipped for a non-finite gradient: no new state either
        except BaseException:
            undo_masters()
            raise
        if not applied:
            undo_masters()
        return applied

    def _new_masters(self, grads):
        """With master_weights, a float32 copy of each parameter the step
        updates for the first time (its state's "master_param"). Returns a
        function that takes them back, for a step that fails or is skipped."""
        made = []
        if self.master_weights:
            for i, (param, grad) in enumerate(zip(self._params, grads)):
                if grad is not None and _master_of(self._states[i]) is None:
                    made.append(i)
                    self._set_master(i, param.astype(np.float32))

        def undo():
            for i in made:
                self._set_master(i, None)
        return undo

    def _set_master(self, i, master):
        self._states[i] = tuple(self._states[i][:_core.NUM_SLOTS]) + (None,) * max(
            0, _core.NUM_SLOTS - len(self._states[i])) + (master,)
        self._engine.set_state(i, self._states[i])

    # -- state dicts ---------------------------------------------------------

    @property
    def state(self) -> dict[Any, dict[str, Any]]:
        """Per-parameter state (index, or key for dict params, to a dict of arrays)."""
        with self._lock:
            self._snapshot(check=False)  # the arrays param_groups holds now
            sd = self._state_entries(copy=False)
        return {self._name(i): entry for i, entry in sd.items()}

    def _state_entries(self, copy):
        names = _core.STATE_NAMES[self._algo]
        out = {}
        steps, started = self._engine.counters()
        values, dtypes = self._engine.scalar_state()
        # A slot that an edited hyperparameter (amsgrad, momentum, centered)
        # enables has no buffer until the next step creates it with its
        # initial value; a state dict holds that value, so it loads again.
        needed = [self._needed_slots(g) for g in self.param_groups] if copy else None
        spec = self._spec
        for i, bufs in enumerate(self._states):
            if spec.step and not spec.eager and steps[i] == 0:
                continue  # torch creates this state at the first step
            if not spec.step and not (started[i] and any(b is not None for b in bufs)):
                continue  # no step count: state appears with a started buffer
            entry = {"step": float(steps[i])} if self._keeps_step() else {}
            master = _master_of(bufs)
            if master is not None:
                entry["master_param"] = master.copy() if copy else master
            for c in spec.scalars:  # 0-d arrays, as torch's 0-d tensors (not views)
                entry[c.name] = np.array(values[i, c.index], dtypes[i])
            for k, (name, buf) in enumerate(zip(names, bufs)):
                if buf is not None:
                    entry[name] = buf.copy() if copy else buf
                elif copy and needed[self._group_of[i]][k] and self._buffer_shape(k, i) is not None:
                    group = self.param_groups[self._group_of[i]]
                    entry[name] = (self._params[i].copy() if self._starts_as_param(k) else
                                   self._fill(np.empty(self._buffer_shape(k, i),
                                                       self._state_dtype(self._params[i])),
                                              k, i, self._initial_value(group, k)))
            out[i] = entry
        return out

    def _keeps_step(self):
        """Whether the state has a "step": torch's, or, for an optimizer
        without one (SGD), the count stochastic rounding's random bits use
        (so a resumed run rounds as the uninterrupted one)."""
        return self._spec.step or self.rounding == "stochastic"

    def _needed_slots(self, group):
        """The state slots a group's hyperparameters use; none while a value
        is unusable (the next step reports it)."""
        try:
            return _core.state_slots(self._algo, group)
        except (TypeError, ValueError, KeyError):
            return (False,) * _core.NUM_SLOTS

    def state_dict(self) -> StateDict:
        """The optimizer's state in torch's layout.

        ``{"state": {index: {"step": float, <buffer name>: ndarray, ...}},
        "param_groups": [{<hyperparameters>, "params": [index, ...]}]}``.
        For dict params each group also has ``"param_names"`` (the keys of
        its ``"params"``, as torch records ``named_parameters()``), and
        ``load_state_dict`` matches state by those names.
        Arrays are copies, so the dict stays as it was when later steps run.
        """
        with self._lock:
            self._snapshot(check=False)  # the arrays param_groups holds now
            groups, index = [], 0
            for group in self.param_groups:
                g = {k: v for k, v in group.items() if k != "params"}
                g["params"] = list(range(index, index + len(group["params"])))
                if self._keys is not None:
                    g["param_names"] = self._keys[index:index + len(group["params"])]
                index += len(group["params"])
                groups.append(g)
            return {"state": self._state_entries(copy=True), "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a state dict made by ``state_dict()`` (or by torch.optim's same class).

        The whole dict is checked first (group count and sizes, names, buffer
        names, shapes, dtypes, steps, hyperparameters); on any problem a
        ValueError or TypeError is raised and nothing changes. Group keys
        fastopt does not use are kept, as torch does. For dict params, a
        dict with ``"param_names"`` gives each parameter the state saved
        under its name (whatever the key order); without names (older
        files, list params), state goes by position. A ``"step"`` in an SGD
        state (which has none) is ignored, as torch ignores it.

        Parameters
        ----------
        state_dict : dict
            ``{"state": ..., "param_groups": ...}`` as ``state_dict()``
            returns it (or as ``fastopt.load`` reads it back).
        """
        with self._lock:
            self._snapshot(check=False)  # the arrays param_groups holds now
            groups, states, counts = self._check_state_dict(state_dict)
            self._apply_state_dict(groups, states, counts)

    def _check_state_dict(self, sd):
        if not isinstance(sd, Mapping) or "state" not in sd or "param_groups" not in sd:
            raise TypeError("state dict must be a dict with 'state' and 'param_groups'")
        saved_groups, saved_state = sd["param_groups"], sd["state"]
        if not isinstance(saved_state, Mapping):
            raise TypeError("state dict's 'state' must be a dict")
        groups, id_map = _loaded_groups(type(self), saved_groups, self.param_groups, self._keys)
        spec = self._spec
        names = spec.state_names
        # a buffer that starts as the first gradient may be saved as None (torch's SGD)
        none_ok = {b.name for b in spec.state if b.init == FIRST_GRAD}
        states, steps, scalars = {}, {}, {}
        scalar_names = spec.scalar_names
        for pid, entry in saved_state.items():
            if pid not in id_map:
                raise ValueError(f"state dict has state for unknown parameter id {pid!r}")
            i = id_map[pid]
            where = f"state of {_core.describe(self._name(i))}"
            if not isinstance(entry, Mapping):
                raise TypeError(f"{where} must be a dict")
            param = self._params[i]
            bufs = [None] * (_core.NUM_SLOTS + 1)
            for key, value in entry.items():
                if key == "step":
                    step = as_whole(value, f"{where}, 'step'", 0, _MAX_STEP - 1)
                    if self._keeps_step():  # torch's SGD keeps no step count: ignored
                        steps[i] = step
                elif key == "master_param":
                    if not self.master_weights:
                        raise ValueError(f"{where} has a 'master_param', but this optimizer "
                                         "has master_weights=False")
                    master = float_array(value, param.shape, f"{where}, 'master_param'")
                    if master.dtype != np.float32:
                        raise TypeError(f"{where}, 'master_param' must be float32, "
                                        f"got dtype {master.dtype}")
                    bufs[_core.MASTER] = master
                elif key in scalar_names:
                    scalars.setdefault(i, {})[key] = _scalar_state(value, f"{where}, {key!r}")
                elif key in none_ok and value is None:
                    continue  # older torch SGD checkpoints: momentum not started yet
                elif key in names and spec.buffer_shape(names.index(key), param.shape) is not None:
                    bufs[names.index(key)] = _as_stored(value, spec, names.index(key), param.shape,
                                                        self.state_dtype == "int8", f"{where}, {key!r}")
                else:
                    raise ValueError(f"{where} has unknown entry {key!r} "
                                     f"(a {type(self).__name__} state has {('step',) + names})")
            if spec.step and i not in steps:
                raise ValueError(f"{where} has no 'step'")
            for name in scalar_names:
                if name not in scalars.get(i, {}):
                    raise ValueError(f"{where} has no {name!r}")
            if not spec.step and all(b is None for b in bufs):
                continue  # no momentum yet: the same as no state
            # torch fails at the next step on a state without a buffer its
            # group needs (amsgrad, momentum, centered): refuse it here
            needed = _core.state_slots(self._algo, groups[self._group_of[i]])
            for k in range(_core.NUM_SLOTS):
                if needed[k] and bufs[k] is None and spec.buffer_shape(k, param.shape) is not None:
                    raise ValueError(f"{where} has no {names[k]!r}, which its param group's "
                                     "hyperparameters need")
            states[i] = bufs
        return groups, states, (steps, scalars)

    def _apply_state_dict(self, groups, states, counts):
        steps, scalars = counts
        for mine, group in zip(self.param_groups, groups):
            mine.clear()
            mine.update(group)
        engine = self._engine
        empty = [None] * _core.NUM_SLOTS
        for k in range(_core.NUM_SLOTS):  # loaded buffers where there are none yet get new ones
            missing = [i for i in range(len(self._params))
                       if states.get(i, empty)[k] is not None and self._states[i][k] is None]
            new = _state_buffers([self._params[i] for i in missing], 0.0,
                                 [self._buffer_shape(k, i) for i in missing],
                                 [self._state_dtype(self._params[i]) for i in missing])
            for i, buf in zip(missing, new):
                self._states[i] = self._states[i][:k] + (buf,) + self._states[i][k + 1:]
        started = []
        for i in range(len(self._params)):
            loaded = states.get(i, empty)
            group = self.param_groups[self._group_of[i]]
            if self.master_weights:  # a state without one gets it from the parameter at its next step
                master = loaded[_core.MASTER] if len(loaded) > _core.MASTER else None
                self._states[i] = tuple(self._states[i][:_core.NUM_SLOTS]) + (
                    None if master is None else np.array(master, np.float32),)
            for k, buf in enumerate(self._states[i][:_core.NUM_SLOTS]):
                if loaded[k] is not None:
                    np.copyto(buf, loaded[k], casting="unsafe")
                elif buf is not None and self._starts_as_param(k):
                    np.copyto(buf, self._params[i])
                elif buf is not None:
                    self._fill(buf, k, i, self._initial_value(group, k))
            engine.set_state(i, self._states[i])
            started.append(i in states and (self._spec.step or any(b is not None for b in loaded)))
        # the counts were checked with the rest of the dict (_check_step)
        engine.set_counters([steps.get(i, 0) for i in range(len(self._params))], started)
        if scalars:  # each parameter's 0-d values, in the dtype they were saved in
            order = self._spec.scalars
            engine.set_scalar_state([[scalars[i][c.name][0] for c in order] for i in scalars],
                                    [scalars[i][order[0].name][1] for i in scalars], index=list(scalars))
        self._slots = [None] * len(self.param_groups)  # let _sync_state recheck every group
        self._sync_state()

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for gi, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {gi}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _saved_order(saved, gi, mine, keys):
    """The parameter index for each entry of a saved group's "params" (`mine`:
    the indices of its group here): by name when the group has "param_names"
    and the params are a dict (`keys`), else by position."""
    names = saved.get("param_names")
    if keys is None or names is None:
        return list(mine)
    where = f"loaded param group {gi}"
    if isinstance(names, (str, bytes, Mapping)) or not hasattr(names, "__iter__"):
        raise TypeError(f"{where}: param_names must be a list of names, got {type(names).__name__}")
    names = list(names)
    if len(names) != len(saved["params"]):
        raise ValueError(f"{where} has {len(saved['params'])} params but "
                         f"{len(names)} param_names")
    index_of = {keys[i]: i for i in mine}
    try:
        unknown = [name for name in names if name not in index_of]
        saved_names = set(names)
        missing = [key for key in index_of if key not in saved_names]  # names given twice
    except TypeError:
        raise TypeError(f"{where}: param_names must hold parameter names (dict keys)") from None
    if unknown:
        raise ValueError(f"{where} has state for {_core.describe(unknown[0])}, which this "
                         f"optimizer does not have (its parameters: {list(index_of)})")
    if missing:
        raise ValueError(f"{where} has nothing for {_core.describe(missing[0])} "
                         f"(its param_names: {names})")
    return [index_of[name] for name in names]


def _loaded_groups(cls, saved_groups, groups, keys):
    """A loaded state dict's param groups, checked against an optimizer's
    `groups` (dicts with their "params") for the optimizer class `cls` whose
    dict params have `keys` (else None): the new groups (the saved
    hyperparameters over the current ones, and the current "params") and a
    map saved parameter id -> parameter index."""
    if len(saved_groups) != len(groups):
        raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                         f"this optimizer has {len(groups)}")
    id_map, out, base = {}, [], 0
    for gi, (saved, mine) in enumerate(zip(saved_groups, groups)):
        if not isinstance(saved, Mapping) or "params" not in saved:
            raise TypeError(f"param group {gi} of the state dict must be a dict with 'params'")
        n = len(mine["params"])
        order = _saved_order(saved, gi, range(base, base + n), keys)
        if len(saved["params"]) != n:
            raise ValueError(f"loaded param group {gi} has {len(saved['params'])} parameters, "
                             f"this optimizer's has {n}")
        group = {k: v for k, v in saved.items() if k != "params"}
        if keys is not None:
            group.pop("param_names", None)  # state_dict() writes the current keys
        for hyper in cls._spec.hypers:
            if len(hyper.c) > 1 and hyper.name in group:  # a pair such as betas
                group[hyper.name] = tuple(group[hyper.name])
        group = {**{k: v for k, v in mine.items() if k != "params"}, **group}
        cls._check_group(group, f"loaded param group {gi}")
        group["params"] = mine["params"]
        out.append(group)
        id_map.update(zip(saved["params"], order))
        base += n
    return out, id_map

# What the optimizer classes' docstrings say of the arguments that are not
# their spec's hyperparameters.
_ARGS = {
    "params": ("list of arrays, dict of arrays, or list of group dicts",
               "The arrays to update in place (see ``Optimizer``)."),
    "skip_nonfinite": (None, "Skip (and return False from) a step whose gradients hold NaN or Inf."),
}
# The keyword-only arguments of 16-bit parameters (docs/precision.md), in
# fastopt.torch's docstrings too.
_PRECISION_ARGS = {
    "master_weights": (None, "Keep a float32 copy of each 16-bit parameter (state "
                             "``master_param``), step it, and store its rounding "
                             "(docs/precision.md); ValueError for float32/float64 parameters."),
    "rounding": (None, "How 16-bit parameters are rounded when stored: ``\"nearest\"`` (even) or "
                       "``\"stochastic\"`` (random bits from seed, step, parameter and element index)."),
    "seed": (None, "The stochastic rounding's seed, an int in [0, 2**64)."),
    "state_dtype": (None, "The state buffers' dtype: None (float32 for 16-bit parameters, else "
                          "the parameter's), ``\"param\"``, ``\"float32\"``, ``\"bfloat16\"`` or "
                          "``\"int8\"`` (docs/precision.md)."),
}
_ARGS.update(_PRECISION_ARGS)

_ALIGN = 64  # bytes: a cache line, and the widest SIMD vector
_PAGE = 4096  # bytes: the span within which loads and stores are matched by address bits
_PAGE_PLACED = 256 * 1024  # bytes: state buffers placed in the page (at most 1.6% more memory)


def _check_state_choice(state_dtype, group, where):
    """ValueError for hyperparameters the state dtype cannot step: centered
    RMSprop's variance v − ḡ² of two 8-bit averages can be negative."""
    if state_dtype == "int8" and group.get("centered"):
        raise ValueError(f"{where}: centered=True with state_dtype='int8': the centered variance "
                         "of two 8-bit averages can be negative (a NaN step); use bfloat16 or "
                         "float32 state")


def _q8_signed(spec, slot):
    """Whether the 8-bit buffer in `slot` uses the signed map (the spec's
    Buffer.nonneg; the C core's fo_q8_signed says the same)."""
    return not any(b.slot == slot and b.nonneg for b in spec.state)


def _as_stored(value, spec, slot, param_shape, int8, where):
    """A saved state buffer as an optimizer stores it: float values (of the
    buffer's shape), or with `int8` an 8-bit buffer's bytes, converted
    (quantized or dequantized) where the saved one is the other kind."""
    shape = spec.buffer_shape(slot, param_shape)
    signed, n = _q8_signed(spec, slot), math.prod(shape)
    if getattr(value, "dtype", None) is not None and str(value.dtype).endswith("uint8"):
        raw = np.asarray(value).reshape(-1)
        if spec.algo not in _core.STATE8_ALGOS or raw.size != _core.q8_bytes(n):
            raise ValueError(f"{where} is a uint8 array of {raw.size} bytes: an 8-bit "
                             f"buffer of {n} values has {_core.q8_bytes(n)}")
        return raw if int8 else _core.q8_decode(raw, n, signed).reshape(shape)
    values = float_array(value, shape, where)
    return _core.q8_encode(values, signed) if int8 else values


def _master_of(bufs):
    """A parameter's master copy in its state tuple (_core.MASTER), or None."""
    return bufs[_core.MASTER] if len(bufs) > _core.MASTER else None


def _state_buffers(params, value, shapes, dtypes):
    """New state buffers for `params`, of `shapes` and `dtypes` (one of each
    per parameter), filled with `value`, carved from one allocation, each on
    a 64-byte boundary. A step reads every state buffer, so keeping them side
    by side keeps a step over many small tensors fast wherever the heap put
    the parameters themselves (see BENCHMARKS.md). A buffer of _PAGE_PLACED
    bytes or more starts half a 4 KiB page away from its parameter's offset
    in a page: a store a few dozen bytes past a load's place in the page stalls
    that load as if the two met (4K aliasing), which cost Adam 15-20% from
    memory when the state sat 48 bytes past NumPy's parameters."""
    if not params:
        return []
    nbytes = [math.prod(s) * d.itemsize for s, d in zip(shapes, dtypes)]
    sizes = [-(-b // _ALIGN) * _ALIGN for b in nbytes]
    placed = [b >= _PAGE_PLACED for b in nbytes]
    raw = np.zeros(sum(sizes) + _ALIGN + _PAGE * sum(placed), np.uint8)
    address = raw.ctypes.data
    start = -address % _ALIGN
    zero = value == 0 and math.copysign(1.0, value) > 0  # -0.0 is written as such
    out = []
    for param, shape, d, b, size, page in zip(params, shapes, dtypes, nbytes, sizes, placed):
        if page:
            offset = (-(-np.asarray(param).ctypes.data // _ALIGN) * _ALIGN + _PAGE // 2) % _PAGE
            start += (offset - address - start) % _PAGE
        buf = raw[start:start + b].view(d).reshape(shape)
        if not zero:
            buf.fill(value)
        out.append(buf)
        start += size
    return out


def _scalar_state(value, where):
    """A saved 0-d state entry (mu_product, eta, mu) as (float, dtype): a 0-d
    float32/float64 array or tensor keeps its dtype, a number is float32
    (torch's default for such state)."""
    if type(value).__module__.partition(".")[0] == "torch":
        value = value.detach().cpu().numpy() if hasattr(value, "detach") else value
    a = np.asarray(value)
    if a.shape not in ((), (1,)) or a.dtype.kind not in "fiu" or a.dtype.kind == "b":
        raise ValueError(f"{where} must be a number (a 0-d array), got {value!r}")
    dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    return float(a.reshape(())), dtype


# The C core numbers updates with an int64: the largest update number, and so
# the largest count of updates done that can still take a step.
_MAX_STEP = 2**63 - 1


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (torch.optim.SGD).

    One step, for gradient ∇ and parameter θ (± is − with ``maximize``)::

        g ← ±∇ + λ·θ
        b ← μ·b + (1 − τ)·g          (b = g at the first step)
        g ← g + μ·b (Nesterov)  or  g ← b
        θ ← θ − γ·g

    with γ = ``lr``, μ = ``momentum``, τ = ``dampening``, λ = ``weight_decay``;
    without momentum, g is used directly.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> w = np.ones(3)
    >>> opt = fastopt.SGD([w], lr=0.1, momentum=0.9)
    >>> opt.step([np.full(3, 2.0)])
    True
    >>> w
    array([0.8, 0.8, 0.8])
    """

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize), skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad).

    Step t (1 for the first), for gradient ∇ and parameter θ::

        g ← ±∇ + λ·θ
        γₜ = γ / (1 + (t − 1)·η)
        s ← s + g²
        θ ← θ − γₜ·g / (√s + ε)
    """

    def __init__(self, params: Params, lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, *, maximize: bool = False,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      maximize=maximize), skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class RMSprop(Optimizer):
    """RMSprop (torch.optim.RMSprop).

    One step, for gradient ∇ and parameter θ::

        g ← ±∇ + λ·θ
        v ← α·v + (1 − α)·g²
        ḡ ← lerp(ḡ, g, 1 − α),  d = √(v − ḡ²) + ε     (centered)
                                 d = √v + ε            (otherwise)
        b ← μ·b + g / d,  θ ← θ − γ·b                 (momentum > 0)
        θ ← θ − γ·g / d                                (otherwise)
    """

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps,
                                      centered=centered, weight_decay=weight_decay,
                                      maximize=maximize), skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Adam(Optimizer):
    """Adam, and AMSGrad (torch.optim.Adam).

    Step t (1 for the first), for gradient ∇ and parameter θ::

        g ← ±∇ + λ·θ
        m ← β₁·m + (1 − β₁)·g
        v ← β₂·v + (1 − β₂)·g²
        v̂ ← max(v̂, v) (AMSGrad)  or  v̂ = v
        θ ← θ − γ / (1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)

    With ``decoupled_weight_decay=True`` (what ``AdamW`` sets) the weight
    decay multiplies the parameter by (1 − γ·λ) instead of entering the
    gradient.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> w = np.zeros(2, np.float32)
    >>> opt = fastopt.Adam([w], lr=0.5)
    >>> opt.step([np.array([1.0, -1.0], np.float32)])
    True
    >>> w  # the first step moves each element by lr (less eps's share), as in torch
    array([-0.49999994,  0.49999994], dtype=float32)
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas) if hasattr(betas, "__iter__") else betas,
                                      eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (torch.optim.AdamW).

    The parameter is multiplied by (1 − γ·λ) before the Adam update instead
    of λ·θ being added to the gradient (Loshchilov & Hutter), so the decay is
    not rescaled by Adam's per-coordinate step size::

        θ ← θ·(1 − γ·λ)
        then Adam's update, with g = ±∇
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True,
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Adamax(Optimizer):
    """Adamax: Adam with an infinity norm (torch.optim.Adamax).

    Step t (1 for the first), for gradient ∇ and parameter θ::

        g ← ±∇ + λ·θ
        m ← β₁·m + (1 − β₁)·g
        u ← max(β₂·u, |g| + ε)
        θ ← θ − γ / (1 − β₁ᵗ) · m / u
    """

    def __init__(self, params: Params, lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, *, maximize: bool = False,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas) if hasattr(betas, "__iter__") else betas,
                                      eps=eps, weight_decay=weight_decay, maximize=maximize),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Adadelta(Optimizer):
    """Adadelta (torch.optim.Adadelta).

    One step, for gradient ∇ and parameter θ::

        g ← ±∇ + λ·θ
        v ← ρ·v + (1 − ρ)·g²
        δ ← √(a + ε) / √(v + ε) · g
        a ← ρ·a + (1 − ρ)·δ²
        θ ← θ − γ·δ

    with v = ``square_avg`` and a = ``acc_delta``.
    """

    def __init__(self, params: Params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, *, maximize: bool = False,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize), skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class RAdam(Optimizer):
    """RAdam: Adam with the variance of its adaptive step rectified (torch.optim.RAdam).

    Step t (1 for the first), for gradient ∇ and parameter θ::

        g ← ±∇ + λ·θ
        m ← β₁·m + (1 − β₁)·g
        v ← β₂·v + (1 − β₂)·g²
        ρ∞ = 2 / (1 − β₂) − 1,   ρₜ = ρ∞ − 2t·β₂ᵗ / (1 − β₂ᵗ)
        u = m / (1 − β₁ᵗ) · γ
        u ← u · √(1 − β₂ᵗ) / (√v + ε) · r,
            r = √((ρₜ − 4)(ρₜ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρₜ))     (when ρₜ > 5)
        θ ← θ − u

    While ρₜ <= 5 (the first steps) the update is plain momentum SGD on the
    bias-corrected m. With ``decoupled_weight_decay=True`` the weight decay
    multiplies the parameter by (1 − γ·λ) instead of entering the gradient.
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas) if hasattr(betas, "__iter__") else betas,
                                      eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize), skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Rprop(Optimizer):
    """Rprop: resilient backpropagation, a step size per element (torch.optim.Rprop).

    One step, for gradient ∇ and parameter θ::

        g ← ±∇
        f = η₊ where g·g₋ > 0,  η₋ where g·g₋ < 0,  else 1
        s ← clamp(s·f, s_min, s_max)
        g ← 0 where g·g₋ < 0
        θ ← θ − sign(g)·s
        g₋ ← g

    with g₋ = ``prev`` (0 at first) and s = ``step_size``, which starts as
    the group's ``lr`` at the parameter's first step (as in torch; ``lr``
    is not read afterwards).
    """

    def __init__(self, params: Params, lr: float = 1e-2,
                 etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, maximize: bool = False,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, etas=tuple(etas) if hasattr(etas, "__iter__") else etas,
                                      step_sizes=(tuple(step_sizes) if hasattr(step_sizes, "__iter__")
                                                  else step_sizes),
                                      maximize=maximize), skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


def _pair(betas):
    return tuple(betas) if hasattr(betas, "__iter__") else betas


class NAdam(Optimizer):
    """NAdam: Adam with Nesterov momentum (torch.optim.NAdam).

    Step t (1 for the first), for gradient ∇ and parameter θ::

        g ← ±∇ + λ·θ
        μₜ = β₁·(1 − ½·0.96^(t·ψ)),   Π ← Π·μₜ
        m ← β₁·m + (1 − β₁)·g
        v ← β₂·v + (1 − β₂)·g²
        d = √(v / (1 − β₂ᵗ)) + ε
        θ ← θ − γ·(1 − μₜ) / (1 − Π) · g / d
        θ ← θ − γ·μₜ₊₁ / (1 − Π·μₜ₊₁) · m / d

    Π = ``mu_product`` is per-parameter state, a 0-d array in the state
    dict kept in float32 (as torch keeps it) and multiplied by μₜ in that
    dtype. With ``decoupled_weight_decay=True`` (NAdamW) the weight decay
    multiplies θ by (1 − γ·λ) instead of entering the gradient.
    """

    def __init__(self, params: Params, lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=_pair(betas), eps=eps,
                                      weight_decay=weight_decay, momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize), skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class ASGD(Optimizer):
    """Averaged SGD (torch.optim.ASGD).

    Step t (1 for the first), for gradient ∇ and parameter θ::

        g ← ±∇ + ω·θ
        θ ← θ·(1 − λ·η)
        θ ← θ − η·g
        ā ← ā + μ·(θ − ā)     (ā ← θ while μ = 1)
        η ← γ / (1 + λ·γ·t)^α,   μ ← 1 / max(1, t − t₀)

    η = ``eta`` (γ at the first step) and μ = ``mu`` (1 at first) are
    per-parameter state, 0-d float32 arrays in the state dict as in torch:
    each step uses the values the step before left, so an edited ``lr``
    reaches η one step later, as in torch.
    """

    def __init__(self, params: Params, lr: float = 1e-2, lambd: float = 1e-4,
                 alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0, *,
                 maximize: bool = False, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                                      weight_decay=weight_decay, maximize=maximize),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Lion(Optimizer):
    """Lion: the sign of an interpolated momentum (Chen et al. 2023), as lion-pytorch.

    Step t, for gradient ∇ and parameter θ::

        g ← ±∇
        θ ← θ·(1 − γ·λ)
        θ ← θ − γ·sign(β₁·m + (1 − β₁)·g)
        m ← β₂·m + (1 − β₂)·g

    sign(0) is 0, as in lion-pytorch (torch.sign), and so is the sign of a
    NaN: a NaN gradient leaves θ unchanged and m NaN.
    """

    def __init__(self, params: Params, lr: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0, *,
                 maximize: bool = False, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=_pair(betas), weight_decay=weight_decay,
                                      maximize=maximize),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class AdaBelief(Optimizer):
    """AdaBelief: Adam with the gradient's variance around its mean (Zhuang et al. 2020), as optax.

    Step t (1 for the first), for gradient g and parameter θ, in
    optax.adabelief's order of operations::

        m ← (1 − β₁)·g + β₁·m
        s ← (1 − β₂)·(g − m)² + β₂·s + ε_root
        u ← (m / (1 − β₁ᵗ)) / (√(s / (1 − β₂ᵗ)) + ε)
        θ ← θ − γ·(u + λ·θ)

    The weight decay is decoupled, as in AdamW (optax chains it after the
    AdaBelief transformation, as optax.adamw does).
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-16,
                 eps_root: float = 1e-16, weight_decay: float = 0.0, *,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=_pair(betas), eps=eps, eps_root=eps_root,
                                      weight_decay=weight_decay),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class ADOPT(Optimizer):
    """ADOPT: Adam normalised by the previous second moment (Taniguchi et al. 2024), as optax.

    Step t (1 for the first), for gradient g and parameter θ, in
    optax.contrib.adopt's order of operations, with its clipping::

        u ← clip(g / max(√v, ε), −c, c),   c = (t − 1)^¼
        v ← (1 − β₂)·g² + β₂·v
        m ← (1 − β₁)·u + β₁·m
        θ ← θ − γ·(m + λ·θ)

    The first step only sets v = g² (it uses β₁ = 1, β₂ = 0, c = 0, so m stays 0
    and θ moves by the weight decay alone). The weight decay is decoupled, as
    in AdamW (optax chains it after the ADOPT transformation).
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.9999), eps: float = 1e-6,
                 weight_decay: float = 0.0, *, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=_pair(betas), eps=eps,
                                      weight_decay=weight_decay),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Adan(Optimizer):
    """Adan: Nesterov momentum from gradient differences (Xie et al. 2024), as pytorch-optimizer.

    Step t (1 for the first), for gradient g and parameter θ, in the order
    of pytorch-optimizer's ``Adan`` (the first difference is 0; −2·∇ when
    maximizing, as there)::

        d ← g − g_prev
        m ← β₁·m + (1 − β₁)·g
        n ← β₂·n + (1 − β₂)·d
        v ← β₃·v + (1 − β₃)·(g + β₂·d)²
        D ← √v / √(1 − β₃ᵗ) + ε
        θ ← θ − γ/(1 − β₁ᵗ) · m/D − γ·β₂/(1 − β₂ᵗ) · n/D
        θ ← θ / (1 + γ·λ)    (or θ·(1 − γ·λ) before the update, weight_decouple)

    The state keeps ``previous_grad`` as pytorch-optimizer does: the negated
    gradient of the step before.
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float, float] = (0.98, 0.92, 0.99), weight_decay: float = 0.0,
                 weight_decouple: bool = False, max_grad_norm: float = 0.0, eps: float = 1e-8,
                 maximize: bool = False, *, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=_pair(betas), weight_decay=weight_decay,
                                      weight_decouple=weight_decouple,
                                      max_grad_norm=max_grad_norm, eps=eps, maximize=maximize),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class LAMB(Optimizer):
    """LAMB: Adam's update scaled per tensor by a trust ratio (You et al. 2020), as optax.lamb.

    Step t (1 for the first), for gradient g (−∇ when maximizing) and
    parameter θ, in optax.lamb's order of operations (scale_by_adam,
    add_decayed_weights, scale_by_trust_ratio, the learning rate)::

        m ← (1 − β₁)·g + β₁·m
        v ← (1 − β₂)·g² + β₂·v
        u ← (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε) + λ·θ
        r ← ‖θ‖ / ‖u‖,  or 1 when either norm is 0
        θ ← θ − γ·(u·r)

    The norms are per parameter array, summed in a fixed order (the same for
    any thread count and SIMD path). optax's ``mask`` (no weight decay on some
    arrays) is a param group with ``weight_decay=0``.
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=_pair(betas), eps=eps,
                                      weight_decay=weight_decay, maximize=maximize),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class LARS(Optimizer):
    """LARS: momentum SGD with a per-tensor trust ratio (You et al. 2017), as optax.lars.

    Each step, for gradient g and parameter θ, in optax.lars's order of
    operations (add_decayed_weights, scale_by_trust_ratio, the learning rate,
    trace)::

        u ← g + λ·θ
        r ← η·‖θ‖ / (‖u‖ + ε),  or 1 when either norm is 0
        u ← −γ·(u·r)
        b ← u + μ·b
        θ ← θ + b    (Nesterov: θ + u + μ·b)

    The norms are per parameter array, summed in a fixed order (the same for
    any thread count and SIMD path). optax's ``weight_decay_mask`` is a param
    group with ``weight_decay=0``; its ``trust_ratio_mask`` is always on.
    """

    def __init__(self, params: Params, lr: float = 1.0, momentum: float = 0.9,
                 weight_decay: float = 0.0, trust_coefficient: float = 0.001, eps: float = 0.0,
                 nesterov: bool = False, *, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient, eps=eps,
                                      nesterov=nesterov),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


def schedule_free_group(group: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    """One step's group arithmetic of the schedulefree package, in double (its
    formulas and order): the group keys after the step (``k``,
    ``scheduled_lr``, ``lr_max``, ``weight_sum``) and the step's averaging
    weight ckp1."""
    k, warmup_steps = group["k"], group["warmup_steps"]
    sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
    lr = group["lr"] * sched
    lr_max = max(lr, group["lr_max"])
    try:
        weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
    except OverflowError:  # before any array is written
        raise ValueError(f"Schedule-Free's averaging weight (k + 1)**r * lr_max**weight_lr_power "
                         f"overflows float64 at k={k}, r={group['r']!r}, "
                         f"weight_lr_power={group['weight_lr_power']!r}") from None
    weight_sum = group["weight_sum"] + weight
    try:
        ckp1 = weight / weight_sum
    except ZeroDivisionError:  # lr = 0 with weight_lr_power > 0, as the package
        ckp1 = 0
    return {"k": k + 1, "scheduled_lr": lr, "lr_max": lr_max, "weight_sum": weight_sum}, ckp1


def _lerp_(param, end, weight):
    """param ← torch.lerp(param, end, weight) in place, in param's dtype (the
    weight rounded to it, torch's two forms). Only basic IEEE operations, one
    at a time, so any machine and SIMD path gives the same bits. A 16-bit
    parameter is moved in float32 (the dtype it is computed in, as torch's
    lerp_ computes in float) and rounded once."""
    if param.dtype.itemsize == 2:
        wide = param.astype(np.float32)
        _lerp_(wide, end, weight)
        param[...] = wide.astype(param.dtype)
        return
    w = param.dtype.type(weight)
    d = np.subtract(end, param)
    if abs(w) < 0.5:
        d *= w
        param += d
    else:
        d *= param.dtype.type(1) - w
        np.subtract(end, d, out=param)


class _ScheduleFree(Optimizer):
    """What ScheduleFreeAdamW and ScheduleFreeSGD share: the group state the
    package keeps (k, lr_max, weight_sum, scheduled_lr, train_mode) and the
    train()/eval() switch of the parameters between y and the average x."""

    _interp = "betas"  # the group key of the interpolation factor (its first number)

    def _beta(self, group):
        return group[self._interp][0] if self._interp == "betas" else group[self._interp]

    def _step_groups(self, hypers):
        if not hypers or not hypers[0]["train_mode"]:
            raise RuntimeError("Optimizer was not in train mode when step is called. Please "
                               "insert .train() and .eval() calls on the optimizer. See "
                               "documentation for details.")
        out = []
        for hyper in hypers:
            after, ckp1 = schedule_free_group(hyper)
            # the C core reads the warmed-up lr, the count after the step and ckp1
            out.append({**hyper, **after, "lr": after["scheduled_lr"], "ckp1": ckp1})
        return out

    def _stepped(self, hypers):
        for group, hyper in zip(self.param_groups, hypers):
            for key in ("k", "scheduled_lr", "lr_max", "weight_sum"):
                group[key] = hyper[key]

    def train(self) -> None:
        """Move every parameter to y, the point the gradients are taken at (as the package)."""
        self._switch(True)

    def eval(self) -> None:
        """Move every parameter to x, the average, to evaluate or save (as the package)."""
        self._switch(False)

    def _switch(self, train):
        with self._lock:
            hypers = self._snapshot()  # every group checked (β > 0) before any array moves
            started = self._engine.counters()[1]
            for gi, (group, hyper) in enumerate(zip(self.param_groups, hypers)):
                if bool(hyper["train_mode"]) == train:
                    continue
                beta = self._beta(hyper)
                weight = 1 - beta if train else 1 - 1 / beta
                for i in range(len(self._params)):
                    z = self._states[i][0]
                    # the package moves the parameters that have a z (a first step done)
                    if self._group_of[i] == gi and z is not None and started[i]:
                        master = _master_of(self._states[i])
                        if master is None:
                            _lerp_(self._params[i], z, weight)
                        else:  # the master moves; the parameter gets its rounding
                            _lerp_(master, z, weight)
                            self._params[i][...] = master.astype(self._params[i].dtype)
                group["train_mode"] = train


class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-Free AdamW (Defazio et al. 2024), as the schedulefree package's AdamWScheduleFree.

    No learning-rate schedule: the parameter holds y, an interpolation
    between the base sequence z and the average x of the z's, and
    ``eval()`` moves it to x (``train()`` back to y). Step k (1 for the
    first), for gradient g at y, in the package's order of operations::

        γₖ = γ·min(1, k / warmup_steps),  γmax = max(γmax, γₖ)
        wₖ = kʳ·γmaxᵖ,  W ← W + wₖ,  cₖ = wₖ / W          (p = weight_lr_power)
        v ← β₂·v + (1 − β₂)·g²
        u ← g / (√(v / (1 − β₂ᵏ)) + ε) + λ·y
        y ← lerp(y, z, cₖ) + γₖ·(β₁·(1 − cₖ) − 1)·u
        z ← z − γₖ·u

    The group keys ``k``, ``lr_max`` (γmax), ``weight_sum`` (W),
    ``scheduled_lr`` and ``train_mode`` are the package's, updated by each
    step (the scalars in double, in Python; the elementwise update in one C
    pass). Call ``train()`` before the first step (a step in eval mode
    raises, as in the package) and ``eval()`` before evaluating or saving.
    """

    def __init__(self, params: Params, lr: float = 0.0025,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, *, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=_pair(betas), eps=eps, r=r, k=0,
                                      warmup_steps=warmup_steps, train_mode=False,
                                      weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0,
                                      weight_lr_power=weight_lr_power,
                                      weight_decay=weight_decay),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-Free SGD (Defazio et al. 2024), as the schedulefree package's SGDScheduleFree.

    As ``ScheduleFreeAdamW`` (the same group state, warmup, averaging
    weights and train()/eval() switch) with the gradient itself as the
    update, μ = ``momentum``::

        u ← g + λ·y
        y ← lerp(y, z, cₖ) + γₖ·(μ·(1 − cₖ) − 1)·u
        z ← z − γₖ·u
    """

    _interp = "momentum"

    def __init__(self, params: Params, lr: float = 1.0, momentum: float = 0.9,
                 weight_decay: float = 0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, *, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, r=r, k=0,
                                      warmup_steps=warmup_steps, train_mode=False,
                                      weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0,
                                      weight_lr_power=weight_lr_power,
                                      weight_decay=weight_decay),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Muon(Optimizer):
    """Muon: momentum orthogonalised by a Newton-Schulz iteration (torch.optim.Muon).

    For 2-D parameters only (a ValueError names any other). Each step, for
    gradient g and parameter θ of shape (A, B), in torch's order::

        b ← lerp(b, g, 1 − μ)
        u ← lerp(g, b, μ)    (Nesterov; else u = b)
        O ← NSₖ(u / max(‖u‖_F, ε))   (transposed while A > B)
        θ ← θ·(1 − γ·λ)
        θ ← θ − γ·r·O,   r = √max(1, A/B), or 0.2·√max(A, B) ("match_rms_adamw")

    with NS one step X ← a·X + (b·XXᵀ + c·(XXᵀ)²)·X of the coefficients
    (a, b, c). The step is two passes of the C core around the iteration: the
    first updates b and writes u to a buffer of the step's own, NumPy runs the
    k iterations on it in float32 (BLAS matmul; torch runs them in bfloat16),
    and the second applies the weight decay and the update. Every
    hyperparameter is checked before the first pass writes anything.
    """

    def __init__(self, params: Params, lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
                 eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None, *,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      nesterov=nesterov, ns_coefficients=_pair(ns_coefficients),
                                      eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class LBFGS:
    """L-BFGS (torch.optim.LBFGS), over one flat vector of all the parameters.

    Not an elementwise optimizer: each ``step(closure)`` runs up to
    ``max_iter`` iterations, each a direction d = −H·g from the two-loop
    recursion over the last ``history_size`` pairs (s, y) (H₀ = yᵀs / yᵀy)
    and a move θ ← θ + t·d, with t = min(1, 1/‖g‖₁)·γ at the very first
    iteration and γ after, or the strong Wolfe line search's t
    (``line_search_fn="strong_wolfe"``), in torch's order and with torch's
    tolerance checks. One parameter group, as torch; parameters float32 or
    float64, all of one dtype. The dot products, sums, axpys and the
    parameter update run in C with sums in a fixed order: the same bits for
    any thread count and SIMD path.

    ``closure()`` evaluates the model at the current parameters (the arrays
    passed, updated in place) and returns ``(loss, grads)``: a real number and
    one gradient per parameter, of its shape and dtype. ``step`` returns the
    first loss. When the closure raises, or returns a wrong gradient or a
    non-finite loss or gradient, the parameters are put back as they were
    before the step and the state is unchanged; the error propagates.

    The state is torch's, in ``state[0]`` (the first parameter's, as torch):
    ``func_evals``, ``n_iter``, ``d``, ``t``, ``old_dirs``, ``old_stps``,
    ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss`` (and ``al``, the
    recursion's workspace, from the second iteration).

    Parameters
    ----------
    params : list of arrays
        The parameters (float32 or float64, one dtype), updated in place; or
        a list of one group dict.
    """

    __doc__ = __doc__.rstrip(" ") + _docs.LBFGS_PARAMETERS  # its hyperparameters, written once

    def __init__(self, params: Params, lr: float = 1, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        if isinstance(params, (np.ndarray, Mapping)) or not hasattr(params, "__iter__"):
            raise TypeError(f"params must be a list of arrays, got {type(params).__name__}")
        params = list(params)
        if params and isinstance(params[0], Mapping):
            if len(params) != 1:
                raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
            group = dict(params[0])
            params = list(_core.params_tuple(group.pop("params", ())))
        else:
            group = {}
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        self.defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                             tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                             history_size=history_size, line_search_fn=line_search_fn)
        group = {**self.defaults, **group}
        _lbfgs.hypers(group)
        arrays = [_core.as_param(a, _core.describe(i), half=False) for i, a in enumerate(params)]
        _lbfgs.check_params(arrays)
        _core.check_disjoint(arrays, [_core.describe(i) for i in range(len(arrays))])
        group["params"] = arrays
        self._arrays = tuple(arrays)  # the arrays the state is laid over
        self.param_groups = [group]
        self.state: dict[int, dict[str, Any]] = {0: {}}
        self._lock = threading.RLock()

    def step(self, closure: Any) -> float:
        """Run one L-BFGS step (up to max_iter iterations); returns the first loss.

        Parameters
        ----------
        closure : callable
            ``closure()`` returns ``(loss, grads)`` at the current parameters.
        """
        with self._lock:
            if len(self.param_groups) != 1:
                raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
            group = dict(self.param_groups[0])
            params = list(group["params"])
            if len(params) != len(self._arrays) or any(p is not a for p, a in zip(params, self._arrays)):
                raise ValueError("LBFGS: the group's parameters were replaced; make a new optimizer")

            def evaluate(count):
                out = closure()
                if not isinstance(out, tuple) or len(out) != 2:
                    raise TypeError("LBFGS: closure() must return (loss, grads), got "
                                    f"{type(out).__name__}")
                loss, grads = out
                loss = _lbfgs.checked_loss(loss, count)
                grads = _core.params_tuple(grads)
                if len(grads) != len(params):
                    raise ValueError(f"LBFGS: the closure returned {len(grads)} gradients for "
                                     f"{len(params)} parameters")
                flat = []
                for i, (g, p) in enumerate(zip(grads, params)):
                    g = np.asarray(g)
                    if g.dtype != p.dtype:
                        raise TypeError(f"LBFGS: gradient {i} has dtype {g.dtype}, its parameter "
                                        f"{p.dtype}")
                    if g.shape != p.shape:
                        raise ValueError(f"LBFGS: gradient {i} has shape {g.shape}, its "
                                         f"parameter {p.shape}")
                    flat.append(g.ravel())
                return loss, loss, _lbfgs.checked_grad(np.concatenate(flat), count)

            loss, self.state[0] = _lbfgs.step(params, evaluate, self.state[0], group)
            return loss

    def state_dict(self) -> StateDict:
        """torch's layout: {"state": {0: copies of the state}, "param_groups": [...]}."""
        with self._lock:
            group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
            group["params"] = list(range(len(self.param_groups[0]["params"])))
            return {"state": {0: _copy_state(self.state[0])} if self.state[0] else {},
                    "param_groups": [group]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (copies; every array checked first).

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` returned.
        """
        with self._lock:
            groups = state_dict["param_groups"]
            if len(groups) != 1 or len(groups[0]["params"]) != len(self.param_groups[0]["params"]):
                raise ValueError("loaded state dict has a different number of parameters or groups")
            params = self.param_groups[0]["params"]
            group = {**{k: v for k, v in groups[0].items() if k != "params"}, "params": params}
            _lbfgs.hypers(group)
            saved = dict(state_dict["state"].get(0, state_dict["state"].get("0", {})))
            n = sum(p.size for p in params)
            for key in ("d", "prev_flat_grad"):
                if saved.get(key) is not None:
                    saved[key] = _flat_state(saved[key], params[0].dtype, n, key)
            for key in ("old_dirs", "old_stps"):
                if saved.get(key) is not None:
                    saved[key] = [_flat_state(v, params[0].dtype, n, key) for v in saved[key]]
            self.state[0] = _copy_state(saved)
            self.param_groups[0] = group

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("] + [
            f"    {k}: {v}" for k, v in self.param_groups[0].items() if k != "params"] + [")"]
        return "\n".join(lines)


def _copy_state(state):
    return {k: ([x.copy() if isinstance(x, np.ndarray) else x for x in v] if isinstance(v, list)
                else v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def _flat_state(value, dtype, n, key):
    a = np.asarray(value)
    if a.shape != (n,) or a.dtype != dtype:
        raise ValueError(f"loaded state {key!r} must be a flat {dtype} array of {n} elements, "
                         f"got {a.dtype} of shape {a.shape}")
    return a


class SparseAdam(Optimizer):
    """SparseAdam: Adam on the rows a row-sparse gradient holds (torch.optim.SparseAdam).

    For embedding tables: each gradient is a ``fastopt.RowSparse(indices,
    values)`` (repeated rows summed, as torch's ``coalesce()`` does), or a
    dense array, which counts as every row present (torch's class refuses
    dense gradients; this one steps them as Adam-like rows, with the formula
    below). Rows not present keep their parameter and moments as they are.
    Step t (1 for the first), for each row present, with gradient g (± with
    ``maximize``), in torch's order::

        dm ← (g − m)·(1 − β₁),   dv ← (g² − v)·(1 − β₂)
        m ← m + dm,   v ← v + dv
        θ ← θ − γ·√(1 − β₂ᵗ) / (1 − β₁ᵗ) · m / (√v + ε)

    A gradient without rows (an empty RowSparse) changes nothing but the
    step count, as torch. One C pass over the rows present, cut into pieces
    by element, so results depend on neither the thread count nor the SIMD
    path.
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, *,
                 maximize: bool = False, skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, betas=_pair(betas), eps=eps, maximize=maximize),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)


class Adafactor(Optimizer):
    """Adafactor: factored second moments, relative step sizes (torch.optim.Adafactor).

    Step t (1 for the first), for gradient g (−∇ with ``maximize``) and
    parameter θ, in torch's order; a parameter of two or more dimensions
    keeps the row factor R (``row_var``, shape θ.shape[:-1] + (1,)) and the
    column factor C (``col_var``, θ.shape[:-2] + (1, θ.shape[-1])) of its
    last two axes, batched over the leading ones; a 0-d or 1-d one keeps
    ``variance`` V, of its shape::

        β̂ = tᵗᵃᵘ,   ρ = min(γ, 1/√t),   α = max(ε₂, RMS(θ))·ρ
        θ ← θ·(1 − γ·λ)
        R ← lerp(R, mean(g², axis −1), β̂),   C ← lerp(C, mean(g², axis −2), β̂)
        V̂ = R·C / max(mean(R, axis −2), ε₁)      (else V ← lerp(V, g², β̂), V̂ = V)
        u = g / √max(V̂, ε₁²)
        θ ← θ − α / max(1, RMS(u)/d)·u

    ε₁ None is the machine epsilon of θ's dtype. The C core makes three passes
    over each parameter (the sums of θ², of the rows and columns of g²; the
    sum of u²; the update), each cut into bands of whole rows whose sums are
    combined in order: the same bits for any thread count or SIMD path.
    """

    def __init__(self, params: Params, lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0,
                 weight_decay: float = 0.0, *, maximize: bool = False,
                 skip_nonfinite: bool = False,
                 master_weights: bool = False, rounding: str = "nearest", seed: int = 0,
                 state_dtype: Any = None) -> None:
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=_pair(eps), d=d,
                                      weight_decay=weight_decay, maximize=maximize),
                         skip_nonfinite=skip_nonfinite,
                         master_weights=master_weights, rounding=rounding, seed=seed,
                         state_dtype=state_dtype)

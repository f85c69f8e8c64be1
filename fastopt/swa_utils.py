"""Stochastic Weight Averaging helpers (torch.optim.swa_utils), for fastopt.

:class:`SWALR` anneals each group's learning rate to a fixed ``swa_lr`` over
``anneal_epochs`` epochs and then holds it there, as torch's
``torch.optim.swa_utils.SWALR`` does, with torch's arguments and state dict.
It is a scheduler like those of :mod:`fastopt.lr_scheduler` and drives
fastopt optimizers, torch optimizers or anything with torch-style
``param_groups``. :class:`AveragedParams` keeps the running average of the
parameters that ``torch.optim.swa_utils.AveragedModel`` keeps of a model's
(the equal-weight SWA mean, or an exponential moving average), and
:func:`ema_` is its exponential moving average step on arrays you hold::

    opt = fastopt.SGD(params, lr=0.1, momentum=0.9)
    sched = fastopt.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    swa_sched = fastopt.swa_utils.SWALR(opt, swa_lr=0.05, anneal_epochs=5)
    swa_params = fastopt.swa_utils.AveragedParams(params)
    for epoch in range(150):
        train(opt)
        if epoch >= 100:
            swa_params.update_parameters(params)
            swa_sched.step()
        else:
            sched.step()
    # swa_params.averaged: the mean of the parameters of epochs 100 to 149

The averages are updated in one pass in C over all arrays, on fastopt's
thread pool and SIMD path, with torch's numbers bit for bit (float32 and
float64, on every SIMD path).

Thread-safety: as for :mod:`fastopt.lr_scheduler`; an :class:`AveragedParams`
updates, saves and loads under a lock of its own, so calls from several
threads run one at a time.
"""
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _average
from ._typing import Array, HasParamGroups, StateDict
from ._validate import as_int, is_int
from .lr_scheduler import LRScheduler, _check_optimizer, _format_param

__all__ = ["SWALR", "AveragedParams", "ema_"]


class SWALR(LRScheduler):
    """Anneal each group's learning rate to ``swa_lr``, then keep it there.

    At the t-th call of ``step`` (construction is the 0th), with
    α_t = a(min(1, t / max(1, T))) for T = ``anneal_epochs`` and
    a(x) = (1 − cos(π·x)) / 2 ("cos") or x ("linear"), the learning rate is::

        lr(t) = α_t · swa_lr + (1 − α_t) · lr_start

    where lr_start is the learning rate the group had when the annealing began
    (recovered from the current one at every step, as torch does, so another
    scheduler may have set it). With ``anneal_epochs=0`` the learning rate is
    ``swa_lr`` from the first step on.

    Parameters
    ----------
    optimizer : optimizer
        Any object with torch-style ``param_groups`` (fastopt, torch or other).
    swa_lr : float or list of float
        The target learning rate, for all groups or one per group (stored
        as ``group["swa_lr"]``).
    anneal_epochs : int, default 10
        Epochs of the annealing, >= 0.
    anneal_strategy : {"cos", "linear"}, default "cos"
        The shape a(x) of the annealing.
    last_epoch : int, default -1
        Index of the last epoch: -1 starts a new schedule; another value
        resumes one and needs ``initial_lr`` in every group.

    Examples
    --------
    >>> class Opt:  # any object with torch-style param_groups
    ...     param_groups = [{"lr": 1.0}]
    >>> opt = Opt()
    >>> sched = SWALR(opt, swa_lr=0.5, anneal_epochs=2, anneal_strategy="linear")
    >>> [opt.param_groups[0]["lr"]] + [sched.step() or opt.param_groups[0]["lr"] for _ in range(3)]
    [1.0, 0.75, 0.5, 0.5]
    """

    _not_state = ("optimizer", "anneal_func")

    def __init__(self, optimizer: HasParamGroups, swa_lr: float | Sequence[float],
                 anneal_epochs: int = 10, anneal_strategy: str = "cos",
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        swa_lrs = _format_param("swa_lr", optimizer, swa_lr)
        for lr, group in zip(swa_lrs, optimizer.param_groups, strict=True):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("anneal_strategy must be one of 'cos' or 'linear', "
                             f"instead got {anneal_strategy}")
        self._set_anneal_func(anneal_strategy)
        if not is_int(anneal_epochs, 0):
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t):
        return t

    @staticmethod
    def _cosine_anneal(t):
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr, swa_lr, alpha):
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, anneal_strategy):
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def get_lr(self) -> list[float]:
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_alpha = self.anneal_func(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
        alpha = self.anneal_func(max(0, min(1, step / max(1, self.anneal_epochs))))
        groups = self.optimizer.param_groups
        return [group["swa_lr"] * alpha
                + self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha) * (1 - alpha)
                for group in groups]

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (torch's or fastopt's).

        Parameters
        ----------
        state_dict : dict
            A dict that ``state_dict()`` returned.
        """
        super().load_state_dict(state_dict)
        self._set_anneal_func(self._anneal_strategy)


def ema_(averaged: Any, params: Any, decay: float = 0.999, *, isa: str | None = None) -> None:
    """Exponential moving average of parameters, in place: for each pair::

        averaged = decay * averaged + (1 - decay) * param

    in that order of operations, in the arrays' dtype, with ``decay`` and
    ``1 - decay`` (computed in double) each rounded to it once: the numbers
    of torch's ``torch.optim.swa_utils.get_ema_avg_fn(decay)``, bit for bit
    (float32 and float64, on every SIMD path). torch's
    ``get_ema_multi_avg_fn`` computes the same average through
    ``torch._foreach_lerp_`` (a fused multiply-add on AVX2 CPUs), so its
    results differ from these by a rounding or so.

    All arrays are checked before any is written, then updated in one pass
    in C on fastopt's thread pool.

    Parameters
    ----------
    averaged : array or sequence of arrays
        The averages, updated in place: writeable, C-contiguous float32 or
        float64 NumPy arrays (or CPU torch tensors, through their NumPy view).
    params : array or sequence of arrays
        The current parameters, one per average, each of its average's dtype
        and shape, C-contiguous; no array may share memory with another.
    decay : float, default 0.999
        Weight of the old average, in [0, 1] (torch's default).
    isa : str or None, default None
        Force a SIMD path by name (tests and benchmarks); None uses the one
        in use.

    Raises
    ------
    TypeError
        An array of another dtype, or something that is not an array.
    ValueError
        ``decay`` outside [0, 1], differing counts or shapes, a
        non-contiguous or read-only average, arrays sharing memory.

    Examples
    --------
    >>> import numpy as np
    >>> avg, w = np.zeros(3), np.ones(3)
    >>> ema_([avg], [w], decay=0.75)
    >>> avg
    array([0.25, 0.25, 0.25])
    """
    _average.ema_(averaged, params, decay, isa=isa)


class AveragedParams:
    """Running average of parameters: torch's ``AveragedModel`` for arrays.

    It holds a copy of each parameter and a count ``n_averaged`` (0 at the
    start). ``update_parameters(params)`` copies ``params`` into the averages
    when ``n_averaged`` is 0, as torch does; after that it updates each
    average ``avg`` with the parameter ``p``::

        decay=None:  avg = avg + (p - avg) / (n_averaged + 1)        (SWA)
        else:        avg = decay * avg + (1 - decay) * p             (EMA)

    and then adds 1 to ``n_averaged``. With ``decay=None`` the averages are
    the equal-weight mean of every set of parameters passed (the numbers of
    ``AveragedModel(model)`` on the CPU, where torch uses
    ``get_swa_avg_fn``); with a decay, the numbers of
    ``AveragedModel(model, avg_fn=get_ema_avg_fn(decay))`` (see
    :func:`ema_`). Both bit for bit, float32 and float64, on every SIMD path.
    torch's ``avg_fn``/``multi_avg_fn`` choice is this ``decay`` argument;
    there are no buffers (``use_buffers``) to average.

    Parameters
    ----------
    params : array or iterable of arrays
        The parameters to average: float32 or float64 NumPy arrays, C-contiguous
        (or CPU torch tensors); each is copied, and ``update_parameters``
        takes arrays of the same dtypes and shapes, in the same order.
    decay : float or None, default None
        None for the SWA equal-weight mean; else the EMA decay, in [0, 1].

    Attributes
    ----------
    averaged : list of ndarray
        The averages, one per parameter (fastopt's own C-contiguous copies).
    n_averaged : int
        How many sets of parameters have been averaged.

    Examples
    --------
    >>> import numpy as np
    >>> swa = AveragedParams([np.zeros(2)])
    >>> for value in (1.0, 2.0, 6.0):
    ...     swa.update_parameters([np.full(2, value)])
    >>> swa.averaged[0], swa.n_averaged
    (array([3., 3.]), 3)
    """

    def __init__(self, params: Array | Iterable[Any], decay: float | None = None) -> None:
        self.decay = None if decay is None else _average.check_decay(decay)
        arrays = _average.as_arrays(params, "parameter")
        for i, a in enumerate(arrays):
            if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64) \
                    or not a.dtype.isnative:
                kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
                raise TypeError(f"parameter {i} must be a float32 or float64 array, got {kind}")
        self.averaged: list[Array] = [np.array(a, order="C") for a in arrays]
        _average.checked_pairs(self.averaged, arrays)
        self.n_averaged = 0
        self._lock = threading.Lock()

    def update_parameters(self, params: Array | Iterable[Any]) -> None:
        """Average in the current parameters (the first call copies them).

        Every array is checked before any average changes.

        Parameters
        ----------
        params : array or iterable of arrays
            The current parameters, in the order, dtypes and shapes of the
            constructor's: C-contiguous float32 or float64 arrays (or CPU
            torch tensors), none sharing memory with ``averaged``.
        """
        params = _average.as_arrays(params, "parameter")
        with self._lock:
            if self.n_averaged == 0:
                avgs, ps = _average.checked_pairs(self.averaged, params)
                for a, p in zip(avgs, ps):
                    np.copyto(a, p)
            elif self.decay is None:
                _average.swa_(self.averaged, params, self.n_averaged)
            else:
                _average.ema_(self.averaged, params, self.decay)
            self.n_averaged += 1

    def state_dict(self) -> StateDict:
        """The state: ``{"averaged": [copies of the averages], "n_averaged": int,
        "decay": float or None}``, for :func:`fastopt.save`."""
        with self._lock:
            return {"averaged": [a.copy() for a in self.averaged],
                    "n_averaged": self.n_averaged, "decay": self.decay}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (as :func:`fastopt.load` reads it).

        The whole dict is checked first (keys, decay, count, dtypes and
        shapes of the averages); on a problem a TypeError or ValueError is
        raised and nothing changes.

        Parameters
        ----------
        state_dict : dict
            A dict that ``state_dict()`` of an ``AveragedParams`` of the same
            parameters and decay returned.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        missing = {"averaged", "n_averaged", "decay"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict lacks {sorted(missing)}")
        decay = state_dict["decay"]
        if (decay is None) != (self.decay is None) or (decay is not None and decay != self.decay):
            raise ValueError(f"state_dict has decay {decay}, this AveragedParams {self.decay}")
        n = as_int(state_dict["n_averaged"], "n_averaged", 0)
        saved = state_dict["averaged"]
        if isinstance(saved, (str, bytes, Mapping)) or not isinstance(saved, Sequence):
            raise TypeError(f"averaged must be a list of arrays, got {type(saved).__name__}")
        with self._lock:
            if len(saved) != len(self.averaged):
                raise ValueError(f"state_dict has {len(saved)} averages, this AveragedParams "
                                 f"{len(self.averaged)}")
            arrays = [np.asarray(a) for a in saved]
            for i, (a, avg) in enumerate(zip(arrays, self.averaged)):
                if a.dtype != avg.dtype:
                    raise TypeError(f"averaged {i} has dtype {a.dtype}, expected {avg.dtype}")
                if a.shape != avg.shape:
                    raise ValueError(f"averaged {i} has shape {a.shape}, expected {avg.shape}")
            for a, avg in zip(arrays, self.averaged):
                np.copyto(avg, a)
            self.n_averaged = n

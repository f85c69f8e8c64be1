"""Stochastic Weight Averaging helpers (torch.optim.swa_utils), for fastopt.

:class:`SWALR` anneals each group's learning rate to a fixed ``swa_lr`` over
``anneal_epochs`` epochs and then holds it there, as torch's
``torch.optim.swa_utils.SWALR`` does, with torch's arguments and state dict.
It is a scheduler like those of :mod:`fastopt.lr_scheduler` and drives
fastopt optimizers, torch optimizers or anything with torch-style
``param_groups``::

    opt = fastopt.SGD(params, lr=0.1, momentum=0.9)
    sched = fastopt.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    swa_sched = fastopt.swa_utils.SWALR(opt, swa_lr=0.05, anneal_epochs=5)
    for epoch in range(150):
        train(opt)
        (swa_sched if epoch >= 100 else sched).step()

Thread-safety: as for :mod:`fastopt.lr_scheduler`.
"""
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ._typing import HasParamGroups
from ._validate import is_int
from .lr_scheduler import LRScheduler, _check_optimizer, _format_param

__all__ = ["SWALR"]


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

"""Plot every fastopt learning-rate schedule over 300 steps into one PNG.

    pip install "fastopt[plot]"
    python examples/plot_schedules.py [out.png]     # default docs/img/schedules.png

The top panels are the pure schedules of fastopt.schedules, each evaluated
over all 300 steps in one call into C. The others are the torch-style
schedulers of fastopt.lr_scheduler, stepped 300 times on a stand-in optimizer
(any object with torch-style ``param_groups`` will do).
"""
import sys
import types
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import ArrayLike  # noqa: E402

from fastopt import lr_scheduler as L  # noqa: E402
from fastopt import schedules as S  # noqa: E402

STEPS = np.arange(300)

SCHEDULES = {
    "FactorScheduler": S.FactorScheduler(factor=0.99, stop_factor_lr=0.01, base_lr=0.1),
    "MultiFactorScheduler": S.MultiFactorScheduler(step=[60, 150, 220], factor=0.5),
    "CosineScheduler": S.CosineScheduler(250, base_lr=0.1, final_lr=0.005, warmup_steps=30),
    "SquareRootScheduler": S.SquareRootScheduler(lr=0.1),
    "constant_schedule": S.constant_schedule(0.1),
    "linear_schedule": S.linear_schedule(0.1, 0.01, 200, transition_begin=50),
    "polynomial_schedule": S.polynomial_schedule(0.1, 0.001, 3.0, 250),
    "exponential_decay": S.exponential_decay(0.1, 25, 0.7, staircase=True, end_value=0.01),
    "cosine_decay_schedule": S.cosine_decay_schedule(0.1, 250, alpha=0.1),
    "warmup_cosine_decay_schedule": S.warmup_cosine_decay_schedule(0.0, 0.1, 40, 300),
    "piecewise_constant_schedule": S.piecewise_constant_schedule(0.1, {100: 0.3, 200: 0.3}),
    "join_schedules": S.join_schedules(
        [S.linear_schedule(0.0, 0.1, 30), S.cosine_restarts_schedule(0.1, 90)], [30]),
    "cosine_restarts_schedule": S.cosine_restarts_schedule(0.1, 20, T_mult=2, eta_min=0.005),
    "cyclic_schedule": S.cyclic_schedule(0.01, 0.1, 40, mode="triangular2"),
    "one_cycle_schedule": S.one_cycle_schedule(0.1, 300, three_phase=True),
}


def optimizer() -> types.SimpleNamespace:
    return types.SimpleNamespace(param_groups=[{"lr": 0.1, "momentum": 0.9}],
                                 defaults={"lr": 0.1, "momentum": 0.9})


SCHEDULERS: dict[str, Callable[[types.SimpleNamespace], L.LRScheduler]] = {
    "LambdaLR": lambda o: L.LambdaLR(o, lambda t: 1 / (1 + 0.02 * t)),
    "MultiplicativeLR": lambda o: L.MultiplicativeLR(o, lambda t: 0.99),
    "StepLR": lambda o: L.StepLR(o, step_size=50, gamma=0.5),
    "MultiStepLR": lambda o: L.MultiStepLR(o, milestones=[80, 160, 240], gamma=0.4),
    "ConstantLR": lambda o: L.ConstantLR(o, factor=0.3, total_iters=100),
    "LinearLR": lambda o: L.LinearLR(o, start_factor=0.1, total_iters=150),
    "ExponentialLR": lambda o: L.ExponentialLR(o, gamma=0.99),
    "PolynomialLR": lambda o: L.PolynomialLR(o, total_iters=250, power=2.0),
    "CosineAnnealingLR": lambda o: L.CosineAnnealingLR(o, T_max=100, eta_min=0.01),
    "CosineAnnealingWarmRestarts": lambda o: L.CosineAnnealingWarmRestarts(o, T_0=30, T_mult=2),
    "CyclicLR": lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=25, mode="exp_range",
                                     gamma=0.995),
    "OneCycleLR": lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=300),
    "SequentialLR": lambda o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.05, total_iters=40),
            L.CosineAnnealingLR(o, T_max=260)], milestones=[40]),
    "ChainedScheduler": lambda o: L.ChainedScheduler(
        [L.ConstantLR(o, factor=0.5, total_iters=60), L.ExponentialLR(o, gamma=0.99)]),
    "ScheduleLR": lambda o: L.ScheduleLR(o, SCHEDULES["warmup_cosine_decay_schedule"]),
}


def run(build: Callable[[types.SimpleNamespace], L.LRScheduler]) -> list[float]:
    opt = optimizer()
    sched = build(opt)
    lrs = []
    for _ in STEPS:
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    return lrs


def plateau() -> list[float]:
    """ReduceLROnPlateau on a loss that improves, then stalls."""
    opt = optimizer()
    sched = L.ReduceLROnPlateau(opt, factor=0.5, patience=15, cooldown=10)
    rng = np.random.default_rng(0)
    lrs = []
    for t in STEPS:
        lrs.append(opt.param_groups[0]["lr"])
        sched.step(1 / (1 + min(int(t), 120) / 10) + rng.normal(0, 1e-3))
    return lrs


def main(path: str = "docs/img/schedules.png") -> None:
    curves: list[tuple[str, ArrayLike, str]] = [
        (name, s(STEPS), "fastopt.schedules") for name, s in SCHEDULES.items()]
    curves += [(name, run(b), "fastopt.lr_scheduler") for name, b in SCHEDULERS.items()]
    curves.append(("ReduceLROnPlateau", plateau(), "fastopt.lr_scheduler"))
    cols = 6
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.1 * rows))
    for ax, (name, lr, family) in zip(axes.flat, curves):
        color = "tab:blue" if family == "fastopt.schedules" else "tab:orange"
        ax.plot(STEPS, lr, color=color, lw=1.4)
        ax.set_title(name, fontsize=8.5)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(curves):]:
        ax.axis("off")
    fig.suptitle("fastopt learning-rate schedules over 300 steps "
                 "(blue: fastopt.schedules, orange: fastopt.lr_scheduler)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])

"""Make the documentation's figures from real runs: ``python docs/make_figures.py``.

``docs/img/demo.png``: what ``python -m fastopt demo`` draws (six optimizers
training a NumPy MLP on scikit-learn's digits).

``docs/img/weight_decay.png``: L2 regularisation inside Adam
(``fastopt.Adam(weight_decay=wd)``) against decoupled weight decay
(``fastopt.AdamW(weight_decay=wd)``) at the same ``wd``, training the
demo's NumPy MLP on scikit-learn's digits.

``docs/img/compare_digits.png``, ``docs/img/compare_regression.png``: every
optimizer of ``fastopt/_spec.py`` (so a new one joins by itself) on the
digits MLP and on a small MLP regression (a fixed synthetic data set), each
at the lr of a fixed grid with the lowest mean training loss; with the tables that
``docs/compare.md`` includes, ``docs/img/compare_*.md``.

``--only NAME`` makes one of them. Needs the docs extra (scikit-learn,
matplotlib). Deterministic: the same seeds every run (the step times aside).
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

# The models are small: a multi-threaded BLAS only adds contention (several
# times slower on two cores), and the figures' numbers are the same either way.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402  (after the BLAS setting, which it reads at import)

try:
    import fastopt
except ImportError:  # run from a source tree with the extension built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fastopt
from fastopt import demo
from fastopt._spec import SPECS

HERE = os.path.dirname(os.path.abspath(__file__))
DECAYS = [0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
EPOCHS = 30
LR = 3e-3
BATCH = 64


def train_epochs(opt, params, loss_and_grads, data, epochs, batch=BATCH, seed=0,
                 step_seconds=None):
    """Yield the mean training loss of each epoch, over the batches of ``demo.train``.

    The batch order depends on `seed` alone, so every run with the same seed sees
    the same batches. The wall time of each ``opt.step`` is appended to
    `step_seconds` when given.
    """
    rng = np.random.default_rng(seed + 1)
    n = len(data.y_train)
    for _ in range(epochs):
        order = rng.permutation(n)
        batch_losses = []
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            loss, grads = loss_and_grads(params, data.x_train[idx], data.y_train[idx])
            start = time.perf_counter()
            opt.step(grads)
            if step_seconds is not None:
                step_seconds.append(time.perf_counter() - start)
            batch_losses.append(loss)
        yield float(np.mean(batch_losses))


def run(data, cls, wd, epochs=EPOCHS, seed=0):
    """Train the MLP with a constant lr; per epoch: weight norm, train loss, test accuracy."""
    params = demo.init_mlp(seed=seed)
    opt = cls(params, lr=LR, weight_decay=wd)
    norms, losses, test_acc = [], [], []
    for loss in train_epochs(opt, params, demo.loss_and_grads, data, epochs, seed=seed):
        weights = np.concatenate([params[0].ravel(), params[2].ravel()])
        norms.append(float(np.linalg.norm(weights)))
        losses.append(loss)
        test_acc.append(demo.accuracy(params, data.x_test, data.y_test))
    return dict(norm=norms, loss=losses, test=test_acc, params=params)


def weight_decay_figure(path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = demo.load_digits_split()
    runs = {}
    for wd in DECAYS:
        runs["L2", wd] = run(data, fastopt.Adam, wd)
        runs["decoupled", wd] = run(data, fastopt.AdamW, wd)
        print(f"wd={wd:g}: Adam+L2 test {runs['L2', wd]['test'][-1]:.3f} "
              f"|W| {runs['L2', wd]['norm'][-1]:.2f};  AdamW test "
              f"{runs['decoupled', wd]['test'][-1]:.3f} |W| {runs['decoupled', wd]['norm'][-1]:.2f}")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    epochs = np.arange(1, EPOCHS + 1)
    shown = [1e-2, 1e-1, 1.0]
    for k, wd in enumerate(shown):
        axes[0].plot(epochs, runs["L2", wd]["norm"], color=f"C{k}", ls="--",
                     label=f"Adam, L2 wd={wd:g}")
        axes[0].plot(epochs, runs["decoupled", wd]["norm"], color=f"C{k}",
                     label=f"AdamW, wd={wd:g}")
    axes[0].plot(epochs, runs["L2", 0.0]["norm"], color="k", lw=1, label="no decay")
    axes[0].set(xlabel="epoch", ylabel="||W1, W2||", title="weight norm during training")
    axes[0].legend(fontsize="small")

    for kind, style in (("L2", "o--"), ("decoupled", "s-")):
        label = "Adam + L2 (weight_decay=wd)" if kind == "L2" else "AdamW (weight_decay=wd)"
        xs = [max(wd, 1e-4) for wd in DECAYS]
        axes[1].plot(xs, [runs[kind, wd]["test"][-1] for wd in DECAYS], style, label=label)
        axes[2].plot(xs, [runs[kind, wd]["loss"][-1] for wd in DECAYS], style, label=label)
    for ax, name in ((axes[1], "final test accuracy"), (axes[2], "final training loss")):
        ax.set_xscale("log")
        ax.set_xticks([max(wd, 1e-4) for wd in DECAYS], ["0"] + [f"{wd:g}" for wd in DECAYS[1:]])
        ax.set(xlabel="wd", ylabel=name, title=f"{name} after {EPOCHS} epochs")
        ax.legend(fontsize="small")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"NumPy MLP on digits, lr={LR:g} (constant), batch {BATCH}: "
                 "L2 inside Adam vs decoupled weight decay")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return runs


# --- Every optimizer compared: the rows of fastopt/_spec.py, on two tasks. ---

# The learning rates tried for every optimizer (half decades). The one kept has
# the lowest training loss averaged over the epochs (the area under the training
# curve): it rewards getting low fast and staying there. The last epoch's loss
# alone would favour the largest lr that does not diverge: on the digits that
# memorises the training set with huge weights (a loss of exactly 0) and
# generalises worse.
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass
class Task:
    """A training problem: data, model, loss, and the metric shown on the test split."""

    name: str               # names the files: compare_{name}.png and .md
    title: str
    data: object            # x_train, y_train, x_test, y_test
    init: Callable          # seed -> params
    loss_and_grads: Callable
    metric: str             # what `test` measures
    test: Callable          # (params, x, y) -> float
    higher_is_better: bool
    epochs: int
    batch: int


def make_regression(n_train=1600, n_test=400, n_features=10, noise=0.1, seed=0):
    """A fixed synthetic regression: y = sin(z·u) + (z·v)²/2 + noise, z ~ N(0, I).

    The model sees x = z times feature scales from 0.1 to 10, as unnormalised
    data often comes: a badly conditioned problem, where scaling each
    coordinate (what the adaptive optimizers do) matters. The target is
    standardised, so a test MSE of 1 is predicting the mean; the noise alone
    leaves about noise² / var(y).
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_train + n_test, n_features))
    u, v = rng.standard_normal((2, n_features)) / np.sqrt(n_features)
    y = np.sin(z @ u) + 0.5 * (z @ v) ** 2 + noise * rng.standard_normal(len(z))
    y = (y - y[:n_train].mean()) / y[:n_train].std()
    x = (z * np.logspace(-1, 1, n_features)).astype(np.float32)
    y = y.astype(np.float32)
    return SimpleNamespace(x_train=x[:n_train], y_train=y[:n_train],
                           x_test=x[n_train:], y_test=y[n_train:])


def mse_and_grads(params, x, y):
    """Mean squared error of the demo's MLP with one output, and its gradients [dW1, db1, dW2, db2]."""
    w1, b1, w2, b2 = params
    out, h = demo.forward(params, x)
    r = out[:, 0] - y
    d_out = (2.0 / len(y)) * r[:, None]      # d loss / d output
    dh = (d_out @ w2.T) * (h > 0)
    return (float(np.mean(r * r)),
            [x.T @ dh, dh.sum(axis=0), np.maximum(h, 0).T @ d_out, d_out.sum(axis=0)])


def mse(params, x, y):
    return float(np.mean((demo.forward(params, x)[0][:, 0] - y) ** 2))


def compare_tasks():
    return [
        Task("digits", "NumPy MLP (64-128-10) on scikit-learn's digits, cross-entropy",
             demo.load_digits_split(), lambda seed: demo.init_mlp(seed=seed),
             demo.loss_and_grads, "test accuracy", demo.accuracy, True, epochs=20, batch=BATCH),
        Task("regression", "NumPy MLP (10-32-1) on a synthetic regression, squared error",
             make_regression(), lambda seed: demo.init_mlp(10, 32, 1, seed=seed),
             mse_and_grads, "test MSE", mse, False, epochs=20, batch=32),
    ]


class _Split:
    """An optimizer for the parameters of one number of dimensions (Muon: the
    2-D weights) beside AdamW with its defaults for the others (the biases), as
    Muon is meant to be used; ``step(grads)`` takes the gradients of all."""

    def __init__(self, cls, ndim, params, lr):
        self.mine = [i for i, p in enumerate(params) if p.ndim == ndim]
        self.rest = [i for i, p in enumerate(params) if p.ndim != ndim]
        self.opts = [cls([params[i] for i in self.mine], lr=lr),
                     fastopt.AdamW([params[i] for i in self.rest])]

    def step(self, grads):
        for opt, idx in zip(self.opts, (self.mine, self.rest)):
            opt.step([grads[i] for i in idx])


def _optimizer(name, params, lr):
    """``fastopt.<name>(params, lr=lr)``; an optimizer of one number of
    dimensions only steps those, AdamW the others."""
    ndim = SPECS[name].ndim
    cls = getattr(fastopt, name)
    return _Split(cls, ndim, params, lr) if ndim is not None else cls(params, lr=lr)


def compare_run(task, name, lr, seed=0):
    """Train `task` with ``fastopt.<name>(params, lr=lr)``, its defaults otherwise.

    Returns the per-epoch training loss and test metric, and the time of each
    step; the run stops at the first epoch whose loss is not finite.
    """
    params = task.init(seed)
    opt = _optimizer(name, params, lr)
    # Schedule-free optimizers train and are evaluated at different points: train()/eval().
    modes = callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))
    if modes:
        opt.train()
    out = dict(loss=[], test=[], step_seconds=[])
    with np.errstate(all="ignore"):   # a diverging lr overflows; its loss shows it
        for loss in train_epochs(opt, params, task.loss_and_grads, task.data, task.epochs,
                                 batch=task.batch, seed=seed, step_seconds=out["step_seconds"]):
            if modes:
                opt.eval()
            out["loss"].append(loss)
            out["test"].append(task.test(params, task.data.x_test, task.data.y_test))
            if modes:
                opt.train()
            if not np.isfinite(loss):
                break
    return out


# Optimizers the loop could run but that are not meant for these models.
NOT_RUN = {"SparseAdam": "made for row-sparse gradients (embedding tables); these dense "
                         "gradients would step every row, as a variant of Adam"}


def compare(task, names):
    """Per optimizer: the grid's last-epoch losses, the lr chosen, that run's curves.

    An optimizer whose interface this loop does not fit (a TypeError or
    ValueError from its constructor or ``step(grads)``, such as one that
    takes a closure or only 2-D parameters) is reported as not run, with why.
    """
    results = {}
    for name in names:
        if name in NOT_RUN:
            results[name] = dict(skipped=NOT_RUN[name])
            print(f"{task.name}: {name} not run: {NOT_RUN[name]}")
            continue
        try:
            runs = {lr: compare_run(task, name, lr) for lr in LR_GRID}
        except (TypeError, ValueError) as e:
            results[name] = dict(skipped=f"{type(e).__name__}: {e}".replace("|", "\\|"))
            print(f"{task.name}: {name} not run: {e}")
            continue
        score = {lr: np.mean(r["loss"]) if len(r["loss"]) == task.epochs else np.inf
                 for lr, r in runs.items()}
        lr = min(LR_GRID, key=score.get)
        results[name] = dict(runs[lr], lr=lr, grid=score)
        print(f"{task.name}: {name:>10} lr={lr:<6g} train loss {runs[lr]['loss'][-1]:.4g}, "
              f"{task.metric} {runs[lr]['test'][-1]:.4g}")
    return results


def compare_table(task, results):
    """The results as markdown: a line saying how they were made, and one row per optimizer."""
    def fmt(lr):
        return f"{lr:g}" + (" (edge)" if lr in (LR_GRID[0], LR_GRID[-1]) else "")

    percent = task.higher_is_better
    lines = [f"{task.title}: {task.epochs} epochs, batches of {task.batch}, seed 0 (the same "
             "initial weights and batches for every optimizer). The lr is the one of "
             f"{', '.join(f'{lr:g}' for lr in LR_GRID)} with the lowest training loss "
             "averaged over the epochs (\"edge\": an end of that grid). Step time: the "
             "median over the chosen run's `opt.step` calls.",
             "",
             "| optimizer | state buffers | default lr | chosen lr | mean train loss "
             f"| train loss, last epoch | {task.metric}, last epoch | step time (µs) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        spec = SPECS[name]
        # Per parameter, with the defaults: what the optimizer costs in memory.
        buffers = sum(b.used(spec.defaults, (2, 2)) for b in spec.state)  # a matrix's
        head = f"{buffers} | {spec.defaults['lr']:g}"
        if "skipped" in r:
            lines.append(f"| {name} | {head} | not run: {r['skipped']} | | | | |")
            continue
        test = r["test"][-1]
        lines.append(f"| {name} | {head} | {fmt(r['lr'])} | {r['grid'][r['lr']]:.3g} | "
                     f"{r['loss'][-1]:.3g} | {f'{test:.1%}' if percent else f'{test:.3g}'} | "
                     f"{1e6 * np.median(r['step_seconds']):.0f} |")
    return "\n".join(lines) + "\n"


# Enough distinct looks for a couple of dozen curves: 20 colours, each with its own dash.
_DASHES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "D", "v", "x", "P"]


def compare_figure(task, results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    ran = {name: r for name, r in results.items() if "skipped" not in r}
    for k, (name, r) in enumerate(ran.items()):
        style = dict(color=plt.cm.tab20(k % 20), ls=_DASHES[k % len(_DASHES)],
                     marker=_MARKERS[k % len(_MARKERS)], ms=4,
                     markevery=(k % 4, max(1, task.epochs // 8)), label=f"{name} (lr={r['lr']:g})")
        epochs = np.arange(1, len(r["loss"]) + 1)
        axes[0].plot(epochs, r["loss"], **style)
        axes[1].plot(epochs, r["test"], **style)
    axes[0].set(xlabel="epoch", ylabel="training loss (mean over the epoch)", yscale="log",
                title="training loss")
    # Zoom on where the runs end (the last half of the epochs); slow starts leave the axis.
    late = [v for r in ran.values() for v in r["test"][len(r["test"]) // 2:]]
    if task.higher_is_better:
        axes[1].set_ylim(max(0.0, np.floor(100 * min(late) - 1) / 100),
                         min(1.0, np.ceil(100 * max(late) + 0.5) / 100))
        axes[1].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    else:
        axes[1].set_yscale("log")
        axes[1].set_ylim(min(late) / 1.3, max(late) * 1.3)
    axes[1].set(xlabel="epoch", ylabel=task.metric, title=f"{task.metric} (axis zoomed on the end)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    fig.suptitle(f"{task.title}: each optimizer at its best lr from the grid")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare_figures(out):
    """compare_{task}.png and the table docs/compare.md includes, compare_{task}.md, in `out`."""
    for task in compare_tasks():
        results = compare(task, list(SPECS))
        png, table = (os.path.join(out, f"compare_{task.name}{ext}") for ext in (".png", ".md"))
        compare_figure(task, results, png)
        with open(table, "w", encoding="utf-8") as f:
            f.write(compare_table(task, results))
        print(f"wrote {png} and {table}")


FIGURES = ("weight_decay", "demo", "compare")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "img"))
    ap.add_argument("--only", choices=FIGURES, action="append",
                    help="make only this figure (repeatable); default: all")
    args = ap.parse_args(argv)
    only = args.only or FIGURES
    os.makedirs(args.out, exist_ok=True)
    if "weight_decay" in only:
        path = os.path.join(args.out, "weight_decay.png")
        weight_decay_figure(path)
        print(f"wrote {path}")
    if "demo" in only:
        demo.run(png=os.path.join(args.out, "demo.png"), progress=False)
    if "compare" in only:
        compare_figures(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

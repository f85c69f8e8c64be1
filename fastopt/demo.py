"""``python -m fastopt demo``: six optimizers train an MLP on real data.

A two-layer perceptron written in NumPy (64 inputs, a ReLU hidden layer, 10
outputs, softmax cross-entropy) learns scikit-learn's bundled copy of the UCI
handwritten digits (1,797 8x8 images, shipped with scikit-learn, so nothing
is downloaded). Every optimizer starts from the same weights and sees the
same mini-batches in the same order; each has a learning-rate schedule from
:mod:`fastopt.lr_scheduler`, stepped once per mini-batch. The run prints a
table of final train/test accuracy and the time of one optimizer step (the
median over every step of the run, with its 10th-90th percentile spread) and
writes a PNG of
the training loss, test accuracy and learning rate per optimizer, in the
manner of the optimization chapter of *Dive into Deep Learning*.

Needs the ``demo`` extra: ``pip install "fastopt[demo]"`` (scikit-learn for
the data, tqdm for the progress bar, matplotlib for the figure).

The pieces are importable for use in your own scripts and tests::

    from fastopt import demo
    data = demo.load_digits_split()
    result = demo.train(data, "Adam", epochs=5)
    result.test_accuracy[-1]
"""
import argparse
import time
from dataclasses import dataclass, field

import numpy as np

from . import lr_scheduler, optim

__all__ = ["OPTIMIZERS", "Digits", "Result", "load_digits_split", "init_mlp", "train", "main"]

_NEEDS_EXTRA = 'this needs the demo extra: pip install "fastopt[demo]"'


@dataclass
class Digits:
    """The digits, split and scaled: float32 features in [0, 1] minus the train mean."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(test_fraction=0.2, seed=0):
    """scikit-learn's digits, as a stratified train/test split."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise ImportError(f"the demo's data set comes with scikit-learn; {_NEEDS_EXTRA}") from e
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    x_train, x_test = x_train / 16.0, x_test / 16.0
    mean = x_train.mean(axis=0)
    return Digits((x_train - mean).astype(np.float32), y_train.astype(np.int64),
                  (x_test - mean).astype(np.float32), y_test.astype(np.int64))


def init_mlp(n_in=64, n_hidden=128, n_out=10, seed=0):
    """He-initialised weights [W1, b1, W2, b2] as float32 arrays."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2.0 / n_in)).astype(np.float32),
        np.zeros(n_hidden, np.float32),
        (rng.standard_normal((n_hidden, n_out)) * np.sqrt(2.0 / n_hidden)).astype(np.float32),
        np.zeros(n_out, np.float32),
    ]


def forward(params, x):
    """Logits, and the hidden pre-activations the backward pass needs."""
    w1, b1, w2, b2 = params
    h = x @ w1 + b1
    return np.maximum(h, 0) @ w2 + b2, h


def loss_and_grads(params, x, y):
    """Mean cross-entropy of a batch and its gradients [dW1, db1, dW2, db2]."""
    w1, b1, w2, b2 = params
    logits, h = forward(params, x)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = float(-np.log(p[rows, y] + 1e-12).mean())
    p[rows, y] -= 1
    p /= len(y)                              # d loss / d logits
    a = np.maximum(h, 0)
    dh = (p @ w2.T) * (h > 0)
    return loss, [x.T @ dh, dh.sum(axis=0), a.T @ p, p.sum(axis=0)]


def accuracy(params, x, y):
    return float((forward(params, x)[0].argmax(axis=1) == y).mean())


def _cosine(opt, total):
    return lr_scheduler.CosineAnnealingLR(opt, T_max=total)


def _step(opt, total):
    return lr_scheduler.StepLR(opt, step_size=max(1, -(-total // 3)), gamma=0.3)


def _linear(opt, total):
    return lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=total)


def _one_cycle(opt, total):
    return lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=total)


# name: (optimizer class, hyperparameters, schedule description, schedule factory)
OPTIMIZERS = {
    "SGD": (optim.SGD, dict(lr=0.2), "cosine", _cosine),
    "Momentum": (optim.SGD, dict(lr=0.05, momentum=0.9), "step x0.3 every 1/3", _step),
    "Adagrad": (optim.Adagrad, dict(lr=0.05), "linear to 0.1x", _linear),
    "RMSprop": (optim.RMSprop, dict(lr=1e-3), "cosine", _cosine),
    "Adam": (optim.Adam, dict(lr=3e-3), "one-cycle", _one_cycle),
    "AdamW": (optim.AdamW, dict(lr=3e-3, weight_decay=0.05), "one-cycle", _one_cycle),
}


@dataclass
class Result:
    """Per-epoch curves of one optimizer's run."""

    name: str
    schedule: str
    train_loss: list = field(default_factory=list)     # mean over the epoch's batches
    train_accuracy: list = field(default_factory=list)
    test_accuracy: list = field(default_factory=list)
    lr: list = field(default_factory=list)             # per step
    step_seconds: list = field(default_factory=list)   # wall time of each opt.step

    def step_time(self):
        """Seconds per ``opt.step``: the median, 10th and 90th percentiles over the run.

        A quantile over hundreds of steps, unlike a total per epoch, is robust to
        what else the machine does meanwhile (a burst of load, a garbage
        collection), which can stretch a few steps many times over.
        """
        return tuple(float(q) for q in np.percentile(self.step_seconds, [50, 10, 90]))


def train(data, name, epochs=20, batch_size=64, seed=0, on_epoch=None):
    """Train a fresh MLP on `data` with optimizer `name` (a key of OPTIMIZERS)."""
    cls, hyper, schedule_name, make_schedule = OPTIMIZERS[name]
    params = init_mlp(seed=seed)
    opt = cls(params, **hyper)
    n = len(data.y_train)
    steps_per_epoch = -(-n // batch_size)
    sched = make_schedule(opt, epochs * steps_per_epoch)
    rng = np.random.default_rng(seed + 1)    # the same batches for every optimizer
    result = Result(name, schedule_name)
    for _ in range(epochs):
        order = rng.permutation(n)
        losses = []
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            loss, grads = loss_and_grads(params, data.x_train[idx], data.y_train[idx])
            result.lr.append(opt.param_groups[0]["lr"])
            t = time.perf_counter()
            opt.step(grads)
            result.step_seconds.append(time.perf_counter() - t)
            sched.step()
            losses.append(loss)
        result.train_loss.append(float(np.mean(losses)))
        result.train_accuracy.append(accuracy(params, data.x_train, data.y_train))
        result.test_accuracy.append(accuracy(params, data.x_test, data.y_test))
        if on_epoch is not None:
            on_epoch(result)
    return result


def table(results):
    """The results as an aligned text table."""
    rows = [("optimizer", "schedule", "train acc", "test acc", "final loss",
             "step us (median [p10-p90])")]
    for r in results:
        median, low, high = (1e6 * t for t in r.step_time())
        rows.append((r.name, r.schedule, f"{r.train_accuracy[-1]:.1%}",
                     f"{r.test_accuracy[-1]:.1%}", f"{r.train_loss[-1]:.4f}",
                     f"{median:.1f} [{low:.1f}-{high:.1f}]"))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# One line style and marker per optimizer, so that curves lying on top of each
# other (Adam and AdamW here) stay visible as two.
_STYLES = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"), ("-", "v"), ("--", "x")]


def plot(results, path, title=None):
    """Write training loss, test accuracy and learning rate per optimizer to `path`.

    The accuracy axis is zoomed on the range the runs end in (the first
    epochs of slow starters fall below it), and the learning-rate panel draws
    each distinct schedule once, naming the optimizers that follow it.
    """
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(f"the figure is drawn with matplotlib; {_NEEDS_EXTRA}") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    schedules = []   # (label, lr / peak lr per step, names of the optimizers following it)
    for k, r in enumerate(results):
        ls, marker = _STYLES[k % len(_STYLES)]
        style = dict(color=f"C{k}", ls=ls, marker=marker, ms=5, markevery=(k % 3, 3),
                     label=r.name)
        epochs = np.arange(1, len(r.train_loss) + 1)
        axes[0].plot(epochs, r.train_loss, **style)
        axes[1].plot(epochs, r.test_accuracy, **style)
        lr = np.asarray(r.lr) / max(r.lr)
        for label, other, names in schedules:
            if label == r.schedule and np.allclose(other, lr, rtol=1e-9, atol=0):
                names.append(r.name)
                break
        else:
            schedules.append((r.schedule, lr, [r.name]))
    axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    # Zoom on where the runs end: the lowest accuracy of the last half of the epochs.
    late = [a for r in results for a in r.test_accuracy[len(r.test_accuracy) // 2:]]
    low = max(0.0, np.floor(100 * min(late) - 1) / 100)
    high = min(1.0, np.ceil(100 * max(late) + 0.5) / 100)
    axes[1].set_ylim(low, high)
    axes[1].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes[1].set(xlabel="epoch", ylabel="test accuracy",
                title=f"test accuracy (axis from {low:.0%}; earlier epochs below)")
    steps_per_epoch = len(results[0].lr) / len(results[0].train_loss)
    for k, (label, lr, names) in enumerate(schedules):
        axes[2].plot(np.arange(len(lr)) / steps_per_epoch, lr, color="k", alpha=0.8,
                     ls=_STYLES[k % len(_STYLES)][0], label=f"{label}: {', '.join(names)}")
    axes[2].set(xlabel="epoch", ylabel="lr / peak lr", title="learning-rate schedule")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    # Legends outside the plots, under the x labels: the optimizers centred
    # under the first two panels, the schedules under the third.
    left, middle = axes[0].get_position(), axes[1].get_position()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False,
               bbox_to_anchor=((left.x0 + middle.x1) / 2, left.y0 - 0.1))
    axes[2].legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize="small",
                   frameon=False)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def run(epochs=20, batch_size=64, names=None, png="fastopt-demo.png", progress=True, seed=0,
        out=print):
    """Train with every optimizer in `names`, print a table, write the PNG; return the results."""
    import fastopt

    names = list(OPTIMIZERS) if names is None else list(names)
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"unknown optimizer {unknown[0]!r}; choose from {', '.join(OPTIMIZERS)}")
    data = load_digits_split(seed=seed)
    out(f"fastopt {fastopt.__version__} demo: a NumPy MLP (64-128-10) on scikit-learn's digits "
        f"({len(data.y_train)} train / {len(data.y_test)} test images), {epochs} epochs, "
        f"batches of {batch_size}")
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
        except ImportError as e:
            raise ImportError(f"the progress bar is tqdm's; {_NEEDS_EXTRA} "
                              "(or pass --no-progress)") from e
        bar = tqdm(total=epochs * len(names), unit="epoch", dynamic_ncols=True)
    results = []
    try:
        for name in names:
            def on_epoch(r):
                if bar is not None:
                    bar.set_description(f"{r.name:>8}", refresh=False)
                    bar.set_postfix(loss=f"{r.train_loss[-1]:.4f}", test=f"{r.test_accuracy[-1]:.1%}",
                                    refresh=False)
                    bar.update(1)

            results.append(train(data, name, epochs=epochs, batch_size=batch_size, seed=seed,
                                 on_epoch=on_epoch))
    finally:
        if bar is not None:
            bar.close()
    out(table(results))
    if png:
        plot(results, png, title=f"NumPy MLP on digits, {epochs} epochs, fastopt optimizers")
        out(f"wrote {png}")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fastopt demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                    help="comma-separated, from: " + ", ".join(OPTIMIZERS))
    ap.add_argument("--png", default="fastopt-demo.png", help="where to write the figure")
    ap.add_argument("--no-png", action="store_true", help="do not draw the figure")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        ap.error("--epochs and --batch-size must be positive")
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    for name in names:
        if name not in OPTIMIZERS:
            ap.error(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    run(epochs=args.epochs, batch_size=args.batch_size, names=names,
        png=None if args.no_png else args.png, progress=not args.no_progress, seed=args.seed)
    return 0

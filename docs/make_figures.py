"""Make the documentation's figures from real runs: ``python docs/make_figures.py``.

``docs/img/demo.png``: what ``python -m fastopt demo`` draws (six optimizers
training a NumPy MLP on scikit-learn's digits).

``docs/img/weight_decay.png``: L2 regularisation inside Adam
(``fastopt.Adam(weight_decay=wd)``) against decoupled weight decay
(``fastopt.AdamW(weight_decay=wd)``) at the same ``wd``, training the
demo's NumPy MLP on scikit-learn's digits. Needs the docs extra
(scikit-learn, matplotlib). Deterministic: the same seeds every run.
"""
import argparse
import os
import sys

import numpy as np

try:
    import fastopt
except ImportError:  # run from a source tree with the extension built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fastopt
from fastopt import demo

HERE = os.path.dirname(os.path.abspath(__file__))
DECAYS = [0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
EPOCHS = 30
LR = 3e-3
BATCH = 64


def run(data, cls, wd, epochs=EPOCHS, seed=0):
    """Train the MLP with a constant lr; per epoch: weight norm, train loss, test accuracy."""
    params = demo.init_mlp(seed=seed)
    opt = cls(params, lr=LR, weight_decay=wd)
    rng = np.random.default_rng(seed + 1)
    n = len(data.y_train)
    norms, losses, test_acc = [], [], []
    for _ in range(epochs):
        order = rng.permutation(n)
        batch_losses = []
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            loss, grads = demo.loss_and_grads(params, data.x_train[idx], data.y_train[idx])
            opt.step(grads)
            batch_losses.append(loss)
        weights = np.concatenate([params[0].ravel(), params[2].ravel()])
        norms.append(float(np.linalg.norm(weights)))
        losses.append(float(np.mean(batch_losses)))
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "img"))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "weight_decay.png")
    weight_decay_figure(path)
    print(f"wrote {path}")
    demo.run(png=os.path.join(args.out, "demo.png"), progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

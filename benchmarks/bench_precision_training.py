"""What 16-bit and 8-bit optimizer state does to training: the loss curves of
two models with AdamW's state in float32 (the default), bfloat16 and int8.

- the demo's NumPy MLP (64-128-10) on scikit-learn's digits, fastopt.AdamW,
  lr 3e-3, batch 64, 30 epochs: the mean training loss of each epoch;
- a tiny GPT-2-style torch model (2 pre-norm decoder blocks, width 64, 4
  heads, causal attention, tied embeddings) learning next-token prediction
  on sequences from a fixed random order-2 Markov chain over 32 tokens,
  fastopt.torch.AdamW, lr 3e-3, batch 16 x 64 tokens, 600 steps: the mean
  loss of each block of 20 steps.

Every run of a model starts from the same weights and sees the same batches;
only ``state_dtype`` differs. The table gives each run's loss after
training (the MLP's on the held-out digits; the GPT's mean over its last
100 batches, each new data) and its ratio to the float32-state run.

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_precision_training.py [--png docs/img/precision_training.png]
"""
import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: threads only contend
import numpy as np  # noqa: E402

import fastopt  # noqa: E402
from fastopt import demo  # noqa: E402

STATES = (None, "bfloat16", "int8")


def digits_curve(state_dtype, epochs=30, batch=64, seed=0):
    """The MLP's mean training loss per epoch, and its test loss after training."""
    data = demo.load_digits_split()
    params = demo.init_mlp(seed=seed)
    opt = fastopt.AdamW(params, lr=3e-3, state_dtype=state_dtype)
    rng = np.random.default_rng(seed + 1)
    n, curve = len(data.y_train), []
    for _ in range(epochs):
        order, losses = rng.permutation(n), []
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            loss, grads = demo.loss_and_grads(params, data.x_train[idx], data.y_train[idx])
            opt.step(grads)
            losses.append(loss)
        curve.append(float(np.mean(losses)))
    return curve, float(demo.loss_and_grads(params, data.x_test, data.y_test)[0])


def markov_batches(steps, batch=16, length=65, vocab=32, seed=0):
    """Token sequences of a fixed random order-2 Markov chain (sparse, peaked
    transitions: learnable well below the uniform loss log(vocab))."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((vocab, vocab, vocab)) * 3.0
    probs = np.exp(logits)
    probs /= probs.sum(-1, keepdims=True)
    cum = probs.cumsum(-1)
    for _ in range(steps):
        seq = np.empty((batch, length), np.int64)
        seq[:, :2] = rng.integers(0, vocab, (batch, 2))
        u = rng.random((batch, length))
        for t in range(2, length):
            c = cum[seq[:, t - 2], seq[:, t - 1]]
            seq[:, t] = np.minimum((c < u[:, t:t + 1]).sum(-1), vocab - 1)
        yield seq


def tiny_gpt(torch, vocab=32, width=64, heads=4, layers=2, length=64):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

        def forward(self, x, mask):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, width)
            nn.init.normal_(self.tok.weight, std=0.02)  # GPT-2's initialisation
            self.pos = nn.Parameter(torch.zeros(length, width))
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln = nn.LayerNorm(width)
            self.register_buffer("mask", torch.triu(torch.ones(length, length, dtype=torch.bool), 1))

        def forward(self, idx):
            x = self.tok(idx) + self.pos[: idx.shape[1]]
            for block in self.blocks:
                x = block(x, self.mask[: idx.shape[1], : idx.shape[1]])
            return self.ln(x) @ self.tok.weight.T  # tied embeddings

    return GPT()


def gpt_curve(state_dtype, steps=600, every=20, seed=0):
    """The tiny GPT's mean loss per block of `every` steps, and the mean of the
    last 100 (every batch is new data: the loss a held-out set would give)."""
    import torch
    import fastopt.torch
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    model = tiny_gpt(torch)
    opt = fastopt.torch.AdamW(model.parameters(), lr=3e-3, state_dtype=state_dtype)
    curve, losses = [], []
    for seq in markov_batches(steps, seed=seed):
        x = torch.from_numpy(seq)
        logits = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if len(losses) == every:
            curve.append(float(np.mean(losses)))
            losses = []
    return curve, float(np.mean(curve[-100 // every:]))


def plot(curves, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.2))
    axes = np.atleast_1d(axes)
    for ax, (model, runs) in zip(axes, curves.items()):
        for state, (curve, _) in runs.items():
            x = np.arange(1, len(curve) + 1) * (1 if model == "digits" else 20)
            ax.plot(x, curve, label=f"state_dtype={state!r}")
        ax.set(xlabel="epoch" if model == "digits" else "step", ylabel="training loss", yscale="log",
               title="NumPy MLP on digits" if model == "digits" else "tiny GPT-2-style model (torch)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("AdamW with float32, bfloat16 and 8-bit state: same weights, same batches")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", default=None, help="also draw the curves to this file")
    parser.add_argument("--no-torch", action="store_true", help="the digits MLP only")
    args = parser.parse_args()
    curves = {"digits": {s: digits_curve(s) for s in STATES}}
    if not args.no_torch:
        curves["gpt"] = {s: gpt_curve(s) for s in STATES}
    print("| model | state_dtype | loss after training | vs float32 state |")
    print("|---|---|---|---|")
    for model, runs in curves.items():
        base = runs[None][1]
        for state, (_, final) in runs.items():
            print(f"| {model} | {state!r} | {final:.4f} | {final / base:.4f} |")
    if args.png:
        plot(curves, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()

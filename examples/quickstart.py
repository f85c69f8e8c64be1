"""Train a small linear-softmax classifier on synthetic data with fastopt.Adam.

Run: python examples/quickstart.py
"""
import numpy as np
from numpy.typing import NDArray

import fastopt

rng = np.random.default_rng(0)
n, d, k = 2000, 20, 4
centers = rng.normal(scale=0.4, size=(k, d))
y = rng.integers(0, k, size=n)
x = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)

w = np.zeros((d, k), np.float32)
b = np.zeros(k, np.float32)
opt = fastopt.Adam([w, b], lr=0.01)


def loss_and_grads(xb: NDArray[np.float32], yb: NDArray[np.int64]
                   ) -> tuple[float, NDArray[np.float32], NDArray[np.float32]]:
    logits = xb @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    loss = float(-np.log(p[np.arange(len(yb)), yb] + 1e-12).mean())
    p[np.arange(len(yb)), yb] -= 1
    p /= len(yb)
    return loss, xb.T @ p, p.sum(axis=0)


for epoch in range(10):
    order = rng.permutation(n)
    losses = []
    for i in range(0, n, 100):
        idx = order[i:i + 100]
        loss, gw, gb = loss_and_grads(x[idx], y[idx])
        opt.step([gw, gb])
        losses.append(loss)
    accuracy = ((x @ w + b).argmax(axis=1) == y).mean()
    print(f"epoch {epoch}: loss {np.mean(losses):.4f}  accuracy {accuracy:.3f}")

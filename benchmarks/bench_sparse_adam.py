"""SparseAdam on an embedding table: fastopt.torch.SparseAdam against torch.optim.SparseAdam.

A float32 table of ROWS x DIM (default 10^6 x 64), gradients as
nn.Embedding(sparse=True) makes them: LOOKUPS rows per step (default 4096,
drawn with repeats, so about 4088 distinct), uncoalesced. Both optimizers
coalesce with torch's coalesce(); torch then gathers, updates and scatters
the moments and the parameter in several tensor passes, fastopt updates the
rows present in one C pass. The same gradients, interleaved rounds, the
thread count each uses by default; best and median milliseconds per step.
The NumPy class on the same rows (fastopt.SparseAdam with a RowSparse,
coalesced by fastopt) is timed too.

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_sparse_adam.py [--rows R] [--dim D] [--lookups L] [--rounds N]
"""
import argparse

import numpy as np
import torch

import fastopt
import fastopt.torch as fot
from fastopt.bench import rounds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--lookups", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    rows, dim = int(args.rows), args.dim
    torch.manual_seed(0)
    weight = torch.randn(rows, dim)
    grads = []
    for _ in range(8):
        idx = torch.randint(0, rows, (args.lookups,))
        grads.append(torch.sparse_coo_tensor(idx[None], torch.randn(args.lookups, dim), (rows, dim)))
    runs = {}
    for name, cls in (("torch.optim.SparseAdam", torch.optim.SparseAdam),
                      ("fastopt.torch.SparseAdam", fot.SparseAdam)):
        p = torch.nn.Parameter(weight.clone())
        opt = cls([p], lr=1e-3)

        def step(p=p, opt=opt, k=[0]):
            p.grad = grads[k[0] % len(grads)]
            k[0] += 1
            opt.step()
        runs[name] = step
    table = weight.numpy().copy()
    sparse = [fastopt.RowSparse(g._indices()[0].numpy(), g._values().numpy()) for g in grads]
    nopt = fastopt.SparseAdam([table], lr=1e-3)

    def numpy_step(k=[0]):
        nopt.step([sparse[k[0] % len(sparse)]])
        k[0] += 1
    runs["fastopt.SparseAdam (NumPy, RowSparse)"] = numpy_step
    times = rounds(runs, args.rounds)  # after a warm-up call: state allocated, pages touched
    print(f"table {rows} x {dim} float32, {args.lookups} lookups per step, "
          f"torch threads = {torch.get_num_threads()}, fastopt threads = {fastopt.get_num_threads()}, "
          f"isa = {fastopt._core.active_isa()}")
    print("| step | ms best / median | vs torch (median) |")
    print("|---|---|---|")
    base = float(np.median(times["torch.optim.SparseAdam"]))
    for k, ts in times.items():
        med = float(np.median(ts))
        print(f"| {k} | {min(ts) * 1e3:.3f} / {med * 1e3:.3f} | {base / med:.1f}x |")


if __name__ == "__main__":
    main()

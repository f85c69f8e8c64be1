"""LBFGS: one step on a 10^6-parameter quadratic, fastopt.LBFGS against torch.optim.LBFGS.

f(x) = ½ Σ cᵢ xᵢ², cᵢ in [0.5, 2] (float32), one step of max_iter=20
iterations with history_size=10, no line search: 21 closure evaluations
(one elementwise pass each, the same NumPy code for both) and the
two-loop recursion over up to 10 pairs. Both run in the same process on the
same thread count, in interleaved rounds; best and median ms per step.

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_lbfgs.py [--n N] [--rounds R]
"""
import argparse
import time

import numpy as np
import torch

import fastopt

HYPER = dict(max_iter=20, history_size=10, tolerance_grad=0.0, tolerance_change=0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=float, default=1e6)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = int(args.n)
    c = np.random.default_rng(0).uniform(0.5, 2.0, n).astype(np.float32)
    torch.set_num_threads(fastopt.get_num_threads())

    x = np.ones(n, np.float32)
    opt = fastopt.LBFGS([x], **HYPER)
    xt = torch.ones(n, requires_grad=True)
    topt = torch.optim.LBFGS([xt], **HYPER)

    def torch_closure():  # the same arithmetic, on the tensor's memory
        xv = xt.detach().numpy()
        xt.grad = torch.from_numpy(c * xv)
        return torch.tensor(0.5 * float(np.dot(c * xv, xv)))

    runs = {"fastopt.LBFGS": lambda: opt.step(lambda: (0.5 * float(np.dot(c * x, x)), [c * x])),
            "torch.optim.LBFGS": lambda: topt.step(torch_closure)}
    times = {k: [] for k in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - t0) * 1e3)
    print(f"LBFGS step, n={n}, float32, {fastopt.get_num_threads()} threads, {args.rounds} rounds")
    print("| | best ms | median ms |\n|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {min(ts):.1f} | {np.median(ts):.1f} |")


if __name__ == "__main__":
    main()

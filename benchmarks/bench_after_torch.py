"""fastopt's step right after a torch op, as a step follows backward().

torch's OpenMP threads spin for a while after each parallel op, so the step
that follows finds the other cores busy. Rounds alternate a step that follows
a 512 x 512 matmul on torch's threads ("after torch") with one that follows
the previous step ("after a step"); best, median and 90th percentile ms.

    PYTHONPATH=. python benchmarks/bench_after_torch.py Adam 1e6 --rounds 200

SIZE is N (one tensor) or COUNTxN, float32, the hyperparameters of
fastopt.bench.ALGOS; fastopt and torch both use --threads threads.
"""
import argparse
import time

import numpy as np
import torch

import fastopt  # the build on PYTHONPATH
from bench_one import stepped_optimizer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("optimizer", help="a fastopt class name: Adam, SGD, ...")
    ap.add_argument("size", help="N or COUNTxN")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args(argv)
    fastopt.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    opt, grads = stepped_optimizer(args.optimizer, args.size)
    a = torch.randn(512, 512)
    times = {"after torch": [], "after a step": []}
    for _ in range(args.rounds):
        for case, t in times.items():
            if case == "after torch":
                a @ a
            start = time.perf_counter()
            opt.step(grads)
            t.append(time.perf_counter() - start)
    print(f"{args.optimizer} {args.size} threads={args.threads}: " + "; ".join(
        f"{case} best {min(t) * 1e3:.3f} median {np.median(t) * 1e3:.3f} "
        f"p90 {np.percentile(t, 90) * 1e3:.3f} ms" for case, t in times.items()))


if __name__ == "__main__":
    main()

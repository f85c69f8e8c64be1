"""One optimizer's step in a process of its own: best and median milliseconds.

For A/B runs of two builds, one process each in alternation (load that comes
and goes on the machine then hits both alike):

    for i in $(seq 8); do for build in /tmp/base .; do
        PYTHONPATH=$build python benchmarks/bench_one.py Adam 1e7 --threads 2 --steps 30
    done; done

SIZE is N (one tensor) or COUNTxN; float32 parameters and gradients, the
hyperparameters of benchmarks/run.py (fastopt.bench.ALGOS).
"""
import argparse
import time

import numpy as np

import fastopt  # the build on PYTHONPATH
from fastopt.bench import ALGOS


def stepped_optimizer(name, size):
    """fastopt.`name` over float32 tensors of `size` (N or COUNTxN), with
    ALGOS' hyperparameters, stepped twice (state allocated and touched,
    threads started): (optimizer, gradients)."""
    count, _, n = size.rpartition("x")
    sizes = [int(float(n))] * int(count or 1)
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(k, dtype=np.float32) for k in sizes]
    grads = [rng.standard_normal(k, dtype=np.float32) for k in sizes]
    opt = getattr(fastopt, name)(params, **ALGOS[name.lower()]["hyper"])
    for _ in range(2):
        opt.step(grads)
    return opt, grads


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("optimizer", help="a fastopt class name: Adam, SGD, ...")
    ap.add_argument("size", help="N or COUNTxN")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args(argv)
    if args.threads:
        fastopt.set_num_threads(args.threads)
    opt, grads = stepped_optimizer(args.optimizer, args.size)
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        opt.step(grads)
        times.append(time.perf_counter() - t)
    print(f"{args.optimizer} {args.size} threads={fastopt.get_num_threads()}: "
          f"best {min(times) * 1e3:.3f} ms, median {float(np.median(times)) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()

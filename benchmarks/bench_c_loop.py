"""fastopt against the plain fused C loop, torch fused and DeepSpeed, in alternation.

Per size, optimizer and thread count, every contender steps the same shape of
float32 data (each its own arrays), one timed call each per round, until the
budget is spent. Before each timed call: a pause (fastopt.bench.PAUSE: the
OpenMP threads of the one before fall asleep first), then one untimed call of
the same step, so every contender's threads are awake when it is timed (on a
virtual machine, an OpenMP step after an idle spell waits milliseconds for
its other vCPU: a cost of waking, not of the loop); `--pause 0` times steps
that follow each other (what the loops cost once everything is awake and in
cache). Printed: best and median
milliseconds, and each contender's time over fastopt's (above 1: fastopt is
faster). The plain C loop (benchmarks/c_loop.c) is compiled with -O3
-march=native for this machine; it is what "at the speed of memory" is
checked against. DeepSpeed's CPU Adam/Adagrad join where deepspeed imports.

    PYTHONPATH=. python benchmarks/bench_c_loop.py --sizes 1e5,1e6,1e7,1e8 --threads 1,2
"""
import argparse
import gc
import importlib.util
import statistics
import sys
import time

import numpy as np

import fastopt
from benchmarks import c_loop
from benchmarks.run import parse_size
from fastopt.bench import ALGOS, DEEPSPEED_ALGOS, PAUSE, cpu_name, deepspeed_optimizer, interleaved


def contenders(algo, sizes, rng, torch):
    """Name -> zero-argument step, each over arrays of its own."""
    hyper = ALGOS[algo]["hyper"]

    def arrays():
        return ([rng.standard_normal(n).astype(np.float32) for n in sizes],
                [(1e-3 * rng.standard_normal(n)).astype(np.float32) for n in sizes])

    params, grads = arrays()
    opt = getattr(fastopt, ALGOS[algo]["cls"])(params, **hyper)
    out = {"fastopt": lambda: opt.step(grads)}
    cparams, cgrads = arrays()
    out["plain C loop"] = c_loop.CLoopOptimizer(algo, cparams, cgrads, **hyper).step
    if torch is not None:
        def tensors():
            ps = [torch.from_numpy(a).requires_grad_() for a in arrays()[0]]
            for p in ps:
                p.grad = torch.randn(p.shape[0]) * 1e-3
            return ps

        if ALGOS[algo]["fused"]:
            out["torch fused"] = getattr(torch.optim, ALGOS[algo]["cls"])(
                tensors(), **hyper, fused=True).step
        if algo in DEEPSPEED_ALGOS and importlib.util.find_spec("deepspeed") is not None:
            out["DeepSpeed"] = deepspeed_optimizer(algo, tensors(), hyper).step
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="adam,adamw,adagrad,sgd,rmsprop")
    parser.add_argument("--sizes", default="1e5,1e6,1e7,1e8")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per case")
    parser.add_argument("--min-rounds", type=int, default=10)
    parser.add_argument("--pause", type=float, default=PAUSE,
                        help="seconds of rest before each contender's untimed call (default %(default)s)")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch is not installed: fastopt and the C loop only", file=sys.stderr)
    c_loop.library()  # compile before anything is timed
    print(f"{cpu_name()}; fastopt simd path {fastopt._core.active_isa()}")
    print(f"{'algo':8s} {'size':>6s} {'T':>2s}  {'contender':14s} {'best ms':>9s} {'median ms':>9s}"
          f"  {'best/fastopt':>12s} {'median/fastopt':>14s}")
    rng = np.random.default_rng(0)
    for label in args.sizes.split(","):
        sizes = parse_size(label)
        for algo in args.algos.split(","):
            steps = contenders(algo, sizes, rng, torch)
            for t in map(int, args.threads.split(",")):
                fastopt.set_num_threads(t)
                c_loop.set_threads(t)
                if torch is not None:
                    torch.set_num_threads(t)
                times = interleaved([(name, lambda fn=fn: (time.sleep(args.pause), fn()), fn)
                                     for name, fn in steps.items()],
                                    args.budget, args.min_rounds, warmup=2)
                mine = times["fastopt"]
                for name, ts in times.items():
                    print(f"{algo:8s} {label:>6s} {t:2d}  {name:14s} {min(ts) * 1e3:9.4f} "
                          f"{statistics.median(ts) * 1e3:9.4f}  {min(ts) / min(mine):12.3f} "
                          f"{statistics.median(ts) / statistics.median(mine):14.3f}", flush=True)
            del steps
            gc.collect()


if __name__ == "__main__":
    main()

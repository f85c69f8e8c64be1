"""LAMB and LARS against Adam and SGD momentum, their one-pass counterparts.

One float32 tensor of N elements (default 10^7, past the L3 cache), best and
median milliseconds per step over interleaved rounds (each round steps every
optimizer once and runs the rmw bandwidth probe, a += s*b over float32), at
each thread count given. LAMB and LARS read the parameter and the update's
inputs twice (the norm phase, then the apply phase): memory alone makes them
40/28 = 1.43x Adam and 28/20 = 1.4x SGD momentum.

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_trust_ratio.py [--n N] [--rounds R] [--threads 1,2]
"""
import argparse

import numpy as np

import fastopt
from fastopt import _probe
from fastopt.bench import rounds

STEPS = {  # name: (class, hyperparameters, bytes per element of one pass)
    "adam": ("Adam", {"lr": 1e-3}, 28),
    "lamb": ("LAMB", {"lr": 1e-3}, 40),
    "sgd": ("SGD", {"lr": 1e-3, "momentum": 0.9}, 20),
    "lars": ("LARS", {"lr": 1e-3}, 28),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    n = int(args.n)
    rng = np.random.default_rng(0)
    runs = {}
    for name, (cls, hyper, nbytes) in STEPS.items():
        p = rng.standard_normal(n).astype(np.float32)
        g = rng.standard_normal(n).astype(np.float32)
        opt = getattr(fastopt, cls)([p], **hyper)
        runs[name] = (lambda opt=opt, g=g: opt.step([g]), nbytes)
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    runs["rmw probe"] = (lambda: _probe.bandwidth_probe("rmw", a, b, None, 0.0), 12)
    print(f"n = {n:.0e}, isa = {fastopt._core.active_isa()}")
    for threads in (int(t) for t in args.threads.split(",")):
        fastopt.set_num_threads(threads)
        # after a warm-up call each: state allocated, pages touched
        times = rounds({k: fn for k, (fn, _) in runs.items()}, args.rounds)
        best = {k: min(v) for k, v in times.items()}
        probe_gbs = 12 * n / best["rmw probe"] / 1e9
        print(f"\nthreads = {threads}")
        print("| step | bytes/element | ms best / median | GB/s (best) | % of rmw | vs its one-pass counterpart |")
        print("|---|---|---|---|---|---|")
        for k, (_, nbytes) in runs.items():
            med = float(np.median(times[k]))
            gbs = nbytes * n / best[k] / 1e9
            base = {"lamb": "adam", "lars": "sgd"}.get(k)
            ratio = f"{best[k] / best[base]:.2f}x {base} ({med / np.median(times[base]):.2f}x)" if base else ""
            print(f"| {k} | {nbytes} | {best[k] * 1e3:.2f} / {med * 1e3:.2f} | {gbs:.1f} | "
                  f"{100 * gbs / probe_gbs:.0f}% | {ratio} |")


if __name__ == "__main__":
    main()

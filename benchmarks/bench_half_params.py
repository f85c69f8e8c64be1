"""Adam over bfloat16 and float16 parameters (float32 state) against float32 ones.

One tensor of N elements (default 10^7, past the L3 cache), the thread
count fastopt uses by default, best and median milliseconds per step over
interleaved rounds, and GB/s from the bytes a step must move per element:
float32 28 (param, grad, exp_avg, exp_avg_sq read, param and the two moments
written, 4 bytes each), 16-bit 22 (param and grad 2 bytes each, the moments
4). The rmw bandwidth probe (a += s*b over float32, 12 bytes per element) is
timed in the same rounds; "% of rmw" compares each step's GB/s with it.

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_half_params.py [--n N] [--rounds R]
"""
import argparse

import numpy as np

import fastopt
from fastopt import _probe
from fastopt.bench import rounds

try:
    import ml_dtypes
except ImportError:  # the bfloat16 row is left out
    ml_dtypes = None

BYTES = {"float32": 28, "bfloat16": 22, "float16": 22}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    n = int(args.n)
    rng = np.random.default_rng(0)
    dtypes = {"float32": np.float32, "float16": np.float16}
    if ml_dtypes is not None:
        dtypes["bfloat16"] = ml_dtypes.bfloat16
    runs = {}
    for name, dt in dtypes.items():
        p = rng.standard_normal(n).astype(np.float32).astype(dt)
        g = rng.standard_normal(n).astype(np.float32).astype(dt)
        opt = fastopt.Adam([p], lr=1e-3)
        runs[name] = (lambda opt=opt, g=g: opt.step([g]), BYTES[name])
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    runs["rmw probe"] = (lambda: _probe.bandwidth_probe("rmw", a, b, None, 1e-9), 12)
    # after a warm-up call each: state allocated, pages touched
    times = rounds({k: fn for k, (fn, _) in runs.items()}, args.rounds)
    probe_gbs = 12 * n / min(times["rmw probe"]) / 1e9
    print(f"n = {n:.0e}, threads = {fastopt.get_num_threads()}, isa = {fastopt._core.active_isa()}")
    print("| step | bytes/element | ms best / median | GB/s (best) | % of rmw |")
    print("|---|---|---|---|---|")
    for k, (_, nbytes) in runs.items():
        best, med = min(times[k]), float(np.median(times[k]))
        gbs = nbytes * n / best / 1e9
        print(f"| {k} | {nbytes} | {best * 1e3:.2f} / {med * 1e3:.2f} | {gbs:.1f} | "
              f"{100 * gbs / probe_gbs:.0f}% |")


if __name__ == "__main__":
    main()

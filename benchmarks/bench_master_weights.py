"""Adam over 10^7 bfloat16 parameters: rounding to nearest, stochastic
rounding, master weights (float32 copy, nearest) and both, against torch's
fused CPU Adam on bfloat16 (state in bfloat16), in the same interleaved
rounds. Best and median milliseconds per step at fastopt's default thread
count (torch at its own).

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_master_weights.py [--n N] [--rounds R]
"""
import argparse

import numpy as np

import fastopt
from fastopt.bench import rounds

try:
    import ml_dtypes
    import torch
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"needs ml_dtypes and torch: {e}")

VARIANTS = {
    "nearest": {},
    "stochastic": {"rounding": "stochastic"},
    "master weights": {"master_weights": True},
    "master + stochastic": {"master_weights": True, "rounding": "stochastic"},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    n = int(args.n)
    rng = np.random.default_rng(0)
    p0 = (rng.standard_normal(n) * 0.1).astype(np.float32).astype(ml_dtypes.bfloat16)
    g = (rng.standard_normal(n) * 1e-3).astype(np.float32).astype(ml_dtypes.bfloat16)
    steps = {}
    for name, kw in VARIANTS.items():
        p = p0.copy()
        opt = fastopt.Adam([p], lr=1e-3, **kw)
        steps[name] = (lambda opt=opt: opt.step([g]))
    tp = torch.nn.Parameter(torch.from_numpy(p0.astype(np.float32)).to(torch.bfloat16))
    tp.grad = torch.from_numpy(g.astype(np.float32)).to(torch.bfloat16)
    topt = torch.optim.Adam([tp], lr=1e-3, fused=True)
    steps["torch fused (bf16 state)"] = topt.step
    times = rounds(steps, args.rounds)  # after a warm-up call: state allocated, pages touched
    print(f"Adam, {n:.0e} bfloat16 parameters, {fastopt.get_num_threads()} fastopt threads, "
          f"{torch.get_num_threads()} torch threads, {args.rounds} rounds")
    print(f"{'':28s} {'best ms':>9s} {'median ms':>10s}")
    for name, ts in times.items():
        print(f"{name:28s} {1e3 * min(ts):9.2f} {1e3 * float(np.median(ts)):10.2f}")


if __name__ == "__main__":
    main()

"""Adam over one float32 tensor with float32, bfloat16 and int8 state, the
three optimizers stepped in turn: each one's best and median milliseconds.

Short and self-contained, to run as alternating processes of two builds
(PYTHONPATH picks the build) when comparing them:
    FASTOPT_SIMD=avx2 PYTHONPATH=<build> python benchmarks/bench_state_steps.py --threads 1 --n 1e6
"""
import argparse
import time

import numpy as np

import fastopt

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--n", type=float, default=1e6)
parser.add_argument("--steps", type=int, default=15)
args = parser.parse_args()
fastopt.set_num_threads(args.threads)
n = int(args.n)
rng = np.random.default_rng(0)
steppers = {}
for state in (None, "bfloat16", "int8"):
    grad = rng.standard_normal(n).astype(np.float32)
    opt = fastopt.Adam([rng.standard_normal(n).astype(np.float32)], lr=1e-3, state_dtype=state)
    opt.step([grad])  # creates the state
    steppers[state] = (opt, grad)
times = {state: [] for state in steppers}
for _ in range(args.steps):
    for state, (opt, grad) in steppers.items():
        start = time.perf_counter()
        opt.step([grad])
        times[state].append(time.perf_counter() - start)
for state, t in times.items():
    print(f"state {state}: best {min(t) * 1e3:.3f} ms, median {np.median(t) * 1e3:.3f} ms")

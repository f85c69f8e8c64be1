"""Adam over float32, bfloat16 and float16 parameters, with float32 or 16-bit state.

One tensor of N elements (default 10^7, past the L3 cache), the thread
count fastopt uses by default, best and median milliseconds per step over
interleaved rounds, and GB/s from the bytes a step must move per element:
the parameter read and written, the gradient read, the two moments read and
written (float32 state 28 bytes, float32 parameters with bfloat16 state 20,
with 8-bit state 16.06, 16-bit parameters with float32 state 22, with 16-bit
state 14, with 8-bit state 10.06). torch's
fused CPU Adam on float32 and on bfloat16 (its state in the parameter's
dtype) runs in the same rounds where torch installs, and so does the rmw
bandwidth probe (a += s*b over float32, 12 bytes per element); "% of rmw"
compares each step's GB/s with it, "vs torch" each step's time with torch's
fused step on the same parameter dtype. DeepSpeed's DeepSpeedCPUAdam
(float32 state) runs too where it installs.

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_half_params.py [--n N] [--rounds R]
"""
import argparse

import numpy as np

import fastopt
from fastopt import _probe
from fastopt.bench import deepspeed_optimizer, rounds

try:
    import ml_dtypes
except ImportError:  # the bfloat16 rows are left out
    ml_dtypes = None
try:
    import torch
except ImportError:  # the torch rows are left out
    torch = None

# (parameter dtype, state_dtype) per row
CASES = [("float32", None), ("float32", "bfloat16"), ("float32", "int8"), ("bfloat16", None),
         ("bfloat16", "param"), ("bfloat16", "int8"), ("float16", None), ("float16", "param")]


def bytes_per_element(param_bytes, state_bytes):
    return 3 * param_bytes + 4 * state_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    n = int(args.n)
    rng = np.random.default_rng(0)
    dtypes = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}
    if ml_dtypes is not None:
        dtypes["bfloat16"] = np.dtype(ml_dtypes.bfloat16)
    runs = {}
    for pname, choice in CASES:
        if pname not in dtypes or (choice == "bfloat16" and ml_dtypes is None):
            continue
        dt = dtypes[pname]
        p = rng.standard_normal(n).astype(np.float32).astype(dt)
        g = rng.standard_normal(n).astype(np.float32).astype(dt)
        opt = fastopt.Adam([p], lr=1e-3, state_dtype=choice)
        opt.step([g])
        state = opt.state[0]["exp_avg"]
        per_value = state.nbytes / n  # 8-bit state: a byte, and a float32 scale per 256
        runs[f"fastopt {pname}, {choice or state.dtype.name} state"] = (
            lambda opt=opt, g=g: opt.step([g]), bytes_per_element(dt.itemsize, per_value), pname)
    if torch is not None:
        for pname, tdt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            tp = torch.nn.Parameter(torch.randn(n).to(tdt))
            tp.grad = torch.randn(n).to(tdt)
            topt = torch.optim.Adam([tp], lr=1e-3, fused=True)
            size = tp.element_size()
            runs[f"torch fused {pname}"] = (topt.step, bytes_per_element(size, size), pname)
        try:  # DeepSpeed's CPU Adam (its op compiled at first use), float32 state
            for pname, tdt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
                tp = torch.nn.Parameter(torch.randn(n).to(tdt))
                tp.grad = torch.randn(n).to(tdt)
                dopt = deepspeed_optimizer("adam", [tp], dict(lr=1e-3))
                runs[f"DeepSpeedCPUAdam {pname}, float32 state"] = (
                    dopt.step, bytes_per_element(tp.element_size(), 4), pname)
        except Exception as e:  # not installed, or its op does not build
            print(f"DeepSpeedCPUAdam left out: {type(e).__name__}: {str(e).splitlines()[0][:100]}")
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    runs["rmw probe"] = (lambda: _probe.bandwidth_probe("rmw", a, b, None, 1e-9), 12, None)
    # after a warm-up call each: state allocated, pages touched
    times = rounds({k: fn for k, (fn, _, _) in runs.items()}, args.rounds)
    probe_gbs = 12 * n / min(times["rmw probe"]) / 1e9
    print(f"n = {n:.0e}, threads = {fastopt.get_num_threads()}, isa = {fastopt._core.active_isa()}"
          + (f", torch {torch.__version__} threads = {torch.get_num_threads()}" if torch else ""))
    print("| step | bytes/element | ms best / median | GB/s (best) | % of rmw | vs torch fused |")
    print("|---|---|---|---|---|---|")
    for k, (_, nbytes, pname) in runs.items():
        best, med = min(times[k]), float(np.median(times[k]))
        gbs = nbytes * n / best / 1e9
        ref = times.get(f"torch fused {pname}")
        versus = f"{min(ref) / best:.2f}x" if ref and not k.startswith("torch") else ""
        print(f"| {k} | {nbytes:.4g} | {best * 1e3:.2f} / {med * 1e3:.2f} | {gbs:.1f} | "
              f"{100 * gbs / probe_gbs:.0f}% | {versus} |")


if __name__ == "__main__":
    main()

"""Throughput of the 16-bit conversion lanes on each SIMD path.

Prints nanoseconds per element for bfloat16/float16 -> float32 and back
(csrc/fo_vec.h, through the test-only fastopt._convert, one thread), with
NumPy's float16 and ml_dtypes' bfloat16 ``astype`` into a preallocated
array as the baseline of the same run. Random finite inputs; the default
10^6 elements (6 MB, source and destination) stay in the L3 cache.

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_half.py [--n N] [--repeat R]
"""
import argparse
import os
import time

import numpy as np

from fastopt import _convert, _core

try:
    import ml_dtypes
except ImportError:  # the bfloat16 baseline is left out
    ml_dtypes = None


def timed(fn, repeat):
    """Best and median seconds of one call, over `repeat` calls after a warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e6, help="elements per conversion")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    n = int(args.n)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    inputs = {"f16": x.astype(np.float16).view(np.uint16)}
    formats = {"f16": np.float16}
    if ml_dtypes is not None:
        inputs["bf16"] = x.astype(ml_dtypes.bfloat16).view(np.uint16)
        formats["bf16"] = ml_dtypes.bfloat16
    kinds = [(f"{f}_to_f32", inputs[f]) for f in formats] + [(f"f32_to_{f}", x) for f in formats]
    print(f"{n:,} elements, best / median of {args.repeat} calls, ns per element; "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| path | " + " | ".join(k for k, _ in kinds) + " |")
    print("|---" * (len(kinds) + 1) + "|")

    def row(name, fns):
        cells = []
        for fn in fns:
            best, median = timed(fn, args.repeat)
            cells.append(f"{best / n * 1e9:.3f} / {median / n * 1e9:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")

    def ours(kind, src, isa):
        dst = np.empty(n, _convert.KINDS[kind][2])
        return lambda: _convert.convert(kind, dst, src, isa)

    def numpy_astype(kind, src):
        fmt = kind.replace("_to_f32", "").replace("f32_to_", "")
        if kind.endswith("_to_f32"):
            src, dst = src.view(formats[fmt]), np.empty(n, np.float32)
        else:
            dst = np.empty(n, formats[fmt])
        return lambda: np.copyto(dst, src, casting="unsafe")

    for isa in _core.isa_names():
        row(isa, [ours(k, s, isa) for k, s in kinds])
    row("NumPy / ml_dtypes astype", [numpy_astype(k, s) for k, s in kinds])


if __name__ == "__main__":
    main()

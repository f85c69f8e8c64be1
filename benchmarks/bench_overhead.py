"""Per-step overhead of a step over many small tensors.

Prints microseconds per ``opt.step`` for float32 Adam over 1, 10, 100 and
1,000 tensors of 10 elements each (one call into C per step, so the cost
grows with the validation of each gradient, not with a C call per tensor),
next to torch.optim.Adam (single-tensor and foreach paths) when torch is
importable.

Run (from the repository root, with fastopt built in place or installed):
    PYTHONPATH=. python benchmarks/bench_overhead.py [--repeat N] [--after-torch]
"""
import os

os.environ.setdefault("FASTOPT_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import fastopt  # noqa: E402


def per_step_us(step, repeat):
    step()  # warm up (allocates state)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeat):
            step()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--after-torch", action="store_true",
                        help="first run torch's fused Adam over 2,000 tensors of 5,000, as a "
                             "process that trains with torch has: the arrays measured here then "
                             "land in a heap torch has used, not side by side in fresh memory")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    if args.after_torch:
        if torch is None:
            parser.error("--after-torch needs torch")
        tparams = [torch.zeros(5000) for _ in range(2000)]
        for p in tparams:
            p.grad = torch.ones(5000)
        topt = torch.optim.Adam(tparams, fused=True)
        for _ in range(5):
            topt.step()  # topt and its tensors stay alive, as a model's would
    print(f"fastopt {fastopt.__version__}, simd {fastopt._core.active_isa()}, "
          f"threads {fastopt.get_num_threads()}")
    header = f"{'tensors x 10 f32':>17} {'fastopt us/step':>16} {'us/tensor':>10}"
    if torch is not None:
        header += f" {'torch us/step':>14} {'torch foreach':>14}"
    print(header)
    for count in (1, 10, 100, 1000):
        params = [rng.standard_normal(10).astype(np.float32) for _ in range(count)]
        grads = [rng.standard_normal(10).astype(np.float32) for _ in range(count)]
        opt = fastopt.Adam(params, lr=1e-3)
        us = per_step_us(lambda: opt.step(grads), args.repeat)
        line = f"{count:>17} {us:>16.1f} {us / count:>10.3f}"
        if torch is not None:
            for foreach in (False, True):
                tparams = [torch.from_numpy(p.copy()) for p in params]
                for p, g in zip(tparams, grads):
                    p.grad = torch.from_numpy(g)
                topt = torch.optim.Adam(tparams, lr=1e-3, foreach=foreach)
                line += f" {per_step_us(topt.step, max(1, args.repeat // 10)):>14.1f}"
        print(line)


if __name__ == "__main__":
    main()

"""What each of fastopt.torch's per-step plan checks costs per tensor, with the
caches as a large step leaves them.

fastopt.torch.Adam over COUNT float32 tensors of N (default 2,000 x 5,000),
1 thread. Before each timed pass the C step runs once over all the
elements, so every tensor's metadata is as far from the core as in a
training loop. Prints the median over 15 passes, in ns per tensor, of the
whole check (``current_grads``) and of each read it makes.

    PYTHONPATH=. python benchmarks/bench_torch_checks.py [--count 2000 --n 5000]
"""
import argparse
import time

import torch

import fastopt
import fastopt.torch as fot
from fastopt.torch import _DATA_PTR, _GRAD, _LAYOUT, _NUMPY, _STRIDE, _VERSION


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args(argv)
    fastopt.set_num_threads(1)
    torch.set_num_threads(1)
    params = [torch.nn.Parameter(torch.randn(args.n)) for _ in range(args.count)]
    for p in params:
        p.grad = torch.randn(args.n)
    opt = fot.Adam(params, lr=1e-3)
    opt.step()
    opt.step()
    plan = opt._fo_plan
    grads, hypers = plan.current_grads(opt), opt._fo_hypers(plan.group_ids)
    tensors = list(map(_GRAD, params))
    state = lambda: map(dict.__getitem__, plan.where_dicts, plan.where_keys)  # noqa: E731
    passes = {
        "current_grads (all of it)": lambda: plan.current_grads(opt),
        "p.grad": lambda: list(map(_GRAD, params)),
        "grad._version": lambda: list(map(_VERSION, tensors)),
        "grad.data_ptr()": lambda: list(map(_DATA_PTR, tensors)),
        "grad.shape, grad.dtype": lambda: list(map(_LAYOUT, tensors)),
        "grad.stride()": lambda: list(map(_STRIDE, tensors)),
        "p.data_ptr()": lambda: list(map(_DATA_PTR, params)),
        "state tensors' data_ptr()": lambda: list(map(_DATA_PTR, state())),
        "grad.numpy() (new gradients)": lambda: list(map(_NUMPY, tensors)),
    }
    print(f"fastopt.torch.Adam, {args.count} x {args.n} float32, 1 thread, SIMD path "
          f"{fastopt._core.active_isa()}: ns per tensor, median of 15")
    for name, fn in passes.items():
        times = []
        for _ in range(15):
            plan.engine.step(grads, hypers)  # the caches as a step leaves them
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        times.sort()
        print(f"  {name:32s} {times[len(times) // 2] * 1e9 / args.count:7.0f}")


if __name__ == "__main__":
    main()

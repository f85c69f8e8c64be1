"""Adafactor against torch.optim.Adafactor (foreach), with the in-place bandwidth probe.

fastopt.Adafactor and torch.optim.Adafactor(foreach=True) over one 10^7
float32 vector and one 2,000 x 5,000 matrix, timed in interleaved rounds with
the rmw probe (a += s*b over float32, 12 bytes per element, on fastopt's pool)
over the same number of elements; best and median ms per step. fastopt makes
three passes over the parameter (p and g read; g read; p and g read, p
written): 20 bytes per element for the matrix, 28 for the vector (its
variance is read and written in the first pass and read in the other two).

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_adafactor.py [--rounds R]
"""
import argparse

import numpy as np
import torch

import fastopt
from fastopt import _probe
from fastopt.bench import rounds


def case(shape, rng, n_rounds, nbytes):
    init = rng.standard_normal(shape).astype(np.float32)
    grad = rng.standard_normal(shape).astype(np.float32)
    param = init.copy()
    opt = fastopt.Adafactor([param])
    tparam = torch.tensor(init, requires_grad=True)
    tparam.grad = torch.tensor(grad)
    topt = torch.optim.Adafactor([tparam], foreach=True)
    n = param.size
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    times = rounds({"fastopt.Adafactor": lambda: opt.step([grad]),
                    "torch.optim.Adafactor foreach": topt.step,
                    "rmw probe": lambda: _probe.bandwidth_probe("rmw", a, b, None, 0.0)}, n_rounds)
    best = {k: min(v) for k, v in times.items()}
    probe_gbs = 12 * n / best["rmw probe"] / 1e9
    print(f"\nAdafactor, {' x '.join(map(str, shape))}: {n:.3g} elements, threads = "
          f"{fastopt.get_num_threads()} (torch {torch.get_num_threads()}), "
          f"isa = {fastopt._core.active_isa()}")
    print("| implementation | ms best / median | GB/s (best) | % of rmw | torch / this |")
    print("|---|---|---|---|---|")
    for k, v in times.items():
        gbs = (12 if k == "rmw probe" else nbytes) * n / best[k] / 1e9
        print(f"| {k} | {best[k] * 1e3:.2f} / {np.median(v) * 1e3:.2f} | {gbs:.1f} | "
              f"{100 * gbs / probe_gbs:.0f}% | "
              f"{best['torch.optim.Adafactor foreach'] / best[k]:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--small", action="store_true", help="tiny sizes (tests)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    torch.set_num_threads(fastopt.get_num_threads())
    if args.small:
        case((1000,), rng, args.rounds, 28)
        case((20, 50), rng, args.rounds, 20)
        return
    case((10 ** 7,), rng, args.rounds, 28)
    case((2000, 5000), rng, args.rounds, 20)


if __name__ == "__main__":
    main()

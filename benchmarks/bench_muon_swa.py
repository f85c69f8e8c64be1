"""Muon and weight averaging against torch, with the in-place bandwidth probe.

Each case is timed in interleaved rounds with its torch counterpart and the
rmw probe (a += s*b over float32, 12 bytes per element, on fastopt's pool)
over the same number of elements; best and median ms per call, float32.

- muon: fastopt.Muon against torch.optim.Muon (torch 2.13 has one path, the
  per-tensor loop, _single_tensor_muon: its Newton-Schulz iteration in
  bfloat16, fastopt's in float32). Shapes: 2,000 matrices of 50 x 100, and
  one of 3,000 x 3,000.
- ema: fastopt.swa_utils.ema_ and AveragedParams(decay=0.999) against
  torch.optim.swa_utils.AveragedModel(multi_avg_fn=get_ema_multi_avg_fn(0.999))
  (its foreach path, torch._foreach_lerp_), over one 10^7 tensor and 2,000 of
  5,000. An EMA update moves 12 bytes per element (average read and written,
  parameter read), the probe's bytes.

Run (from the repository root, with fastopt built in place):
    PYTHONPATH=. python benchmarks/bench_muon_swa.py [--only muon|ema] [--rounds R]
"""
import argparse

import numpy as np
import torch

import fastopt
from fastopt import _probe, swa_utils
from fastopt.bench import rounds


def probe_for(n):
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    return lambda: _probe.bandwidth_probe("rmw", a, b, None, 0.0)


def report(title, times, n, nbytes):
    best = {k: min(v) for k, v in times.items()}
    probe_gbs = 12 * n / best["rmw probe"] / 1e9
    print(f"\n{title}: {n:.3g} elements, threads = {fastopt.get_num_threads()} "
          f"(torch {torch.get_num_threads()}), isa = {fastopt._core.active_isa()}")
    print("| implementation | ms best / median | GB/s (best) | % of rmw |")
    print("|---|---|---|---|")
    for k, v in times.items():
        gbs = (12 if k == "rmw probe" else nbytes) * n / best[k] / 1e9
        print(f"| {k} | {best[k] * 1e3:.2f} / {np.median(v) * 1e3:.2f} | {gbs:.1f} | "
              f"{100 * gbs / probe_gbs:.0f}% |")


def muon(shape, count, rng, n_rounds):
    init = [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
    params = [p.copy() for p in init]
    opt = fastopt.Muon(params, lr=1e-3)
    tparams = [torch.tensor(p, requires_grad=True) for p in init]
    for t, g in zip(tparams, grads):
        t.grad = torch.tensor(g)
    topt = torch.optim.Muon(tparams, lr=1e-3)
    n = count * int(np.prod(shape))
    times = rounds({"fastopt": lambda: opt.step(grads), "torch.optim.Muon": topt.step,
                    "rmw probe": probe_for(n)}, n_rounds)
    # bytes of the element-wise passes only (param, grad, buffer read; param, buffer written)
    report(f"Muon, {count} x {shape[0]} x {shape[1]}", times, n, 20)


def ema(sizes, rng, n_rounds):
    init = [rng.standard_normal(s).astype(np.float32) for s in sizes]
    avg = [p.copy() for p in init]
    params = [p + 1 for p in init]
    averaged = swa_utils.AveragedParams(init, decay=0.999)
    model = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(p)) for p in params])
    tavg = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999))
    n = sum(sizes)
    with torch.no_grad():
        times = rounds({"fastopt ema_": lambda: swa_utils.ema_(avg, params, 0.999),
                        "fastopt AveragedParams": lambda: averaged.update_parameters(params),
                        "torch AveragedModel (foreach EMA)": lambda: tavg.update_parameters(model),
                        "rmw probe": probe_for(n)}, n_rounds)
    report(f"EMA, {len(sizes)} x {sizes[0]}", times, n, 12)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["muon", "ema"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--muon-big-rounds", type=int, default=3, help="0: leave 3,000 x 3,000 out")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    torch.set_num_threads(fastopt.get_num_threads())
    if args.only in (None, "ema"):
        ema([10 ** 7], rng, args.rounds)
        ema([5000] * 2000, rng, args.rounds)
    if args.only in (None, "muon"):
        muon((50, 100), 2000, rng, args.rounds)
        if args.muon_big_rounds:
            muon((3000, 3000), 1, rng, args.muon_big_rounds)


if __name__ == "__main__":
    main()

"""fastopt.torch's cost per parameter of a step, against another build of
fastopt and torch's fused optimizers, in one run.

SGD (momentum 0.9) and Adam over 1,000 float32 tensors of 10 and 2,000 of
5,000 (gradients kept between steps), 1 thread, every case timed in
alternation with the others (one call each per round), best times. The
baseline is another checkout of fastopt built in place (``--baseline DIR``),
loaded as ``fastopt_base`` next to this one.

Run from the repository root, fastopt built in place:
    PYTHONPATH=. python benchmarks/bench_torch_overhead.py [--baseline DIR]
"""
import os

os.environ.setdefault("FASTOPT_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import torch  # noqa: E402

import fastopt  # noqa: E402
import fastopt.torch  # noqa: E402
from benchmarks.bench_overhead import load_baseline  # noqa: E402
from benchmarks.run import interleaved, machine_info  # noqa: E402

CASES = (("SGD", {"momentum": 0.9}), ("Adam", {}))
SHAPES = ((1000, 10), (2000, 5000))


def optimizer(cls, count, size, hyper):
    params = [torch.nn.Parameter(torch.randn(size)) for _ in range(count)]
    for p in params:
        p.grad = 1e-3 * torch.randn(size)
    return cls(params, lr=1e-3, **hyper)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a fastopt checkout built in place")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per shape")
    args = parser.parse_args()
    torch.set_num_threads(1)
    builds = [("this", fastopt.torch)]
    scratch = tempfile.mkdtemp(prefix="fastopt-bench-")
    try:
        if args.baseline:
            load_baseline(args.baseline, scratch)
            builds.append(("baseline", importlib.import_module("fastopt_base.torch")))
        info = machine_info()
        print(f"fastopt {fastopt.__version__} ({info['simd']} path), {info['cpu']}, torch "
              f"{torch.__version__}, 1 thread; load average {os.getloadavg()[0]:.1f}")
        print(f"{'shape':>10} {'optimizer':>9} {'case':>12} {'best us':>9} {'ns/param':>9} "
              f"{'torch fused / it':>17}")
        for count, size in SHAPES:
            entries = []
            for cls, hyper in CASES:
                for name, module in builds:
                    opt = optimizer(getattr(module, cls), count, size, hyper)
                    entries.append(((cls, name), None, opt.step))
                opt = optimizer(getattr(torch.optim, cls), count, size, dict(hyper, fused=True))
                entries.append(((cls, "torch fused"), None, opt.step))
            times = interleaved(entries, args.budget, 10, warmup=2)
            for cls, _ in CASES:
                ref = min(times[(cls, "torch fused")])
                for name in [n for n, _ in builds] + ["torch fused"]:
                    t = min(times[(cls, name)])
                    print(f"{count}x{size:<5} {cls:>9} {name:>12} {t * 1e6:>9.0f} "
                          f"{t / count * 1e9:>9.0f} {ref / t:>16.2f}x", flush=True)
            del entries, times
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

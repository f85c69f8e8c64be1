"""fastopt.torch's cost per parameter of a step, against another build of
fastopt and torch's fused optimizers, in one run.

SGD (momentum 0.9) and Adam over 1,000 float32 tensors of 10 and 2,000 of
5,000, 1 thread, the gradients kept between steps or (``--gradients new``)
new tensor objects before each step, as backward() after zero_grad() makes
them (views of the same memory, so that only the objects are new), every case timed in
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


def optimizer(cls, count, size, hyper, new_grads):
    """(prepare, step): `prepare` None, or giving each parameter a new gradient tensor."""
    params = [torch.nn.Parameter(torch.randn(size)) for _ in range(count)]
    grads = [1e-3 * torch.randn(size) for _ in params]
    for p, g in zip(params, grads):
        p.grad = g

    def renew():
        for p, g in zip(params, grads):
            p.grad = g.view_as(g)
    return (renew if new_grads else None), cls(params, lr=1e-3, **hyper).step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a fastopt checkout built in place")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per shape")
    parser.add_argument("--gradients", choices=("kept", "new"), default="kept",
                        help="the same gradient tensors at every step, or new ones")
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
              f"{torch.__version__}, 1 thread, gradients {args.gradients}; load average "
              f"{os.getloadavg()[0]:.1f}")
        print(f"{'shape':>10} {'optimizer':>9} {'case':>12} {'best us':>9} {'ns/param':>9} "
              f"{'torch fused / it':>17}")
        for count, size in SHAPES:
            entries = []
            for cls, hyper in CASES:
                new = args.gradients == "new"
                for name, module in builds:
                    entries.append(((cls, name), *optimizer(getattr(module, cls), count, size,
                                                            hyper, new)))
                entries.append(((cls, "torch fused"), *optimizer(
                    getattr(torch.optim, cls), count, size, dict(hyper, fused=True), new)))
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

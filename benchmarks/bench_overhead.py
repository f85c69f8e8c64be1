"""Per-tensor overhead of a step, against another build of fastopt in the same run.

The figure: the same 10,000 float32 elements stepped as 1,000 tensors of 10
and as one tensor of 10,000, Adam and SGD with momentum, 1 thread, every case
timed in alternation with the others (one call each per round, so load that
comes and goes on the machine hits all alike). ``(t_many - t_one) / 1000`` is
what each extra tensor costs: validation, overlap checks, list handling,
per-group scalars and the kernel's work per call. What the cases' arrays
find in cache depends on how many cases share the rounds (a baseline doubles
them), so ``--cache`` fixes it: ``warm`` runs an untimed call of the same
step before each timed one; ``cold`` writes a 32 MiB buffer first, so the
step finds its arrays out of L1 and L2, as after a forward and backward pass.

With ``--sizes``, each optimizer also steps 1e7 elements and 2,000 x 5,000,
timed in alternation with the in-place bandwidth probe: the fraction of the
probe's speed each build reaches (the same run, the same moments).

The baseline is another checkout of fastopt built in place (``--baseline
DIR``), or a git ref built into a scratch directory (``--baseline-ref REF``,
e.g. ``main``). Its package is loaded as ``fastopt_base`` next to this one.

Run from the repository root, fastopt built in place:
    PYTHONPATH=. python benchmarks/bench_overhead.py --baseline-ref main [--sizes] [--after-torch]
"""
import os

os.environ.setdefault("FASTOPT_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402

import fastopt  # noqa: E402
from benchmarks.run import ALGOS, _train, interleaved, parse_size  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = (("Adam", {}), ("SGD", {"momentum": 0.9}))


def build_ref(ref, scratch):
    """A checkout of git `ref` in scratch/src, built in place; returns its directory."""
    src = os.path.join(scratch, "src")
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", ROOT, "archive", ref], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", src], input=archive.stdout, check=True)
    log = os.path.join(scratch, "build.log")
    with open(log, "w") as out:
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=src,
                       stdout=out, stderr=subprocess.STDOUT, check=True)
    return src


def load_baseline(checkout, scratch):
    """The fastopt package of `checkout` (built in place), imported as fastopt_base."""
    pkg = os.path.join(scratch, "pkg")
    shutil.copytree(os.path.join(checkout, "fastopt"), os.path.join(pkg, "fastopt_base"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    sys.path.insert(0, pkg)
    base = importlib.import_module("fastopt_base")
    base.set_num_threads(fastopt.get_num_threads())
    return base


def step_case(module, cls, hyper, sizes, rng):
    params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    grads = [(1e-3 * rng.standard_normal(n)).astype(np.float32) for n in sizes]
    opt = getattr(module, cls)(params, lr=1e-3, **hyper)
    _train(opt)
    return lambda: opt.step(grads)


def per_tensor(builds, budget, rounds, cache=None):
    """Per build and optimizer: ns per extra tensor from the best and the median times
    (cache: None, "warm" or "cold", as --cache)."""
    evict = np.zeros(32 << 20, np.uint8)
    cold = lambda: evict.fill(1)  # noqa: E731
    rng = np.random.default_rng(0)
    entries = []
    for name, module in builds:
        for cls, hyper in CASES:
            for shape, sizes in (("many", [10] * 1000), ("one", [10000])):
                fn = step_case(module, cls, hyper, sizes, rng)
                prepare = fn if cache == "warm" else cold if cache == "cold" else None
                entries.append(((name, cls, shape), prepare, fn))
    times = interleaved(entries, budget, rounds)
    out = {}
    for name, _ in builds:
        for cls, _ in CASES:
            many, one = times[(name, cls, "many")], times[(name, cls, "one")]
            out[(name, cls)] = dict(
                best=(min(many) - min(one)) / 1000 * 1e9,
                median=(statistics.median(many) - statistics.median(one)) / 1000 * 1e9,
                many_us=min(many) * 1e6, one_us=min(one) * 1e6, rounds=len(many))
    return out


def bandwidth_fractions(builds, labels, algos, budget, rounds):
    """Per size, optimizer and build: the step's bytes per second over the in-place
    probe's (12 bytes per element), best times, the probe timed in the same rounds."""
    from fastopt import _probe

    rng = np.random.default_rng(1)
    out = {}
    for label in labels:
        sizes = parse_size(label)
        total = sum(sizes)
        pa, pb = np.ones(total, np.float32), np.ones(total, np.float32)
        for algo in algos:
            spec = ALGOS[algo]
            entries = [(("probe",), lambda: None,
                        lambda: _probe.bandwidth_probe("rmw", pa, pb, None, 0.0))]
            for name, module in builds:
                if not hasattr(module, spec["cls"]):
                    continue
                fn = step_case(module, spec["cls"], {k: v for k, v in spec["hyper"].items()
                                                     if k != "lr"}, sizes, rng)
                entries.append(((name,), lambda: None, fn))
            times = interleaved(entries, budget, rounds)
            probe = 12 * total / min(times[("probe",)])
            nbytes = (spec["reads"] + spec["writes"]) * 4 * total
            for name, _ in builds:
                if (name,) in times:
                    out[(label, algo, name)] = nbytes / min(times[(name,)]) / probe
            del entries, times
        del pa, pb
    return out


def after_torch():
    import torch

    torch.set_num_threads(1)
    tparams = [torch.zeros(5000) for _ in range(2000)]
    for p in tparams:
        p.grad = torch.ones(5000)
    topt = torch.optim.Adam(tparams, fused=True)
    for _ in range(5):
        topt.step()
    return topt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a fastopt checkout built in place")
    parser.add_argument("--baseline-ref", help="a git ref to build and compare with (e.g. main)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds for the per-tensor figure")
    parser.add_argument("--cache", choices=["warm", "cold"],
                        help="before each timed step: the same step, untimed (warm), or a "
                             "32 MiB write (cold); by default, only the other cases")
    parser.add_argument("--sizes", action="store_true",
                        help="also the fraction of the bandwidth probe at 1e7 and 2000x5000")
    parser.add_argument("--algos", default="sgd,adam,adamw,adagrad,rmsprop",
                        help="the optimizers of --sizes (comma-separated keys of fastopt.bench.ALGOS)")
    parser.add_argument("--size-budget", type=float, default=3.0, help="seconds per size and optimizer")
    parser.add_argument("--after-torch", action="store_true",
                        help="first run torch's fused Adam over 2,000 tensors of 5,000, as a "
                             "process that trains with torch has: the arrays measured here then "
                             "land in a heap torch has used, not side by side in fresh memory")
    args = parser.parse_args()
    keep = after_torch() if args.after_torch else None  # noqa: F841 (alive, as a model's would be)
    builds = [("this", fastopt)]
    scratch = tempfile.mkdtemp(prefix="fastopt-bench-")
    try:
        checkout = args.baseline
        if args.baseline_ref:
            print(f"building {args.baseline_ref} in {scratch} ...", flush=True)
            checkout = build_ref(args.baseline_ref, scratch)
        if checkout:
            builds.append(("baseline", load_baseline(checkout, scratch)))
        print(f"fastopt {fastopt.__version__}, simd {fastopt._core.active_isa()}, "
              f"threads {fastopt.get_num_threads()}; baseline: "
              f"{args.baseline_ref or args.baseline or 'none'}")
        print("per extra tensor: (t[1000 x 10] - t[1 x 10000]) / 1000, float32, interleaved"
              + (f", cache {args.cache}" if args.cache else ""))
        print(f"{'build':>9} {'optimizer':>10} {'best ns':>8} {'median ns':>10} "
              f"{'1000x10 us':>11} {'1x10000 us':>11}")
        for (name, cls), r in per_tensor(builds, args.budget, 200, args.cache).items():
            print(f"{name:>9} {cls:>10} {r['best']:>8.1f} {r['median']:>10.1f} "
                  f"{r['many_us']:>11.1f} {r['one_us']:>11.1f}")
        if args.sizes:
            print("fraction of the in-place bandwidth probe (best times, interleaved with it)")
            print(f"{'size':>10} {'optimizer':>10} " + " ".join(f"{n:>9}" for n, _ in builds))
            fractions = bandwidth_fractions(builds, ["1e7", "2000x5000"], args.algos.split(","),
                                            args.size_budget, 10)
            for label in ("1e7", "2000x5000"):
                for algo in args.algos.split(","):
                    cells = [fractions.get((label, algo, n)) for n, _ in builds]
                    print(f"{label:>10} {algo:>10} " + " ".join(
                        f"{100 * c:>8.1f}%" if c is not None else f"{'-':>9}" for c in cells))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

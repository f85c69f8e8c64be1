"""fastopt benchmark suite: optimizer steps against memory bandwidth and baselines.

Run from the repository root (with the extension built in place):

    python -m benchmarks                     # everything, float32
    python benchmarks/run.py --dtype float64
    python -m benchmarks --algos adam --sizes 1e7,2000x5000 --markdown out.md --png out.png

For every algorithm and problem size it times one optimizer step of fastopt,
a hand-written NumPy implementation, torch.optim (foreach=False, foreach=True,
fused=True where torch has it) and optax under jax.jit (when jax and optax are
installed; XLA uses all cores, so it appears in the all-threads rows only),
with one thread and with all threads. NumPy is single-threaded and appears in
the one-thread rows only. Next to them it measures the
machine's memory bandwidth with STREAM-style copy and triad and the in-place
read-modify-write ``a[i] += s * b[i]``, all three in C on fastopt's own thread
pool, so an optimizer's GB/s can be read as a fraction of what the memory
gives. It also times one step over 1,000 tensors of 10 elements (the per-call
overhead, Python included); with ``--head-to-head``, fastopt and torch's
fastest path in alternation; and, with ``--contention``, fastopt with 1 and all
threads while a CPU-bound process competes for a core.

Timings are wall-clock per step; each figure is the best (minimum) of the
repetitions that fit in ``--budget`` seconds (at least ``--min-reps``), the
STREAM convention; medians are shown too. fastopt is timed at each thread
count in alternation with the in-place probe (one call each per round), and
every "% of rmw bandwidth" of that algorithm and size is against the probe's
best in those rounds, so load that comes and goes on the machine moves
fastopt and its reference alike. Baselines run one thread count after the
other (an OpenMP pool left spinning by one call would slow the next). GB/s counts the
bytes a step must move: every buffer read once and every buffer written once
(Adam: param, grad, exp_avg, exp_avg_sq read, three of them written: 7 x 4
bytes per float32 element).
"""
import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

try:
    import fastopt
except ImportError:  # run as `python benchmarks/run.py` from a source tree
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fastopt
from fastopt import _core, _probe
from fastopt.bench import (ALGOS, DEEPSPEED_ALGOS, NUMPY_STEPS, PAUSE, NumpyOptimizer, cpu_name,
                           deepspeed_optimizer, interleaved, time_calls)
from fastopt._spec import SPECS

# ---------------------------------------------------------------- algorithms



# ------------------------------------------------------------------- timing

ROUNDS = dict(warmup=2, max_rounds=5000)  # per interleaved run (fastopt.bench)


def summary(times):
    """Best, median and 90th percentile (where the slowest tenth starts) of `times`."""
    p90 = statistics.quantiles(times, n=10, method="inclusive")[-1] if len(times) > 1 else times[0]
    return {"best": min(times), "median": statistics.median(times), "p90": p90, "reps": len(times)}


def parse_size(text):
    """'1e7' -> [10**7]; '2000x5000' -> [5000] * 2000."""
    if "x" in text:
        count, n = text.split("x")
        return [int(float(n))] * int(float(count))
    return [int(float(text))]


def make_arrays(sizes, dtype, rng, count):
    return [[rng.standard_normal(n, dtype=np.float32).astype(dtype, copy=False) for n in sizes]
            for _ in range(count)]


# ------------------------------------------------------------- bandwidth

PROBE_BYTES = {"copy": 8, "triad": 12, "rmw": 12}  # per float32 element


def bandwidth(n, threads, budget, min_reps, kinds=("copy", "triad", "rmw")):
    """GB/s of copy, triad and in-place rmw over n float32 elements, on fastopt's pool."""
    fastopt.set_num_threads(threads)
    a, b, c = (np.full(n, 1.0, np.float32) for _ in range(3))
    out = {}
    for kind in kinds:
        s = 0.0 if kind == "rmw" else 1.5  # rmw adds 0: values stay put across repetitions
        times = time_calls(lambda: _probe.bandwidth_probe(kind, a, b, c, s), budget, min_reps)
        out[kind] = {**summary(times), "gbs": PROBE_BYTES[kind] * n / min(times) / 1e9}
    return out


# ------------------------------------------------------------ implementations

def fastopt_case(algo, sizes, dtype, rng):
    spec = ALGOS[algo]
    params, grads = make_arrays(sizes, dtype, rng, 2)
    opt = getattr(fastopt, spec["cls"])(params, **spec["hyper"])
    _train(opt)
    return lambda: opt.step(grads)


def _train(opt):
    """Schedule-Free optimizers step only in train mode."""
    if hasattr(opt, "train"):
        opt.train()


def numpy_case(algo, sizes, dtype, rng):
    params, grads = make_arrays(sizes, dtype, rng, 2)
    opt = NumpyOptimizer(algo, params, **ALGOS[algo]["hyper"])
    return lambda: opt.step(grads)


def torch_case(torch, algo, sizes, dtype, rng, variant):
    spec = ALGOS[algo]
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    params = [torch.randn(n, dtype=tdtype, requires_grad=True) for n in sizes]
    for p in params:
        p.grad = torch.randn(p.shape[0], dtype=tdtype)
    cls = getattr(torch.optim, spec["cls"])
    kw = {"fused": True} if variant == "fused" else {"foreach": variant == "foreach"}
    opt = cls(params, **spec["hyper"], **kw)
    return opt.step


def deepspeed_case(torch, algo, sizes, dtype, rng):
    if dtype != np.float32:
        raise TypeError("DeepSpeed's CPU optimizers step float32 (and 16-bit) parameters only")
    params = [torch.randn(n, requires_grad=True) for n in sizes]
    for p in params:
        p.grad = torch.randn(p.shape[0])
    return deepspeed_optimizer(algo, params, ALGOS[algo]["hyper"]).step


# The torch optimizers that are the reference of an optimizer torch.optim lacks:
# algo -> (package, module, class, whether it has a foreach path).
TORCH_REFERENCES = {
    "lion": ("lion-pytorch", "lion_pytorch", "Lion", False),
    "adan": ("pytorch-optimizer", "pytorch_optimizer", "Adan", True),
    "schedulefreeadamw": ("schedulefree", "schedulefree", "AdamWScheduleFree", True),
    "schedulefreesgd": ("schedulefree", "schedulefree", "SGDScheduleFree", True),
}


def reference_case(torch, algo, sizes, dtype, rng, foreach=False):
    """The step of the torch optimizer that is algo's reference (TORCH_REFERENCES),
    its per-tensor path, or its foreach path with foreach=True."""
    import importlib
    _, module, name, has_foreach = TORCH_REFERENCES[algo]
    cls = getattr(importlib.import_module(module), name)
    extra = {"foreach": foreach} if has_foreach else {}
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    params = [torch.randn(n, dtype=tdtype, requires_grad=True) for n in sizes]
    grads = [torch.randn(n, dtype=tdtype) for n in sizes]
    opt = cls(params, **ALGOS[algo]["hyper"], **extra)
    _train(opt)

    def run():
        for p, g in zip(params, grads):
            p.grad = g  # reassigned each step: some references change p.grad in place
        opt.step()
    return run


def optax_case(jax, optax, algo, sizes, dtype, rng, stacked=False):
    """optax's step under jax.jit: one leaf per tensor, or with `stacked` the
    equal-sized tensors as rows of one array and the step vmapped over them
    (each row still its own parameter, with its own state and trust ratio:
    how JAX code steps a stack of layers, and quick to compile where a jit
    over thousands of leaves takes many minutes)."""
    import jax.numpy as jnp
    spec = ALGOS[algo]
    h = spec["hyper"]
    make = {
        "adam": lambda: optax.adam(h["lr"]),
        "adamw": lambda: optax.adamw(h["lr"], weight_decay=h.get("weight_decay", 0.0)),
        "sgd": lambda: optax.sgd(h["lr"], momentum=h.get("momentum")),
        "adagrad": lambda: optax.adagrad(h["lr"]),
        "rmsprop": lambda: optax.rmsprop(h["lr"]),
        "lion": lambda: optax.lion(h["lr"], weight_decay=0.0),
        "adabelief": lambda: optax.adabelief(h["lr"]),
        "adopt": lambda: optax.contrib.adopt(h["lr"]),
        "lamb": lambda: optax.lamb(h["lr"]),
        "lars": lambda: optax.lars(h["lr"]),
    }[algo]
    tx = make()

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params, grads = ([jnp.asarray(a) for a in arrays] for arrays in make_arrays(sizes, dtype, rng, 2))
    if stacked:
        params, grads = jnp.stack(params), jnp.stack(grads)
        state = [jax.vmap(tx.init)(params)]
        update = jax.jit(jax.vmap(step))
    else:
        state = [tx.init(params)]
        update = jax.jit(step)
    box = [params]

    # donate nothing: jax on CPU cannot update in place, which is part of its cost
    def run():
        box[0], state[0] = update(box[0], state[0], grads)
        jax.block_until_ready(box[0])
    return run


# ------------------------------------------------------------------ drivers

def available_baselines(args):
    """(name, factory(algo, sizes, dtype, rng) or None) for every baseline to run."""
    out = []
    if not args.no_numpy:
        out.append(("numpy", numpy_case))
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        for variant, label in (("loop", "torch foreach=False"), ("foreach", "torch foreach=True"),
                               ("fused", "torch fused=True")):
            out.append((label, lambda a, s, d, r, v=variant: torch_case(torch, a, s, d, r, v)))
        out.append(("reference (torch)", lambda a, s, d, r: reference_case(torch, a, s, d, r)))
        out.append(("reference foreach=True",
                    lambda a, s, d, r: reference_case(torch, a, s, d, r, foreach=True)))
        import importlib.util
        if importlib.util.find_spec("deepspeed") is not None:
            out.append(("DeepSpeed", lambda a, s, d, r: deepspeed_case(torch, a, s, d, r)))
    try:
        import jax
        import optax
        jax.config.update("jax_enable_x64", True)
        out.append(("optax jit", lambda a, s, d, r: optax_case(jax, optax, a, s, d, r)))
        out.append(("optax jit vmap",
                    lambda a, s, d, r: optax_case(jax, optax, a, s, d, r, stacked=True)))
    except ImportError:
        pass
    return out, torch


def set_threads(torch, n):
    fastopt.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def measure(factory, threads, torch, budget, min_reps):
    gc.collect()
    fn = factory()
    set_threads(torch, threads)
    times = time_calls(fn, budget, min_reps)
    del fn
    gc.collect()
    return summary(times)


def run_sizes(args, out):
    """Per size and algorithm, every implementation in turn; each is timed at every
    thread count in alternation with the in-place bandwidth probe, so its fraction
    of the bandwidth and its 1 -> all threads scaling come from the same moments."""
    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype).type
    esize = np.dtype(dtype).itemsize
    baselines, torch = available_baselines(args)
    out["baselines"] = [b for b, _ in baselines]
    all_threads = fastopt._core.default_num_threads()
    thread_counts = sorted({1, all_threads}) if not args.threads else args.threads
    results = []
    for label in args.sizes:
        sizes = parse_size(label)
        total = sum(sizes)
        bw = {t: bandwidth(total, t, args.budget, args.min_reps) for t in thread_counts}
        out.setdefault("bandwidth", {})[label] = bw
        pa, pb = np.ones(total, np.float32), np.ones(total, np.float32)

        def probe():
            _probe.bandwidth_probe("rmw", pa, pb, None, 0.0)

        for algo in args.algos:
            spec = ALGOS[algo]
            nbytes = (spec["reads"] + spec["writes"]) * esize * total
            cases = [("fastopt", lambda: fastopt_case(algo, sizes, dtype, rng), thread_counts)]
            for name, make in baselines:
                if name == "torch fused=True" and not spec["fused"]:
                    continue
                if name.startswith("torch ") and not spec["in_torch"]:
                    continue
                if name == "reference (torch)" and algo not in TORCH_REFERENCES:
                    continue
                if name == "reference foreach=True" and not (algo in TORCH_REFERENCES
                                                          and TORCH_REFERENCES[algo][3]):
                    continue
                if name == "numpy" and algo not in NUMPY_STEPS:
                    continue
                if name == "DeepSpeed" and algo not in DEEPSPEED_ALGOS:
                    continue
                stack = len(sizes) > 1 and len(set(sizes)) == 1
                if name == "optax jit vmap" and not (stack and args.optax != "leaves"):
                    continue
                if name == "optax jit" and stack and args.optax == "vmap":
                    continue
                threads = thread_counts
                if name == "numpy":
                    threads = thread_counts[:1]  # single-threaded whatever the setting
                elif name.startswith("optax jit"):
                    threads = thread_counts[-1:]  # XLA runs its own pool over all cores
                cases.append((name, lambda make=make: make(algo, sizes, dtype, rng), threads))
            reference = {}
            for name, make, threads in cases:
                gc.collect()
                try:
                    fn = make()
                    if name == "fastopt":
                        # fastopt at each thread count and the probe, in alternation
                        entries = []
                        for t in threads:
                            entries.append(((name, t), lambda t=t: fastopt.set_num_threads(t), fn))
                            entries.append((("probe", t), lambda t=t: fastopt.set_num_threads(t), probe))
                        times = interleaved(entries, args.budget * len(threads), args.min_reps, **ROUNDS)
                        for t in threads:
                            reference[t] = 12 * total / min(times[("probe", t)]) / 1e9
                    else:
                        # One thread count after the other: an OpenMP pool left spinning
                        # by one call would slow whatever runs next.
                        times = {}
                        for t in threads:
                            set_threads(torch, t)
                            times[(name, t)] = time_calls(fn, args.budget, args.min_reps)
                except Exception as e:  # a baseline that cannot run here is reported, not fatal
                    print(f"  {name} {algo} {label}: skipped ({type(e).__name__}: {e})", file=sys.stderr)
                    continue
                finally:
                    fn = None
                    gc.collect()
                for t in threads:
                    r = summary(times[(name, t)])
                    rmw = reference[t]
                    r.update(impl=name, algo=algo, size=label, threads=t, bytes=nbytes,
                             gbs=nbytes / r["best"] / 1e9, rmw_gbs=rmw)
                    r["frac_rmw"] = r["gbs"] / rmw
                    results.append(r)
                    print(f"  {algo:8s} {label:>10s} {t}T {name:20s} {r['best'] * 1e3:9.3f} ms "
                          f"(median {r['median'] * 1e3:9.3f}) {r['gbs']:6.1f} GB/s "
                          f"{100 * r['frac_rmw']:5.1f}% of rmw {rmw:6.1f}", flush=True)
        del pa, pb
    out["steps"] = results
    set_threads(torch, all_threads)


def run_overhead(args, out):
    """One step over 1,000 tensors of 10 elements, Python call included."""
    rng = np.random.default_rng(1)
    dtype = np.dtype(args.dtype).type
    sizes = [10] * 1000
    _, torch = available_baselines(args)
    rows = []
    for algo in args.algos:
        spec = ALGOS[algo]
        cases = [("fastopt", lambda: fastopt_case(algo, sizes, dtype, rng))]
        if torch is not None and not args.no_torch and spec["in_torch"]:
            cases.append(("torch foreach=True", lambda: torch_case(torch, algo, sizes, dtype, rng, "foreach")))
            if spec["fused"]:
                cases.append(("torch fused=True", lambda: torch_case(torch, algo, sizes, dtype, rng, "fused")))
        for name, make in cases:
            r = measure(make, fastopt._core.default_num_threads(), torch, args.budget, max(args.min_reps, 50))
            r.update(impl=name, algo=algo)
            rows.append(r)
            print(f"  overhead {algo:8s} {name:20s} best {r['best'] * 1e6:8.1f} us  "
                  f"median {r['median'] * 1e6:8.1f} us", flush=True)
    out["overhead"] = rows


def run_isas(args, out):
    """Every SIMD path on one thread, in cache (10^5 elements: L2; 10^6: L3), through
    the public functional API (a few microseconds of call overhead included)."""
    from fastopt import functional as F
    dtype = np.dtype(args.dtype).type
    rows = []
    fastopt.set_num_threads(1)

    def call(algo):
        """fastopt.functional's step of algo, its state buffers from a list of arrays."""
        spec, hyper = SPECS[ALGOS[algo]["cls"]], ALGOS[algo]["hyper"]
        used = [b.used({**spec.defaults, **hyper}) for b in spec.state]
        fn = getattr(F, algo + "_")

        def run(p, g, s, isa):
            buffers = iter(s)
            fn(p, g, *[next(buffers) if u else None for u in used], step=2, isa=isa, **hyper)
        return run
    calls = {algo: call(algo) for algo in args.algos}
    for n in (10**5, 10**6):
        rng = np.random.default_rng(3)
        g = rng.standard_normal(n).astype(dtype)
        for algo in args.algos:
            # fresh arrays per algorithm: one's state is no valid state for another
            # (a momentum buffer read as Adagrad's sum turns parameters into NaN)
            p = rng.standard_normal(n).astype(dtype)
            state = [np.zeros(n, dtype) for _ in range(_core.NUM_SLOTS)]
            entries = [(isa, lambda: None, lambda isa=isa: calls[algo](p, g, state, isa))
                       for isa in _core.isa_names()]
            times = interleaved(entries, args.budget * 2, max(args.min_reps, 20), **ROUNDS)
            for isa, ts in times.items():
                rows.append(dict(summary(ts), algo=algo, n=n, isa=isa, ns_per_elem=min(ts) / n * 1e9))
            line = "  ".join(f"{isa} {min(ts) / n * 1e9:.3f}" for isa, ts in times.items())
            print(f"  isa {algo:8s} n={n:>8d} ns/element: {line}", flush=True)
    fastopt.set_num_threads(fastopt._core.default_num_threads())
    out["isas"] = rows


HOG = "import time\nend = time.time() + {secs}\nwhile time.time() < end:\n    pass\n"


def run_contention(args, out):
    """fastopt and the rmw probe at 1 and all threads while a CPU-bound process runs."""
    rng = np.random.default_rng(2)
    dtype = np.dtype(args.dtype).type
    all_threads = fastopt._core.default_num_threads()
    rows = []
    labels = [s for s in args.sizes if s in ("1e7", "2000x5000")] or args.sizes[:1]
    for hog in (False, True):
        proc = None
        if hog:
            # bounded in time even if this script dies, and killed when done
            proc = subprocess.Popen([sys.executable, "-c", HOG.format(secs=900)])
            time.sleep(0.2)
        try:
            for label in labels:
                sizes = parse_size(label)
                total = sum(sizes)
                for algo in args.algos:
                    step = fastopt_case(algo, sizes, dtype, rng)
                    spec = ALGOS[algo]
                    nbytes = (spec["reads"] + spec["writes"]) * np.dtype(dtype).itemsize * total
                    # alternate thread counts so both see the same competition
                    per = {1: [], all_threads: []}
                    for _ in range(args.min_reps * 3):
                        for t in per:
                            fastopt.set_num_threads(t)
                            per[t] += time_calls(step, args.budget / 6, 1, warmup=1)
                    for t, times in per.items():
                        r = summary(times)
                        r.update(algo=algo, size=label, threads=t, hog=hog, gbs=nbytes / r["best"] / 1e9,
                                 gbs_median=nbytes / r["median"] / 1e9)
                        rows.append(r)
                    del step
                    gc.collect()
                a, b = np.ones(total, np.float32), np.ones(total, np.float32)
                per = {1: [], all_threads: []}
                for _ in range(args.min_reps * 3):
                    for t in per:
                        fastopt.set_num_threads(t)
                        per[t] += time_calls(lambda: _probe.bandwidth_probe("rmw", a, b, None, 0.0),
                                             args.budget / 6, 1, warmup=1)
                for t, times in per.items():
                    r = summary(times)
                    r.update(algo="probe rmw", size=label, threads=t, hog=hog,
                             gbs=12 * total / r["best"] / 1e9, gbs_median=12 * total / r["median"] / 1e9)
                    rows.append(r)
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
    fastopt.set_num_threads(all_threads)
    for r in rows:
        print(f"  {'busy core' if r['hog'] else 'idle     '} {r['algo']:9s} {r['size']:>10s} {r['threads']}T "
              f"best {r['best'] * 1e3:8.3f} ms  median {r['median'] * 1e3:8.3f} ms  p90 {r['p90'] * 1e3:8.3f} ms",
              flush=True)
    out["contention"] = rows


def run_head_to_head(args, out):
    """fastopt against torch's fastest path for the algorithm (fused, RMSprop:
    foreach), at all threads, one call each per round in alternation, so that
    the machine's bandwidth, which drifts by 10-30% over seconds here, is the
    same for both. A pause after every call lets the other's threads fall
    asleep first: each step starts as one does after a forward and backward pass."""
    _, torch = available_baselines(args)
    if torch is None:
        print("  head-to-head: torch is not installed: skipped", file=sys.stderr)
        return
    rng = np.random.default_rng(3)
    dtype = np.dtype(args.dtype).type
    threads = fastopt._core.default_num_threads()
    set_threads(torch, threads)
    rows = []
    for label in args.sizes:
        sizes = parse_size(label)
        for algo in [a for a in args.algos if ALGOS[a]["in_torch"]]:
            variant = "fused" if ALGOS[algo]["fused"] else "foreach"
            mine = fastopt_case(algo, sizes, dtype, rng)
            theirs = torch_case(torch, algo, sizes, dtype, rng, variant)
            pause = lambda: time.sleep(PAUSE)  # noqa: E731
            times = interleaved([("fastopt", pause, mine), ("torch", pause, theirs)],
                                args.budget * 4, args.min_reps * 3, **ROUNDS)
            del mine, theirs
            gc.collect()
            r = {"algo": algo, "size": label, "threads": threads, "torch": f"torch {variant}",
                 "fastopt": summary(times["fastopt"]), "other": summary(times["torch"])}
            rows.append(r)
            print(f"  head-to-head {algo:8s} {label:>10s} fastopt {r['fastopt']['best'] * 1e3:8.3f} ms "
                  f"(median {r['fastopt']['median'] * 1e3:8.3f})  {r['torch']} "
                  f"{r['other']['best'] * 1e3:8.3f} ms (median {r['other']['median'] * 1e3:8.3f})", flush=True)
    out["head_to_head"] = rows


# ------------------------------------------------------------------ report

def machine_info():
    try:
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
    except OSError:
        load = None
    info = {"python": platform.python_version(), "loadavg_at_start": load, "numpy": np.__version__,
            "fastopt": fastopt.__version__, "simd": _core.active_isa(),
            "simd_available": _core.isa_names(), "threads": fastopt._core.default_num_threads(),
            "platform": platform.platform()}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        import jax
        import optax
        info["jax"], info["optax"] = jax.__version__, optax.__version__
    except ImportError:
        pass
    info["cpu"] = cpu_name()
    return info


def markdown(out):
    lines = []
    info = out["machine"]
    lines.append(f"fastopt {info['fastopt']} ({info['simd']} path), {info['cpu']}, "
                 f"{info['threads']} threads, Python {info['python']}, NumPy {info['numpy']}"
                 + (f", torch {info['torch']}" if "torch" in info else "")
                 + (f", jax {info['jax']} / optax {info['optax']}" if "jax" in info else "")
                 + f"; dtype {out['dtype']}"
                 + (f"; load average at start {info['loadavg_at_start']}" if info.get("loadavg_at_start") else "")
                 + ".")
    lines.append("")
    if out.get("bandwidth"):
        lines.append("Memory bandwidth (GB/s, measured in C on fastopt's pool):")
        lines.append("")
        lines.append("| size (float32 elements) | threads | copy | triad | in-place rmw |")
        lines.append("|---|---|---|---|---|")
        for label, per in out["bandwidth"].items():
            for t, bw in per.items():
                lines.append(f"| {label} | {t} | {bw['copy']['gbs']:.1f} | {bw['triad']['gbs']:.1f} | "
                             f"{bw['rmw']['gbs']:.1f} |")
        lines.append("")
    if out.get("steps"):
        lines.append("One step. ms/step: best (median) of the repetitions; GB/s and % of the in-place "
                     "(rmw) bandwidth from the best, against the probe timed in alternation with fastopt; "
                     "speed-up = baseline time / fastopt time at the same thread count (best and median):")
        lines.append("")
        lines.append("| algo | size | threads | implementation | ms/step | GB/s | rmw GB/s | % of rmw | fastopt speed-up |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        steps = out["steps"]
        for r in steps:
            mine = next((x for x in steps if x["impl"] == "fastopt" and x["algo"] == r["algo"]
                         and x["size"] == r["size"] and x["threads"] == r["threads"]), None)
            if r["impl"] == "fastopt":
                sp = ""
            elif mine is None:  # numpy: compare with fastopt at its best thread count
                sp = ""
            else:
                sp = f"{r['best'] / mine['best']:.2f}x ({r['median'] / mine['median']:.2f}x)"
            name = f"**{r['impl']}**" if r["impl"] == "fastopt" else r["impl"]
            lines.append(f"| {r['algo']} | {r['size']} | {r['threads']} | {name} | "
                         f"{r['best'] * 1e3:.3f} ({r['median'] * 1e3:.3f}) | {r['gbs']:.1f} | "
                         f"{r.get('rmw_gbs', float('nan')):.1f} | {100 * r['frac_rmw']:.0f}% | {sp} |")
        lines.append("")
        ts = sorted({r["threads"] for r in steps})
        if len(ts) > 1:
            lines.append(f"Thread scaling ({ts[0]} -> {ts[-1]} threads): fastopt's speed-up next to the "
                         "in-place probe's, both from the same alternating rounds (best, and median):")
            lines.append("")
            lines.append("| algo | size | fastopt best | fastopt median | rmw probe best |")
            lines.append("|---|---|---|---|---|")
            for r in steps:
                if r["impl"] != "fastopt" or r["threads"] != ts[0]:
                    continue
                other = next((x for x in steps if x["impl"] == "fastopt" and x["algo"] == r["algo"]
                              and x["size"] == r["size"] and x["threads"] == ts[-1]), None)
                if other:
                    lines.append(f"| {r['algo']} | {r['size']} | {r['best'] / other['best']:.2f}x | "
                                 f"{r['median'] / other['median']:.2f}x | "
                                 f"{other.get('rmw_gbs', 0) / max(r.get('rmw_gbs', 1), 1e-9):.2f}x |")
            lines.append("")
    if out.get("isas"):
        isas = list(dict.fromkeys(r["isa"] for r in out["isas"]))
        base = "sse2" if "sse2" in isas else isas[min(1, len(isas) - 1)]
        lines.append("Each SIMD path on one thread, one tensor in cache (ns per element, best; "
                     f"speed-up of the fastest path over the portable loop auto-vectorised for the "
                     f"baseline, `{base}`):")
        lines.append("")
        lines.append("| algo | n | " + " | ".join(isas) + " | best / " + base + " |")
        lines.append("|---|---|" + "---|" * (len(isas) + 1))
        keys = list(dict.fromkeys((r["algo"], r["n"]) for r in out["isas"]))
        for algo, n in keys:
            per = {r["isa"]: r["ns_per_elem"] for r in out["isas"] if r["algo"] == algo and r["n"] == n}
            lines.append(f"| {algo} | {n} | " + " | ".join(f"{per[i]:.3f}" for i in isas)
                         + f" | {per[base] / min(per.values()):.2f}x |")
        lines.append("")
    if out.get("overhead"):
        lines.append("Per-call overhead: one step over 1,000 tensors of 10 elements, Python call included:")
        lines.append("")
        lines.append("| algo | implementation | best (us) | median (us) |")
        lines.append("|---|---|---|---|")
        for r in out["overhead"]:
            lines.append(f"| {r['algo']} | {r['impl']} | {r['best'] * 1e6:.1f} | {r['median'] * 1e6:.1f} |")
        lines.append("")
    if out.get("head_to_head"):
        lines.append(f"Head to head (`--head-to-head`): fastopt and torch's fastest path timed in "
                     f"alternation at {out['head_to_head'][0]['threads']} threads, with a "
                     f"{PAUSE * 1e3:.0f} ms pause before every call; speed-up = torch time / "
                     "fastopt time:")
        lines.append("")
        lines.append("| algo | size | fastopt ms, best (median) | torch | torch ms, best (median) | speed-up, best (median) |")
        lines.append("|---|---|---|---|---|---|")
        for r in out["head_to_head"]:
            f, o = r["fastopt"], r["other"]
            lines.append(f"| {r['algo']} | {r['size']} | {f['best'] * 1e3:.3f} ({f['median'] * 1e3:.3f}) | "
                         f"{r['torch']} | {o['best'] * 1e3:.3f} ({o['median'] * 1e3:.3f}) | "
                         f"{o['best'] / f['best']:.2f}x ({o['median'] / f['median']:.2f}x) |")
        lines.append("")
    if out.get("contention"):
        lines.append("With a CPU-bound process competing for a core (`--contention`), fastopt at 1 and "
                     "all threads, measured alternately:")
        lines.append("")
        lines.append("| competing process | algo | size | threads | best ms | median ms | p90 ms | GB/s (best) | GB/s (median) |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in out["contention"]:
            lines.append(f"| {'yes' if r['hog'] else 'no'} | {r['algo']} | {r['size']} | {r['threads']} | "
                         f"{r['best'] * 1e3:.3f} | {r['median'] * 1e3:.3f} | "
                         f"{format(r['p90'] * 1e3, '.3f') if 'p90' in r else '-'} | "
                         f"{r['gbs']:.1f} | {r['gbs_median']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def chart(out, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart written", file=sys.stderr)
        return
    steps = out["steps"]
    ts = max(r["threads"] for r in steps)
    keys = [(r["algo"], r["size"]) for r in steps if r["impl"] == "fastopt" and r["threads"] == ts]
    impls = list(dict.fromkeys(r["impl"] for r in steps))
    fig, ax = plt.subplots(figsize=(max(8, len(keys) * 0.9), 4.5))
    width = 0.8 / len(impls)
    for k, impl in enumerate(impls):
        vals = []
        for algo, size in keys:
            r = next((x for x in steps if x["impl"] == impl and x["algo"] == algo and x["size"] == size
                      and (x["threads"] == ts or impl == "numpy")), None)
            vals.append(100 * r["frac_rmw"] if r else 0)
        ax.bar([i + k * width for i in range(len(keys))], vals, width, label=impl)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))])
    ax.set_xticklabels([f"{a}\n{s}" for a, s in keys], fontsize=8)
    ax.set_ylabel("% of in-place memory bandwidth")
    ax.set_title(f"One optimizer step, {out['dtype']}, {ts} threads ({out['machine']['cpu']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"chart written to {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algos", default=",".join(ALGOS), help="comma-separated, from: " + ", ".join(ALGOS))
    ap.add_argument("--sizes", default="1e5,1e6,1e7,1e8,2000x5000",
                    help="comma-separated: N (one tensor) or COUNTxN")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", default="", help="comma-separated thread counts (default: 1 and all)")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-numpy", action="store_true")
    ap.add_argument("--no-steps", action="store_true", help="skip the per-size step table")
    ap.add_argument("--no-overhead", action="store_true")
    ap.add_argument("--optax", default="both", choices=["leaves", "vmap", "both"],
                    help="on COUNTxN sizes, optax's step over one leaf per tensor, vmapped over "
                         "the tensors stacked (quick to compile), or both")
    ap.add_argument("--no-isas", action="store_true", help="skip the per-SIMD-path table")
    ap.add_argument("--contention", action="store_true",
                    help="also measure with a competing CPU-bound process (killed afterwards, "
                         "and ending by itself after 15 minutes in any case)")
    ap.add_argument("--head-to-head", action="store_true",
                    help="also time fastopt and torch's fastest path in alternation, at all threads")
    ap.add_argument("--markdown", help="write the tables as Markdown to this file")
    ap.add_argument("--png", help="write a chart to this file (needs matplotlib)")
    ap.add_argument("--json", help="write all measurements to this file")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: print (and write) the report of a saved --json run")
    args = ap.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            out = json.load(f)
        for label, per in out.get("bandwidth", {}).items():  # JSON keys are strings
            out["bandwidth"][label] = {int(t): bw for t, bw in per.items()}
        report(out, args)
        return
    args.algos = [a for a in args.algos.split(",") if a]
    for a in args.algos:
        if a not in ALGOS:
            ap.error(f"unknown algorithm {a!r}")
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.threads = [int(t) for t in args.threads.split(",") if t]

    out = {"machine": machine_info(), "dtype": args.dtype, "argv": sys.argv[1:]}
    fastopt.show_config()
    if not args.no_steps:
        run_sizes(args, out)
    if not args.no_isas:
        run_isas(args, out)
    if not args.no_overhead:
        run_overhead(args, out)
    if args.head_to_head:
        run_head_to_head(args, out)
    if args.contention:
        run_contention(args, out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    report(out, args)


def report(out, args):
    text = markdown(out)
    print()
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.png and out.get("steps"):
        chart(out, args.png)


if __name__ == "__main__":
    main()

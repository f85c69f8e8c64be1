"""``python -m fastopt bench``: how fast is one optimizer step on this machine?

A quick benchmark for your own machine (the repository's ``benchmarks/``
directory has the full suite). For each problem shape it times one step
(float32, by default) of one optimizer (``--optimizer``, Adam by default) in:

- ``fastopt``: ``fastopt.<Name>`` on NumPy arrays;
- ``numpy``: the optimizer written in NumPy with in-place ufuncs and
  preallocated temporaries (about the best plain NumPy does; Adam, AdamW,
  SGD, Adagrad and RMSprop);
- when torch is installed and has the optimizer, ``torch.optim.<Name>`` on
  the CPU with ``foreach=False`` (torch's default single-tensor loop),
  ``foreach=True`` and ``fused=True`` (where torch has it), and
  ``fastopt.torch.<Name>`` on the same tensors;
- when DeepSpeed is installed, its ``DeepSpeedCPUAdam`` (Adam, AdamW) or
  ``DeepSpeedCPUAdagrad`` (float32; DeepSpeed compiles it at first use).

Shapes: one tensor of 10^6 elements, one of 10^7, 2,000 tensors of 5,000
(a model's many mid-sized layers) and 1,000 tensors of 10 elements (where
per-call overhead, Python included, is what is measured). The
implementations take turns, one step each per round, for ``--budget``
seconds per implementation (at least three rounds), after a warm-up step,
and each figure is the best of its steps, so that load from elsewhere on the
machine does not favour one of them; GB/s counts the bytes the step must
move (every buffer read once, every buffer written once: Adam reads param,
grad, exp_avg and exp_avg_sq and writes three of them, 7 x 4 bytes per
float32 element). The run prints the machine (CPU model, SIMD path,
threads), a table and, with ``--png``, draws it (needs matplotlib).
"""
import argparse
import gc
import inspect
import platform
import time

import numpy as np

from . import _core, get_num_threads, set_num_threads
from ._spec import SPECS

__all__ = ["SHAPES", "ALGOS", "NUMPY_STEPS", "numpy_step", "NumpyOptimizer", "NumpyAdam",
           "DEEPSPEED_ALGOS", "PAUSE", "deepspeed_optimizer", "cpu_name", "contenders", "interleaved",
           "time_calls", "measure", "run", "main"]

# name: list of tensor sizes
SHAPES = {
    "1 x 1e6": [10**6],
    "1 x 1e7": [10**7],
    "2000 x 5000": [5000] * 2000,
    "1000 x 10": [10] * 1000,
}
HYPER = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)  # Adam's defaults
NUMPY_STEPS = ("adam", "adamw", "sgd", "adagrad", "rmsprop")  # the algorithms numpy_step writes out
# Seconds of rest before each timed call when contenders take turns. torch's
# and DeepSpeed's OpenMP threads spin for a few milliseconds after each call,
# holding the cores the next contender needs: whatever ran right after them was
# up to 20% slower at 10^7 elements on 2 threads (BENCHMARKS.md).
PAUSE = 0.02
# What the benchmarks set besides the defaults and lr (the common settings).
SETTINGS = {"AdamW": dict(weight_decay=1e-2), "SGD": dict(momentum=0.9)}


def _torch_has_fused(name):
    try:
        import torch
    except ImportError:
        return False
    cls = getattr(torch.optim, name, None)  # torch.optim lacks Lion, AdaBelief, ...
    return cls is not None and "fused" in inspect.signature(cls).parameters


def _algos():
    """name: fastopt class, hyperparameters, buffers read, buffers written (the
    parameter, its gradient and the state buffers used), fused in torch on CPU."""
    out = {}
    for name, spec in SPECS.items():
        hyper = dict(lr=spec.defaults["lr"], **SETTINGS.get(name, {}))
        used = sum(spec.slots({**spec.defaults, **hyper}))
        out[name.lower()] = dict(cls=name, hyper=hyper, reads=2 + used, writes=1 + used,
                                 fused=_torch_has_fused(name),
                                 in_torch=spec.reference == "torch.optim")
    return out


ALGOS = _algos()  # every optimizer in fastopt._spec, by lower-case name
# The ones `python -m fastopt bench` times on its dense 1-D shapes (Muon steps
# matrices only, SparseAdam row-sparse gradients only).
BENCH_ALGOS = [a for a in ALGOS if a not in ("muon", "sparseadam")]
DEEPSPEED_ALGOS = ("adam", "adamw", "adagrad")  # DeepSpeedCPUAdam (adamw_mode), DeepSpeedCPUAdagrad


def numpy_step(algo, hyper, dtype):
    """A hand-written NumPy step of `algo` (adam, adamw, sgd, adagrad, rmsprop)
    over lists of arrays, in place with preallocated temporaries (about the
    best plain NumPy does): ``(step(params, grads, state, t), buffers per
    parameter)``, `state` holding that many zero arrays per parameter."""
    dtype = np.dtype(dtype)
    lr = dtype.type(hyper["lr"])

    if algo in ("adam", "adamw"):
        (b1, b2), eps = hyper.get("betas", (0.9, 0.999)), hyper.get("eps", 1e-8)
        wd = hyper.get("weight_decay", 0.0)

        def step(params, grads, state, t):
            bc1 = 1 - b1 ** t
            bc2s = (1 - b2 ** t) ** 0.5
            for p, g, (m, v, tmp) in zip(params, grads, state):
                if algo == "adamw":
                    p *= dtype.type(1 - hyper["lr"] * wd)
                m *= dtype.type(b1)
                np.multiply(g, dtype.type(1 - b1), out=tmp)
                m += tmp
                v *= dtype.type(b2)
                np.multiply(g, g, out=tmp)
                tmp *= dtype.type(1 - b2)
                v += tmp
                np.sqrt(v, out=tmp)
                tmp /= dtype.type(bc2s)
                tmp += dtype.type(eps)
                np.divide(m, tmp, out=tmp)
                tmp *= dtype.type(-hyper["lr"] / bc1)
                p += tmp
        return step, 3
    if algo == "sgd":
        mom = dtype.type(hyper.get("momentum", 0.0))

        def step(params, grads, state, t):
            for p, g, (buf, tmp) in zip(params, grads, state):
                buf *= mom
                buf += g
                np.multiply(buf, -lr, out=tmp)
                p += tmp
        return step, 2
    if algo == "adagrad":
        eps = dtype.type(hyper.get("eps", 1e-10))

        def step(params, grads, state, t):
            for p, g, (s, tmp) in zip(params, grads, state):
                np.multiply(g, g, out=tmp)
                s += tmp
                np.sqrt(s, out=tmp)
                tmp += eps
                np.divide(g, tmp, out=tmp)
                tmp *= -lr
                p += tmp
        return step, 2
    if algo == "rmsprop":
        alpha, eps = dtype.type(hyper.get("alpha", 0.99)), dtype.type(hyper.get("eps", 1e-8))

        def step(params, grads, state, t):
            for p, g, (v, tmp) in zip(params, grads, state):
                v *= alpha
                np.multiply(g, g, out=tmp)
                tmp *= dtype.type(1) - alpha
                v += tmp
                np.sqrt(v, out=tmp)
                tmp += eps
                np.divide(g, tmp, out=tmp)
                tmp *= -lr
                p += tmp
        return step, 2
    raise ValueError(f"no NumPy baseline for {algo!r}")


class NumpyOptimizer:
    """:func:`numpy_step` of `algo` with its state, over a list of arrays."""

    def __init__(self, algo, params, **hyper):
        self._step, nbuf = numpy_step(algo, hyper, params[0].dtype)
        self.params = params
        self.state = [tuple(np.zeros_like(p) for _ in range(nbuf)) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        self._step(self.params, grads, self.state, self.t)


class NumpyAdam(NumpyOptimizer):
    """Adam over a list of arrays in NumPy: in place, no allocations per step."""

    def __init__(self, params, lr, betas, eps, weight_decay):
        super().__init__("adam", params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def deepspeed_optimizer(algo, params, hyper):
    """DeepSpeed's CPU optimizer for `algo` ("adam", "adamw" or "adagrad")
    over torch `params`, with `hyper` (torch's names). DeepSpeed compiles its
    op at the first use (minutes; ninja and a C++ compiler); whatever fails
    there is raised."""
    if algo == "adagrad":
        from deepspeed.ops.adagrad import DeepSpeedCPUAdagrad

        return DeepSpeedCPUAdagrad(params, lr=hyper["lr"], eps=hyper.get("eps", 1e-10),
                                   weight_decay=hyper.get("weight_decay", 0.0))
    if algo not in DEEPSPEED_ALGOS:
        raise ValueError(f"DeepSpeed has no CPU {algo}")
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    return DeepSpeedCPUAdam(params, lr=hyper["lr"], betas=hyper.get("betas", (0.9, 0.999)),
                            eps=hyper.get("eps", 1e-8), weight_decay=hyper.get("weight_decay", 0.0),
                            adamw_mode=algo == "adamw")


def cpu_name():
    """The processor's model name ("AMD EPYC 7B13", ...) where the system says it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):  # x86; arm64 boards
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        import subprocess
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=10).stdout.strip() or platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def contenders(algo="adam", with_torch=True):
    """Name -> factory(sizes, dtype) returning a zero-argument step function,
    for every implementation of `algo` (a key of ALGOS) that runs here."""
    info = ALGOS[algo]
    hyper = info["hyper"]

    def arrays(sizes, dtype, seed):
        rng = np.random.default_rng(seed)
        return [rng.standard_normal(n).astype(dtype) for n in sizes]

    def fastopt_step(sizes, dtype):
        from . import optim

        params, grads = arrays(sizes, dtype, 0), arrays(sizes, dtype, 1)
        opt = getattr(optim, info["cls"])(params, **hyper)
        if hasattr(opt, "train"):  # Schedule-Free optimizers step in train mode
            opt.train()
        return lambda: opt.step(grads)

    def numpy_opt(sizes, dtype):
        params, grads = arrays(sizes, dtype, 0), arrays(sizes, dtype, 1)
        opt = NumpyOptimizer(algo, params, **hyper)
        return lambda: opt.step(grads)

    out = {"fastopt": fastopt_step}
    if algo in NUMPY_STEPS:
        out["numpy"] = numpy_opt
    if not with_torch:
        return out
    try:
        import torch
    except ImportError:
        return out

    def on_torch(make_opt):
        def factory(sizes, dtype):
            tdtype = getattr(torch, np.dtype(dtype).name)
            params = [torch.nn.Parameter(torch.from_numpy(a)) for a in arrays(sizes, dtype, 0)]
            for p, g in zip(params, arrays(sizes, dtype, 1)):
                p.grad = torch.from_numpy(g).to(tdtype)
            opt = make_opt(params)
            return opt.step
        return factory

    if info["in_torch"]:
        cls = getattr(torch.optim, info["cls"])
        out["torch (loop)"] = on_torch(lambda ps: cls(ps, foreach=False, **hyper))
        out["torch (foreach)"] = on_torch(lambda ps: cls(ps, foreach=True, **hyper))
        if info["fused"]:
            out["torch (fused)"] = on_torch(lambda ps: cls(ps, fused=True, **hyper))
    from . import torch as fastopt_torch

    out["fastopt.torch"] = on_torch(lambda ps: getattr(fastopt_torch, info["cls"])(ps, **hyper))
    if algo in DEEPSPEED_ALGOS:
        import importlib.util

        if importlib.util.find_spec("deepspeed") is not None:
            out["DeepSpeed"] = on_torch(lambda ps: deepspeed_optimizer(algo, ps, hyper))
    return out


def interleaved(entries, budget, min_rounds, warmup=1, max_rounds=1000):
    """Per-call seconds of each ``(key, prepare, fn)`` in `entries`: {key: [seconds, ...]}.

    The functions take turns, one call each per round, until `budget`
    seconds have passed (and at least `min_rounds` rounds, at most
    `max_rounds`), so load that comes and goes on the machine hits all of
    them alike; `prepare` (None, or untimed, such as setting a thread count)
    runs before each call. Each gets `warmup` calls first (first touch of
    state buffers, thread start); the garbage collector waits meanwhile.
    """
    for _, prepare, fn in entries:
        if prepare is not None:
            prepare()
        for _ in range(warmup):
            fn()
    times = {key: [] for key, _, _ in entries}
    rounds, deadline = 0, time.perf_counter() + budget
    gc.disable()
    try:
        while rounds < min_rounds or (time.perf_counter() < deadline and rounds < max_rounds):
            for key, prepare, fn in entries:
                if prepare is not None:
                    prepare()
                t = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t)
            rounds += 1
    finally:
        gc.enable()
    return times


def rounds(steps, count, warmup=1):
    """Per-call seconds of each function in `steps` (a dict), over `count`
    rounds of :func:`interleaved`: {name: [seconds, ...]}."""
    return interleaved([(name, None, fn) for name, fn in steps.items()], 0, count, warmup,
                       max_rounds=count)


def time_calls(fn, budget, min_reps, warmup=2):
    """Per-call seconds of `fn` alone, as :func:`interleaved` times it."""
    return interleaved([(None, None, fn)], budget, min_reps, warmup, max_rounds=10000)[None]


def measure(steps, budget=0.5, min_reps=3, pause=PAUSE):
    """Best wall-clock seconds of one call of each function in `steps` (a
    dict), timed in turns by :func:`interleaved`, each after `pause` seconds
    of rest (so every one starts on idle cores)."""
    rest = (lambda: time.sleep(pause)) if pause else None
    times = interleaved([(name, rest, step) for name, step in steps.items()], budget, min_reps)
    return {name: min(t) for name, t in times.items()}


def run(shapes=None, names=None, dtype="float32", budget=0.5, threads=None, png=None,
        progress=True, out=print, algo="adam"):
    """Time every contender for `algo` on every shape; print a table; return the rows."""
    import fastopt

    if threads is not None:
        set_num_threads(threads)
        try:
            import torch
            torch.set_num_threads(threads)
        except ImportError:
            pass
    shapes = list(SHAPES) if shapes is None else list(shapes)
    available = contenders(algo)
    names = list(available) if names is None else [n for n in names if n in available]
    dtype = np.dtype(dtype)
    info = ALGOS[algo]
    step_bytes = (info["reads"] + info["writes"]) * dtype.itemsize
    out(f"fastopt {fastopt.__version__} bench: {info['cls']} step, {dtype.name}, {get_num_threads()} "
        f"threads, SIMD path {_core.active_isa()}, {cpu_name()} ({platform.machine()})")
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(shapes), unit="shape", dynamic_ncols=True)
        except ImportError:
            pass  # the table is the result; the bar is a nicety
    rows = []
    try:
        for shape in shapes:
            if bar is not None:
                bar.set_description(shape, refresh=False)
            sizes = SHAPES[shape]
            steps = {}
            for name in names:
                try:
                    steps[name] = available[name](sizes, dtype)
                except Exception as e:  # e.g. DeepSpeed without its compiled op, or float64
                    out(f"{name} left out on {shape}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            best = measure(steps, budget * len(steps))
            del steps
            elements = sum(sizes)
            for name, seconds in best.items():
                rows.append(dict(shape=shape, name=name, ms=1e3 * seconds,
                                 ns_per_element=1e9 * seconds / elements,
                                 gbs=step_bytes * elements / seconds / 1e9))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    out(table(rows))
    if png:
        plot(rows, png, info["cls"])
        out(f"wrote {png}")
    return rows


def table(rows):
    """Rows as an aligned text table, with each shape's speed relative to numpy
    (to fastopt where no NumPy baseline ran)."""
    base_name = "numpy" if any(r["name"] == "numpy" for r in rows) else "fastopt"
    base = {r["shape"]: r["ms"] for r in rows if r["name"] == base_name}
    head = ("shape", "implementation", "ms/step", "ns/element", "GB/s", f"vs {base_name}")
    lines = [head]
    for r in rows:
        speedup = f"{base[r['shape']] / r['ms']:.1f}x" if r["shape"] in base else "-"
        lines.append((r["shape"], r["name"], f"{r['ms']:.3f}", f"{r['ns_per_element']:.3f}",
                      f"{r['gbs']:.1f}", speedup))
    widths = [max(len(line[k]) for line in lines) for k in range(len(head))]
    text = ["  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def plot(rows, path, name="Adam"):
    """A bar chart of ms/step per shape and implementation (log scale)."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError('--png draws with matplotlib: pip install "fastopt[demo]"') from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    names = list(dict.fromkeys(r["name"] for r in rows))
    fig, axes = plt.subplots(1, len(shapes), figsize=(4.5 * len(shapes), 4), squeeze=False)
    for ax, shape in zip(axes[0], shapes):
        got = {r["name"]: r["ms"] for r in rows if r["shape"] == shape}
        ys = [got.get(n, np.nan) for n in names]
        low = np.nanmin(ys) / 4  # bars start here on the log axis, not at 0
        ax.barh(range(len(names)), [y - low for y in ys], left=low,
                color=[f"C{k}" for k in range(len(names))])
        for k, y in enumerate(ys):
            if np.isfinite(y):
                ax.text(y * 1.05, k, f"{y:.3g} ms", va="center", fontsize="small")
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(low, np.nanmax(ys) * 4)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(title=f"{name} step, {shape}", xlabel="ms per step (log, lower is better)")
        ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fastopt bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default=",".join(SHAPES),
                    help="comma-separated, from: " + ", ".join(SHAPES))
    ap.add_argument("--optimizer", default="adam", type=str.lower,
                    help="the optimizer to time (default adam): " + ", ".join(BENCH_ALGOS))
    ap.add_argument("--only", default="", help="comma-separated implementations (default: all "
                    "available: fastopt, numpy, torch (loop), torch (foreach), torch (fused), "
                    "fastopt.torch, DeepSpeed)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--budget", type=float, default=0.5,
                    help="seconds per implementation and shape")
    ap.add_argument("--threads", type=int, default=None, help="threads for fastopt and torch")
    ap.add_argument("--png", default=None, help="also draw the table to this PNG file")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.optimizer not in BENCH_ALGOS:
        ap.error(f"unknown optimizer {args.optimizer!r}; choose from {', '.join(BENCH_ALGOS)}")
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r}; choose from {', '.join(SHAPES)}")
    names = None
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        known = contenders(args.optimizer)
        for n in names:
            if n not in known:
                ap.error(f"unknown or unavailable implementation {n!r}; available: "
                         f"{', '.join(known)}")
    if args.budget <= 0:
        ap.error("--budget must be positive")
    run(shapes=shapes, names=names, dtype=args.dtype, budget=args.budget, threads=args.threads,
        png=args.png, progress=not args.no_progress, algo=args.optimizer)
    return 0

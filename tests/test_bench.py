"""`python -m fastopt bench`: the quick benchmark runs and its baselines are right."""
import subprocess
import sys

import numpy as np
import pytest

import fastopt
from fastopt import bench


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_numpy_baseline_is_adam(dtype, rtol):
    # The baseline must compute what fastopt.Adam computes, or the timing means nothing.
    rng = np.random.default_rng(0)
    a = [rng.standard_normal(n).astype(dtype) for n in (1, 17, 1000)]
    b = [x.copy() for x in a]
    start = [x.copy() for x in a]
    ours, theirs = fastopt.Adam(a, **bench.HYPER), bench.NumpyAdam(b, **bench.HYPER)
    for _ in range(50):
        grads = [rng.standard_normal(x.shape).astype(dtype) for x in a]
        ours.step(grads)
        theirs.step(grads)
    for x, y, x0 in zip(a, b, start):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol)
        assert np.abs(x - x0).max() > 1e-3  # and the parameters moved


@pytest.mark.parametrize("algo, cls, hyper", [
    ("sgd", fastopt.SGD, dict(lr=0.01, momentum=0.9)),
    ("adagrad", fastopt.Adagrad, dict(lr=0.01)),
    ("rmsprop", fastopt.RMSprop, dict(lr=0.001)),
    ("adamw", fastopt.AdamW, dict(lr=0.001, weight_decay=1e-2)),
])
def test_numpy_baselines_of_the_suite_compute_the_optimizers(algo, cls, hyper):
    # benchmarks/run.py times these NumPy baselines: each is the optimizer it stands for
    rng = np.random.default_rng(1)
    a = [rng.standard_normal(n) for n in (1, 17, 1000)]
    b = [x.copy() for x in a]
    ours, theirs = cls(a, **hyper), bench.NumpyOptimizer(algo, b, **hyper)
    for _ in range(30):
        grads = [rng.standard_normal(x.shape) for x in a]
        ours.step(grads)
        theirs.step(grads)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


def test_run_times_every_contender():
    lines = []
    rows = bench.run(shapes=["1000 x 10"], budget=0.01, progress=False, out=lines.append)
    names = [r["name"] for r in rows]
    assert names[:2] == ["fastopt", "numpy"]
    assert set(names) == set(bench.contenders())
    for r in rows:
        assert r["ms"] > 0 and r["gbs"] > 0
        assert r["ns_per_element"] == pytest.approx(1e6 * r["ms"] / 10_000)
    table = lines[-1].splitlines()
    assert table[0].split()[:3] == ["shape", "implementation", "ms/step"]
    assert len(table) == 2 + len(rows)
    assert "numpy" in table[3] and table[3].rstrip().endswith("1.0x")


@pytest.mark.parametrize("algo", ["sgd", "adagrad", "lion"])
def test_run_times_the_chosen_optimizer(algo):
    lines = []
    rows = bench.run(shapes=["1000 x 10"], budget=0.01, progress=False, out=lines.append, algo=algo)
    assert lines[0].startswith(f"fastopt {fastopt.__version__} bench: {bench.ALGOS[algo]['cls']} step")
    assert bench.cpu_name() in lines[0]
    assert {r["name"] for r in rows} == set(bench.contenders(algo))
    info = bench.ALGOS[algo]
    for r in rows:  # GB/s counts this optimizer's buffers
        assert r["gbs"] == pytest.approx((info["reads"] + info["writes"]) * 4 * 10_000 / r["ms"] / 1e6)
    base = "numpy" if algo in bench.NUMPY_STEPS else "fastopt"
    assert lines[-1].splitlines()[0].split()[-2:] == ["vs", base]


@pytest.mark.parametrize("algo", ["adam", "adamw", "sgd", "adagrad", "rmsprop"])
def test_every_contender_runs(algo):
    pytest.importorskip("torch")
    made = bench.contenders(algo)
    assert {"fastopt", "numpy", "torch (loop)", "torch (foreach)", "fastopt.torch"} <= set(made)
    for name, factory in made.items():
        step = factory([7, 3], np.float64 if name != "DeepSpeed" else np.float32)
        step()


def test_deepspeed_optimizers_are_the_ones_named():
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed")
    import torch
    for algo in ("adam", "adamw", "adagrad"):
        hyper = dict(bench.ALGOS[algo]["hyper"])
        p, q = (torch.nn.Parameter(torch.linspace(-1, 1, 37)) for _ in range(2))
        mine = bench.deepspeed_optimizer(algo, [p], hyper)
        theirs = getattr(torch.optim, bench.ALGOS[algo]["cls"])([q], **hyper)
        for t in range(5):
            g = torch.sin(torch.arange(37.0) + t)
            p.grad, q.grad = g.clone(), g.clone()
            mine.step()
            theirs.step()
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)


def test_measure_interleaves_and_takes_the_best_time():
    calls = []
    best = bench.measure({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                         budget=0.0, min_reps=5)
    assert calls == ["a", "b"] * 6  # a warm-up each, then five rounds taking turns
    assert set(best) == {"a", "b"} and all(0 < s < 0.01 for s in best.values())


@pytest.mark.slow
def test_command_line(tmp_path):
    png = tmp_path / "bench.png"
    args = [sys.executable, "-m", "fastopt", "bench", "--shapes", "1000 x 10", "--only",
            "fastopt,numpy", "--budget", "0.01", "--no-progress"]
    try:
        import matplotlib  # noqa: F401
        args += ["--png", str(png)]
    except ImportError:
        png = None
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "fastopt" in out.stdout and "ns/element" in out.stdout
    if png is not None:
        assert png.read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run([sys.executable, "-m", "fastopt", "bench", "--shapes", "huge"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown shape" in bad.stderr

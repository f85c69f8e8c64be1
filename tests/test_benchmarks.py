"""The benchmark suite (benchmarks/run.py) runs end to end on tiny sizes.
Its figures are not checked here: performance is measured, not tested."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "benchmarks", "run.py")),
                                reason="needs the source tree's benchmarks/")


@pytest.mark.slow  # runs every benchmark once, small
def test_benchmark_suite_runs(tmp_path):
    try:
        import torch  # noqa: F401
        has_torch = True
    except ImportError:
        has_torch = False
    md, js = tmp_path / "out.md", tmp_path / "out.json"
    args = [sys.executable, "-m", "benchmarks", "--algos", "sgd,rmsprop", "--sizes", "1e4,3x1000",
            "--budget", "0.01", "--min-reps", "1", "--no-isas", "--head-to-head",
            "--markdown", str(md), "--json", str(js)]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    data = json.loads(js.read_text())
    mine = [r for r in data["steps"] if r["impl"] == "fastopt"]
    assert {(r["algo"], r["size"]) for r in mine} == {(a, s) for a in ("sgd", "rmsprop")
                                                      for s in ("1e4", "3x1000")}
    assert all(r["best"] > 0 and r["gbs"] > 0 for r in mine)
    assert {r["algo"] for r in data["overhead"]} == {"sgd", "rmsprop"}
    text = md.read_text()
    assert "| sgd | 1e4 |" in text and "Per-call overhead" in text
    if has_torch:
        assert [(r["algo"], r["size"], r["torch"]) for r in data["head_to_head"]] == [
            ("sgd", "1e4", "torch fused"), ("rmsprop", "1e4", "torch foreach"),
            ("sgd", "3x1000", "torch fused"), ("rmsprop", "3x1000", "torch foreach")]
        assert "Head to head" in text
    else:
        assert "head_to_head" not in data


def _c_loop():
    sys.path.insert(0, ROOT)
    try:
        from benchmarks import c_loop
    finally:
        sys.path.remove(ROOT)
    try:
        c_loop.library()
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"no C compiler with OpenMP to build the plain C loop: {e}")
    return c_loop


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("algo", ["adam", "adamw", "adagrad", "rmsprop", "sgd"])
def test_plain_c_loop_computes_its_optimizer(algo, threads):
    """The yardstick of benchmarks/bench_c_loop.py steps what it is named after:
    float32 within 2e-6 of fastopt.reference in float64 over 5 steps, on two
    tensors (one of an odd size), whatever the thread count."""
    from fastopt import reference
    from fastopt.bench import ALGOS

    c_loop = _c_loop()
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(n).astype(np.float32) for n in (1003, 64)]
    grads = [rng.standard_normal(n).astype(np.float32) for n in (1003, 64)]
    hyper = ALGOS[algo]["hyper"]
    opt = c_loop.CLoopOptimizer(algo, params, grads, **hyper)
    c_loop.set_threads(threads)
    expected = [(p.astype(np.float64), {}) for p in params]
    for t in range(1, 6):
        opt.step()
        expected = [getattr(reference, algo)(p, g.astype(np.float64), s, t, **hyper)
                    for (p, s), g in zip(expected, grads)]
    for p, (want, _) in zip(params, expected):
        np.testing.assert_allclose(p, want, rtol=0, atol=2e-6)

"""The benchmark suite (benchmarks/run.py) runs end to end on tiny sizes.
Its figures are not checked here: performance is measured, not tested."""
import json
import os
import subprocess
import sys

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

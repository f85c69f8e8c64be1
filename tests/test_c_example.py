"""examples/c/train.c: the C core embedded with nothing but fastopt.h.

The example is compiled with the system C compiler and run; its parameters
after 300 AdamW steps must equal, bit for bit, what fastopt.AdamW computes
from the same problem in Python (same kernels, same per-step scalars).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastopt

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "c" / "train.c"
STEPS = 300


def find_cc():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


pytestmark = [
    pytest.mark.skipif(not SOURCE.exists() or not (ROOT / "csrc" / "fastopt.h").exists(),
                       reason="needs a source tree (examples/c, csrc)"),
    pytest.mark.skipif(sys.platform == "win32", reason="the example's build line is for cc"),
    pytest.mark.skipif(find_cc() is None, reason="no C compiler"),
    pytest.mark.slow,  # compiles every kernel of every ISA at -O3: a minute or more
]


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    exe = tmp_path_factory.mktemp("c_example") / "train"
    # The build line from the example's header comment.
    cmd = [find_cc(), "-std=c11", "-O3", "-fno-math-errno", "-ffp-contract=off",
           "-Wall", "-Werror", f"-I{ROOT / 'csrc'}", str(SOURCE),
           *sorted(str(p) for p in (ROOT / "csrc").glob("*.c")), "-lm", "-lpthread", "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return exe


def run(program, *args):
    out = subprocess.run([str(program), *map(str, args)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def python_result(steps):
    def problem(n, dtype):
        i = np.arange(n)
        a = (1.0 + 0.5 * (i % 7)).astype(dtype)
        c = ((i % 13) / 4.0 - 1.5).astype(dtype)
        return np.zeros(n, dtype), a, c

    x32, a32, c32 = problem(1000, np.float32)
    x64, a64, c64 = problem(37, np.float64)
    opt = fastopt.AdamW([x32, x64], lr=0.05, weight_decay=0.01)
    for _ in range(steps):
        opt.step([a32 * (x32 - c32), a64 * (x64 - c64)])
    return x32, x64


def test_c_example_matches_python_bit_for_bit(program):
    lines = run(program, STEPS, "dump").splitlines()
    assert lines[0].startswith("fastopt C core")
    x32 = np.array([float(line.split()[2]) for line in lines if line.startswith("x32 ")], np.float32)
    x64 = np.array([float(line.split()[2]) for line in lines if line.startswith("x64 ")], np.float64)
    want32, want64 = python_result(STEPS)
    assert x32.shape == want32.shape and x64.shape == want64.shape
    np.testing.assert_array_equal(x32, want32)
    np.testing.assert_array_equal(x64, want64)


def test_c_example_loss_goes_down(program):
    losses = [float(line.split()[3]) for line in run(program).splitlines()
              if line.startswith("step")]
    assert len(losses) >= 3
    assert losses[-1] < 1e-3 * losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:]))

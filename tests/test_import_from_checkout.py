"""Python started in a source checkout without a built extension gets a clear error.

After `pip install .` (not -e), running Python at the repository root puts
the checkout's `fastopt/` (no compiled `_core`) first on sys.path.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fastopt


def run(code, cwd, pythonpath):
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_checkout_without_extension_and_nothing_installed_says_so(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "fastopt").mkdir(parents=True)
    for source in Path(fastopt.__path__[0]).glob("*.py"):
        shutil.copy(source, checkout / "fastopt")
    out = run("import fastopt", checkout, "")
    assert out.returncode != 0
    assert "C extension is not built" in out.stderr

"""Python started in a source checkout without a built extension still gets a working fastopt.

After `pip install .`, running `python -m fastopt demo` (or `python -m pytest`)
at the repository root puts the checkout's `fastopt/` (no compiled `_core`)
first on sys.path; fastopt then takes its modules from the installed copy.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastopt


def run(code, cwd, pythonpath):
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_checkout_without_extension_uses_the_installed_copy(tmp_path):
    installed = Path(fastopt.__path__[0])   # the package with the built extension
    checkout = tmp_path / "checkout"
    (checkout / "fastopt").mkdir(parents=True)
    for source in installed.glob("*.py"):
        shutil.copy(source, checkout / "fastopt")
    code = ("import fastopt, numpy as np; w = np.ones(3); fastopt.SGD([w], lr=0.5)"
            ".step([np.ones(3)]); print(fastopt._core.__file__); print(w.tolist())")
    out = run(code, checkout, str(installed.parent))
    assert out.returncode == 0, out.stderr
    core_file, values = out.stdout.splitlines()
    assert Path(core_file).parent == installed
    assert values == "[0.5, 0.5, 0.5]"


def test_checkout_without_extension_and_nothing_installed_says_so(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "fastopt").mkdir(parents=True)
    for source in Path(fastopt.__path__[0]).glob("*.py"):
        shutil.copy(source, checkout / "fastopt")
    out = run("import fastopt", checkout, "")
    if out.returncode == 0:
        pytest.skip("a fastopt is installed in site-packages, and it was found")
    assert "C extension is not built" in out.stderr

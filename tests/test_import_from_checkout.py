"""Python started in a source checkout without a built extension gets a clear error.

After `pip install .` (not -e), running Python at the repository root puts
the checkout's `fastopt/` (no compiled `_core`) first on sys.path.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import fastopt


def test_checkout_without_extension_says_so(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "fastopt").mkdir(parents=True)
    for source in Path(fastopt.__path__[0]).glob("*.py"):
        shutil.copy(source, checkout / "fastopt")
    # -S: no site-packages, so no installed (or editable) fastopt can answer
    # instead of the checkout's
    out = subprocess.run([sys.executable, "-S", "-c", "import fastopt"], cwd=checkout,
                         env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "C extension is not built" in out.stderr, out.stderr

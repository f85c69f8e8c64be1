"""fastopt is typed: py.typed, annotated public names, stubs of the compiled
modules, and `mypy --strict examples/` passes (CI runs this file)."""
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastopt

from test_docstrings import public_objects

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(fastopt.__file__).resolve().parent  # the checkout's, or the installed wheel's
source_tree = pytest.mark.skipif(not (ROOT / "examples").is_dir(),
                                 reason="needs a source tree (examples/, pyproject.toml)")


@source_tree
def test_package_data_exists():
    text = (ROOT / "pyproject.toml").read_text()
    section = text[text.index("[tool.setuptools.package-data]"):]
    names = re.findall(r'"([^"]+)"', re.search(r"^fastopt = \[(.*?)\]", section, re.M).group(1))
    assert "py.typed" in names
    for name in names:
        assert (PACKAGE / name).is_file(), f"pyproject.toml ships fastopt/{name}, which is missing"


def test_marker_and_stubs_are_installed():
    import fastopt
    here = Path(fastopt.__file__).parent
    for name in ("py.typed", "_core.pyi", "_clip.pyi", "_schedules.pyi"):
        assert (here / name).is_file(), name


def _compiled(obj):
    module = getattr(obj, "__module__", "") or ""
    return module in ("fastopt._core", "fastopt._clip", "fastopt._schedules")


def test_every_public_callable_is_annotated():
    stubs = {m: (PACKAGE / f"{m}.pyi").read_text() for m in ("_core", "_clip", "_schedules")}
    for name, obj in public_objects().items():
        if inspect.ismodule(obj):
            continue
        if isinstance(obj, property):
            obj = obj.fget
        if _compiled(obj):
            short = obj.__module__.rpartition(".")[2]
            kind = "class" if inspect.isclass(obj) else "def"
            assert re.search(rf"^\s*{kind} {obj.__name__}\b", stubs[short], re.M), \
                f"{name} is not in fastopt/{short}.pyi"
            continue
        target = obj.__init__ if inspect.isclass(obj) else obj
        if not getattr(target, "__module__", "").startswith("fastopt"):
            continue  # object's or torch's __init__
        sig = inspect.signature(target)
        for p in sig.parameters.values():
            if p.name not in ("self", "cls"):
                assert p.annotation is not p.empty, f"{name}: parameter {p.name!r} is not annotated"
        assert sig.return_annotation is not sig.empty, f"{name} has no return annotation"


# A snippet that misuses the API: mypy must see each mistake through the annotations.
MISUSE = """\
import numpy as np
import fastopt
from fastopt import lr_scheduler, schedules

w = np.zeros(3)
opt = fastopt.Adam([w], lr="fast")                              # line 6
applied: str = opt.step([np.ones(3)])                           # line 7
lr_scheduler.StepLR(opt, step_size=2.5)                         # line 8
norm: str = fastopt.clip_grad_norm_([w], 1.0)                   # line 9
value: str = schedules.cosine_decay_schedule(1.0, 10)(3)        # line 10
"""


@pytest.mark.slow
@source_tree
def test_mypy_strict_passes_on_examples_and_catches_misuse(tmp_path):
    pytest.importorskip("mypy")
    bad = tmp_path / "misuse.py"
    bad.write_text(MISUSE)
    # Run from the checkout, so mypy reads pyproject.toml's [tool.mypy]; its
    # cache in tmp_path, so nothing is left behind.
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                          str(tmp_path / "cache"), "examples/", str(bad)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "MYPY_FORCE_COLOR": "0"})
    log = out.stdout + out.stderr
    in_examples = [line for line in log.splitlines() if line.startswith("examples")]
    assert not in_examples, log
    flagged = {int(m) for m in re.findall(r"misuse\.py:(\d+): error", log)}
    assert flagged == {6, 7, 8, 9, 10}, log

"""pyproject.toml, MANIFEST.in and setup.py name only files that exist (in a
source tree; the wheel checks copy tests/ and pyproject.toml alone)."""
import glob
import os
import re

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "setup.py")),
                                reason="needs the source tree")


def matches(pattern):
    return glob.glob(os.path.join(ROOT, pattern), recursive=True)


def test_pyproject_names_existing_files():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        tool = tomllib.load(f)["tool"]
    named = [os.path.join("fastopt", name) for name in tool["setuptools"]["package-data"]["fastopt"]]
    named += tool["check-manifest"]["ignore"]
    missing = [p for p in named if not matches(p)]
    assert not missing, missing


def test_manifest_names_existing_files():
    missing = []
    with open(os.path.join(ROOT, "MANIFEST.in")) as f:
        for line in f:
            words = line.split("#")[0].split()
            if words and words[0] in ("include", "graft"):
                missing += [p for p in words[1:] if not matches(p)]
    assert not missing, missing


def test_setup_names_existing_sources():
    with open(os.path.join(ROOT, "setup.py")) as f:
        named = set(re.findall(r'"((?:csrc|fastopt)/[\w/]+\.(?:c|pyx))"', f.read()))
    assert named
    missing = [p for p in sorted(named) if not os.path.isfile(os.path.join(ROOT, p))]
    assert not missing, missing

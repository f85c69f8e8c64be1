"""Smoke tests of an installed fastopt: the package imports, carries the
right version, shows its configuration, runs every SIMD path this CPU has,
and takes a correct Adam step.

They run anywhere (an editable install, a wheel in a fresh environment, each
wheel that cibuildwheel builds). With FASTOPT_EXPECT_INSTALLED=1, as the
wheel checks set it, they also check that fastopt was imported from an
installed distribution and not from a source tree.
"""
import importlib.metadata
import os
import pathlib
import platform
import re
import subprocess
import sys

import numpy as np
import pytest

import fastopt
from fastopt import _core

# A child interpreter gets the environment minus any forced SIMD path, so the
# checks below choose the path themselves.
BASE_ENV = {k: v for k, v in os.environ.items() if k != "FASTOPT_SIMD"}


def run_child(code, **env):
    """Run `code` in a fresh interpreter; return (returncode, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**BASE_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_version_matches_metadata():
    # pyproject.toml reads the version from fastopt.__version__, so the
    # installed distribution's metadata must carry the same string.
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", fastopt.__version__)
    try:
        installed = importlib.metadata.version("fastopt")
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("FASTOPT_EXPECT_INSTALLED") == "1":
            raise
        pytest.skip("fastopt is built in place, not installed: no metadata to compare")
    assert installed == fastopt.__version__


@pytest.mark.skipif(os.environ.get("FASTOPT_EXPECT_INSTALLED") != "1",
                    reason="only when testing an installed wheel")
def test_imported_from_installed_wheel():
    pkg = pathlib.Path(fastopt.__file__).resolve().parent
    dist = importlib.metadata.distribution("fastopt")
    # Installed from a wheel: the files live in site-packages, recorded in
    # the distribution's RECORD, and no source tree is beside them.
    assert "site-packages" in pkg.parts, pkg
    files = {str(f).replace("\\", "/") for f in (dist.files or [])}
    assert "fastopt/__init__.py" in files
    assert any(re.fullmatch(r"fastopt/_core\..*(so|pyd)", f) for f in files), sorted(files)
    assert not (pkg.parent / "csrc").exists()
    assert not (pkg / "_core.pyx").exists()
    assert not (pkg / "_core.c").exists()


def test_show_config_prints_isa(capsys):
    fastopt.show_config()
    out = capsys.readouterr().out
    assert f"fastopt {fastopt.__version__}" in out
    assert f"simd path:   {_core.active_isa()}" in out
    for name in _core.isa_names():
        assert name in out


def test_isa_lists():
    compiled = _core.compiled_isa_names()
    supported = _core.isa_names()
    assert supported[0] == "scalar"
    assert set(supported) <= set(compiled)
    machine = platform.machine().lower()
    # The portable build carries every path of its architecture, whatever
    # machine built it; the CPU picks among them at run time.
    if machine in ("x86_64", "amd64"):
        assert compiled == ["scalar", "sse2", "avx2", "avx512"]
    elif machine in ("arm64", "aarch64"):
        assert compiled == ["scalar", "neon"]
    forced = os.environ.get("FASTOPT_SIMD")
    assert _core.active_isa() == (forced or supported[-1])


ADAM_CHILD = """
import sys
import numpy as np
import fastopt
rng = np.random.default_rng(1234)
out = []
for dtype in (np.float32, np.float64):
    n = 1027
    p = rng.standard_normal(n).astype(dtype)
    opt = fastopt.AdamW([p], lr=1e-2, weight_decay=1e-2, amsgrad=True)
    for _ in range(3):
        opt.step([rng.standard_normal(n).astype(dtype)])
    out.append(p.tobytes().hex())
print(fastopt._core.active_isa())
print(" ".join(out))
"""


def test_every_isa_selectable_and_identical():
    results = {}
    for name in _core.isa_names():
        code, out, err = run_child(ADAM_CHILD, FASTOPT_SIMD=name)
        assert code == 0, f"FASTOPT_SIMD={name}: {err}"
        active, bits = out.split("\n", 1)
        assert active == name
        results[name] = bits
    # Every SIMD path gives the scalar path's bits.
    assert all(bits == results["scalar"] for bits in results.values()), sorted(results)


def test_unknown_or_missing_isa_is_a_clear_error():
    code, _, err = run_child("import fastopt", FASTOPT_SIMD="no-such-path")
    assert code != 0
    assert "unknown SIMD path 'no-such-path'" in err
    for name in sorted(set(_core.compiled_isa_names()) - set(_core.isa_names())):
        code, _, err = run_child("import fastopt", FASTOPT_SIMD=name)
        assert code != 0
        assert "not supported on this CPU" in err


def adam_reference(p, g, lr, betas, eps):
    """torch.optim.Adam's first step, in float64."""
    b1, b2 = betas
    m = (1 - b1) * g
    v = (1 - b2) * g * g
    step_size = lr / (1 - b1)
    denom = np.sqrt(v) / np.sqrt(1 - b2) + eps
    return p - step_size * m / denom


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-6), (np.float64, 1e-13)])
def test_one_adam_step(dtype, rtol):
    rng = np.random.default_rng(0)
    p = rng.standard_normal((33, 7)).astype(dtype)
    g = rng.standard_normal((33, 7)).astype(dtype)
    expected = adam_reference(p.astype(np.float64), g.astype(np.float64), 1e-3, (0.9, 0.999), 1e-8)
    g_before = g.copy()
    opt = fastopt.Adam([p], lr=1e-3)
    assert opt.step([g]) is True
    np.testing.assert_allclose(p, expected, rtol=rtol, atol=0)
    np.testing.assert_array_equal(g, g_before)
    assert opt.state_dict()["state"][0]["step"] == 1


def test_threads():
    n = fastopt.get_num_threads()
    assert n >= 1
    # A step large enough to use the pool gives the same bits on one thread.
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(300_000).astype(np.float32)
    g = rng.standard_normal(300_000).astype(np.float32)
    results = []
    try:
        for threads in (1, max(2, n)):
            fastopt.set_num_threads(threads)
            p = p0.copy()
            fastopt.Adam([p], lr=1e-3).step([g])
            results.append(p)
    finally:
        fastopt.set_num_threads(n)
    np.testing.assert_array_equal(results[0], results[1])

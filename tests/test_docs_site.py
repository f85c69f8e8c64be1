"""The documentation site builds with `mkdocs build --strict`, and its pages are complete."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (ROOT / "mkdocs.yml").exists(),
                                reason="needs a source tree (mkdocs.yml, docs/)")


def nav_pages():
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:"):text.index("\nmarkdown_extensions:")]
    return re.findall(r":\s*([\w.-]+\.md)\s*$", nav, flags=re.M)


def test_every_page_and_figure_exists():
    pages = nav_pages()
    assert {"index.md", "optimizers.md", "weight-decay.md", "schedules.md", "interop.md",
            "c-api.md", "reference.md"} <= set(pages)
    for page in pages:
        text = (ROOT / "docs" / page).read_text()
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            assert (ROOT / "docs" / image).is_file(), f"{page} shows missing {image}"


def test_every_optimizer_has_its_formula():
    text = (ROOT / "docs" / "optimizers.md").read_text()
    from fastopt._spec import SPECS
    for name in SPECS:
        assert re.search(rf"^## {name}$", text, flags=re.M), name
    assert text.count("\\[") >= 10  # display equations


def make_figures():
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "docs" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_comparison_tables_have_every_optimizer_of_the_spec():
    # docs/compare.md includes these tables (docs/hooks.py); an optimizer added to the
    # spec needs them regenerated: python docs/make_figures.py --only compare
    from fastopt._spec import SPECS
    page = (ROOT / "docs" / "compare.md").read_text()
    for task in ("digits", "regression"):
        assert f"{{include img/compare_{task}.md}}" in page
        table = (ROOT / "docs" / "img" / f"compare_{task}.md").read_text()
        rows = re.findall(r"^\| (\w+) \| \d", table, flags=re.M)
        assert rows == list(SPECS), (task, rows)


def test_comparison_regression_gradients_are_the_losss_derivatives():
    pytest.importorskip("sklearn")
    np = pytest.importorskip("numpy")
    from fastopt import demo
    mf = make_figures()
    data = mf.make_regression(n_train=40, n_test=10)
    params = [p.astype(np.float64) for p in demo.init_mlp(10, 8, 1, seed=1)]
    x, y = data.x_train.astype(np.float64), data.y_train.astype(np.float64)
    loss, grads = mf.mse_and_grads(params, x, y)
    assert loss == pytest.approx(mf.mse(params, x, y), rel=1e-12)
    h = 1e-6
    for k, p in enumerate(params):
        for idx in list(np.ndindex(p.shape))[:5]:
            plus, minus = [q.copy() for q in params], [q.copy() for q in params]
            plus[k][idx] += h
            minus[k][idx] -= h
            numeric = (mf.mse(plus, x, y) - mf.mse(minus, x, y)) / (2 * h)
            assert grads[k][idx] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (k, idx)


@pytest.mark.slow
def test_mkdocs_build_is_strict_and_clean(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("latex2mathml")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                          str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    assert "WARNING" not in log, log
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    for name in ("fastopt.SGD", "fastopt.torch", "clip_grad_norm_", "adam_"):
        assert name in reference
    # Every optimizer of the spec in each of its forms (docs/hooks.py repeats the class
    # block; the modules' members are their __all__, made from the spec at import).
    from fastopt._spec import SPECS
    for name, spec in SPECS.items():
        for anchor in (f"fastopt.{name}", f"fastopt.torch.{name}",
                       f"fastopt.functional.{spec.function}_", f"fastopt.reference.{spec.function}"):
            assert f'id="{anchor}"' in reference, anchor
    # The Parameters sections written from the spec at import (fastopt._docs) are shown
    # (docs/griffe_runtime.py): a hyperparameter's line in all four forms.
    eps = next(h.doc for h in SPECS["Adamax"].hypers if h.name == "eps")
    assert reference.count(escape(eps, quote=False) + ", &gt;= 0.") == 4
    # Docstrings' update rules are plain-text formulas (as help() shows them),
    # in code blocks, with no reST markup left.
    assert "m ← β₁·m + (1 − β₁)·g" in reference
    assert not re.search(r"\.\. math::|:math:|::\s*</p>", reference)
    pages = {p.relative_to(tmp_path / "site").as_posix(): p.read_text(encoding="utf-8")
             for p in (tmp_path / "site").rglob("*.html")}
    # The site works offline: every script and stylesheet is one of its own files.
    for name, html in pages.items():
        for tag, url in re.findall(r"<(script|link)\b[^>]*?(?:src|href)=\"([^\"]+)\"", html):
            assert not re.match(r"(?:[a-z]+:)?//", url), f"{name} loads {url}"
    # The comparison's tables, included from the files docs/make_figures.py writes.
    for name in SPECS:
        assert pages["compare/index.html"].count(f"<td>{name}</td>") == 2, name
    # The formulas are MathML, made at build time: no TeX left for a script to typeset.
    for name in ("optimizers/index.html", "weight-decay/index.html"):
        formulas = re.findall(r'class="arithmatex">(.*?)</(?:span|div)>', pages[name], re.S)
        assert len(formulas) > 10, name
        for formula in formulas:
            assert formula.startswith("<math") and "<merror" not in formula, (name, formula)
            # TeX that latex2mathml passed through as text, such as an alignment's &.
            assert not re.search(r"&(?![#\w]+;)", formula), (name, formula)


# Every shell command the README and docs/*.md show, run as a reader would:
# in a copy of the checkout without build products, in a fresh virtual
# environment (not --system-site-packages), page by page.

SHELL_BLOCK = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.S | re.M)
COMMAND_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Shell blocks shown but not run here, and why.
NOT_RUN = {
    'pip install -e ".[test]" && python -m pytest':
        "the whole test suite: .ci/run runs this very line first (the slow tests are run by "
        "the line after it), so running it here again would double CI's time",
}


def shell_blocks(page):
    if not page.is_file():  # tests run from a copy without the docs (the wheel's tests)
        return []
    return [block.strip() for block in SHELL_BLOCK.findall(page.read_text(encoding="utf-8"))]


def test_every_shell_block_is_run_or_says_why_not():
    shown = {block for page in COMMAND_PAGES for block in shell_blocks(page)}
    assert set(NOT_RUN) <= shown, "NOT_RUN lists a command no page shows"
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && python -m pytest\n' in ci
    assert "python -m pytest -m slow" in ci


def checkout_copy(dest):
    """The checkout's files (tracked, or new and not ignored) copied to `dest`: no build products."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("needs a git checkout")
    for name in filter(None, listed.stdout.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in COMMAND_PAGES if shell_blocks(p)],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shell_commands_of_the_docs_run_in_a_fresh_venv(page, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_USER")}
    env.update(VIRTUAL_ENV=str(venv), PATH=str(bindir) + os.pathsep + env["PATH"],
               MPLBACKEND="Agg")
    checkout = None
    for k, block in enumerate(shell_blocks(page)):
        if block in NOT_RUN:
            continue
        if checkout is None or block.startswith("pip install"):
            # An install starts from a clean checkout, as after a fresh clone, so
            # that an earlier block's in-place build cannot stand in for it.
            checkout = checkout_copy(tmp_path / f"checkout{k}")
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=checkout, env=env,
                             capture_output=True, text=True, timeout=1800)
        assert out.returncode == 0, (f"{page.name}: this block failed:\n{block}\n\n"
                                     f"{out.stdout[-3000:]}\n{out.stderr[-5000:]}")

"""The documentation site builds with `mkdocs build --strict`, and its pages are complete."""
import re
import subprocess
import sys
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
    for name in ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW"):
        assert re.search(rf"^## {name}$", text, flags=re.M), name
    assert text.count("\\[") >= 10  # display equations


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
    assert ".. math::" not in reference  # docstring maths rendered, not shown raw
    pages = {p.relative_to(tmp_path / "site").as_posix(): p.read_text(encoding="utf-8")
             for p in (tmp_path / "site").rglob("*.html")}
    # The site works offline: every script and stylesheet is one of its own files.
    for name, html in pages.items():
        for tag, url in re.findall(r"<(script|link)\b[^>]*?(?:src|href)=\"([^\"]+)\"", html):
            assert not re.match(r"(?:[a-z]+:)?//", url), f"{name} loads {url}"
    # The formulas are MathML, made at build time: no TeX left for a script to typeset.
    for name in ("optimizers/index.html", "weight-decay/index.html", "reference/index.html"):
        formulas = re.findall(r'class="arithmatex">(.*?)</(?:span|div)>', pages[name], re.S)
        assert len(formulas) > 10, name
        for formula in formulas:
            assert formula.startswith("<math") and "<merror" not in formula, (name, formula)
            # TeX that latex2mathml passed through as text, such as an alignment's &.
            assert not re.search(r"&(?![#\w]+;)", formula), (name, formula)

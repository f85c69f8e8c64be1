"""mkdocs hooks: document the fastopt that is built, and render the maths offline.

Which fastopt the API reference reads: the checkout's when its compiled core
is built in place (``pip install -e .``, ``python setup.py build_ext
--inplace``), otherwise the installed one (``pip install .``). griffe reads
the package's source and inspects its compiled modules, so it needs a
directory holding both; the checkout's ``fastopt/`` alone has no compiled
``_core`` to resolve ``fastopt.clip_grad_norm_`` and friends from.

The optimizers: a ``::: fastopt.{optimizer}`` block of a page (with the
options indented under it) is repeated for each optimizer of that fastopt's
``fastopt/_spec.py``, in its order (`on_page_markdown`), so the API reference
lists every optimizer without naming them.

Generated tables: a line ``{include img/compare_digits.md}`` is replaced by that
file of the docs directory (written by ``docs/make_figures.py`` with its
figures, so a page shows the numbers of the run that drew them; the docs
directory's ``img/*.md`` are not pages themselves, see mkdocs.yml).

The maths: pymdownx.arithmatex marks each formula (``\\(...\\)`` inline,
``\\[...\\]`` display) in the page's HTML, and `on_page_content` turns each
into MathML with latex2mathml, which browsers render natively: the site loads
no script to show a formula, from anywhere.
"""
import html
import importlib.machinery
import importlib.util
import os
import re
import sys

from latex2mathml.converter import convert
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _built_in_place(directory):
    return any(os.path.exists(os.path.join(directory, "fastopt", "_core" + suffix))
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def fastopt_location():
    """The directory that holds the fastopt package with its compiled core."""
    if _built_in_place(ROOT):
        return ROOT
    others = [p for p in sys.path if p and os.path.abspath(p) != ROOT]
    spec = importlib.machinery.PathFinder.find_spec("fastopt", others)
    if spec is None or spec.origin is None or not _built_in_place(
            os.path.dirname(os.path.dirname(spec.origin))):
        raise PluginError("fastopt is neither built in place in the checkout nor installed: "
                          'pip install ".[docs]" (or pip install -e ".[docs]") first')
    return os.path.dirname(os.path.dirname(spec.origin))


@event_priority(100)  # before mkdocstrings' on_config, which sets its handler up
def on_config(config):
    python = config.plugins["mkdocstrings"].config.handlers.setdefault("python", {})
    python["paths"] = [fastopt_location()]
    return config


def optimizer_names():
    """The optimizers of the fastopt the reference reads (fastopt/_spec.py imports nothing of fastopt)."""
    path = os.path.join(fastopt_location(), "fastopt", "_spec.py")
    spec = importlib.util.spec_from_file_location("fastopt_spec_for_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.SPECS)


_PER_OPTIMIZER = re.compile(r"^(:::[^\n]*\{optimizer\}[^\n]*\n(?:[ \t]+\S[^\n]*\n)*)", re.M)


_INCLUDE = re.compile(r"^\{include ([\w./-]+)\}$", re.M)


def _included(match, config):
    path = os.path.join(config["docs_dir"], match.group(1))
    if not os.path.isfile(path):
        raise PluginError(f"{{include {match.group(1)}}}: no such file; "
                          "python docs/make_figures.py writes it")
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def on_page_markdown(markdown, page, config, files):
    markdown = _INCLUDE.sub(lambda m: _included(m, config), markdown)
    if "{optimizer}" not in markdown:
        return markdown
    names = optimizer_names()
    return _PER_OPTIMIZER.sub(
        lambda m: "\n".join(m.group(1).replace("{optimizer}", name) for name in names), markdown)


_FORMULA = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)


def _mathml(match):
    tag, tex = match.group(1), html.unescape(match.group(2)).strip()
    if tex[:2] in ("\\(", "\\["):  # arithmatex's generic mode: \( inline \), \[ display \]
        tex = tex[2:-2]
    display = "block" if tag == "div" else "inline"
    # latex2mathml lays out align* as a table of right- and left-aligned
    # columns, and aligned (its equivalent inside display maths) not at all.
    tex = tex.replace("{aligned}", "{align*}")
    return f'<{tag} class="arithmatex">{convert(tex, display=display)}</{tag}>'


def on_page_content(content, page, config, files):
    return _FORMULA.sub(_mathml, content)

"""A griffe extension for the API reference: the docstrings' reStructuredText bits as Markdown.

fastopt's docstrings are numpydoc, written for Sphinx as well as for
``help()``: update rules are ``.. math::`` blocks and cross-references are
``:class:`` roles. mkdocstrings renders docstrings as Markdown, so this turns
``.. math::`` blocks into display maths for pymdownx.arithmatex (an
``aligned`` environment when the block aligns with ``&``), ``:math:`x```
into inline maths, and ``:class:`X``` / ``:func:`` / ``:mod:`` / ``:meth:``
into inline code.
"""
import re
import textwrap

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")


def _math_blocks(text):
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not stripped.startswith(".. math::"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        body = [stripped[len(".. math::"):].strip()]
        i += 1
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i])
            i += 1
        tex = textwrap.dedent("\n".join(b for b in body if b.strip())).strip()
        if "&" in tex or "\\\\" in tex:
            tex = "\\begin{aligned}\n" + tex + "\n\\end{aligned}"
        out += [indent + "\\[", *(indent + t for t in tex.split("\n")), indent + "\\]", ""]
    return "\n".join(out)


def rst_to_markdown(text):
    text = _math_blocks(text)
    text = _MATH_ROLE.sub(lambda m: "\\(" + m.group(1) + "\\)", text)
    return _ROLE.sub(lambda m: "`" + m.group(1) + "`", text)


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring once, before mkdocstrings parses its sections."""

    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)

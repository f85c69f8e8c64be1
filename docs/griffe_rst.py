"""A griffe extension for the API reference: the docstrings' reStructuredText bits as Markdown.

fastopt's docstrings are numpydoc, written to read well in ``help()`` (update
rules are plain-text formulas in ``::`` literal blocks) and for Sphinx.
mkdocstrings renders docstrings as Markdown, where an indented block already
is a code block: this turns the ``::`` that ends the paragraph before one
into ``:`` (as Sphinx shows it), and ``:class:`X``` / ``:func:`` / ``:mod:`` /
``:meth:`` cross-references into inline code.
"""
import re

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):`~?([^`]+)`")
# "text::" or a lone "::" at the end of a line that a blank line and an indented block follow
_LITERAL = re.compile(r"(\S?)[ \t]*::[ \t]*\n(?=[ \t]*\n)")


def rst_to_markdown(text):
    text = _LITERAL.sub(lambda m: m.group(1) + (":" if m.group(1) else "") + "\n", text)
    return _ROLE.sub(lambda m: "`" + m.group(1) + "`", text)


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring once, before mkdocstrings parses its sections."""

    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)

"""A griffe extension for the API reference: docstrings and ``__all__`` as Python has them.

griffe reads fastopt's source statically, but part of what ``help()`` shows
is made when fastopt is imported: each optimizer's classes and functions get
their "Parameters" sections from ``fastopt._spec`` (``fastopt._docs``), and
``fastopt.torch``, ``fastopt.functional`` and ``fastopt.reference`` list their
members (``__all__``) from it. This gives every class and function whose
docstring differs once imported the imported one, and every module its
imported ``__all__``, so that the site shows what ``help()`` shows. (griffe's
``force_inspection`` would inspect the whole package instead, and cannot
resolve some of its typing aliases.)
"""
import inspect

import griffe

logger = griffe.get_logger(__name__)


class RuntimeDocstrings(griffe.Extension):
    """Take docstrings and exports from the imported fastopt, before other extensions rewrite them."""

    def on_object(self, *, obj, loader, **kwargs):
        if obj.is_alias or "__main__" in obj.path.split(".") or not (
                obj.is_module or obj.is_class or obj.is_function):
            return
        try:
            live = griffe.dynamic_import(obj.path, loader.finder.search_paths)
        except ImportError as e:
            logger.debug("not importing %s: %s", obj.path, e)
            return
        if obj.is_module:
            exports = getattr(live, "__all__", None)
            if isinstance(exports, (list, tuple)):
                obj.exports = list(exports)
            return
        doc = getattr(live, "__doc__", None)  # its own: inspect.getdoc would take a base class's
        if obj.docstring is not None and isinstance(doc, str):
            doc = inspect.cleandoc(doc)
            if doc != obj.docstring.value:
                obj.docstring.value = doc

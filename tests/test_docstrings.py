"""Every public callable documents each of its parameters, readably in a terminal.

help() shows the docstrings as they are written, so each parameter of each
public function, class and method has a numpydoc entry ("name : type" and an
indented description) in its "Parameters" section, and no docstring holds
TeX markup (update rules are plain-text formulas in literal blocks).
"""
import importlib
import inspect
import re

import pytest

MODULES = ["fastopt", "fastopt.functional", "fastopt.lr_scheduler", "fastopt.schedules",
           "fastopt.swa_utils", "fastopt.checkpoint", "fastopt.distributed", "fastopt.reference"]
OPTIONAL = {"fastopt.torch": "torch"}  # module: the package it needs

_HEADER = re.compile(r"^(\S[^:]*?)\s*:\s*(\S.*)$")
_TEX = re.compile(r"\\[A-Za-z]{2,}|:math:`|\.\. math::")


def _modules():
    mods = [importlib.import_module(m) for m in MODULES]
    for name, needs in OPTIONAL.items():
        try:
            importlib.import_module(needs)
        except ImportError:
            continue
        mods.append(importlib.import_module(name))
    return mods


def _own(obj):
    return getattr(obj, "__module__", "").partition(".")[0] == "fastopt"


def public_objects():
    """(qualified name, object) of every public function, class, method and module."""
    out = {}
    for mod in _modules():
        out[mod.__name__] = mod
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            out[f"{mod.__name__}.{name}"] = obj
            if inspect.isclass(obj):
                for klass in obj.__mro__:
                    if not _own(klass):
                        continue
                    for attr, member in vars(klass).items():
                        key = f"{mod.__name__}.{name}.{attr}"
                        if attr.startswith("_") or key in out:
                            continue
                        member = getattr(obj, attr)
                        if callable(member) or isinstance(vars(klass)[attr], property):
                            out[key] = member
    return out


def documented_parameters(doc):
    """{name: (type, description)} from a numpydoc "Parameters" section."""
    lines = (doc or "").splitlines()
    try:
        start = next(i for i in range(len(lines) - 1)
                     if lines[i].strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"})
    except StopIteration:
        return {}
    out, current = {}, None
    for i in range(start + 2, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and set(lines[i + 1].strip()) == {"-"}:
            break  # the next section's title
        if line[:1].strip():
            m = _HEADER.match(line)
            current = [m.group(2) if m else "", ""]
            for name in (m.group(1) if m else line.strip()).split(","):
                out[name.strip().lstrip("*")] = current
        elif current is not None and line.strip():
            current[1] += line.strip() + " "
    return {k: (t, d.strip()) for k, (t, d) in out.items()}


def _checked_parameters(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    params = list(sig.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return params


CALLABLES = {k: v for k, v in public_objects().items()
             if not inspect.ismodule(v) and not isinstance(v, property)}


@pytest.mark.parametrize("name", sorted(CALLABLES))
def test_every_parameter_is_described(name):
    obj = CALLABLES[name]
    doc = inspect.getdoc(obj)
    documented = documented_parameters(doc)
    for param in _checked_parameters(obj):
        where = f"{name}: parameter {param.name!r}"
        assert param.name in documented, f"{where} is not in its Parameters section"
        kind, description = documented[param.name]
        assert kind, f"{where} has no type"
        assert description, f"{where} has no description"
        if param.default is not param.empty:
            assert re.search(r"\bdefault\b|\boptional\b", kind), f"{where} has no default"


def test_docstrings_hold_no_tex():
    for name, obj in public_objects().items():
        doc = inspect.getdoc(obj.fget if isinstance(obj, property) else obj) or ""
        found = _TEX.search(doc)
        assert found is None, f"{name}'s docstring holds TeX: {found.group(0)!r}"


def test_parser_reads_numpydoc():
    doc = inspect.cleandoc("""Summary.

        Parameters
        ----------
        a, b : float
            Two numbers.
        c : int, default 0
        **extra : dict
            More.

        Returns
        -------
        x : float
            Not a parameter.
        """)
    assert documented_parameters(doc) == {"a": ("float", "Two numbers."),
                                          "b": ("float", "Two numbers."),
                                          "c": ("int, default 0", ""),
                                          "extra": ("dict", "More.")}

"""The "Parameters" sections of the optimizers' docstrings, written from fastopt._spec.

Each optimizer has four forms (``fastopt.<Name>``, ``fastopt.torch.<Name>``,
``fastopt.functional.<name>_``, ``fastopt.reference.<name>``) whose
docstrings keep only what is their own (summary, update rule, examples).
`document` adds the numpydoc entry of every argument in the signature, in
its order: a hyperparameter's from its spec row (the type from the
annotation and default, the description from ``Hyper.doc`` and the range
from its rule), a state buffer's from ``Buffer.doc``, and the arguments
every optimizer of a form shares (``params``, ``foreach``, ``step``, ...)
from the one description its module gives. An entry written in the
docstring's own "Parameters" section wins, for wording particular to one
function. help(), ``inspect.getdoc`` and the API reference show the result.
"""
import inspect
import math
import re
import textwrap
import types
import typing

__all__ = ["document"]

_SECTION = re.compile(r"^(Returns|Yields|Raises|Warns|See Also|Notes|References|Examples|Attributes|Methods)\n-+$",
                      re.M)
_PARAMETERS = re.compile(r"^Parameters\n-+\n(.*?)(?=^\S[^\n]*\n-+$|\Z)", re.M | re.S)


def _number(x):
    """A default as a reader writes it: 1e-3, 0.99, 0, (0.9, 0.999)."""
    if isinstance(x, tuple):
        return "(" + ", ".join(_number(v) for v in x) + ")"
    if isinstance(x, float) and math.isfinite(x) and x != 0:
        short = repr(x)
        mantissa, _, exponent = f"{x:e}".partition("e")
        sci = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        if float(sci) == x and (abs(x) < 0.1 or abs(x) >= 1e4) and len(sci) <= len(short):
            return sci
        return short
    if isinstance(x, float) and x == 0:
        return "0"
    return repr(x)


def _type(annotation):
    """An annotation as numpydoc's type text: float, bool or None, (float, float), ndarray."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is tuple:
        return "(" + ", ".join(_type(a) for a in args) + ")"
    if annotation is type(None):
        return "None"
    name = getattr(origin or annotation, "__name__", str(annotation))
    return {"Tensor": "tensor"}.get(name, name)


def _range(rule, pair, names=()):
    """A range rule (low, high, high_open) as text: '>= 0', 'each in [0, 1)'; '' for any value.
    One rule per element of a pair (`names`): 'eps >= 0 or None, eps2 >= 0'."""
    if rule is None:
        return ""
    if isinstance(rule[0], tuple):
        return ", ".join(f"{name} {_range(r, False)}" for name, r in zip(names, rule))
    low, high, high_open = rule[:3]
    none = " or None" if len(rule) > 3 else ""
    if high is None:
        text = f">= {low:g}{none}"
    elif math.isinf(low) and math.isinf(high):
        return ""
    elif math.isinf(low):
        text = f"<= {high:g}"
    else:
        text = f"in [{low:g}, {high:g}{')' if high_open else ']'}"
    return ("each " if pair else "") + text


def _sentence(*parts):
    text = ", ".join(p for p in parts if p)
    return text if text.endswith(".") else text + "."


def _entries(doc):
    """{name: entry lines} of a docstring's Parameters section, and the docstring without it."""
    match = _PARAMETERS.search(doc)
    if match is None:
        return {}, doc
    entries, current = {}, None
    for line in match.group(1).rstrip("\n").splitlines():
        if line[:1].strip():
            current = [line]
            for name in line.partition(":")[0].split(","):
                entries[name.strip().lstrip("*")] = current
        elif current is not None:
            current.append(line)
    return entries, doc[:match.start()] + doc[match.end():]


def _entry(param, spec, shared):
    """The numpydoc lines of one argument."""
    hyper = next((h for h in spec.hypers if h.name == param.name), None)
    buffer = next((b for b in spec.state if b.name == param.name), None)
    scalar = next((c for c in spec.scalars if c.name == param.name), None)
    if hyper is not None:
        kind, text = None, _sentence(hyper.doc, _range(hyper.rule, len(hyper.c) > 1, hyper.c))
    elif buffer is not None:
        kind, text = None, _sentence(buffer.doc + (": param's shape and dtype" if buffer.shape is None else
                                                   ": param's dtype") + ", updated in place")
    elif scalar is not None:
        kind, text = None, _sentence(scalar.doc + ": a 0-d float32/float64 array, updated in place "
                                     "(read as its initial value at step 1)")
    elif param.name in shared:
        kind, text = shared[param.name]
    else:
        raise LookupError(f"{spec.name}: no description of argument {param.name!r} (add it to "
                          "its spec row, or to the arguments its module describes)")
    if kind is None:
        kind = _type(param.annotation) if param.annotation is not param.empty else \
            type(param.default).__name__
    if param.default is not param.empty and "default" not in kind:
        kind += f", default {_number(param.default)}"
    return [f"{param.name} : {kind}", *textwrap.wrap(text, 79, initial_indent="    ",
                                                     subsequent_indent="    ")]


def document(obj, spec, shared, returns=None):
    """Give `obj` (a class or function of optimizer `spec`) its Parameters section.

    `shared`: {argument name: (type text or None for the annotation's, description)}
    of the arguments that are not the spec's, as the module describes them;
    `returns`: (type, description) for a Returns section, unless it has one.
    """
    if obj.__doc__ is None:  # python -OO
        return
    own, doc = _entries(inspect.cleandoc(obj.__doc__))
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = [p for p in inspect.signature(target).parameters.values() if p.name != "self"]
    lines = ["Parameters", "----------"]
    for param in params:
        lines += own.get(param.name) or _entry(param, spec, shared)
    if returns is not None and not re.search(r"^Returns\n-+$", doc, re.M):
        lines += ["", "Returns", "-------", returns[0], "    " + returns[1]]
    section = "\n".join(lines) + "\n"
    after = _SECTION.search(doc)
    at = after.start() if after else len(doc)
    head, tail = doc[:at].rstrip(), doc[at:]
    obj.__doc__ = (head + "\n\n" + section + ("\n" + tail if tail else "")).rstrip() + "\n"


# The lines of LBFGS's hyperparameters in a "Parameters" section (LBFGS is not in
# the spec): fastopt.LBFGS's, fastopt.torch.LBFGS's and fastopt.reference.lbfgs's.
LBFGS_PARAMETERS = """\
    lr : float, default 1
        Learning rate γ, >= 0 (the step length t of every iteration but the
        very first, and the line search's first trial).
    max_iter : int, default 20
        Iterations per step.
    max_eval : int or None, default None
        Closure evaluations per step (None: max_iter * 5 // 4).
    tolerance_grad : float, default 1e-7
        Stop when max |g| <= tolerance_grad.
    tolerance_change : float, default 1e-9
        Stop when max |t·d| or the change of the loss is below it.
    history_size : int, default 100
        Pairs (s, y) kept, >= 1.
    line_search_fn : str or None, default None
        None or "strong_wolfe".
    """

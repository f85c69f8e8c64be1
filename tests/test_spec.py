"""fastopt._spec is the one description of each optimizer: the explicit
signatures of the thin classes and functions, and the C core, agree with it."""
import inspect
import itertools

import pytest

import fastopt
import fastopt.functional as F
from fastopt import _core
from fastopt._spec import SPECS

from conftest import OPTIMIZERS

torch = pytest.importorskip("torch")
import fastopt.torch  # noqa: E402

# keywords that are not hyperparameters of the spec
_NOT_HYPERS = {"params", "skip_nonfinite", "foreach", "fused", "differentiable", "capturable",
               "param", "grad", "step", "isa"}


def _defaults(fn, spec):
    sig = inspect.signature(fn)
    names = {b.name for b in spec.state}
    return {k: p.default for k, p in sig.parameters.items()
            if k not in _NOT_HYPERS and k not in names}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("where", ["fastopt", "fastopt.torch", "torch.optim", "functional"])
def test_signature_defaults_are_the_specs(name, where):
    spec = SPECS[name]
    if where == "torch.optim" and spec.reference != "torch.optim":
        pytest.skip(f"torch.optim has no {name} (its reference is {spec.reference})")
    fn = {"fastopt": lambda: getattr(fastopt, name), "fastopt.torch": lambda: getattr(fastopt.torch, name),
          "torch.optim": lambda: getattr(torch.optim, name),
          "functional": lambda: getattr(F, name.lower() + "_")}[where]()
    defaults = _defaults(fn, spec)
    assert defaults, "no hyperparameters found"
    for key, value in defaults.items():
        assert key in spec.defaults, f"{where}.{name} has {key!r}, which the spec lacks"
        assert value == spec.defaults[key] and type(value) is type(spec.defaults[key]), (key, value)
    # only a fixed choice of the class (AdamW's decoupled weight decay) may be left out
    missing = set(spec.defaults) - set(defaults)
    if where != "functional":  # functions omit the initial values of the buffers they take
        assert missing <= {"decoupled_weight_decay"} and (not missing or name == "AdamW"), missing


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_constructor_defaults_are_the_specs(opt, rng):
    import numpy as np
    o = opt.cls([np.zeros(3)])
    assert {k: v for k, v in o.defaults.items()} == opt.spec.defaults
    t = getattr(fastopt.torch, opt.name)([torch.zeros(3, requires_grad=True)])
    assert all(t.defaults[k] == v for k, v in opt.spec.defaults.items())


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_state_slots_agree_with_the_c_core(opt):
    spec = opt.spec
    flags = [h for h in spec.hypers if h.rule is None]
    numbers = {"momentum": (0, 0.9, -0.5)}
    choices = {h.name: (False, True) for h in flags}
    choices.update({k: v for k, v in numbers.items() if k in spec.defaults})
    keys = list(choices)
    for values in itertools.product(*choices.values()):
        group = {**spec.defaults, **dict(zip(keys, values))}
        assert spec.slots(group) == _core.state_slots(spec.algo, group), group
    assert _core.STATE_NAMES[spec.algo] == spec.state_names


def test_unknown_algorithm_is_an_error():
    import numpy as np
    for call in (lambda: _core.Hypers("nope", [{"lr": 1.0}]),
                 lambda: _core.Engine("nope", [np.zeros(2)], [(None,) * 3], [0], [0]),
                 lambda: _core.state_slots("nope", {"lr": 1.0})):
        with pytest.raises((ValueError, KeyError)):
            call()

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
               "param", "grad", "step", "isa", "master_weights", "rounding", "seed", "state_dtype"}


def _defaults(fn, spec):
    sig = inspect.signature(fn)
    names = {b.name for b in spec.state} | set(spec.scalar_names)  # state arguments
    # a function given a group's state (Schedule-Free's lr_max, weight_sum) starts it as the spec
    for h in spec.group_state:
        if h.name in sig.parameters:
            assert sig.parameters[h.name].default == h.default, h.name
            names.add(h.name)
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
          "functional": lambda: getattr(F, spec.function + "_")}[where]()
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


def test_exports_are_the_specs():
    import fastopt.reference as R
    from fastopt import optim
    names = list(SPECS)
    # LBFGS is outside the spec (not elementwise: fastopt._lbfgs), with no functional form
    assert optim.__all__ == ["Optimizer", *names, "LBFGS"]  # a literal list, for type checkers
    assert all(getattr(fastopt, n) is getattr(optim, n) for n in optim.__all__)
    assert set(optim.__all__) <= set(fastopt.__all__)
    assert fastopt.torch.__all__ == [*names, "LBFGS"]
    assert F.__all__ == [SPECS[n].function + "_" for n in names]
    assert R.__all__[:len(names) + 1] == [SPECS[n].function for n in names] + ["lbfgs"]
    assert list(R.UPDATES) == names


def test_every_hyperparameter_and_buffer_has_a_doc():
    for spec in SPECS.values():
        for row in spec.hypers + spec.state:
            assert row.doc and not row.doc.endswith("."), (spec.name, row)  # _docs ends the sentence


def _forms(name):
    import fastopt.reference as R
    spec = SPECS[name]
    return [getattr(fastopt, name), getattr(fastopt.torch, name),
            getattr(F, spec.function + "_"), getattr(R, spec.function)]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_parameters_sections_come_from_the_spec(name):
    from test_docstrings import documented_parameters
    spec = SPECS[name]
    for obj in _forms(name):
        doc = inspect.getdoc(obj)
        documented = documented_parameters(doc)
        for hyper in spec.hypers:
            if hyper.name in documented:
                assert documented[hyper.name][1].startswith(hyper.doc), (obj, hyper.name)
        for buf in spec.state:
            if buf.name in documented:
                assert documented[buf.name][1].startswith(buf.doc), (obj, buf.name)
        # an update rule ("...::" then a literal block) keeps its block indented
        lines = doc.splitlines()
        for i, line in enumerate(lines[:-2]):
            if line.endswith("::"):
                assert lines[i + 1] == "" and lines[i + 2].startswith(" "), (obj, line)


def test_a_docstrings_own_entry_wins_and_a_missing_one_is_an_error():
    from fastopt import _docs
    spec = SPECS["SGD"]

    def sgd(param, lr: float = 1e-3, nesterov: bool = False):
        """Summary.

        Parameters
        ----------
        nesterov : bool, default False
            Its own words.

        Examples
        --------
        >>> 1
        1
        """

    _docs.document(sgd, spec, {"param": ("ndarray", "The parameter.")})
    doc = inspect.getdoc(sgd)
    assert doc.index("Parameters") < doc.index("Examples")
    from test_docstrings import documented_parameters
    assert documented_parameters(doc) == {
        "param": ("ndarray", "The parameter."),
        "lr": ("float, default 1e-3", "Learning rate γ, >= 0."),
        "nesterov": ("bool, default False", "Its own words.")}

    def unknown(param, foo: int = 0):
        """Summary."""
    with pytest.raises(LookupError, match="foo"):
        _docs.document(unknown, spec, {"param": ("ndarray", "The parameter.")})

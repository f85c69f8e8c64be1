"""Shared fixtures and the table of optimizers that drives the generic tests."""
import inspect
import itertools
import os
import subprocess
import sys
import textwrap
import zlib

# torch's and BLAS's own thread pools only wait for each other (and for other
# processes) on the tests' small tensors: one thread each, set before NumPy and
# torch start them. fastopt's own thread count (FASTOPT_NUM_THREADS) is untouched.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest

import fastopt
from fastopt import _core
from fastopt._spec import SPECS


def _cases(**choices):
    """Every combination of the given option values, as dicts."""
    keys = list(choices)
    return [dict(zip(keys, values)) for values in itertools.product(*choices.values())]


class Opt:
    """One optimizer class: its name in fastopt and torch, its spec (state
    buffer names and rules, fastopt._spec), the option dicts the generic
    tests run (together they set every option to a non-default value, alone
    and combined) and every valid combination of option values (for the
    kernel tests)."""

    def __init__(self, name, options, combos):
        self.name = name
        self.cls = getattr(fastopt, name)
        self.spec = SPECS[name]
        self.options = [o for o in options if self.valid(o)]
        self.combos = [c for c in combos if self.valid(c)]

    def valid(self, options):
        """Whether the spec's rule across hyperparameters (SGD's Nesterov) allows these."""
        if self.spec.check is None:
            return True
        try:
            self.spec.check({**self.spec.defaults, **options}, "options")
        except ValueError:
            return False
        return True

    @property
    def full(self):
        """The option dict that allocates the most state buffers (of those, the one that sets most)."""
        return max(self.options,
                   key=lambda o: (sum(self.spec.slots({**self.spec.defaults, **o})), len(o)))

    def __repr__(self):
        return self.name


OPTIMIZERS = [
    Opt("SGD", [
        {"lr": 0.05},
        {"lr": 0.05, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"lr": 0.05, "weight_decay": 0.1},
        {"lr": 0.05, "maximize": True},
        {"lr": 0.02, "momentum": 0.5, "dampening": 0.1, "weight_decay": 0.2, "maximize": True},
        {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05, "maximize": True},
    ], _cases(lr=[0.05], momentum=[0, 0.9], dampening=[0, 0.3], weight_decay=[0, 0.1],
              nesterov=[False, True], maximize=[False, True])),
    Opt("Adagrad", [
        {"lr": 0.05},
        {"lr": 0.05, "lr_decay": 0.01},
        {"lr": 0.05, "weight_decay": 0.1},
        {"lr": 0.05, "initial_accumulator_value": 0.5},
        {"lr": 0.05, "eps": 1e-3},
        {"lr": 0.05, "maximize": True},
        {"lr": 0.05, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.1,
         "eps": 1e-6, "maximize": True},
    ], _cases(lr=[0.05], lr_decay=[0, 0.01], weight_decay=[0, 0.1], eps=[1e-10, 1e-3],
              maximize=[False, True])),
    Opt("RMSprop", [
        {"lr": 0.01},
        {"lr": 0.01, "alpha": 0.9},
        {"lr": 0.01, "eps": 1e-3},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "momentum": 0.9},
        {"lr": 0.01, "centered": True},
        {"lr": 0.01, "centered": True, "alpha": 0.3},  # lerp weight >= 0.5
        {"lr": 0.01, "maximize": True},
        {"lr": 0.005, "alpha": 0.95, "momentum": 0.5, "centered": True, "weight_decay": 0.05,
         "maximize": True},
    ], _cases(lr=[0.01], alpha=[0.99, 0.3], weight_decay=[0, 0.1], momentum=[0, 0.9],
              centered=[False, True], maximize=[False, True])),
    Opt("Adam", [
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.8, 0.99)},
        {"lr": 0.01, "betas": (0.3, 0.9)},  # lerp weight >= 0.5
        {"lr": 0.01, "betas": (0.0, 0.0)},
        {"lr": 0.01, "eps": 1e-3},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "amsgrad": True},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 0.01, "betas": (0.5, 0.95), "weight_decay": 0.05, "amsgrad": True, "maximize": True},
    ], _cases(lr=[0.01], betas=[(0.9, 0.999), (0.3, 0.9)], weight_decay=[0, 0.1],
              amsgrad=[False, True], maximize=[False, True], decoupled_weight_decay=[False, True])),
    Opt("AdamW", [
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0},
        {"lr": 0.01, "weight_decay": 0.2},
        {"lr": 0.01, "betas": (0.3, 0.9)},
        {"lr": 0.01, "eps": 1e-3},
        {"lr": 0.01, "amsgrad": True},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "betas": (0.7, 0.99), "weight_decay": 0.1, "amsgrad": True, "maximize": True},
    ], _cases(lr=[0.01], betas=[(0.9, 0.999), (0.3, 0.9)], weight_decay=[0, 0.1],
              amsgrad=[False, True], maximize=[False, True])),
    Opt("Adadelta", [
        {"lr": 0.5},
        {"lr": 0.5, "rho": 0.5},
        {"lr": 0.5, "rho": 0.0},
        {"lr": 0.5, "rho": 1.0},
        {"lr": 0.5, "eps": 1e-3},
        {"lr": 0.5, "weight_decay": 0.1},
        {"lr": 0.5, "maximize": True},
        {"lr": 0.3, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.05, "maximize": True},
    ], _cases(lr=[0.5], rho=[0.9, 0.3], weight_decay=[0, 0.1], maximize=[False, True])),
    Opt("RAdam", [
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.8, 0.99)},
        {"lr": 0.01, "betas": (0.3, 0.9)},  # lerp weight >= 0.5
        {"lr": 0.01, "betas": (0.0, 0.0)},
        {"lr": 0.01, "betas": (0.9, 0.6)},  # rho_inf = 4: never rectified
        {"lr": 0.01, "eps": 1e-3},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "betas": (0.5, 0.95), "eps": 1e-4, "weight_decay": 0.05,
         "decoupled_weight_decay": True, "maximize": True},
    ], _cases(lr=[0.01], betas=[(0.9, 0.999), (0.3, 0.9)], weight_decay=[0, 0.1],
              decoupled_weight_decay=[False, True], maximize=[False, True])),
    Opt("Rprop", [
        {"lr": 0.01},
        {"lr": 0.05, "etas": (0.3, 1.5)},
        {"lr": 0.01, "step_sizes": (1e-3, 0.02)},  # bounds that bind
        {"lr": 0.01, "maximize": True},
        {"lr": 0.02, "etas": (0.4, 1.1), "step_sizes": (1e-4, 0.1), "maximize": True},
    ], _cases(lr=[0.01], etas=[(0.5, 1.2)], step_sizes=[(1e-6, 50), (1e-3, 0.02)],
              maximize=[False, True])),
    Opt("Lion", [
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.8, 0.9)},
        {"lr": 0.01, "betas": (0.0, 0.0)},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "betas": (0.5, 0.95), "weight_decay": 0.05, "maximize": True},
    ], _cases(lr=[0.01], betas=[(0.9, 0.99), (0.3, 0.9)], weight_decay=[0, 0.1],
              maximize=[False, True])),
    Opt("AdaBelief", [
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.8, 0.99)},
        {"lr": 0.01, "betas": (0.0, 0.0)},
        {"lr": 0.01, "eps": 1e-8, "eps_root": 0.0},
        {"lr": 0.01, "eps_root": 1e-6},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "betas": (0.5, 0.95), "eps": 1e-6, "eps_root": 1e-8, "weight_decay": 0.05},
    ], _cases(lr=[0.01], betas=[(0.9, 0.999), (0.3, 0.9)], weight_decay=[0, 0.1])),
    Opt("ADOPT", [
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.8, 0.99)},
        {"lr": 0.01, "betas": (0.0, 0.0)},
        {"lr": 0.01, "eps": 1e-3},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "betas": (0.5, 0.95), "eps": 1e-4, "weight_decay": 0.05},
    ], _cases(lr=[0.01], betas=[(0.9, 0.9999), (0.3, 0.9)], weight_decay=[0, 0.1])),
    Opt("Adan", [
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.9, 0.8, 0.999)},
        {"lr": 0.01, "betas": (0.3, 0.4, 0.9)},  # lerp weights >= 0.5
        {"lr": 0.01, "betas": (0.0, 0.0, 0.0)},
        {"lr": 0.01, "eps": 1e-3},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1, "weight_decouple": True},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "betas": (0.5, 0.9, 0.95), "eps": 1e-4, "weight_decay": 0.05,
         "weight_decouple": True, "maximize": True},
    ], _cases(lr=[0.01], betas=[(0.98, 0.92, 0.99), (0.3, 0.4, 0.9)], weight_decay=[0, 0.1],
              weight_decouple=[False, True], maximize=[False, True])),
    Opt("LAMB", [
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.8, 0.99)},
        {"lr": 0.01, "betas": (0.0, 0.0)},
        {"lr": 0.01, "eps": 1e-3},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "betas": (0.5, 0.95), "eps": 1e-4, "weight_decay": 0.05, "maximize": True},
    ], _cases(lr=[0.01], betas=[(0.9, 0.999), (0.3, 0.9)], weight_decay=[0, 0.1],
              maximize=[False, True])),
    Opt("LARS", [
        {"lr": 0.5},
        {"lr": 0.5, "momentum": 0.0},
        {"lr": 0.5, "momentum": 0.5},
        {"lr": 0.5, "weight_decay": 0.1},
        {"lr": 0.5, "trust_coefficient": 0.02},
        {"lr": 0.5, "eps": 1e-3},
        {"lr": 0.5, "nesterov": True},
        {"lr": 0.5, "momentum": 0.8, "weight_decay": 0.05, "trust_coefficient": 0.01,
         "eps": 1e-4, "nesterov": True},
    ], _cases(lr=[0.5], momentum=[0.0, 0.9], weight_decay=[0, 0.1], nesterov=[False, True])),
]

# An optimizer of fastopt._spec without its own entry above gets one made from its
# spec: each hyperparameter the class takes set alone to each of its test values,
# then all together; for the kernel tests, every combination of its default and its
# first test value. Test values by name (the first selects a kernel mode where one
# does), else by rule: the flag flipped, a pair (0.3, 0.9), twice a number (0.1 for 0).
TEST_VALUES = {
    "betas": [(0.3, 0.9), (0.8, 0.99), (0.0, 0.0)],  # lerp weight >= 0.5, < 0.5, 1
    "eps": [1e-3], "weight_decay": [0.1], "momentum": [0.9], "dampening": [0.3],
    "alpha": [0.3, 0.9], "lr_decay": [0.01], "initial_accumulator_value": [0.5],
}


def _test_values(hyper):
    if hyper.name in TEST_VALUES:
        return TEST_VALUES[hyper.name]
    if hyper.rule is None:  # a flag
        return [not hyper.default]
    if len(hyper.c) > 1:
        return [(0.3, 0.9)]
    return [2 * hyper.default if hyper.default else 0.1]


def _from_spec(name):
    spec = SPECS[name]
    takes = inspect.signature(getattr(fastopt, name)).parameters
    hypers = [h for h in spec.hypers if h.name != "lr" and h.name in takes]
    base = {"lr": 0.01}
    options = [base] + [{**base, h.name: v} for h in hypers for v in _test_values(h)]
    options.append({**base, **{h.name: _test_values(h)[0] for h in hypers}})
    # the kernel tests step through fastopt.functional: only what it takes
    function = inspect.signature(getattr(fastopt.functional, spec.function + "_")).parameters
    combos = _cases(lr=[0.01], **{h.name: [h.default, _test_values(h)[0]] for h in hypers
                                  if h.name in function})
    return Opt(name, options, combos)


# Optimizers with group state (Schedule-Free's k, lr_max, weight_sum; a step only
# in train mode) follow another protocol: tests/test_schedulefree.py covers them.
GROUP_STATE = [name for name, spec in SPECS.items() if spec.group_state]
# Optimizers whose state is not shaped like the parameter (Adafactor's factors;
# torch cannot step an empty parameter) are not element-wise, as the generic
# tests assume: tests/test_adafactor.py covers them.
SHAPED_STATE = [name for name, spec in SPECS.items() if any(b.shape for b in spec.state)]
# The generic tests step 1-D arrays of any size: an optimizer whose spec
# restricts the parameters' dimensions (Muon: 2-D, not element-wise) is left
# out of them and tested in its own file (test_muon.py).
OPTIMIZERS += [_from_spec(name) for name in SPECS
               if name not in {o.name for o in OPTIMIZERS} and name not in GROUP_STATE
               and name not in SHAPED_STATE and SPECS[name].ndim is None]
OPTIMIZERS.sort(key=lambda o: list(SPECS).index(o.name))
BY_NAME = {o.name: o for o in OPTIMIZERS}

# (optimizer, options) pairs: every option dict of every optimizer.
OPTION_CASES = [pytest.param(o, opts, id=f"{o.name}-{i}")
                for o in OPTIMIZERS for i, opts in enumerate(o.options)]

# The optimizers torch.optim has (the tests against torch.optim run these; the
# others are checked against their own reference in test_beyond_torch.py).
# torch's SparseAdam (and so fastopt.torch's) refuses dense gradients: the tests that
# step torch classes with dense gradients leave it out; tests/test_sparse.py runs it.
SPARSE_ONLY_IN_TORCH = {"SparseAdam"}
IN_TORCH = [o for o in OPTIMIZERS if o.spec.reference == "torch.optim"
            and o.name not in SPARSE_ONLY_IN_TORCH]
TORCH_DENSE = [o for o in OPTIMIZERS if o.name not in SPARSE_ONLY_IN_TORCH]
IN_TORCH_CASES = [case for case in OPTION_CASES if case.values[0] in IN_TORCH]

SIZES = (1, 7, 63, 1000)
BIG = 1000003


def big_cases(opts):
    """The optimizers for a test on BIG elements: Adam in the default run (it
    spans several pieces of the thread pool), every other one under -m slow."""
    return [pytest.param(o, id=str(o), marks=() if o.name == "Adam" else pytest.mark.slow)
            for o in opts]


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


def one_dtype_by_default(default):
    """For a test whose subject does not depend on the dtype (state-dict
    layout, piece boundaries): ``default`` in the default run, the other one
    under -m slow. Overrides the ``dtype`` fixture."""
    other = np.float64 if np.dtype(default) == np.float32 else np.float32
    return pytest.mark.parametrize("dtype", [
        pytest.param(np.dtype(default), id=np.dtype(default).name.replace("float", "f")),
        pytest.param(np.dtype(other), id=np.dtype(other).name.replace("float", "f"),
                     marks=pytest.mark.slow)])


@pytest.fixture(params=[n for n in _core.isa_names() if n != "scalar"])
def isa(request):
    """Each SIMD path this CPU runs besides ``scalar`` (which the others must equal)."""
    return request.param


@pytest.fixture
def rng(request):
    # Seeded from the test's id: each test sees its own numbers, the same in every run.
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def tolerances(dtype):
    """API.md's "Numbers": (rtol, atol) for values of magnitude up to ``scale``."""
    return (1e-10, 1e-12) if np.dtype(dtype) == np.float64 else (1e-5, 1e-6)


def assert_close(actual, expected, dtype, what=""):
    rtol, atol = tolerances(dtype)
    expected = np.asarray(expected)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    if np.dtype(dtype) == np.float32:
        atol *= scale
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def assert_bitwise(actual, expected, what=""):
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.dtype == e.dtype and a.shape == e.shape, what
    bits = np.dtype(f"u{a.dtype.itemsize}")
    same = a.view(bits) == e.view(bits)
    if not same.all():
        k = int(np.argmin(same.ravel()))
        raise AssertionError(f"{what}: {int((~same).sum())} of {a.size} elements differ, first at "
                             f"{k}: {a.ravel()[k]!r} != {e.ravel()[k]!r}")


def make_params(rng, sizes, dtype, scale=1.0):
    return [(rng.standard_normal(n) * scale).astype(dtype) for n in sizes]


def make_grads(rng, params):
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def grouped(params, options, n_groups=3):
    """params dealt round-robin into param-group dicts; groups after the
    first change lr (and weight_decay where the optimizer has it) and leave
    the rest to the constructor's values."""
    groups = [{"params": params[g::n_groups]} for g in range(min(n_groups, len(params)))]
    for g, group in enumerate(groups[1:], 1):
        group["lr"] = options["lr"] * (1 + 0.5 * g)
    return groups


def group_order(params, n_groups=3):
    """The order in which ``grouped`` lays the parameters out (group order)."""
    return [p for g in range(n_groups) for p in params[g::n_groups]]


def snapshot(opt):
    """Deep copy of everything an optimizer may change."""
    return {
        "params": [p.copy() for p in opt._params],
        "state_dict": opt.state_dict(),
        "steps": opt._engine.steps.copy(),
        "started": opt._engine.started.copy(),
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
    }


def assert_unchanged(opt, snap):
    """opt holds exactly what ``snapshot`` recorded (bitwise)."""
    for i, (p, q) in enumerate(zip(opt._params, snap["params"])):
        assert_bitwise(p, q, f"parameter {i}")
    np.testing.assert_array_equal(opt._engine.steps, snap["steps"])
    np.testing.assert_array_equal(opt._engine.started, snap["started"])
    assert_state_dicts_equal(opt.state_dict(), snap["state_dict"])


def assert_state_dicts_equal(a, b):
    assert sorted(a["state"]) == sorted(b["state"])
    for i in a["state"]:
        assert sorted(a["state"][i]) == sorted(b["state"][i]), i
        for key, value in a["state"][i].items():
            if isinstance(value, np.ndarray):
                assert_bitwise(value, b["state"][i][key], f"state {i} {key}")
            else:
                assert value == b["state"][i][key], (i, key)
    assert len(a["param_groups"]) == len(b["param_groups"])
    for ga, gb in zip(a["param_groups"], b["param_groups"]):
        assert ga == gb


def functional_step(name, param, grad, state, step, options, isa=None):
    """One step of ``fastopt.functional`` for the class ``name``, with the
    state buffers taken from the dict ``state`` by torch's names."""
    from fastopt import functional as F
    fn = getattr(F, SPECS[name].function + "_")
    buffers = [state.get(n) for n in SPECS[name].state_names + SPECS[name].scalar_names]
    fn(param, grad, *buffers, step=step, isa=isa, **options)


def new_state(name, param, fill=0.0):
    """Buffers for every state slot of class ``name`` (all of them, used or
    not), of the parameter's state dtype (float32 for 16-bit parameters), and
    its 0-d scalar state (float32, as torch keeps it)."""
    return {**{n: np.full(param.shape, fill, _core.state_dtype(param)) for n in SPECS[name].state_names},
            **{n: np.array(1.0, np.float32) for n in SPECS[name].scalar_names}}


def run_isolated(code, timeout=300):
    """Run `code` in a fresh Python process that imports this fastopt, and
    return its stdout. A crash (a signal) or a hang (past `timeout` seconds)
    fails the calling test instead of killing or stalling the whole run. The
    timeout is generous: on a busy machine importing torch alone can take
    most of a minute."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastopt.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the scenario hung (no exit within {timeout} s)")
    if proc.returncode != 0:
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        pytest.fail(f"the scenario failed with {how}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout

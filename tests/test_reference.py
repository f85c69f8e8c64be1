"""fastopt against the NumPy oracle (fastopt.reference), element-wise."""
import inspect

import numpy as np
import pytest

from conftest import BIG, OPTIMIZERS, big_cases, OPTION_CASES, SIZES, assert_close, grouped, make_params
from fastopt.reference import ReferenceOptimizer


def run_both(opt, options, params, steps, rng, n_groups=3):
    """Step fastopt and the oracle side by side from the same start; returns
    (fastopt optimizer, reference optimizer, list of params in group order)."""
    groups = grouped([p.copy() for p in params], options, n_groups)
    fast = opt.cls(groups, **options)
    ref = ReferenceOptimizer(opt.name, [dict(g, params=[p.copy() for p in g["params"]])
                                        for g in groups], options)
    ordered = [p for g in fast.param_groups for p in g["params"]]
    for _ in range(steps):
        grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in ordered]
        assert fast.step(grads) is True
        ref.step(grads)
    return fast, ref, ordered


def assert_matches(fast, ref, ordered, dtype):
    state = fast.state
    for i, p in enumerate(ordered):
        assert p.dtype == dtype
        assert_close(p, ref.params[i], dtype, f"parameter {i}")
        mine = state.get(i, {})  # SGD without momentum keeps no state, as in torch
        assert sorted(mine) == sorted(["step"] * fast._spec.step + list(ref.state[i]))
        for name, buf in ref.state[i].items():
            if name in fast._spec.scalar_names:  # 0-d, float32 as torch keeps it, exact
                assert mine[name].shape == () and mine[name].dtype == buf.dtype == np.float32
                assert mine[name] == buf, (i, name)
                continue
            assert mine[name].dtype == dtype
            assert_close(mine[name], buf, dtype, f"parameter {i} {name}")
        if fast._spec.step:
            assert mine["step"] == ref.steps[i]


@pytest.mark.parametrize("opt, options", OPTION_CASES)
def test_matches_reference(opt, options, dtype, rng):
    params = make_params(rng, SIZES, dtype)
    fast, ref, ordered = run_both(opt, options, params, 100, rng)
    assert len(fast.param_groups) == 3
    assert_matches(fast, ref, ordered, dtype)


@pytest.mark.parametrize("opt", big_cases(OPTIMIZERS))
def test_matches_reference_big(opt, dtype, rng):
    # The largest size runs fewer steps with the option dict that combines the most options.
    options = max(opt.options, key=len)
    params = make_params(rng, [BIG, 7], dtype)
    fast, ref, ordered = run_both(opt, options, params, 8, rng, n_groups=2)
    assert_matches(fast, ref, ordered, dtype)


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_reference_is_pure(opt, rng):
    # The oracle must not modify what it is given (it is used side by side with fastopt).
    from fastopt.reference import UPDATES
    p, g = rng.standard_normal(5), rng.standard_normal(5)
    options = max(opt.options, key=len)
    _, state = UPDATES[opt.name](p, g, {}, 1, **options)
    before = [p.copy(), g.copy(), {k: v.copy() for k, v in state.items()}]
    UPDATES[opt.name](p, g, state, 2, **options)
    np.testing.assert_array_equal(p, before[0])
    np.testing.assert_array_equal(g, before[1])
    for k, v in state.items():
        np.testing.assert_array_equal(v, before[2][k])


# Random hyperparameters anywhere in their valid ranges (Hypothesis).
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastopt._spec import CLOSED_UNIT, FLAG, NONNEG, REAL, UNIT  # noqa: E402

unit = st.floats(0.0, 1.0, exclude_max=True)
small = st.floats(0.0, 0.5)
flag = st.booleans()
# Per range rule of fastopt._spec, the values drawn; per hyperparameter name, narrower
# ones where the rule allows values the update cannot take in 10 steps (eps = 0 divides
# zero by zero, alpha > 1 gives a negative square average).
BY_RULE = {NONNEG: small, REAL: small, UNIT: unit, CLOSED_UNIT: st.floats(0.0, 1.0), FLAG: flag}
BY_NAME = {"eps": st.floats(1e-8, 1.0), "alpha": unit,
           # Rprop's pairs: 0 < etaminus < 1 < etaplus, min <= max
           "etas": st.tuples(st.floats(0.01, 0.99), st.floats(1.01, 3.0)),
           "step_sizes": st.tuples(st.floats(0.0, 1e-3), st.floats(1e-3, 10.0)),
           "max_grad_norm": st.just(0.0)}  # Adan: only 0 (no clipping) is supported


def hyperparameters(opt):
    """Random values of the hyperparameters an optimizer class takes, anywhere in their valid ranges."""
    def one(h):
        if h.name in BY_NAME:
            return BY_NAME[h.name]
        values = BY_RULE[h.rule]
        return st.tuples(*[values] * len(h.c)) if len(h.c) > 1 else values
    takes = inspect.signature(opt.cls).parameters  # not AdamW's fixed decoupled_weight_decay
    return st.fixed_dictionaries({h.name: one(h) for h in opt.spec.hypers if h.name in takes})


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_matches_reference_random_hyperparameters(opt, dt):
    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(options=hyperparameters(opt), seed=st.integers(0, 2**32 - 1))
    def check(options, seed):
        assume(opt.valid(options))  # the spec's rule across them (SGD's Nesterov)
        rng = np.random.default_rng(seed)
        params = make_params(rng, (1, 9, 40), np.dtype(dt))
        fast, ref, ordered = run_both(opt, options, params, 10, rng, n_groups=2)
        assert_matches(fast, ref, ordered, np.dtype(dt))
    check()

"""fastopt against the NumPy oracle (fastopt.reference), element-wise."""
import numpy as np
import pytest

from conftest import BIG, OPTIMIZERS, OPTION_CASES, SIZES, assert_close, grouped, make_params
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
        assert sorted(mine) == sorted(["step"] * (fast._algo != "sgd") + list(ref.state[i]))
        for name, buf in ref.state[i].items():
            assert mine[name].dtype == dtype
            assert_close(mine[name], buf, dtype, f"parameter {i} {name}")
        if fast._algo != "sgd":
            assert mine["step"] == ref.steps[i]


@pytest.mark.parametrize("opt, options", OPTION_CASES)
def test_matches_reference(opt, options, dtype, rng):
    params = make_params(rng, SIZES, dtype)
    fast, ref, ordered = run_both(opt, options, params, 100, rng)
    assert len(fast.param_groups) == 3
    assert_matches(fast, ref, ordered, dtype)


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
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

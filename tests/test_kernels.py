"""Every SIMD path gives the same bits as the scalar one, for every algorithm,
option combination, dtype and length (tails included)."""
import numpy as np
import pytest

import fastopt
from conftest import OPTIMIZERS, assert_bitwise, functional_step, new_state

SIZES = (0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000, 4099)


def inputs(rng, n, dtype, special):
    p = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    if special and n:
        # zeros of both signs, tiny (subnormal) and huge values, exact ties
        tiny, huge = np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max / 4
        values = np.array([0.0, -0.0, tiny, -tiny, huge, -huge, 1.0, 1.0], dtype)
        for g in grads:
            g[: min(n, 8)] = values[: min(n, 8)]
            g[-min(n, 8):] = values[::-1][: min(n, 8)]
        p[: min(n, 8)] = values[::-1][: min(n, 8)]
    return p, grads


def run(name, options, p, grads, isa):
    p = p.copy()
    state = new_state(name, p, 0.1 if name == "Adagrad" else 0.0)
    for t, g in enumerate(grads, 1):
        functional_step(name, p, g, state, t, options, isa)
    return p, state


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
@pytest.mark.parametrize("special", [False, True], ids=["normal", "special"])
def test_isa_matches_scalar(opt, isa, special, dtype, rng):
    for options in opt.combos:
        for n in SIZES:
            p, grads = inputs(rng, n, dtype, special)
            expected = run(opt.name, options, p, grads, "scalar")
            actual = run(opt.name, options, p, grads, isa)
            what = f"{opt.name} {options} n={n} {isa}"
            assert_bitwise(actual[0], expected[0], what + " param")
            for key in expected[1]:
                assert_bitwise(actual[1][key], expected[1][key], f"{what} {key}")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, np.inf, 3.0, 0.5])
def test_clip_isa_matches_scalar(isa, norm_type, dtype, rng):
    grads = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    a, b = [g.copy() for g in grads], [g.copy() for g in grads]
    na = fastopt.clip_grad_norm_(a, 1.0, norm_type, isa="scalar")
    nb = fastopt.clip_grad_norm_(b, 1.0, norm_type, isa=isa)
    assert na == nb
    for x, y in zip(a, b):
        assert_bitwise(y, x)


def test_each_isa_is_used(rng):
    """The isa keyword really selects a path: the scalar path and each other
    one are separate code (all are listed and compiled), and asking for one
    that does not exist fails."""
    assert "scalar" in fastopt._core.isa_names()
    assert set(fastopt._core.isa_names()) <= set(fastopt._core.compiled_isa_names())
    assert fastopt._core.active_isa() in fastopt._core.isa_names()
    p = np.ones(4)
    with pytest.raises(ValueError, match="unknown SIMD path"):
        fastopt.functional.sgd_(p, np.ones(4), step=1, isa="bogus")


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_isa_matches_scalar_nonfinite(opt, isa, dtype, rng):
    """NaN and Inf gradients give the same bits on every path, NaNs included
    (kernels store every NaN as one canonical NaN, so operand order, which
    decides a NaN's sign and payload, cannot show)."""
    for options in opt.combos:
        for n in (1, 9, 33, 100):
            p, grads = inputs(rng, n, dtype, special=False)
            for g in grads:
                g[rng.integers(0, n, 4)] = [np.nan, -np.nan, np.inf, -np.inf]
            expected = run(opt.name, options, p, grads, "scalar")
            actual = run(opt.name, options, p, grads, isa)
            pairs = [(actual[0], expected[0], "param")] + \
                [(actual[1][k], expected[1][k], k) for k in expected[1]]
            for a, e, name in pairs:
                what = f"{opt.name} {options} n={n} {isa} {name}"
                assert_bitwise(a, e, what)


@pytest.mark.parametrize("clip_value", [0.5, 0.0, -1.0, np.inf, np.nan])
def test_clip_value_isa_matches_scalar(isa, clip_value, dtype, rng):
    grads = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    for g in grads[1:]:
        g[: min(len(g), 8)] = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 0.5, -0.5],
                                       dtype)[: min(len(g), 8)]
    a, b = [g.copy() for g in grads], [g.copy() for g in grads]
    fastopt.clip_grad_value_(a, clip_value, isa="scalar")
    fastopt.clip_grad_value_(b, clip_value, isa=isa)
    for x, y in zip(a, b):
        assert_bitwise(y, x)

"""Every SIMD path gives the same bits as the scalar one, for every algorithm,
option combination (so every compiled mode), dtype and length (every tail
included), with finite, extreme and non-finite gradients; tails write only
their own elements; thread counts do not change the bits."""
import numpy as np
import pytest

import fastopt
from fastopt import _core, _probe
from conftest import OPTIMIZERS, assert_bitwise, functional_step, new_state

SIZES = (0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000, 4099)

try:
    import ml_dtypes
    BFLOAT16 = [np.dtype(ml_dtypes.bfloat16)]
except ImportError:
    ml_dtypes, BFLOAT16 = None, []


@pytest.fixture(params=[np.float32, np.float64, np.float16] + BFLOAT16,
                ids=["f32", "f64", "f16"] + ["bf16"] * len(BFLOAT16))
def storage(request):
    """The parameter and gradient dtypes of the kernel table (16-bit ones
    with float32 state)."""
    return np.dtype(request.param)


def finfo(dtype):
    return ml_dtypes.finfo(dtype) if dtype in BFLOAT16 else np.finfo(dtype)


def inputs(rng, n, dtype, special):
    p = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    if special and n:
        # zeros of both signs, tiny (subnormal) and huge values, exact ties
        tiny, huge = finfo(dtype).smallest_subnormal, float(finfo(dtype).max) / 4
        values = np.array([0.0, -0.0, float(tiny), -float(tiny), huge, -huge, 1.0, 1.0]).astype(dtype)
        for g in grads:
            g[: min(n, 8)] = values[: min(n, 8)]
            g[-min(n, 8):] = values[::-1][: min(n, 8)]
        p[: min(n, 8)] = values[::-1][: min(n, 8)]
    return p, grads


def run(name, options, p, grads, isa, first=1):
    p = p.copy()
    state = new_state(name, p, 0.1 if name == "Adagrad" else 0.0)
    for t, g in enumerate(grads, first):
        functional_step(name, p, g, state, t, options, isa)
    return p, state


def with_nonfinite(rng, grads):
    """NaNs of both signs and infinities at random places of every gradient."""
    for g in grads:
        if g.size:
            g[rng.integers(0, g.size, 4)] = [np.nan, -np.nan, np.inf, -np.inf]
    return grads


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
# Finite gradients alone under -m slow: the other two cases have them too, around
# their extreme or non-finite elements.
@pytest.mark.parametrize("values", [pytest.param("normal", marks=pytest.mark.slow), "special", "nonfinite"])
def test_isa_matches_scalar(opt, isa, values, storage, rng):
    """The kernel table: every path against the scalar one, bitwise (NaNs
    included: kernels store every NaN as one canonical NaN, so operand order,
    which decides a NaN's sign and payload, cannot show), for every option
    combination (together they select every compiled mode), every dtype
    (float16 and bfloat16 with float32 state) and lengths that leave every
    possible tail."""
    dtype = storage
    for options in opt.combos:
        for n in SIZES:
            p, grads = inputs(rng, n, dtype, values == "special")
            if values == "nonfinite":
                grads = with_nonfinite(rng, grads)
            expected = run(opt.name, options, p, grads, "scalar")
            actual = run(opt.name, options, p, grads, isa)
            what = f"{opt.name} {options} n={n} {isa}"
            assert_bitwise(actual[0], expected[0], what + " param")
            for key in expected[1]:
                assert_bitwise(actual[1][key], expected[1][key], f"{what} {key}")


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_isa_matches_scalar_at_later_steps(opt, isa, storage, rng):
    """Steps 8 to 10 too: the modes a step number selects run (RAdam's
    rectified step needs rho_t > 5, from step 6 on)."""
    dtype = storage
    for options in opt.combos:
        for n in (1, 17, 1000):
            p, grads = inputs(rng, n, dtype, special=True)
            expected = run(opt.name, options, p, grads, "scalar", first=8)
            actual = run(opt.name, options, p, grads, isa, first=8)
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


@pytest.mark.parametrize("isa_name", _core.isa_names())
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_tail_leaves_neighbours_alone(opt, isa_name, storage, rng):
    """A partial vector writes only its own elements, in every buffer."""
    pad, dtype = 16, storage
    for options in opt.combos:
        for n in (1, 3, 7, 9, 15, 17, 33):
            p, grads = inputs(rng, n, dtype, special=False)
            whole = {k: rng.standard_normal(n + 2 * pad).astype(_core.state_dtype(p) if k != "param" else dtype)
                     for k in ["param"] + list(opt.spec.state_names)}
            before = {k: w.copy() for k, w in whole.items()}
            param = whole["param"][pad:pad + n]
            param[:] = p
            state = {k: w[pad:pad + n] for k, w in whole.items() if k != "param"}
            for k, v in state.items():
                v[:] = 0.1 if opt.name == "Adagrad" else 0.0
            state.update({k: np.array(1.0, np.float32) for k in opt.spec.scalar_names})
            functional_step(opt.name, param, grads[0], state, 1, options, isa_name)
            for k, w in whole.items():
                what = f"{opt.name} {options} n={n} {isa_name} {k}"
                assert_bitwise(w[:pad], before[k][:pad], what + " before")
                assert_bitwise(w[pad + n:], before[k][pad + n:], what + " after")


def test_probe_kernels_agree():
    n = 4099
    for isa in _core.isa_names():
        a, b, c = np.ones(n, np.float32), np.full(n, 2.0, np.float32), np.full(n, 3.0, np.float32)
        _probe.bandwidth_probe("copy", a, b, isa=isa)
        np.testing.assert_array_equal(a, b)
        _probe.bandwidth_probe("triad", a, b, c, 0.5, isa=isa)
        np.testing.assert_array_equal(a, np.full(n, 3.5, np.float32))
        _probe.bandwidth_probe("rmw", a, b, None, 0.25, isa=isa)
        np.testing.assert_array_equal(a, np.full(n, 4.0, np.float32))


@pytest.mark.parametrize("isa_name", _core.isa_names())
def test_same_bits_for_any_thread_count(isa_name, storage):
    """Large enough to be cut into many pieces: 1, 2 and 3 threads agree bitwise."""
    before = fastopt.get_num_threads()
    sizes = [300_001, 17, 70_000, 5]
    results = []
    try:
        for threads in (1, 2, 3):
            fastopt.set_num_threads(threads)
            rng = np.random.default_rng(5)
            ps = [rng.standard_normal(n).astype(storage) for n in sizes]
            opt = fastopt.AdamW(ps, lr=1e-2)
            for _ in range(3):
                opt._engine.step([rng.standard_normal(n).astype(storage) for n in sizes],
                                 opt.param_groups, False, isa_name)
            results.append([p.copy() for p in ps])
    finally:
        fastopt.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_bitwise(b, a)


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

"""clip_grad_norm_ against torch.nn.utils.clip_grad_norm_ and from the definition."""
import math

import numpy as np
import pytest

import fastopt
from conftest import assert_bitwise, assert_close

NORMS = [2.0, 1.0, math.inf, 3.0, 0.5]
SIZES = (1, 7, 63, 1000)


def norm_of(grads, p):
    """The total p-norm, in float64 from the definition."""
    flat = np.concatenate([np.asarray(g, np.float64).ravel() for g in grads])
    if p == math.inf:
        return float(np.max(np.abs(flat)))
    return float(np.sum(np.abs(flat) ** p) ** (1 / p))


@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_matches_definition(norm_type, max_norm, dtype, rng):
    grads = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    before = [g.copy() for g in grads]
    total = fastopt.clip_grad_norm_(grads, max_norm, norm_type)
    assert isinstance(total, float)
    expected = norm_of(before, norm_type)
    np.testing.assert_allclose(total, expected, rtol=1e-12)
    coef = min(1.0, max_norm / (expected + 1e-6))
    for g, b in zip(grads, before):
        assert_close(g, b * dtype.type(coef), dtype)
    if max_norm > expected:
        for g, b in zip(grads, before):
            assert_bitwise(g, b)  # scaled by exactly 1


@pytest.mark.parametrize("norm_type", NORMS)
def test_clip_matches_torch(norm_type, dtype, rng):
    torch = pytest.importorskip("torch")
    grads = [rng.standard_normal(n).astype(dtype) * 3 for n in SIZES]
    params = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.copy())
    theirs = torch.nn.utils.clip_grad_norm_(params, 1.5, norm_type, foreach=False)
    ours = fastopt.clip_grad_norm_(grads, 1.5, norm_type)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(ours, float(theirs), rtol=rtol)
    for g, p in zip(grads, params):
        assert_close(g, p.grad.numpy(), dtype)


@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_clip_nonfinite(norm_type, bad, dtype, rng):
    grads = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    grads[2][5] = bad
    before = [g.copy() for g in grads]
    with pytest.raises(RuntimeError, match="non-finite"):
        fastopt.clip_grad_norm_(grads, 1.0, norm_type, error_if_nonfinite=True)
    for g, b in zip(grads, before):
        assert_bitwise(g, b)
    total = fastopt.clip_grad_norm_(grads, 1.0, norm_type)
    torch = pytest.importorskip("torch")
    params = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True) for g in before]
    for p, g in zip(params, before):
        p.grad = torch.from_numpy(g.copy())
    theirs = torch.nn.utils.clip_grad_norm_(params, 1.0, norm_type, foreach=False)
    if math.isnan(float(theirs)):
        assert math.isnan(total)
    else:
        assert total == float(theirs)
    for g, p in zip(grads, params):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(p.grad.numpy()))
        ok = np.isfinite(g)
        assert_close(g[ok], p.grad.numpy()[ok], dtype)


def test_clip_torch_raises_too(rng):
    torch = pytest.importorskip("torch")
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.tensor([1.0, math.nan, 0.0])
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


def test_clip_arguments(rng):
    g = rng.standard_normal(5)
    assert fastopt.clip_grad_norm_([], 1.0) == 0.0
    assert fastopt.clip_grad_norm_([None, g.copy()], 10.0) == pytest.approx(np.linalg.norm(g))
    single = g.copy()
    assert fastopt.clip_grad_norm_(single, 0.1) == pytest.approx(np.linalg.norm(g))  # a bare array
    np.testing.assert_allclose(np.linalg.norm(single), 0.1, rtol=1e-5)
    for bad, exc in [(-1.0, ValueError), (0.0, ValueError), ("two", TypeError)]:
        with pytest.raises(exc):
            fastopt.clip_grad_norm_([g.copy()], 1.0, bad)
    with pytest.raises(ValueError, match="gradient 0 and gradient 1"):
        fastopt.clip_grad_norm_([g, g[1:3]], 1.0)
    ro = g.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="gradient 1.*read-only"):
        fastopt.clip_grad_norm_([g.copy(), ro], 1.0)
    with pytest.raises(TypeError, match="gradient 0.*dtype"):
        fastopt.clip_grad_norm_([np.ones(3, np.int32)], 1.0)


# ------------------------------------------------------------ clip_grad_value_

SPECIAL = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, -math.nan, 1e-45, -3e38]
CLIP_VALUES = [0.5, 1.0, 0.0, -0.7, math.inf, -math.inf, math.nan, 1e300, 7]


def value_grads(rng, dtype):
    grads = [rng.standard_normal(n).astype(dtype) * 2 for n in SIZES]
    grads[1][:] = np.array(SPECIAL[:7], dtype)
    grads[3][:len(SPECIAL)] = np.array(SPECIAL, dtype)
    return grads


def bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("clip_value", CLIP_VALUES)
def test_clip_value_matches_torch(clip_value, dtype, rng):
    """The same bits as torch's clip_grad_value_ (both its paths), NaN
    payloads and signed zeros included."""
    torch = pytest.importorskip("torch")
    if math.isfinite(clip_value) and abs(clip_value) > float(np.finfo(dtype).max):
        pytest.skip("torch refuses a bound the dtype cannot hold (fastopt clamps at inf: "
                    "test_clip_value_matches_numpy)")
    grads = value_grads(rng, dtype)
    for foreach in (False, True):
        params = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
                  for g in grads]
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g.copy())
        torch.nn.utils.clip_grad_value_(params, clip_value, foreach=foreach)
        ours = [g.copy() for g in grads]
        assert fastopt.clip_grad_value_(ours, clip_value) is None
        for i, (a, p) in enumerate(zip(ours, params)):
            np.testing.assert_array_equal(bits(a), bits(p.grad.numpy()),
                                          err_msg=f"gradient {i}, foreach={foreach}")


@pytest.mark.parametrize("clip_value", CLIP_VALUES)
def test_clip_value_matches_numpy(clip_value, dtype, rng):
    """NumPy as the oracle: min(max(g, -c), c) in g's dtype (np.clip where
    -c <= c), NaN kept; a NaN clip_value gives NaN everywhere (as torch's
    clamp). The values, that is: NumPy's minimum picks another zero than
    torch's clamp between -0.0 and 0.0 (the torch test checks the bits)."""
    grads = value_grads(rng, dtype)
    before = [g.copy() for g in grads]
    fastopt.clip_grad_value_(grads, clip_value)
    with np.errstate(over="ignore"):
        c = dtype.type(clip_value)
    for g, b in zip(grads, before):
        want = np.full_like(b, np.nan) if math.isnan(clip_value) else \
            np.minimum(np.maximum(b, -c), c)
        np.testing.assert_array_equal(g, want)
        if not math.isnan(clip_value) and -c <= c:
            np.testing.assert_array_equal(g, np.clip(b, -c, c))


def test_clip_value_arguments(rng):
    """clip_grad_norm_'s inputs and messages; nothing changes when refused."""
    g = rng.standard_normal(5)
    assert fastopt.clip_grad_value_([], 1.0) is None
    x, y = g.copy(), g.copy()
    fastopt.clip_grad_value_([None, x, None], 0.1)
    np.testing.assert_array_equal(x, np.clip(g, -0.1, 0.1))
    fastopt.clip_grad_value_(y, 0.1)  # a bare array
    np.testing.assert_array_equal(y, x)
    fastopt.clip_grad_value_((y,), 0.1, foreach=True)  # torch's keyword, accepted
    for bad, exc, match in [("1", TypeError, "clip_value must be a real number"),
                            (None, TypeError, "clip_value must be a real number"),
                            (True, TypeError, "clip_value must be a real number"),
                            (10**400, ValueError, "clip_value is too large")]:
        with pytest.raises(exc, match=match):
            fastopt.clip_grad_value_([g.copy()], bad)
    cases = [([g, g[1:3]], ValueError, "gradient 0 and gradient 1"),
             ([np.ones(3, np.int32)], TypeError, "gradient 0.*dtype"),
             ([g.copy(), np.ones((4, 4))[:, 0]], ValueError, "gradient 1 must be C-contiguous")]
    ro = g.copy()
    ro.flags.writeable = False
    cases.append(([g.copy(), ro], ValueError, "gradient 1.*read-only"))
    for grads, exc, match in cases:
        before = [np.array(a) for a in grads]
        for fn, arg in ((fastopt.clip_grad_value_, 0.01), (fastopt.clip_grad_norm_, 0.01)):
            with pytest.raises(exc, match=match):
                fn(grads, arg)
            for a, b in zip(grads, before):
                assert_bitwise(np.asarray(a), b)


def test_clip_value_threads(rng):
    """Large enough to be cut into many pieces: any thread count, the same bits."""
    before = fastopt.get_num_threads()
    g = rng.standard_normal(1_000_003) * 3
    results = []
    try:
        for threads in (1, 2, 3):
            fastopt.set_num_threads(threads)
            x = g.copy()
            fastopt.clip_grad_value_([x, g[:10].copy()], 1.25)
            results.append(x)
    finally:
        fastopt.set_num_threads(before)
    for r in results:
        np.testing.assert_array_equal(bits(r), bits(np.clip(g, -1.25, 1.25)))

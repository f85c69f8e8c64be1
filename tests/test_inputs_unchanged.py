"""Gradients are only read: never modified, and read-only or borrowed ones work."""
import numpy as np
import pytest

import fastopt
from conftest import OPTION_CASES, OPTIMIZERS, assert_bitwise, make_params
from fastopt import functional as F


@pytest.mark.parametrize("opt, options", OPTION_CASES)
def test_grads_not_modified(opt, options, dtype, rng):
    params = make_params(rng, (1, 7, 63), dtype)
    fast = opt.cls(params, **options)
    for _ in range(3):
        grads = make_params(rng, (1, 7, 63), dtype)
        copies = [g.copy() for g in grads]
        assert fast.step(grads)
        for i, (g, c) in enumerate(zip(grads, copies)):
            assert_bitwise(g, c, f"gradient {i}")


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_readonly_and_borrowed_grads(opt, rng):
    """Read-only gradients, views into one shared buffer, and non-owning
    arrays step exactly like fresh writeable copies."""
    options = max(opt.options, key=len)
    start = make_params(rng, (5, 6, 7), np.float64)
    a = opt.cls([p.copy() for p in start], **options)
    b = opt.cls([p.copy() for p in start], **options)
    for _ in range(3):
        flat = rng.standard_normal(18)
        flat.flags.writeable = False
        views = [flat[:5], flat[5:11], flat[11:]]
        assert all(not v.flags.writeable for v in views)
        a.step(views)
        b.step([v.copy() for v in views])
    for p, q in zip(a._params, b._params):
        assert_bitwise(p, q)


def test_readonly_grad_functional(rng):
    p, m, v = rng.standard_normal(9), np.zeros(9), np.zeros(9)
    g = rng.standard_normal(9)
    g.flags.writeable = False
    before = g.copy()
    F.adam_(p, g, m, v, step=1, lr=0.1)
    assert_bitwise(g, before)
    assert not np.array_equal(m, 0)


def test_grad_may_be_a_torch_tensor(rng):
    torch = pytest.importorskip("torch")
    p = rng.standard_normal(8)
    q = p.copy()
    g = rng.standard_normal(8)
    fastopt.SGD([p], lr=0.1).step([torch.from_numpy(g.copy())])
    fastopt.SGD([q], lr=0.1).step([g])
    assert_bitwise(p, q)


def test_params_may_be_torch_tensors(rng):
    """A CPU tensor is updated in place through the zero-copy view."""
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(rng.standard_normal(8))
    q = t.numpy().copy()
    g = rng.standard_normal(8)
    fastopt.Adam([t], lr=0.1).step([g])
    fastopt.Adam([q], lr=0.1).step([g])
    assert_bitwise(t.numpy(), q)


def test_grad_equal_to_param_values_but_not_memory(rng):
    # A gradient holding the same numbers as its parameter (not its memory) is fine.
    p = rng.standard_normal(6)
    g = p.copy()
    before = g.copy()
    fastopt.SGD([p], lr=0.5).step([g])
    assert_bitwise(g, before)
    np.testing.assert_allclose(p, before * 0.5)

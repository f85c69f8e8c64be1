"""state_dict / load_state_dict: exact resumption, torch interchange, group keys."""
import copy

import numpy as np
import pytest

import fastopt

from conftest import (OPTION_CASES, OPTIMIZERS, assert_bitwise, assert_close,
                      assert_state_dicts_equal, grouped, make_params)

SIZES = (1, 7, 63, 1000)


def build(opt, options, params):
    fast = opt.cls(grouped(params, options), **options)
    return fast, [p for g in fast.param_groups for p in g["params"]]


def grad_stream(rng, shapes, dtype, n):
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(n)]


@pytest.mark.parametrize("opt, options", OPTION_CASES)
def test_resume_is_bit_identical(opt, options, dtype, rng):
    params = make_params(rng, SIZES, dtype)
    a, pa = build(opt, options, [p.copy() for p in params])
    grads = grad_stream(rng, [p.shape for p in pa], dtype, 100)
    for g in grads[:50]:
        a.step(g)
    sd = a.state_dict()
    saved = copy.deepcopy(sd)
    # A fresh optimizer, over copies of the parameters as they were at step 50.
    b, pb = build(opt, options, [np.zeros_like(p) for p in params])
    for dst, src in zip(pb, pa):
        dst[...] = src
    b.load_state_dict(sd)
    assert_state_dicts_equal(b.state_dict(), saved)
    for g in grads[50:]:
        a.step(g)
        b.step(g)
    for i, (x, y) in enumerate(zip(pa, pb)):
        assert_bitwise(x, y, f"parameter {i}")
    assert_state_dicts_equal(a.state_dict(), b.state_dict())
    # The saved dict holds copies: the later steps did not change it.
    assert_state_dicts_equal(sd, saved)


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_load_into_stepped_optimizer_and_reset(opt, dtype, rng):
    """Loading replaces all state, including loading the state of a fresh run
    into one that has stepped (the next step is then a first step again)."""
    options = max(opt.options, key=len)
    params = make_params(rng, SIZES, dtype)
    fresh, pf = build(opt, options, [p.copy() for p in params])
    sd0 = fresh.state_dict()
    used, pu = build(opt, options, [p.copy() for p in params])
    for g in grad_stream(rng, [p.shape for p in pu], dtype, 5):
        used.step(g)
    for dst, src in zip(pu, pf):
        dst[...] = src
    used.load_state_dict(sd0)
    assert_state_dicts_equal(used.state_dict(), sd0)  # Adagrad has state before its first step
    for g in grad_stream(rng, [p.shape for p in pu], dtype, 5):
        fresh.step(g)
        used.step(g)
    for x, y in zip(pf, pu):
        assert_bitwise(x, y)
    assert_state_dicts_equal(fresh.state_dict(), used.state_dict())


def test_hyperparameters_and_unknown_group_keys_are_loaded(rng):
    params = make_params(rng, [5, 6], np.float64)
    a = fastopt.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}])
    sd = a.state_dict()
    sd["param_groups"][1]["lr"] = 0.25
    sd["param_groups"][1]["betas"] = [0.8, 0.9]  # a list, as after a JSON round trip
    sd["param_groups"][0]["initial_lr"] = 0.125  # what a scheduler stores
    b = fastopt.Adam([{"params": [np.zeros(5)]}, {"params": [np.zeros(6)]}], lr=1.0)
    b.load_state_dict(sd)
    assert b.param_groups[1]["lr"] == 0.25
    assert b.param_groups[1]["betas"] == (0.8, 0.9)
    assert b.param_groups[0]["initial_lr"] == 0.125
    assert b.state_dict()["param_groups"][0]["initial_lr"] == 0.125
    # ... and they are used: the next step equals the oracle with those values.
    from fastopt.reference import adam
    g = rng.standard_normal(6)
    p1 = b.param_groups[1]["params"][0]
    expected, _ = adam(p1.copy(), g, {}, 1, lr=0.25, betas=(0.8, 0.9))
    b.step([np.zeros(5), g])
    assert_close(p1, expected, np.float64)


# ---------------------------------------------------------------- with torch

def to_torch(sd):
    torch = pytest.importorskip("torch")
    state = {i: {k: torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else
                 torch.tensor(v, dtype=torch.float32) for k, v in entry.items()}
             for i, entry in sd["state"].items()}
    return {"state": state, "param_groups": copy.deepcopy(sd["param_groups"])}


def from_torch(sd):
    return {"state": {i: {k: v.numpy().copy() if v.dim() else float(v) for k, v in entry.items()}
                      for i, entry in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


def torch_pair(opt, options, params):
    torch = pytest.importorskip("torch")
    groups = grouped(params, options)
    tgroups = [dict(g, params=[torch.from_numpy(p.copy()) for p in g["params"]]) for g in groups]
    topt = getattr(torch.optim, opt.name)(tgroups, **options, foreach=False)
    return topt, [p for g in topt.param_groups for p in g["params"]]


def torch_step(tparams, topt, grads):
    torch = pytest.importorskip("torch")
    for p, g in zip(tparams, grads):
        p.grad = torch.from_numpy(g.copy())
    topt.step()


@pytest.mark.parametrize("opt, options", OPTION_CASES)
def test_fastopt_state_dict_loads_into_torch(opt, options, dtype, rng):
    pytest.importorskip("torch")
    params = make_params(rng, SIZES, dtype)
    fast, pf = build(opt, options, [p.copy() for p in params])
    grads = grad_stream(rng, [p.shape for p in pf], dtype, 100)
    for g in grads[:50]:
        fast.step(g)
    topt, tp = torch_pair(opt, options, [np.zeros_like(p) for p in params])
    for dst, src in zip(tp, pf):
        dst.numpy()[...] = src
    topt.load_state_dict(to_torch(fast.state_dict()))
    for g in grads[50:]:
        fast.step(g)
        torch_step(tp, topt, g)
    for i, (x, y) in enumerate(zip(pf, tp)):
        assert_close(x, y.numpy(), dtype, f"parameter {i}")
    theirs = from_torch(topt.state_dict())
    for i, entry in fast.state_dict()["state"].items():
        assert sorted(entry) == sorted(theirs["state"][i])
        for k, v in entry.items():
            assert_close(v, theirs["state"][i][k], dtype, f"state {i} {k}")


@pytest.mark.parametrize("opt, options", OPTION_CASES)
def test_torch_state_dict_loads_into_fastopt(opt, options, dtype, rng):
    pytest.importorskip("torch")
    params = make_params(rng, SIZES, dtype)
    topt, tp = torch_pair(opt, options, [p.copy() for p in params])
    grads = grad_stream(rng, [p.shape for p in tp], dtype, 100)
    for g in grads[:50]:
        torch_step(tp, topt, g)
    fast, pf = build(opt, options, [np.zeros_like(p) for p in params])
    for dst, src in zip(pf, tp):
        dst[...] = src.numpy()
    fast.load_state_dict(from_torch(topt.state_dict()))
    # torch's groups carry keys fastopt does not use (foreach, fused, ...): kept.
    assert "foreach" in fast.param_groups[0]
    for g in grads[50:]:
        fast.step(g)
        torch_step(tp, topt, g)
    for i, (x, y) in enumerate(zip(pf, tp)):
        assert_close(x, y.numpy(), dtype, f"parameter {i}")


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_torch_state_dict_with_tensors_loads_directly(opt, rng):
    """np.asarray takes CPU tensors without a copy, so torch's own state dict
    (tensors, tensor steps) loads as it is."""
    pytest.importorskip("torch")
    options = max(opt.options, key=len)
    params = make_params(rng, SIZES, np.float32)
    topt, tp = torch_pair(opt, options, [p.copy() for p in params])
    grads = grad_stream(rng, [p.shape for p in tp], np.float32, 10)
    for g in grads[:5]:
        torch_step(tp, topt, g)
    fast, pf = build(opt, options, [np.zeros_like(p) for p in params])
    for dst, src in zip(pf, tp):
        dst[...] = src.numpy()
    fast.load_state_dict(topt.state_dict())
    for g in grads[5:]:
        fast.step(g)
        torch_step(tp, topt, g)
    for x, y in zip(pf, tp):
        assert_close(x, y.numpy(), np.float32)


def test_sgd_momentum_buffer_none_loads_as_not_started(rng):
    # Older torch SGD checkpoints hold momentum_buffer=None for a buffer not made yet.
    w = rng.standard_normal(5)
    fresh = fastopt.SGD([w.copy()], lr=0.1, momentum=0.9)
    loaded = fastopt.SGD([w.copy()], lr=0.1, momentum=0.9)
    sd = loaded.state_dict()
    sd["state"] = {0: {"momentum_buffer": None}}
    loaded.load_state_dict(sd)
    assert loaded.state_dict()["state"] == {}
    g = rng.standard_normal(5)
    fresh.step([g])
    loaded.step([g])
    np.testing.assert_array_equal(fresh._params[0], loaded._params[0])
    np.testing.assert_array_equal(fresh.state[0]["momentum_buffer"], loaded.state[0]["momentum_buffer"])

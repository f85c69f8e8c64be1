"""state_dict / load_state_dict: exact resumption, torch interchange, group keys."""
import copy
import math

import numpy as np
import pytest

import fastopt

from conftest import (IN_TORCH, IN_TORCH_CASES, OPTION_CASES, OPTIMIZERS, assert_bitwise,
                      assert_close, assert_state_dicts_equal, grouped, make_params, one_dtype_by_default)

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


@one_dtype_by_default(np.float64)
@pytest.mark.parametrize("opt, options", IN_TORCH_CASES)
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


@one_dtype_by_default(np.float64)
@pytest.mark.parametrize("opt, options", IN_TORCH_CASES)
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


@pytest.mark.parametrize("opt", IN_TORCH, ids=str)
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


# ------------------------------------------------------- dict params by name

def named_pair(rng, keys, order, dtype=np.float64, **options):
    """The same named parameters (all of one shape) in two dicts whose keys come in
    `keys` and in `order` order, with an Adam over each."""
    start = {k: rng.standard_normal(6).astype(dtype) for k in keys}
    a = {k: start[k].copy() for k in keys}
    b = {k: start[k].copy() for k in order}
    return fastopt.Adam(a, **options), a, fastopt.Adam(b, **options), b


def test_dict_params_state_follows_names_across_key_order(rng):
    keys, order = ["w", "b", "v"], ["v", "w", "b"]
    a, pa, b, pb = named_pair(rng, keys, order, lr=0.1, amsgrad=True)
    grads = [{k: rng.standard_normal(6) for k in keys} for _ in range(6)]
    for g in grads[:3]:
        a.step(g)
    sd = a.state_dict()
    assert sd["param_groups"][0]["param_names"] == keys
    for k in keys:
        pb[k][...] = pa[k]
    b.load_state_dict(sd)
    for k in keys:  # each parameter has the state saved under its own name
        for name, value in a.state[k].items():
            if name != "step":
                assert_bitwise(b.state[k][name], value, f"{k} {name}")
    assert b.state_dict()["param_groups"][0]["param_names"] == order
    for g in grads[3:]:
        a.step(g)
        b.step(g)
    for k in keys:
        assert_bitwise(pb[k], pa[k], k)


def test_dict_params_load_torch_named_parameters_by_name(rng):
    """torch records names for named_parameters(); a dict in another key order
    loads that state by name and then steps as torch does."""
    torch = pytest.importorskip("torch")
    keys, order = ["layer.weight", "layer.bias", "head.weight"], ["head.weight", "layer.bias",
                                                                  "layer.weight"]
    start = {k: rng.standard_normal(5) for k in keys}
    tparams = {k: torch.tensor(start[k], requires_grad=True) for k in keys}
    topt = torch.optim.Adam(list(tparams.items()), lr=0.05, foreach=False)
    grads = [{k: rng.standard_normal(5) for k in keys} for _ in range(8)]

    def torch_step(g):
        for k, p in tparams.items():
            p.grad = torch.from_numpy(g[k].copy())
        topt.step()

    for g in grads[:4]:
        torch_step(g)
    assert topt.state_dict()["param_groups"][0]["param_names"] == keys
    mine = {k: tparams[k].detach().numpy().copy() for k in order}
    fast = fastopt.Adam(mine, lr=0.05)
    fast.load_state_dict(topt.state_dict())
    for g in grads[4:]:
        torch_step(g)
        fast.step(g)
    for k in keys:
        assert_close(mine[k], tparams[k].detach().numpy(), np.float64, k)


@pytest.mark.parametrize("edit, pattern", [
    (lambda names: names.__setitem__(1, "x"), r"parameter 'x'.*does not have"),  # extra name
    (lambda names: names.__setitem__(1, "v"), r"nothing for parameter 'b'"),     # 'v' twice
    (lambda names: names.pop(), r"3 params but 2 param_names"),
], ids=["extra-name", "name-twice", "names-too-few"])
def test_dict_params_missing_or_extra_name_is_rejected(rng, edit, pattern):
    from conftest import assert_unchanged, snapshot
    keys = ["w", "b", "v"]
    a, pa, b, pb = named_pair(rng, keys, keys[::-1], lr=0.1)
    a.step({k: rng.standard_normal(6) for k in keys})
    b.step({k: rng.standard_normal(6) for k in keys})
    sd = a.state_dict()
    edit(sd["param_groups"][0]["param_names"])
    snap = snapshot(b)
    with pytest.raises(ValueError, match=pattern):
        b.load_state_dict(sd)
    assert_unchanged(b, snap)


def test_state_dict_without_names_loads_by_position(rng):
    """Files from before names were recorded (and list params) go by position."""
    keys = ["w", "b"]
    a, pa, b, pb = named_pair(rng, keys, keys, lr=0.1)
    a.step({k: rng.standard_normal(6) for k in keys})
    sd = a.state_dict()
    del sd["param_groups"][0]["param_names"]
    b.load_state_dict(sd)
    for k in keys:
        assert_bitwise(b.state[k]["exp_avg"], a.state[k]["exp_avg"])
    # list params: names (from torch's named_parameters, say) do not reorder anything,
    # and are kept as torch keeps them
    c = fastopt.Adam([pb["b"].copy(), pb["w"].copy()], lr=0.1)
    c.load_state_dict(a.state_dict())
    assert_bitwise(c.state[0]["exp_avg"], a.state["w"]["exp_avg"])
    assert c.state_dict()["param_groups"][0]["param_names"] == keys


# ------------------------------------------- Adagrad's initial accumulator

def test_adagrad_initial_accumulator_value_per_group(rng):
    """Each group's own initial_accumulator_value, at construction, in
    add_param_group and in load_state_dict's fill. The oracle is one
    torch.optim.Adagrad per group: torch 2.13 fills every group of one
    optimizer with its constructor's value (group values are ignored)."""
    torch = pytest.importorskip("torch")
    start = [rng.standard_normal(n) for n in (4, 5, 6)]
    values = [0.5, 0.1, 3.0]
    fast = fastopt.Adagrad([{"params": [start[0].copy()]},
                            {"params": [start[1].copy()], "initial_accumulator_value": values[1]}],
                           lr=0.1, initial_accumulator_value=values[0])
    fast.add_param_group({"params": [start[2].copy()], "initial_accumulator_value": values[2]})
    tparams = [torch.tensor(p) for p in start]
    topts = [torch.optim.Adagrad([p], lr=0.1, initial_accumulator_value=v, foreach=False)
             for p, v in zip(tparams, values)]

    def compare():
        for i, (p, topt) in enumerate(zip(tparams, topts)):
            assert_close(fast._params[i], p.numpy(), np.float64, f"parameter {i}")
            assert_close(fast.state[i]["sum"], topt.state[p]["sum"].numpy(), np.float64, f"sum {i}")

    compare()
    for _ in range(5):
        grads = [rng.standard_normal(p.shape) for p in start]
        fast.step(grads)
        for p, g, topt in zip(tparams, grads, topts):
            p.grad = torch.from_numpy(g.copy())
            topt.step()
    compare()
    # A state dict without state restarts each parameter from its group's value.
    sd = fast.state_dict()
    sd["state"] = {}
    sd["param_groups"][1]["initial_accumulator_value"] = 0.25
    fast.load_state_dict(sd)
    for i, v in enumerate([values[0], 0.25, values[2]]):
        np.testing.assert_array_equal(fast.state[i]["sum"], np.full(start[i].shape, v))


# --------------------------------------------------- buffers a group needs

NEEDS = [
    (fastopt.Adam, {"amsgrad": True}, "max_exp_avg_sq"),
    (fastopt.AdamW, {"amsgrad": True}, "max_exp_avg_sq"),
    (fastopt.RMSprop, {"momentum": 0.9}, "momentum_buffer"),
    (fastopt.RMSprop, {"centered": True}, "grad_avg"),
]


@pytest.mark.parametrize("cls, option, buffer", NEEDS, ids=lambda x: getattr(x, "__name__", None))
def test_state_without_a_needed_buffer_is_rejected(cls, option, buffer, rng):
    """A state saved without `option` lacks `buffer`: loaded into groups with
    `option` it is refused, naming the parameter and the buffer (torch loads
    it and then fails at the next step), and nothing changes."""
    from conftest import assert_unchanged, snapshot
    start = [rng.standard_normal(n) for n in (3, 4)]
    donor = cls([p.copy() for p in start], lr=0.01)
    target = cls([p.copy() for p in start], lr=0.01, **option)
    grads = [rng.standard_normal(p.shape) for p in start]
    donor.step(grads)
    target.step(grads)
    sd = donor.state_dict()
    sd["param_groups"][0].update(option)
    snap = snapshot(target)
    with pytest.raises(ValueError, match=rf"parameter 0\b.*{buffer}"):
        target.load_state_dict(sd)
    assert_unchanged(target, snap)
    assert target.param_groups[0].keys() == snap["groups"][0].keys() | {"params"}
    assert all(target.param_groups[0][k] == v for k, v in snap["groups"][0].items())
    torch = pytest.importorskip("torch")
    tp = [torch.tensor(p) for p in start]
    topt = getattr(torch.optim, cls.__name__)(tp, lr=0.01, **option, foreach=False)
    topt.load_state_dict(to_torch(sd))
    for p, g in zip(tp, grads):
        p.grad = torch.from_numpy(g.copy())
    with pytest.raises(KeyError, match=buffer):
        topt.step()


@pytest.mark.parametrize("cls, option, buffer", NEEDS, ids=lambda x: getattr(x, "__name__", None))
def test_option_enabled_before_saving_round_trips(cls, option, buffer, rng):
    """An option switched on after some steps and saved before the next one:
    the state dict holds the buffer as the next step would create it, so it
    loads and resumes exactly."""
    start = [rng.standard_normal(n) for n in (3, 4)]
    a = cls([p.copy() for p in start], lr=0.01)
    grads = [[rng.standard_normal(p.shape) for p in start] for _ in range(4)]
    a.step(grads[0])
    a.param_groups[0].update(option)
    sd = a.state_dict()
    assert buffer in sd["state"][0]
    b = cls([p.copy() for p in a._params], lr=0.01)
    b.load_state_dict(sd)
    for g in grads[1:]:
        a.step(g)
        b.step(g)
    for x, y in zip(a._params, b._params):
        assert_bitwise(x, y)
    assert_state_dicts_equal(a.state_dict(), b.state_dict())


# ------------------------------------------------------------- step counts

def _loaded_step(value, cls=fastopt.Adam):
    opt = cls([np.zeros(3)], lr=0.1)
    opt.step([np.ones(3)])
    sd = opt.state_dict()
    sd["state"][0]["step"] = value
    opt.load_state_dict(sd)
    return int(opt._engine.steps[0])


@pytest.mark.parametrize("value, expected", [
    (7, 7), (np.int64(7), 7), (np.uint8(7), 7), (7.0, 7), (np.float32(7), 7), (np.array(7), 7),
    (np.array(7.0, np.float32), 7), (2**53 + 1, 2**53 + 1), (2**62 - 1, 2**62 - 1),
    (np.int64(2**63 - 2), 2**63 - 2), (0, 0),
])
def test_step_counts_load_exactly(value, expected):
    assert _loaded_step(value) == expected


def test_torch_tensor_step_loads():
    torch = pytest.importorskip("torch")
    assert _loaded_step(torch.tensor(12.0)) == 12
    assert _loaded_step(torch.tensor(12)) == 12


@pytest.mark.parametrize("value, exc", [
    (True, TypeError), (np.bool_(True), TypeError), ("5", TypeError), (None, TypeError),
    (np.array([3.0]), TypeError), (-1, ValueError), (2.5, ValueError), (math.nan, ValueError),
    (math.inf, ValueError), (2**63 - 1, ValueError), (2**63, ValueError), (2**64, ValueError),
    (1e300, ValueError), (np.uint64(2**64 - 1), ValueError), (-0.5, ValueError),
])
def test_bad_step_counts_are_rejected(value, exc):
    """Never an OverflowError; nothing changes."""
    from conftest import assert_unchanged, snapshot
    opt = fastopt.Adam([np.zeros(3)], lr=0.1)
    opt.step([np.ones(3)])
    sd = opt.state_dict()
    sd["state"][0]["step"] = value
    snap = snapshot(opt)
    with pytest.raises(exc, match=r"parameter 0\b.*'step'"):
        opt.load_state_dict(sd)
    assert_unchanged(opt, snap)


def test_sgd_state_with_step_loads_and_ignores_it(rng):
    """torch's SGD keeps no step count and ignores one in a loaded state;
    fastopt's SGD loads such a state too, with the numbers of torch's."""
    w, g1, g2 = (rng.standard_normal(5) for _ in range(3))
    a = fastopt.SGD([w.copy()], lr=0.1, momentum=0.9)
    a.step([g1])
    start = a._params[0].copy()
    with_step = a.state_dict()
    with_step["state"][0]["step"] = 4.0
    b = fastopt.SGD([start.copy()], lr=0.1, momentum=0.9)
    b.load_state_dict(with_step)
    assert b.state_dict()["state"][0].keys() == {"momentum_buffer"}
    a.step([g2])
    b.step([g2])
    assert_bitwise(b._params[0], a._params[0])
    torch = pytest.importorskip("torch")
    tp = torch.tensor(start)
    topt = torch.optim.SGD([tp], lr=0.1, momentum=0.9, foreach=False)
    topt.load_state_dict(to_torch(with_step))
    tp.grad = torch.from_numpy(g2.copy())
    topt.step()
    assert_close(b._params[0], tp.numpy(), np.float64)

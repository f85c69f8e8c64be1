"""fastopt against torch.optim (single-tensor path) on the same inputs."""
import numpy as np
import pytest

from conftest import BIG, IN_TORCH, big_cases, IN_TORCH_CASES, SIZES, assert_close, grouped, make_params

torch = pytest.importorskip("torch")


def torch_optimizer(opt, groups, options):
    tgroups = [dict(g, params=[torch.from_numpy(p.copy()) for p in g["params"]]) for g in groups]
    return getattr(torch.optim, opt.name)(tgroups, **options, foreach=False)


def torch_params(topt):
    return [p for g in topt.param_groups for p in g["params"]]


def torch_step(topt, grads):
    for p, g in zip(torch_params(topt), grads):
        p.grad = None if g is None else torch.from_numpy(g.copy())
    topt.step()


def assert_matches_torch(fast, topt, dtype):
    ordered = [p for g in fast.param_groups for p in g["params"]]
    mine = fast.state
    for i, (p, tp) in enumerate(zip(ordered, torch_params(topt))):
        assert_close(p, tp.numpy(), dtype, f"parameter {i}")
        theirs = topt.state[tp]
        assert sorted(mine.get(i, {})) == sorted(theirs), i
        for name, value in theirs.items():
            if name == "step":
                assert mine[i]["step"] == float(value)
            else:
                assert_close(mine[i][name], value.numpy(), dtype, f"parameter {i} {name}")


def run(opt, options, params, steps, rng, n_groups=3):
    groups = grouped([p.copy() for p in params], options, n_groups)
    topt = torch_optimizer(opt, groups, options)
    fast = opt.cls(groups, **options)
    ordered = [p for g in fast.param_groups for p in g["params"]]
    for _ in range(steps):
        grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in ordered]
        fast.step(grads)
        torch_step(topt, grads)
    return fast, topt


@pytest.mark.parametrize("opt, options", IN_TORCH_CASES)
def test_matches_torch(opt, options, dtype, rng):
    fast, topt = run(opt, options, make_params(rng, SIZES, dtype), 100, rng)
    assert_matches_torch(fast, topt, dtype)


@pytest.mark.parametrize("opt", big_cases(IN_TORCH))
def test_matches_torch_big(opt, dtype, rng):
    options = max(opt.options, key=len)
    fast, topt = run(opt, options, make_params(rng, [BIG, 7], dtype), 8, rng, n_groups=2)
    assert_matches_torch(fast, topt, dtype)


@pytest.mark.parametrize("opt", IN_TORCH, ids=str)
def test_defaults_match_torch(opt):
    # Same defaults as torch: construct both with no options and compare the groups.
    import inspect
    fast = opt.cls([np.zeros(3)])
    topt = getattr(torch.optim, opt.name)([torch.zeros(3)])
    for key, value in fast.param_groups[0].items():
        if key != "params":
            assert topt.param_groups[0][key] == value, key
    names = list(inspect.signature(opt.cls).parameters)
    tnames = list(inspect.signature(getattr(torch.optim, opt.name)).parameters)
    names = [n for n in names if n not in ("skip_nonfinite", "master_weights", "rounding", "seed", "state_dtype")]
    assert names == [n for n in tnames if n in names], "argument order differs"


def side_by_side(opt, dtype, rng):
    """fastopt and torch on the same grouped parameters, with opt's fullest
    options; also fastopt's parameters in group order."""
    options = max(opt.options, key=len)
    groups = grouped(make_params(rng, SIZES, dtype), options)
    topt = torch_optimizer(opt, groups, options)
    fast = opt.cls(groups, **options)
    return fast, topt, [p for g in fast.param_groups for p in g["params"]]


@pytest.mark.parametrize("opt", IN_TORCH, ids=str)
def test_none_grads_match_torch(opt, dtype, rng):
    # A parameter without a gradient is skipped by both, state and step count included.
    fast, topt, ordered = side_by_side(opt, dtype, rng)
    for t in range(30):
        grads = [None if (t + i) % 3 == 0 else rng.standard_normal(p.shape).astype(dtype)
                 for i, p in enumerate(ordered)]
        fast.step(grads)
        torch_step(topt, grads)
    assert_matches_torch(fast, topt, dtype)


@pytest.mark.parametrize("opt", IN_TORCH, ids=str)
def test_nonfinite_propagates_as_in_torch(opt, dtype, rng):
    options = max(opt.options, key=len)
    params = make_params(rng, [7, 9], dtype)
    fast, topt = run(opt, options, params, 3, rng, n_groups=1)
    grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
    grads[0][[1, 3, 5]] = [np.nan, np.inf, -np.inf]
    fast.step(grads)
    torch_step(topt, grads)
    grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
    fast.step(grads)
    torch_step(topt, grads)
    ordered = [p for g in fast.param_groups for p in g["params"]]
    for p, tp in zip(ordered, torch_params(topt)):
        np.testing.assert_array_equal(np.isnan(p), np.isnan(tp.numpy()))
        np.testing.assert_array_equal(np.isinf(p), np.isinf(tp.numpy()))
    # Rprop steps by the gradient's sign alone: torch's parameters stay finite too
    assert not np.isfinite(ordered[0]).all() or opt.name == "Rprop"
    assert_matches_torch_finite(fast, topt, dtype)


def assert_matches_torch_finite(fast, topt, dtype):
    ordered = [p for g in fast.param_groups for p in g["params"]]
    for p, tp in zip(ordered, torch_params(topt)):
        ok = np.isfinite(p)
        assert_close(p[ok], tp.numpy()[ok], dtype)


@pytest.mark.parametrize("opt", IN_TORCH, ids=str)
def test_hyperparameter_edits_match_torch(opt, dtype, rng):
    """Editing param_groups between steps (what schedulers do) acts as in torch."""
    fast, topt, ordered = side_by_side(opt, dtype, rng)
    for t in range(30):
        if t in (10, 20):
            for k, (mine, theirs) in enumerate(zip(fast.param_groups, topt.param_groups)):
                mine["lr"] = theirs["lr"] = theirs["lr"] * (0.5 if t == 10 else 3.0) / (k + 1)
                if "weight_decay" in mine:
                    mine["weight_decay"] = theirs["weight_decay"] = 0.05 * k
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in ordered]
        fast.step(grads)
        torch_step(topt, grads)
    assert_matches_torch(fast, topt, dtype)

"""Adadelta, RAdam and Rprop: against torch.optim with two param groups of
different hyperparameters and odd sizes, and what is particular to each
(RAdam's switch to the rectified step, Rprop's state made from the group's lr
at the first step and its handling of non-finite gradients)."""
import numpy as np
import pytest

import fastopt
from conftest import assert_bitwise, assert_close

torch = pytest.importorskip("torch")
import fastopt.torch as fot  # noqa: E402

# Two groups per optimizer, each hyperparameter off its default in one of them.
GROUPS = {
    "Adadelta": ({"lr": 0.5, "rho": 0.8, "weight_decay": 0.1},
                 {"lr": 1.0, "rho": 0.95, "eps": 1e-4, "maximize": True}),
    "RAdam": ({"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1},
              {"lr": 0.003, "betas": (0.3, 0.999), "eps": 1e-6, "weight_decay": 0.05,
               "decoupled_weight_decay": True, "maximize": True}),
    "Rprop": ({"lr": 0.01, "etas": (0.3, 1.5), "step_sizes": (1e-4, 0.05)},
              {"lr": 0.002, "maximize": True}),
}
# sizes per group; the 1000003 run (minutes under torch's Rprop) is in -m slow, and
# test_torch_parity.py steps that size 8 times in every run
SIZES = [pytest.param(((1, 1001), (7,)), id="small"),
         pytest.param(((1, 1000003), (7,)), id="big", marks=pytest.mark.slow)]
TORCH_ONLY = {"foreach", "capturable", "differentiable"}  # group keys fastopt's classes lack


def two_groups(name, dtype, rng, sizes):
    arrays = [[rng.standard_normal(n).astype(dtype) for n in group] for group in sizes]
    ours = [dict(GROUPS[name][g], params=[a.copy() for a in arrays[g]]) for g in range(2)]
    theirs = [dict(GROUPS[name][g], params=[torch.from_numpy(a.copy()) for a in arrays[g]])
              for g in range(2)]
    return fastopt.__dict__[name](ours), getattr(torch.optim, name)(theirs, foreach=False)


def torch_step(topt, grads):
    for p, g in zip([p for group in topt.param_groups for p in group["params"]], grads):
        p.grad = torch.from_numpy(g.copy())
    topt.step()


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(GROUPS))
def test_two_groups_odd_sizes_match_torch(name, dtype, sizes, rng):
    fast, topt = two_groups(name, dtype, rng, sizes)
    ordered = [p for g in fast.param_groups for p in g["params"]]
    for _ in range(100):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in ordered]
        fast.step(grads)
        torch_step(topt, grads)
    sd, tsd = fast.state_dict(), topt.state_dict()
    # torch's layout: the same entries per parameter, the same group keys
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for i, p in enumerate(ordered):
        tp = topt.param_groups[0 if i < 2 else 1]["params"][i % 2]
        assert_close(p, tp.numpy(), dtype, f"parameter {i}")
        mine, theirs = sd["state"][i], tsd["state"][i]
        assert sorted(mine) == sorted(theirs)
        assert mine["step"] == float(theirs["step"]) == 100.0
        for key, value in theirs.items():
            if key != "step":
                assert mine[key].dtype == dtype and mine[key].shape == p.shape
                assert_close(mine[key], value.numpy(), dtype, f"parameter {i} {key}")
    for mine, theirs in zip(sd["param_groups"], tsd["param_groups"]):
        assert mine == {k: v for k, v in theirs.items() if k not in TORCH_ONLY}


def test_radam_switches_to_the_rectified_step_when_torch_does(rng):
    """rho_t passes 5 at step 6 for beta2 = 0.999: every step on both sides
    of it, and a beta2 for which it never does (rho_inf = 4)."""
    for betas in [(0.9, 0.999), (0.9, 0.6)]:
        p = rng.standard_normal(33)
        tp = torch.from_numpy(p.copy())
        fast = fastopt.RAdam([p], lr=0.1, betas=betas)
        topt = torch.optim.RAdam([tp], lr=0.1, betas=betas, foreach=False)
        for t in range(12):
            g = rng.standard_normal(33)
            fast.step([g])
            torch_step(topt, [g])
            np.testing.assert_allclose(p, tp.numpy(), rtol=1e-13, atol=1e-15, err_msg=f"step {t + 1}")


def test_rprop_step_size_starts_at_the_lr_of_the_first_step(rng):
    """torch makes step_size at a parameter's first step, from its group's lr
    then (a scheduler built before it, such as LinearLR, has already scaled
    it); later lr edits change nothing. The same in fastopt and fastopt.torch."""
    arrays = [rng.standard_normal(9) for _ in range(3)]

    def run(module, params):
        opt = module.Rprop([{"params": params[:2]}, {"params": params[2:], "lr": 0.03}], lr=0.01)
        opt.param_groups[0]["lr"] = 0.005  # before the first step
        return opt

    fast = run(fastopt, [a.copy() for a in arrays])
    ours = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    mine = run(fot, ours)
    theirs = [torch.from_numpy(a.copy()) for a in arrays]
    topt = run(torch.optim, theirs)
    for t in range(6):
        if t == 3:
            for o in (fast, mine, topt):
                o.param_groups[1]["lr"] = 1.0  # after the first step: not read
        grads = [rng.standard_normal(9) for _ in range(3)]
        fast.step(grads)
        for p, g in zip(ours, grads):
            p.grad = torch.from_numpy(g.copy())
        mine.step()
        torch_step(topt, grads)
        if t == 0:
            sizes = [float(topt.state[q]["step_size"][0]) for q in theirs]
            assert sizes == [0.005 * 1.0] * 2 + [0.03]  # prev = 0: the factor is 1
    for i, q in enumerate(theirs):
        assert_close(fast.state[i]["step_size"], topt.state[q]["step_size"].numpy(), np.float64)
        assert_close(mine.state[ours[i]]["step_size"].numpy(), topt.state[q]["step_size"].numpy(),
                     np.float64)
        assert_close(fast.state_dict()["state"][i]["prev"], topt.state[q]["prev"].numpy(), np.float64)
        assert_close(ours[i].detach().numpy(), q.numpy(), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_rprop_nonfinite_gradients_as_torch(dtype, rng):
    """A NaN gradient's sign is 0 (no move) and it is kept as prev; an
    infinite one moves by the step size. Parameters and state follow torch's."""
    p = rng.standard_normal(12).astype(dtype)
    tp = torch.from_numpy(p.copy())
    fast = fastopt.Rprop([p], lr=0.05)
    topt = torch.optim.Rprop([tp], lr=0.05, foreach=False)
    for t in range(5):
        g = rng.standard_normal(12).astype(dtype)
        if t in (1, 2):
            g[[0, 3, 5, 8]] = [np.nan, np.inf, -np.inf, np.nan]
        fast.step([g])
        torch_step(topt, [g])
        state = fast.state[0]
        for key in ("prev", "step_size"):
            theirs = topt.state[tp][key].numpy()
            np.testing.assert_array_equal(np.isnan(state[key]), np.isnan(theirs), key)
            np.testing.assert_array_equal(np.isinf(state[key]), np.isinf(theirs), key)
            ok = np.isfinite(theirs)
            assert_close(state[key][ok], theirs[ok], dtype, key)
        assert_close(p, tp.numpy(), dtype)
    assert np.isfinite(p).all()


def test_rprop_functional_first_step_is_torchs_new_state(rng):
    """rprop_ at step 1 takes prev = 0 and step_size = lr whatever they hold;
    from step 2 on it reads them."""
    p, g = rng.standard_normal(6), rng.standard_normal(6)
    a, b = p.copy(), p.copy()
    prev_a, size_a = np.full(6, 7.0), np.full(6, 3.0)
    prev_b, size_b = np.zeros(6), np.full(6, 0.2)
    fastopt.functional.rprop_(a, g, prev_a, size_a, step=1, lr=0.2)
    fastopt.functional.rprop_(b, g, prev_b, size_b, step=2, lr=123.0)  # the state as step 1 finds it
    for x, y in ((a, b), (prev_a, prev_b), (size_a, size_b)):
        assert_bitwise(x, y)
    np.testing.assert_array_equal(size_a, 0.2)
    np.testing.assert_array_equal(a, p - np.sign(g) * 0.2)

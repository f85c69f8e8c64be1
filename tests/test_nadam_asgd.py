"""NAdam and ASGD: against torch.optim with two param groups of different
hyperparameters and odd sizes, and their per-parameter 0-d state (NAdam's
mu_product, ASGD's eta and mu), which must follow each parameter's own
history exactly as torch's 0-d float32 tensors do."""
import copy

import numpy as np
import pytest

import fastopt
from conftest import assert_bitwise, assert_close

torch = pytest.importorskip("torch")
import fastopt.torch as fot  # noqa: E402

GROUPS = {
    "NAdam": ({"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "momentum_decay": 0.01},
              {"lr": 0.003, "betas": (0.3, 0.999), "eps": 1e-6, "weight_decay": 0.05,
               "decoupled_weight_decay": True, "maximize": True}),
    "ASGD": ({"lr": 0.02, "lambd": 0.01, "alpha": 0.5, "t0": 20, "weight_decay": 0.1},
             {"lr": 0.005, "t0": 50.5, "maximize": True}),
}
SCALARS = {"NAdam": ("mu_product",), "ASGD": ("eta", "mu")}
SIZES = ((1, 1001), (7,))
TORCH_ONLY = {"foreach", "capturable", "differentiable"}


def make(name, dtype, rng, module=fastopt):
    arrays = [[rng.standard_normal(n).astype(dtype) for n in group] for group in SIZES]
    wrap = (lambda a: a.copy()) if module is fastopt else (lambda a: torch.from_numpy(a.copy()))
    ours = [dict(GROUPS[name][g], params=[wrap(a) for a in arrays[g]]) for g in range(2)]
    theirs = [dict(GROUPS[name][g], params=[torch.from_numpy(a.copy()) for a in arrays[g]])
              for g in range(2)]
    return getattr(module, name)(ours), getattr(torch.optim, name)(theirs, foreach=False)


def flat(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def torch_step(topt, grads):
    for p, g in zip(flat(topt), grads):
        p.grad = None if g is None else torch.from_numpy(g.copy())
    topt.step()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(GROUPS))
def test_two_groups_odd_sizes_match_torch(name, dtype, rng):
    fast, topt = make(name, dtype, rng)
    for _ in range(100):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in flat(fast)]
        fast.step(grads)
        torch_step(topt, grads)
    sd, tsd = fast.state_dict(), topt.state_dict()
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for i, (p, tp) in enumerate(zip(flat(fast), flat(topt))):
        assert_close(p, tp.numpy(), dtype, f"parameter {i}")
        mine, theirs = sd["state"][i], tsd["state"][i]
        assert list(mine) == list(theirs)  # torch's keys, in torch's order
        assert mine["step"] == float(theirs["step"]) == 100.0
        for key in SCALARS[name]:  # 0-d float32, the same bits as torch's
            assert mine[key].shape == () and mine[key].dtype == np.float32
            assert_bitwise(mine[key], theirs[key].numpy(), f"parameter {i} {key}")
        for key, value in theirs.items():
            if key not in SCALARS[name] and key != "step":
                assert mine[key].dtype == dtype and mine[key].shape == p.shape
                assert_close(mine[key], value.numpy(), dtype, f"parameter {i} {key}")
    for mine, theirs in zip(sd["param_groups"], tsd["param_groups"]):
        assert mine == {k: v for k, v in theirs.items() if k not in TORCH_ONLY}


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_scalar_state_follows_each_parameters_history(name, rng):
    """Parameters of one group whose histories differ (one skips steps, one
    joins late, the lr changes mid-run) get their own scalars: the 0-d state
    of each is torch's, bit for bit, and so is what it does to the parameters."""
    dtype = np.float64
    fast, topt = make(name, dtype, rng)
    fot_opt, _ = make(name, dtype, np.random.default_rng(7), fot)
    for p, q in zip(flat(fot_opt), flat(fast)):  # the same start as `fast`
        p.data.copy_(torch.from_numpy(q))
    for t in range(30):
        if t == 10:
            for o in (fast, topt, fot_opt):
                o.param_groups[0]["lr"] *= 0.5  # ASGD's eta sees it one step later
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in flat(fast)]
        if t % 3 == 0:
            grads[1] = None  # parameter 1 skips every third step
        if t < 5:
            grads[2] = None  # parameter 2 starts at step 6
        fast.step(grads)
        torch_step(topt, grads)
        for p, g in zip(flat(fot_opt), grads):
            p.grad = None if g is None else torch.from_numpy(g.copy())
        fot_opt.step()
    for i, (p, q, tp) in enumerate(zip(flat(fast), flat(fot_opt), flat(topt))):
        assert_close(p, tp.numpy(), dtype, f"parameter {i}")
        assert_close(q.detach().numpy(), tp.numpy(), dtype, f"fastopt.torch parameter {i}")
        theirs = topt.state[tp]
        for key in SCALARS[name]:
            assert_bitwise(fast.state[i][key], theirs[key].numpy(), f"parameter {i} {key}")
            mine = fot_opt.state[q][key]
            assert mine.dtype == theirs[key].dtype == torch.float32 and mine.shape == ()
            assert_bitwise(mine.numpy(), theirs[key].numpy(), f"fastopt.torch parameter {i} {key}")
    assert len({float(fast.state[i][SCALARS[name][0]]) for i in range(3)}) == 3


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_resume_is_bit_identical(name, rng, tmp_path):
    """A state dict saved mid-run (through fastopt.save) and loaded into a new
    optimizer gives the bits of the unbroken run, 0-d state included."""
    dtype = np.float32
    fast, _ = make(name, dtype, rng)
    start = [p.copy() for p in flat(fast)]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in start] for _ in range(40)]
    for g in grads[:20]:
        fast.step(g)
    fastopt.save(fast.state_dict(), tmp_path / "opt.fo")
    middle = [p.copy() for p in flat(fast)]
    for g in grads[20:]:
        fast.step(g)
    again, _ = make(name, dtype, np.random.default_rng(0))
    for p, m in zip(flat(again), middle):
        p[...] = m
    again.load_state_dict(fastopt.load(tmp_path / "opt.fo"))
    for g in grads[20:]:
        again.step(g)
    for a, b in zip(flat(again), flat(fast)):
        assert_bitwise(a, b)
    sa, sb = again.state_dict()["state"], fast.state_dict()["state"]
    for i in sb:
        for key in sb[i]:
            assert_bitwise(np.asarray(sa[i][key]), np.asarray(sb[i][key]), f"{i} {key}")


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_torch_state_dict_into_fastopt_torch_and_back(name, rng):
    """torch.optim's state dict loads into fastopt.torch (torch's loader casts the
    0-d state to the parameter's dtype, as it does for torch.optim), and the
    runs go on as torch.optim's resumed run does; the dict goes back to torch."""
    dtype = np.float64
    _, topt = make(name, dtype, rng)
    for _ in range(10):
        torch_step(topt, [rng.standard_normal(p.shape) for p in flat(topt)])
    sd = topt.state_dict()
    params = [p.detach().clone() for p in flat(topt)]
    mine = getattr(fot, name)([{**g, "params": [torch.nn.Parameter(params[i].clone()) for i in g["params"]]}
                               for g in sd["param_groups"]])
    mine.load_state_dict(copy.deepcopy(sd))  # torch's loader keeps the step tensors
    resumed = getattr(torch.optim, name)(
        [{**g, "params": [params[i].clone() for i in g["params"]]} for g in sd["param_groups"]])
    resumed.load_state_dict(copy.deepcopy(sd))
    for _ in range(10):
        grads = [rng.standard_normal(p.shape) for p in params]
        for p, g in zip(flat(mine), grads):
            p.grad = torch.from_numpy(g.copy())
        mine.step()
        torch_step(resumed, grads)
    back = getattr(torch.optim, name)([{**g, "params": [p.detach().clone() for p in g["params"]]}
                                       for g in mine.param_groups])
    back.load_state_dict(mine.state_dict())
    for a, b, c in zip(flat(mine), flat(resumed), flat(back)):
        assert_close(a.detach().numpy(), b.numpy(), dtype)
        for key in SCALARS[name]:
            x, y, z = mine.state[a][key], resumed.state[b][key], back.state[c][key]
            assert x.dtype == y.dtype == torch.float64  # cast by torch's loader
            assert_bitwise(x.numpy(), y.numpy(), key)
            assert_bitwise(z.numpy(), y.numpy(), key)


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_thread_count_and_functional_give_the_same_bits(name, rng):
    """One thread or two, and the functional form stepping the 0-d state in place."""
    dtype = np.float32
    runs = []
    before = fastopt.get_num_threads()
    try:
        for threads in (1, 2):
            fastopt.set_num_threads(threads)
            fast, _ = make(name, dtype, np.random.default_rng(3))
            g = np.random.default_rng(4)
            for _ in range(12):
                fast.step([g.standard_normal(p.shape).astype(dtype) for p in flat(fast)])
            runs.append(fast)
    finally:
        fastopt.set_num_threads(before)
    for a, b in zip(flat(runs[0]), flat(runs[1])):
        assert_bitwise(a, b)
    fast, _ = make(name, dtype, np.random.default_rng(3))
    p = flat(fast)[1].copy()
    bufs = [np.zeros_like(p) for _ in fast._spec.state]
    scalars = [np.array(1.0, np.float32) for _ in SCALARS[name]]
    g = np.random.default_rng(4)
    fn = getattr(fastopt.functional, name.lower() + "_")
    for t in range(1, 13):
        grads = [g.standard_normal(q.shape).astype(dtype) for q in flat(fast)]
        fn(p, grads[1], *bufs, *scalars, step=t, **GROUPS[name][0])
    assert_bitwise(p, flat(runs[0])[1])
    for key, s in zip(SCALARS[name], scalars):
        assert_bitwise(s, runs[0].state[1][key], key)


def test_bad_scalar_state_is_refused_before_anything_changes(rng):
    p = rng.standard_normal(5)
    opt = fastopt.NAdam([p])
    opt.step([rng.standard_normal(5)])
    sd = opt.state_dict()
    bad = {**sd, "state": {0: {k: v for k, v in sd["state"][0].items() if k != "mu_product"}}}
    with pytest.raises(ValueError, match="mu_product"):
        opt.load_state_dict(bad)
    bad = {**sd, "state": {0: {**sd["state"][0], "mu_product": np.ones(2)}}}
    with pytest.raises(ValueError, match="mu_product"):
        opt.load_state_dict(bad)
    assert_bitwise(opt.state_dict()["state"][0]["mu_product"], sd["state"][0]["mu_product"])
    with pytest.raises(TypeError, match="mu_product"):
        fastopt.functional.nadam_(p, np.ones(5), np.zeros(5), np.zeros(5), np.ones(1), step=1)

"""ScheduleFreeAdamW and ScheduleFreeSGD against the schedulefree package (when
installed) and against fastopt.reference: 100 steps, two groups, warmup,
weight decay, weight_lr_power, r; train()/eval(); state dicts; bad input."""
import copy

import numpy as np
import pytest

import fastopt
from fastopt import functional as F
from fastopt import reference

from conftest import assert_bitwise, assert_close

NAMES = ["ScheduleFreeAdamW", "ScheduleFreeSGD"]
# two groups with different hyperparameters: warmup, weight decay, r, weight_lr_power
OPTIONS = {
    "ScheduleFreeAdamW": ({"lr": 0.01, "warmup_steps": 10, "weight_decay": 0.05, "r": 0.5},
                          {"lr": 0.03, "betas": (0.8, 0.99), "eps": 1e-6, "weight_lr_power": 1.0,
                           "warmup_steps": 0}),
    "ScheduleFreeSGD": ({"lr": 0.05, "warmup_steps": 10, "weight_decay": 0.05, "r": 0.5},
                        {"lr": 0.02, "momentum": 0.3, "weight_lr_power": 0.0, "r": 1.0}),
}
PACKAGE = {"ScheduleFreeAdamW": "AdamWScheduleFree", "ScheduleFreeSGD": "SGDScheduleFree"}
SHAPES = [(7, 33), (5,), (1,)]  # the first two in group 0, the last in group 1


def _setup(rng, dtype):
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _groups(name, params):
    a, b = OPTIONS[name]
    return [{"params": params[:2], **a}, {"params": params[2:], **b}]


def _grads(rng, params, dtype):
    return [rng.standard_normal(p.shape).astype(dtype) for p in params]


def _package():
    return pytest.importorskip("schedulefree", reason="the schedulefree package is not installed")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_against_package(name, dtype, rng):
    sf = _package()
    import torch
    init = _setup(rng, dtype)
    params = [p.copy() for p in init]
    opt = getattr(fastopt, name)(_groups(name, params))
    tparams = [torch.tensor(p) for p in init]
    topt = getattr(sf, PACKAGE[name])(_groups(name, tparams), foreach=False)
    opt.train()
    topt.train()
    for step in range(100):
        grads = _grads(rng, params, dtype)
        if step == 50:  # a round trip mid-run
            opt.eval(), topt.eval()
            for p, t in zip(params, tparams):
                assert_close(p, t.numpy(), dtype, "eval")
            opt.train(), topt.train()
        assert opt.step(grads)
        for t, g in zip(tparams, grads):
            t.grad = torch.tensor(g.copy())  # the package overwrites the gradient
        topt.step()
    for p, t in zip(params, tparams):
        assert_close(p, t.numpy(), dtype, "y")
    for i, t in enumerate(tparams):
        for key, buf in topt.state[t].items():
            assert_close(opt.state[i][key], buf.numpy(), dtype, key)
    for mine, theirs in zip(opt.param_groups, topt.param_groups):
        for key in ("k", "lr_max", "weight_sum", "scheduled_lr", "train_mode"):
            assert mine[key] == theirs[key], key  # the same double arithmetic
    opt.eval(), topt.eval()
    for p, t in zip(params, tparams):
        assert_close(p, t.numpy(), dtype, "x")
    assert [g["train_mode"] for g in opt.param_groups] == [False, False]


@pytest.mark.parametrize("name", NAMES)
def test_step_in_eval_mode_raises(name, rng):
    _package()
    import schedulefree
    import torch
    params = _setup(rng, np.float64)
    opt = getattr(fastopt, name)(_groups(name, params))
    t = torch.zeros(3, requires_grad=True)
    t.grad = torch.ones(3)
    topt = getattr(schedulefree, PACKAGE[name])([t])
    with pytest.raises(Exception, match="not in train mode"):
        topt.step()
    before = [p.copy() for p in params]
    with pytest.raises(RuntimeError, match="not in train mode"):  # before train(), as the package
        opt.step(_grads(rng, params, np.float64))
    opt.train()
    opt.step(_grads(rng, params, np.float64))
    opt.eval()
    before = [p.copy() for p in params]
    with pytest.raises(RuntimeError, match="not in train mode"):
        opt.step(_grads(rng, params, np.float64))
    for p, b in zip(params, before):
        assert_bitwise(p, b)
    assert opt.param_groups[0]["k"] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_against_reference(name, dtype, rng):
    """The class against fastopt.reference, the group arithmetic threaded by hand."""
    init = _setup(rng, dtype)
    params = [p.copy() for p in init]
    opt = getattr(fastopt, name)(_groups(name, params))
    opt.train()
    spec = opt._spec
    update = getattr(reference, spec.function)
    groups = [{**spec.defaults, **g, "lr_max": -1.0, "weight_sum": 0.0}
              for g in OPTIONS[name]]
    for g in groups:
        g.pop("params", None)
    ref = [p.copy() for p in init]
    state = [{} for _ in init]
    member = [0, 0, 1]
    for step in range(1, 101):
        grads = _grads(rng, params, dtype)
        if step % 7 == 0:
            grads[1] = None  # skipped: its z and y stay, the group still counts the step
        opt.step(grads)
        before = [dict(g) for g in groups]
        for g in groups:
            _, _, g["lr_max"], g["weight_sum"] = reference.schedule_free_group(
                step, g["lr"], g["warmup_steps"], g["r"], g["weight_lr_power"], g["lr_max"],
                g["weight_sum"])
        for i, grad in enumerate(grads):
            if grad is None:
                continue
            ref[i], state[i] = update(ref[i], grad, state[i], step, **before[member[i]])
    for i in range(len(init)):
        assert_close(params[i], ref[i], dtype, "y")
        for key, buf in state[i].items():
            assert_close(opt.state[i][key], buf, dtype, key)
    for mine, g in zip(opt.param_groups, groups):
        assert mine["k"] == 100
        assert mine["lr_max"] == g["lr_max"] and mine["weight_sum"] == g["weight_sum"]
    beta = [g["betas"][0] if "betas" in g else g["momentum"] for g in groups]
    opt.eval()
    for i in range(len(init)):
        x = reference.schedule_free_switch(ref[i], state[i]["z"], beta[member[i]], False)
        assert_close(params[i], x, dtype, "x")


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_against_reference(name, rng):
    """eval() then train() gives back y to rounding, as the package's lerps do."""
    params = _setup(rng, np.float64)
    opt = getattr(fastopt, name)(_groups(name, params))
    opt.train()
    for _ in range(5):
        opt.step(_grads(rng, params, np.float64))
    y = [p.copy() for p in params]
    opt.eval()
    opt.eval()  # a second eval() does nothing, as in the package
    opt.train()
    for p, b in zip(params, y):
        assert_close(p, b, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_resumes_bit_identically(name, dtype, rng):
    init = _setup(rng, dtype)
    a_params = [p.copy() for p in init]
    a = getattr(fastopt, name)(_groups(name, a_params))
    a.train()
    grads = [_grads(rng, init, dtype) for _ in range(30)]
    for g in grads[:15]:
        a.step(g)
    a.eval()  # the package saves in eval mode
    sd = a.state_dict()
    b_params = [p.copy() for p in a_params]
    b = getattr(fastopt, name)(_groups(name, b_params))
    b.load_state_dict(sd)
    for key in ("k", "lr_max", "weight_sum", "train_mode"):
        assert [g[key] for g in b.param_groups] == [g[key] for g in a.param_groups]
    a.train(), b.train()
    for g in grads[15:]:
        a.step(g), b.step(g)
    for p, q in zip(a_params, b_params):
        assert_bitwise(q, p)
    for i in range(len(init)):
        for key in a.state[i]:
            assert_bitwise(b.state[i][key], a.state[i][key], key)


@pytest.mark.parametrize("name", NAMES)
def test_bit_identical_for_any_thread_count(name, rng):
    init = _setup(rng, np.float32)
    init[0] = rng.standard_normal((300, 500)).astype(np.float32)
    grads = [_grads(rng, init, np.float32) for _ in range(5)]
    results = []
    old = fastopt.get_num_threads()
    try:
        for n in (1, 2, 3):
            fastopt.set_num_threads(n)
            params = [p.copy() for p in init]
            opt = getattr(fastopt, name)(_groups(name, params))
            opt.train()
            for g in grads:
                opt.step(g)
            results.append(params)
    finally:
        fastopt.set_num_threads(old)
    for other in results[1:]:
        for p, q in zip(results[0], other):
            assert_bitwise(q, p)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_every_isa_matches_scalar(name, dtype, isa, rng):
    """Through fastopt.functional, both lerp forms (ckp1 = 1 at the first step,
    small afterwards) and with and without weight decay."""
    fn = getattr(F, opt_function(name))
    for wd in (0.0, 0.1):
        p0 = rng.standard_normal(1003).astype(dtype)
        out = {}
        for path in ("scalar", isa):
            p = p0.copy()
            bufs = [p0.copy()] + ([np.zeros_like(p0)] if name == "ScheduleFreeAdamW" else [])
            lr_max, weight_sum = -1.0, 0.0
            r = np.random.default_rng(1)
            for step in range(1, 6):
                g = r.standard_normal(1003).astype(dtype)
                lr_max, weight_sum = fn(p, g, *bufs, step=step, lr=0.1, weight_decay=wd,
                                        warmup_steps=3, lr_max=lr_max, weight_sum=weight_sum,
                                        isa=path)
            out[path] = [p] + bufs
        for a, b in zip(out["scalar"], out[isa]):
            assert_bitwise(b, a, isa)


def opt_function(name):
    return fastopt._spec.SPECS[name].function + "_"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [{"lr": -1.0}, {"weight_decay": -0.1}, {"warmup_steps": -1},
                                 {"warmup_steps": 1.5}, {"r": -1.0}, {"weight_lr_power": -2.0},
                                 {"interp": 0.0}, {"interp": 1.0}, {"eps": -1.0},
                                 {"k": -1}, {"weight_sum": float("nan")}, {"lr_max": "x"}])
def test_bad_hyperparameters_rejected(name, bad, rng):
    bad = dict(bad)
    if "interp" in bad:
        value = bad.pop("interp")
        bad = {"betas": (value, 0.999)} if name == "ScheduleFreeAdamW" else {"momentum": value}
    if "eps" in bad and name == "ScheduleFreeSGD":
        pytest.skip("ScheduleFreeSGD has no eps")
    cls = getattr(fastopt, name)
    params = _setup(rng, np.float64)
    if not set(bad) & {"k", "weight_sum", "lr_max"}:
        with pytest.raises(ValueError):
            cls(params, **bad)
    opt = cls(params)
    opt.train()
    opt.step(_grads(rng, params, np.float64))
    before = [p.copy() for p in params]
    state = {i: {k: v.copy() for k, v in s.items()} for i, s in opt.state.items()}
    groups = [dict(g) for g in opt.param_groups]
    opt.param_groups[0].update(bad)
    with pytest.raises(ValueError):
        opt.step(_grads(rng, params, np.float64))
    if not set(bad) & {"k", "weight_sum", "lr_max"}:
        with pytest.raises(ValueError):
            opt.eval()
    for p, b in zip(params, before):
        assert_bitwise(p, b)
    for i, s in state.items():
        for k, v in s.items():
            assert_bitwise(opt.state[i][k], v)
    for key in ("k", "weight_sum", "lr_max", "train_mode"):
        if key not in bad:
            assert opt.param_groups[0][key] == groups[0][key]


def test_defaults_as_the_package():
    sf = _package()
    import inspect
    for name in NAMES:
        mine = inspect.signature(getattr(fastopt, name)).parameters
        theirs = inspect.signature(getattr(sf, PACKAGE[name])).parameters
        for key, p in theirs.items():
            if key in ("params", "foreach"):
                continue
            assert mine[key].default == p.default, (name, key)
        opt = getattr(fastopt, name)([np.zeros(2)])
        assert {k for k in opt.param_groups[0] if k != "params"} == set(theirs) - {"params", "foreach"} | {
            "k", "train_mode", "weight_sum", "lr_max", "scheduled_lr"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_torch_form_against_package_and_its_state_dict(name, dtype, rng):
    """fastopt.torch's class steps as the package, and a state dict saved by the
    package (in eval mode, with its group state) resumes in fastopt.torch."""
    sf = _package()
    import torch
    import fastopt.torch as fot
    init = _setup(rng, dtype)
    mine = [torch.tensor(p) for p in init]
    theirs = [torch.tensor(p) for p in init]
    opt = getattr(fot, name)(_groups(name, mine))
    ref = getattr(sf, PACKAGE[name])(_groups(name, theirs), foreach=False)
    opt.train(), ref.train()

    def steps(n):
        for _ in range(n):
            grads = _grads(rng, init, dtype)
            for t, g in zip(mine, grads):
                t.grad = torch.tensor(g)
            for t, g in zip(theirs, grads):
                t.grad = torch.tensor(g)
            opt.step(), ref.step()

    steps(30)
    ref.eval(), opt.eval()
    resumed = getattr(fot, name)(_groups(name, mine))
    resumed.load_state_dict(copy.deepcopy(ref.state_dict()))  # torch loads tensors uncopied
    opt = resumed
    opt.train(), ref.train()
    steps(30)
    opt.eval(), ref.eval()
    for a, b in zip(mine, theirs):
        assert_close(a.numpy(), b.numpy(), dtype)
    for ga, gb in zip(opt.param_groups, ref.param_groups):
        assert (ga["k"], ga["lr_max"], ga["weight_sum"]) == (gb["k"], gb["lr_max"], gb["weight_sum"])
    with pytest.raises(RuntimeError, match="not in train mode"):
        opt.step()


@pytest.mark.parametrize("name", NAMES)
def test_averaging_weight_overflow_is_a_value_error(name, rng):
    """(k + 1)**r overflowing float64 is a ValueError with nothing written,
    not Python's OverflowError."""
    params = _setup(rng, np.float64)
    opt = getattr(fastopt, name)(params, r=1e300)
    opt.train()
    opt.step(_grads(rng, params, np.float64))  # k + 1 = 1: 1**r is 1
    before = [p.copy() for p in params]
    state = {i: {k: v.copy() for k, v in s.items()} for i, s in opt.state.items()}
    with pytest.raises(ValueError, match="overflows"):
        opt.step(_grads(rng, params, np.float64))
    for p, b in zip(params, before):
        assert_bitwise(p, b)
    for i, s in state.items():
        for k, v in s.items():
            assert_bitwise(opt.state[i][k], v)
    assert opt.param_groups[0]["k"] == 1


def test_train_eval_of_16_bit_parameters_rounds_once(rng):
    """train()/eval() move a bfloat16 parameter in float32 and round once, as
    torch's lerp_ does for the torch form."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    half = np.dtype(ml_dtypes.bfloat16)
    params = [rng.standard_normal(n).astype(half) for n in (7, 33)]
    opt = fastopt.ScheduleFreeSGD(params, lr=0.1)
    opt.train()
    for _ in range(3):
        opt.step([rng.standard_normal(p.shape).astype(half) for p in params])
    y = [p.astype(np.float32) for p in params]
    opt.eval()
    for p, y0, z in zip(params, y, (opt.state[i]["z"] for i in range(len(params)))):
        want = y0.copy()
        fastopt.optim._lerp_(want, z, 1 - 1 / 0.9)
        assert_bitwise(p, want.astype(half))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_reference_optimizer_against_package(name, dtype, rng):
    """fastopt.reference.ReferenceOptimizer keeps the group state and train()/eval()
    itself: against the package, with skipped parameters and an eval() mid-run."""
    sf = _package()
    import torch
    init = _setup(rng, dtype)
    ref = reference.ReferenceOptimizer(name, _groups(name, [p.copy() for p in init]), {})
    tparams = [torch.tensor(p) for p in init]
    topt = getattr(sf, PACKAGE[name])(_groups(name, tparams), foreach=False)
    with pytest.raises(RuntimeError, match="not in train mode"):
        ref.step(_grads(rng, init, dtype))
    assert [g["k"] for g in ref.groups] == [0, 0]
    ref.train(), topt.train()
    for step in range(60):
        grads = _grads(rng, init, dtype)
        if step % 7 == 3:
            grads[1] = None  # skipped: its y and z stay, its group still counts the step
        if step == 30:
            ref.eval(), topt.eval()
            for p, t in zip(ref.params, tparams):
                assert_close(p, t.numpy(), dtype, "eval")
            ref.train(), topt.train()
        ref.step(grads)
        for t, g in zip(tparams, grads):
            t.grad = None if g is None else torch.tensor(g.copy())
        topt.step()
    for p, t in zip(ref.params, tparams):
        assert_close(p, t.numpy(), dtype, "y")
    for i, t in enumerate(tparams):
        for key, buf in topt.state[t].items():
            assert_close(ref.state[i][key], buf.numpy(), dtype, key)
    for mine, theirs in zip(ref.groups, topt.param_groups):
        for key in ("k", "lr_max", "weight_sum", "scheduled_lr", "train_mode"):
            assert mine[key] == theirs[key], key
    ref.eval(), topt.eval()
    for p, t in zip(ref.params, tparams):
        assert_close(p, t.numpy(), dtype, "x")


@pytest.mark.parametrize("name", NAMES)
def test_reference_optimizer_as_the_class(name, rng):
    """ReferenceOptimizer against fastopt's class, train()/eval() included (no package needed)."""
    init = _setup(rng, np.float64)
    params = [p.copy() for p in init]
    opt = getattr(fastopt, name)(_groups(name, params))
    ref = reference.ReferenceOptimizer(name, _groups(name, [p.copy() for p in init]), {})
    opt.train(), ref.train()
    for step in range(20):
        grads = _grads(rng, init, np.float64)
        if step == 10:
            opt.eval(), ref.eval()
            opt.train(), ref.train()
        opt.step(grads), ref.step(grads)
    opt.eval(), ref.eval()
    for p, q in zip(params, ref.params):
        assert_close(p, q, np.float64, "x")
    for mine, g in zip(opt.param_groups, ref.groups):
        assert (mine["k"], mine["lr_max"], mine["weight_sum"]) == (g["k"], g["lr_max"], g["weight_sum"])

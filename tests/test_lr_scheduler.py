"""fastopt.lr_scheduler: torch's values (where torch is installed), closed
forms written from the formulas (everywhere), state dicts, bad arguments."""
import copy
import math
import types

import numpy as np
import pytest

import fastopt
from fastopt import lr_scheduler as L
from fastopt import schedules, swa_utils

N = 300


class StandIn:
    """The optimizer interface schedulers drive: param_groups and defaults."""

    def __init__(self, groups, defaults):
        self.param_groups = [dict(g) for g in groups]
        self.defaults = dict(defaults)
        self.steps = 0

    def step(self):
        self.steps += 1


SGD_DEFAULTS = {"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 0, "nesterov": False}
ADAM_DEFAULTS = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0}
# optimizer kind -> (defaults, per-group overrides)
OPTIMIZERS = {
    "sgd": (SGD_DEFAULTS, [{}]),
    "sgd2": (SGD_DEFAULTS, [{}, {"lr": 0.05, "momentum": 0.5}]),
    "adam": (ADAM_DEFAULTS, [{}]),
}


def make_standin(kind):
    defaults, overrides = OPTIMIZERS[kind]
    return StandIn([{**defaults, **o} for o in overrides], defaults)


def make_torch(kind):
    torch = pytest.importorskip("torch")
    defaults, overrides = OPTIMIZERS[kind]
    groups = [{"params": [torch.zeros(1, requires_grad=True)], **o} for o in overrides]
    if "betas" in defaults:
        return torch.optim.Adam(groups, lr=defaults["lr"], betas=defaults["betas"])
    return torch.optim.SGD(groups, lr=defaults["lr"], momentum=defaults["momentum"])


def decay_97(epoch):
    return 0.97 ** epoch


def inverse(epoch):
    return 1.0 / (1 + epoch)


def every_tenth(epoch):
    return 0.7 if epoch % 10 == 0 else 1.0


def halving(x):
    return 0.5 ** x


# (class name, kwargs, optimizer kind): several argument sets per class.
CASES = [
    ("LambdaLR", dict(lr_lambda=decay_97), "sgd"),
    ("LambdaLR", dict(lr_lambda=[decay_97, inverse]), "sgd2"),
    ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.99), "sgd"),
    ("MultiplicativeLR", dict(lr_lambda=every_tenth), "sgd2"),
    ("StepLR", dict(step_size=30), "sgd"),
    ("StepLR", dict(step_size=7, gamma=0.5), "sgd2"),
    ("StepLR", dict(step_size=1, gamma=0.98), "adam"),
    ("MultiStepLR", dict(milestones=[30, 80]), "sgd"),
    ("MultiStepLR", dict(milestones=[50, 10, 10, 250], gamma=0.5), "sgd2"),
    ("ConstantLR", dict(), "sgd"),
    ("ConstantLR", dict(factor=0.5, total_iters=100), "sgd2"),
    ("ConstantLR", dict(factor=0.25, total_iters=1), "adam"),
    ("LinearLR", dict(), "sgd"),
    ("LinearLR", dict(start_factor=0.1, end_factor=1.0, total_iters=50), "sgd2"),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.0, total_iters=200), "adam"),
    ("ExponentialLR", dict(gamma=0.99), "sgd"),
    ("ExponentialLR", dict(gamma=1.01), "sgd2"),
    ("PolynomialLR", dict(), "sgd"),
    ("PolynomialLR", dict(total_iters=250, power=2.0), "sgd2"),
    ("PolynomialLR", dict(total_iters=100, power=0.5), "adam"),
    ("CosineAnnealingLR", dict(T_max=300), "sgd"),
    ("CosineAnnealingLR", dict(T_max=50, eta_min=0.001), "sgd2"),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01), "adam"),
    ("CosineAnnealingWarmRestarts", dict(T_0=10), "sgd"),
    ("CosineAnnealingWarmRestarts", dict(T_0=7, T_mult=2, eta_min=0.001), "sgd2"),
    ("CosineAnnealingWarmRestarts", dict(T_0=1, T_mult=3), "adam"),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.1, step_size_up=20), "sgd"),
    ("CyclicLR", dict(base_lr=[0.001, 0.002], max_lr=[0.1, 0.05], step_size_up=15,
                      step_size_down=35, mode="triangular2"), "sgd2"),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.01, step_size_up=10, mode="exp_range",
                      gamma=0.99), "adam"),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=8, scale_fn=halving,
                      scale_mode="iterations", cycle_momentum=False), "sgd"),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=12, base_momentum=0.7,
                      max_momentum=0.95), "sgd"),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=N), "sgd"),
    ("OneCycleLR", dict(max_lr=[0.1, 0.3], total_steps=N + 20, anneal_strategy="linear"), "sgd2"),
    ("OneCycleLR", dict(max_lr=0.01, epochs=3, steps_per_epoch=100, pct_start=0.25,
                        three_phase=True, div_factor=10.0, final_div_factor=100.0), "adam"),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=N, three_phase=True, anneal_strategy="linear",
                        cycle_momentum=False), "sgd"),
]
CASE_IDS = [f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)]


def momentum_of(group):
    return group["betas"][0] if "betas" in group else group.get("momentum")


def trajectory(opt, sched, n=N):
    """lrs and momenta of every group after construction and each of n - 1 steps."""
    lrs, moms = [], []
    for i in range(n):
        if i:
            opt.step()
            sched.step()
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        moms.append([float(momentum_of(g)) for g in opt.param_groups])
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
    return np.array(lrs), np.array(moms)


# torch warns about its step-order heuristics; fastopt has none to compare.
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name, kwargs, kind", CASES, ids=CASE_IDS)
def test_matches_torch(name, kwargs, kind):
    torch = pytest.importorskip("torch")
    topt = make_torch(kind)
    fopt = make_standin(kind)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    fsched = getattr(L, name)(fopt, **kwargs)
    t_lrs, t_moms = trajectory(topt, tsched)
    f_lrs, f_moms = trajectory(fopt, fsched)
    np.testing.assert_allclose(f_lrs, t_lrs, rtol=1e-12, atol=0)
    np.testing.assert_allclose(f_moms, t_moms, rtol=1e-12, atol=0)
    assert fsched.last_epoch == tsched.last_epoch == N - 1
    assert [g["initial_lr"] for g in fopt.param_groups] == [
        g["initial_lr"] for g in topt.param_groups]


# ------------------------------------------------------ closed-form references

def _cos_anneal(a, b, p):
    return b + (a - b) * (1 + math.cos(math.pi * p)) / 2


def reference(name, kw, g, base, mom, t):
    """(lr, momentum) of group g at epoch t, from the documented formulas.

    base / mom: the group's lr / momentum before the scheduler was built.
    """
    def pick(v, i):
        return v[i] if isinstance(v, (list, tuple)) else v

    if name == "LambdaLR":
        return base * pick(kw["lr_lambda"], g)(t), mom
    if name == "MultiplicativeLR":
        return base * math.prod(pick(kw["lr_lambda"], g)(k) for k in range(1, t + 1)), mom
    if name == "StepLR":
        return base * kw.get("gamma", 0.1) ** (t // kw["step_size"]), mom
    if name == "MultiStepLR":
        return base * kw.get("gamma", 0.1) ** sum(m <= t for m in kw["milestones"]), mom
    if name == "ConstantLR":
        return base * (kw.get("factor", 1 / 3) if t < kw.get("total_iters", 5) else 1.0), mom
    if name == "LinearLR":
        s, e, T = kw.get("start_factor", 1 / 3), kw.get("end_factor", 1.0), kw.get("total_iters", 5)
        return base * (s + (e - s) * min(t, T) / T), mom
    if name == "ExponentialLR":
        return base * kw["gamma"] ** t, mom
    if name == "PolynomialLR":
        T, p = kw.get("total_iters", 5), kw.get("power", 1.0)
        return base * (1 - min(t, T) / T) ** p, mom
    if name == "CosineAnnealingLR":
        eta = kw.get("eta_min", 0.0)
        return eta + (base - eta) * (1 + math.cos(math.pi * t / kw["T_max"])) / 2, mom
    if name == "CosineAnnealingWarmRestarts":
        T_i, T_cur, mult = kw["T_0"], t, kw.get("T_mult", 1)
        while T_cur >= T_i:  # whole periods T_0, T_0 m, T_0 m^2, ... elapsed
            T_cur, T_i = T_cur - T_i, T_i * mult
        eta = kw.get("eta_min", 0.0)
        return eta + (base - eta) * (1 + math.cos(math.pi * T_cur / T_i)) / 2, mom
    if name == "CyclicLR":
        up = kw.get("step_size_up", 2000)
        down = kw.get("step_size_down") or up
        cycle = 1 + t // (up + down)
        into = t - (cycle - 1) * (up + down)  # steps into the current cycle
        h = into / up if into <= up else (up + down - into) / down
        mode = kw.get("mode", "triangular")
        if "scale_fn" in kw:
            x = t if kw.get("scale_mode") == "iterations" else cycle
            g_ = kw["scale_fn"](x)
        else:
            g_ = {"triangular": 1.0, "triangular2": 0.5 ** (cycle - 1),
                  "exp_range": kw.get("gamma", 1.0) ** t}[mode]
        lo, hi = pick(kw["base_lr"], g), pick(kw["max_lr"], g)
        lr = lo + (hi - lo) * h * g_
        if kw.get("cycle_momentum", True):
            mlo, mhi = kw.get("base_momentum", 0.8), kw.get("max_momentum", 0.9)
            mom = mhi - (mhi - mlo) * h * g_
        return lr, mom
    if name == "OneCycleLR":
        T = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
        p = kw.get("pct_start", 0.3)
        peak = pick(kw["max_lr"], g)
        lo = peak / kw.get("div_factor", 25.0)
        end = lo / kw.get("final_div_factor", 1e4)
        mlo, mhi = kw.get("base_momentum", 0.85), kw.get("max_momentum", 0.95)
        a1 = p * T - 1
        if kw.get("three_phase"):
            a2 = 2 * p * T - 2
            phases = [(0, a1, lo, peak, mhi, mlo), (a1, a2, peak, lo, mlo, mhi),
                      (a2, T - 1, lo, end, mhi, mhi)]
        else:
            phases = [(0, a1, lo, peak, mhi, mlo), (a1, T - 1, peak, end, mlo, mhi)]
        s0, s1, l0, l1, m0, m1 = next(ph for ph in phases if t <= ph[1] or ph is phases[-1])
        q = (t - s0) / (s1 - s0)
        interp = ((lambda a, b: a + (b - a) * q) if kw.get("anneal_strategy") == "linear"
                  else (lambda a, b: _cos_anneal(a, b, q)))
        if kw.get("cycle_momentum", True):
            mom = interp(m0, m1)
        return interp(l0, l1), mom
    raise AssertionError(name)


@pytest.mark.parametrize("name, kwargs, kind", CASES, ids=CASE_IDS)
def test_matches_closed_form(name, kwargs, kind):
    opt = make_standin(kind)
    bases = [g["lr"] for g in opt.param_groups]
    moms = [momentum_of(g) for g in opt.param_groups]
    lrs, got_moms = trajectory(opt, getattr(L, name)(opt, **kwargs))
    want = np.empty((N, len(bases), 2))
    for g, (base, mom) in enumerate(zip(bases, moms)):
        want[:, g] = [reference(name, kwargs, g, base, mom, t) for t in range(N)]
    # The recursive forms round differently from the closed forms; near a
    # zero of the schedule the relative difference grows, hence the atol.
    scale = np.abs(want[..., 0]).max()
    np.testing.assert_allclose(lrs, want[..., 0], rtol=1e-12, atol=1e-13 * scale)
    np.testing.assert_allclose(got_moms, want[..., 1], rtol=1e-12, atol=1e-13)


def test_sequential_and_chained_closed_form():
    opt = make_standin("sgd")
    f, T, gamma, switch = 0.25, 10, 0.97, 40
    seq = L.SequentialLR(opt, [L.ConstantLR(opt, factor=f, total_iters=T),
                               L.ExponentialLR(opt, gamma=gamma)], milestones=[switch])
    lrs, _ = trajectory(opt, seq)
    want = [0.1 * (f if t < T else 1.0) if t < switch else 0.1 * gamma ** (t - switch)
            for t in range(N)]
    np.testing.assert_allclose(lrs[:, 0], want, rtol=1e-12)
    assert seq.last_epoch == N - 1

    opt = make_standin("sgd")
    chain = L.ChainedScheduler([L.ConstantLR(opt, factor=f, total_iters=T),
                                L.ExponentialLR(opt, gamma=gamma)])
    lrs, _ = trajectory(opt, chain)
    want = [0.1 * gamma ** t * (f if t < T else 1.0) for t in range(N)]
    np.testing.assert_allclose(lrs[:, 0], want, rtol=1e-12)
    assert not hasattr(chain, "last_epoch")


def nested_cases(L=L):
    """Builders of nested schedulers, over fastopt's or torch's module L."""
    def seq(opt):
        return L.SequentialLR(opt, [L.LinearLR(opt, start_factor=0.1, total_iters=20),
                                    L.CosineAnnealingLR(opt, T_max=100, eta_min=1e-3),
                                    L.StepLR(opt, step_size=9, gamma=0.7)],
                              milestones=[20, 150])

    def chain(opt):
        return L.ChainedScheduler([L.MultiStepLR(opt, milestones=[60, 120], gamma=0.5),
                                   L.ExponentialLR(opt, gamma=0.995)])

    def nested(opt):
        return L.ChainedScheduler(
            [L.SequentialLR(opt, [L.ConstantLR(opt, factor=0.5, total_iters=5),
                                  L.PolynomialLR(opt, total_iters=200, power=1.5)],
                            milestones=[30]),
             L.CyclicLR(opt, 0.01, 0.1, step_size_up=25)])

    return {"sequential": seq, "chained": chain, "nested": nested}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("which", ["sequential", "chained", "nested"])
def test_sequential_chained_match_torch(which):
    torch = pytest.importorskip("torch")
    topt, fopt = make_torch("sgd"), make_standin("sgd")
    t_lrs, t_moms = trajectory(topt, nested_cases(torch.optim.lr_scheduler)[which](topt))
    f_lrs, f_moms = trajectory(fopt, nested_cases()[which](fopt))
    np.testing.assert_allclose(f_lrs, t_lrs, rtol=1e-12, atol=0)
    np.testing.assert_allclose(f_moms, t_moms, rtol=1e-12, atol=0)


# ---------------------------------------------------------- ReduceLROnPlateau

def plateau_metrics(i, n=N):
    """For PLATEAU_CASES[i]: noisy, mostly improving metrics with flat stretches."""
    rng = np.random.default_rng(i)
    steps = rng.exponential(0.01, n) * (rng.random(n) < 0.3)
    loss = 1.0 - np.cumsum(steps) + rng.normal(0, 0.002, n)
    return list(2.0 - loss if PLATEAU_CASES[i].get("mode") == "max" else loss)


PLATEAU_CASES = [
    dict(),
    dict(mode="max", factor=0.5, patience=3, threshold=1e-3, threshold_mode="abs"),
    dict(patience=2, cooldown=4, min_lr=0.02),
    dict(factor=0.3, patience=0, min_lr=[0.001, 0.01], eps=1e-3, threshold_mode="abs",
         threshold=0.0),
    dict(mode="max", patience=5, cooldown=2, threshold=0.01),
]


@pytest.mark.parametrize("i", range(len(PLATEAU_CASES)))
def test_plateau_matches_torch(i):
    torch = pytest.importorskip("torch")
    kwargs = PLATEAU_CASES[i]
    kind = "sgd2" if isinstance(kwargs.get("min_lr"), list) else "sgd"
    metrics = plateau_metrics(i)
    topt, fopt = make_torch(kind), make_standin(kind)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    fsched = L.ReduceLROnPlateau(fopt, **kwargs)
    t_lrs, f_lrs = [], []
    for m in metrics:
        tsched.step(m)
        fsched.step(m)
        t_lrs.append(tsched.get_last_lr())
        f_lrs.append(fsched.get_last_lr())
    assert len({tuple(x) for x in f_lrs}) > 1  # the metrics did trigger reductions
    np.testing.assert_allclose(f_lrs, t_lrs, rtol=1e-12, atol=0)


@pytest.mark.parametrize("patience, cooldown, factor, min_lr",
                         [(0, 0, 0.5, 0.0), (3, 0, 0.1, 1e-4), (2, 5, 0.7, 0.01)])
def test_plateau_closed_form(patience, cooldown, factor, min_lr):
    """A metric that never improves after epoch 1: reductions at epochs
    1 + (p + 1) + k (c + p + 1), each to max(lr * factor, min_lr) (eps = 0:
    no change is too small to apply)."""
    opt = make_standin("sgd")
    sched = L.ReduceLROnPlateau(opt, factor=factor, patience=patience, cooldown=cooldown,
                                min_lr=min_lr, eps=0.0)
    assert "initial_lr" not in opt.param_groups[0] and opt.param_groups[0]["lr"] == 0.1
    for epoch in range(1, N + 1):
        sched.step(1.0)
        n_reductions = sum(1 + (patience + 1) + k * (cooldown + patience + 1) <= epoch
                           for k in range(N))
        want = max(0.1 * factor ** n_reductions, min_lr)
        assert sched.get_last_lr()[0] == pytest.approx(want, rel=1e-12)
        assert sched.last_epoch == epoch


# ------------------------------------------------------------------ state dicts

def build_all():
    """Every scheduler class: (name, builder, optimizer kind, metrics or None)."""
    out = [(f"{c}-{i}", (lambda o, c=c, k=k: getattr(L, c)(o, **k)), kind, None)
           for i, (c, k, kind) in enumerate(CASES)]
    out += [(k, v, "sgd", None) for k, v in nested_cases().items()]
    out += [(f"plateau-{i}", (lambda o, k=k: L.ReduceLROnPlateau(o, **k)),
             "sgd2" if isinstance(k.get("min_lr"), list) else "sgd", plateau_metrics(i))
            for i, k in enumerate(PLATEAU_CASES)]
    out.append(("schedule", lambda o: L.ScheduleLR(o, schedules.CosineScheduler(
        250, base_lr=0.5, warmup_steps=20)), "sgd", None))
    return out


ALL = build_all()


def plain(value):
    """Only data fastopt.save can store: no functions or other objects."""
    if isinstance(value, dict):
        return all(plain(k) and plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def run(sched, opt, metrics, start, stop):
    out = []
    for t in range(start, stop):
        opt.step()
        if metrics:
            sched.step(metrics[t])
        else:
            sched.step()
        out.append([(g["lr"], momentum_of(g)) for g in opt.param_groups])
    return out


@pytest.mark.parametrize("name, build, kind, metrics", ALL, ids=[a[0] for a in ALL])
def test_state_dict_resume(name, build, kind, metrics):
    n = N - 1 if name.startswith("OneCycleLR") else N
    opt = make_standin(kind)
    sched = build(opt)
    whole = run(sched, opt, metrics, 0, n)

    opt = make_standin(kind)
    sched = build(opt)
    head = run(sched, opt, metrics, 0, n // 2)
    state = sched.state_dict()
    groups = copy.deepcopy(opt.param_groups)
    assert plain(state)
    run(sched, opt, metrics, n // 2, n // 2 + 7)  # the saved state is a copy

    opt2 = make_standin(kind)
    sched2 = build(opt2)
    opt2.param_groups[:] = groups  # as optimizer.load_state_dict does
    sched2.load_state_dict(state)
    tail = run(sched2, opt2, metrics, n // 2, n)
    assert head + tail == whole


# -------------------------------------------------------------- ScheduleLR etc.

def test_schedule_lr_sets_schedule_values():
    opt = make_standin("sgd2")
    s0 = schedules.warmup_cosine_decay_schedule(0.0, 0.3, warmup_steps=30, decay_steps=250)
    s1 = schedules.piecewise_constant_schedule(0.05, {100: 0.5, 200: 0.1})
    sched = L.ScheduleLR(opt, [s0, s1])
    lrs, _ = trajectory(opt, sched)
    steps = np.arange(N)
    assert np.array_equal(lrs[:, 0], s0(steps))
    assert np.array_equal(lrs[:, 1], s1(steps))
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(17)  # the closed form is the schedule itself
    assert sched.get_last_lr() == [s0(17), s1(17)]


def test_schedule_lr_drives_torch_optimizer():
    topt = make_torch("sgd")
    s = schedules.FactorScheduler(factor=0.99, stop_factor_lr=1e-3, base_lr=0.2)
    sched = L.ScheduleLR(topt, s)
    lrs, _ = trajectory(topt, sched)
    assert np.array_equal(lrs[:, 0], s(np.arange(N)))


def test_optimizer_step_is_not_wrapped():
    opt = make_standin("sgd")
    before = opt.step
    L.StepLR(opt, step_size=3)
    assert opt.step == before and opt.step.__func__ is StandIn.step
    opt = types.SimpleNamespace(param_groups=[{"lr": 1.0}])  # no step at all
    sched = L.ExponentialLR(opt, gamma=0.5)
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.5


def test_one_cycle_raises_after_total_steps():
    opt = make_standin("sgd")
    sched = L.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    for _ in range(10):
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        sched.step()


def test_initial_lr_and_resume():
    opt = make_standin("sgd")
    opt.param_groups[0]["initial_lr"] = 0.5  # kept, as in torch
    sched = L.StepLR(opt, step_size=2)
    assert sched.base_lrs == [0.5] and sched.last_epoch == 0
    fresh = make_standin("sgd")
    with pytest.raises(KeyError, match="initial_lr"):
        L.StepLR(fresh, step_size=2, last_epoch=5)


# ------------------------------------------------- state dicts shared with torch

FASTOPT = types.SimpleNamespace(lr_scheduler=L, swa_utils=swa_utils)

SWALR_CASES = [
    (dict(swa_lr=0.05), "sgd"),
    (dict(swa_lr=[0.02, 0.01], anneal_epochs=3, anneal_strategy="linear"), "sgd2"),
    (dict(swa_lr=0.001, anneal_epochs=0), "adam"),
    (dict(swa_lr=0.2, anneal_epochs=1, anneal_strategy="cos"), "sgd"),
]


def interchange_cases():
    """Every scheduler class (and SWALR): (id, build(lib, optimizer), kind, metrics)."""
    out = [(f"{c}-{i}", lambda m, o, c=c, k=k: getattr(m.lr_scheduler, c)(o, **k), kind, None)
           for i, (c, k, kind) in enumerate(CASES)]
    out += [(k, lambda m, o, k=k: nested_cases(m.lr_scheduler)[k](o), "sgd", None)
            for k in nested_cases()]
    out += [(f"plateau-{i}", lambda m, o, k=k: m.lr_scheduler.ReduceLROnPlateau(o, **k),
             "sgd2" if isinstance(k.get("min_lr"), list) else "sgd", plateau_metrics(i))
            for i, k in enumerate(PLATEAU_CASES)]
    out += [(f"SWALR-{i}", lambda m, o, k=k: m.swa_utils.SWALR(o, **k), kind, None)
            for i, (k, kind) in enumerate(SWALR_CASES)]
    return out


INTERCHANGE = interchange_cases()


def torch_lib():
    torch = pytest.importorskip("torch")
    return types.SimpleNamespace(lr_scheduler=torch.optim.lr_scheduler,
                                 swa_utils=torch.optim.swa_utils)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("direction", ["fastopt->torch", "torch->fastopt"])
@pytest.mark.parametrize("name, build, kind, metrics", INTERCHANGE, ids=[c[0] for c in INTERCHANGE])
def test_state_dict_interchanges_with_torch(name, build, kind, metrics, direction):
    # A scheduler's state dict (with its optimizer's) loads into the other
    # library's class, and both go on with the same learning rates and momenta.
    libs = {"fastopt": FASTOPT, "torch": torch_lib()}
    source, target = direction.split("->")
    opt = make_torch(kind)
    sched = build(libs[source], opt)
    run(sched, opt, metrics, 0, 5)
    saved_opt, saved = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
    opt2 = make_torch(kind)
    sched2 = build(libs[target], opt2)  # built first, as torch advises, then loaded
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    want = run(sched, opt, metrics, 5, 15)
    got = run(sched2, opt2, metrics, 5, 15)
    np.testing.assert_allclose(np.array(got, float), np.array(want, float), rtol=1e-12, atol=0)
    np.testing.assert_allclose(sched2.get_last_lr(), sched.get_last_lr(), rtol=1e-12, atol=0)


def test_one_cycle_loads_tuple_phases():
    # Earlier fastopt builds stored OneCycleLR's phases as tuples; those state dicts still load.
    opt = make_standin("sgd")
    sched = L.OneCycleLR(opt, max_lr=0.1, total_steps=20)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    phase_keys = ("end_step", "start_lr", "end_lr", "start_momentum", "end_momentum")
    state["_schedule_phases"] = [tuple(p[k] for k in phase_keys) for p in state["_schedule_phases"]]
    opt2 = make_standin("sgd")
    opt2.param_groups[:] = copy.deepcopy(opt.param_groups)
    sched2 = L.OneCycleLR(opt2, max_lr=0.1, total_steps=20)
    sched2.load_state_dict(state)
    assert run(sched2, opt2, None, 4, 14) == run(sched, opt, None, 4, 14)


# ---------------------------------------------------------- tensor learning rates

TENSOR_LR = [
    ("StepLR", dict(step_size=2, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5])),
    ("ExponentialLR", dict(gamma=0.9)),
    ("LinearLR", dict(start_factor=0.25, total_iters=4)),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, cycle_momentum=False)),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=20)),
    ("ReduceLROnPlateau", dict(patience=0, factor=0.5)),
    ("SequentialLR", None),
    ("SWALR", dict(swa_lr=0.02, anneal_epochs=3)),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name, kwargs", TENSOR_LR, ids=[t[0] for t in TENSOR_LR])
def test_tensor_lr_as_in_torch(name, kwargs):
    # torch keeps a tensor lr the same tensor (updated in place), copies it
    # for initial_lr and base_lrs, and hands out copies from get_last_lr().
    torch = pytest.importorskip("torch")
    libs = {"fastopt": FASTOPT, "torch": torch_lib()}
    seen = {}
    for lib_name, lib in libs.items():
        user_lr = torch.tensor(0.1, dtype=torch.float64)
        opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=user_lr, momentum=0.9)
        lr = opt.param_groups[0]["lr"]
        if name == "SWALR":
            sched = lib.swa_utils.SWALR(opt, **kwargs)
        elif name == "SequentialLR":
            m = lib.lr_scheduler
            sched = m.SequentialLR(opt, [m.ConstantLR(opt, factor=0.5, total_iters=2),
                                         m.ExponentialLR(opt, gamma=0.8)], milestones=[3])
        else:
            sched = getattr(lib.lr_scheduler, name)(opt, **kwargs)
        flags, values = [], []
        for t in range(8):
            if t == 4:
                lr.mul_(2.0)  # the user edits the lr in place: the base does not move
            opt.step()
            sched.step(1.0) if name == "ReduceLROnPlateau" else sched.step()
            group = opt.param_groups[0]
            last = sched.get_last_lr()[0]
            initial = group.get("initial_lr")
            bases = getattr(sched, "base_lrs", [])
            flags.append((group["lr"] is lr, type(last).__name__, last is lr,
                          type(initial).__name__, initial is lr,
                          [type(b).__name__ for b in bases], [b is lr for b in bases]))
            values.append([float(group["lr"]), float(last), float(initial or 0)]
                          + [float(b) for b in bases])
        seen[lib_name] = flags, values
    assert seen["fastopt"][0] == seen["torch"][0]
    np.testing.assert_allclose(seen["fastopt"][1], seen["torch"][1], rtol=1e-12, atol=0)
    assert seen["torch"][0][-1][:3] == (True, "Tensor", False)  # what the oracle does


def test_float_lrs_stay_floats():
    opt = fastopt.SGD([np.zeros(3)], lr=0.1, momentum=0.9)
    for sched in (L.StepLR(opt, step_size=1), L.ReduceLROnPlateau(opt, patience=0),
                  swa_utils.SWALR(opt, swa_lr=0.05, anneal_epochs=2)):
        for _ in range(3):
            opt.step([np.ones(3)])
            sched.step(1.0) if isinstance(sched, L.ReduceLROnPlateau) else sched.step()
        assert type(opt.param_groups[0]["lr"]) is float
        assert all(type(v) is float for v in sched.get_last_lr())


# --------------------------------------------------------------------- SWALR

@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("before", [0, 4])
@pytest.mark.parametrize("kwargs, kind", SWALR_CASES, ids=[f"SWALR-{i}" for i in range(4)])
def test_swalr_matches_torch(kwargs, kind, before):
    # Step for step against torch's SWALR, also after epochs of another scheduler.
    torch = pytest.importorskip("torch")

    def trace(opt, lib):
        lrs = []
        if before:
            warm = lib.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
            for _ in range(before):
                opt.step()
                warm.step()
        sched = lib.swa_utils.SWALR(opt, **kwargs)
        for _ in range(12):
            lrs.append([(float(g["lr"]), float(g["swa_lr"])) for g in opt.param_groups])
            assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
            opt.step()
            sched.step()
        return lrs, sched

    want, tsched = trace(make_torch(kind), torch_lib())
    for opt in (make_standin(kind), make_torch(kind)):
        got, fsched = trace(opt, FASTOPT)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
        assert fsched.last_epoch == tsched.last_epoch
        assert sorted(fsched.state_dict()) == sorted(
            k for k in tsched.state_dict() if k != "_get_lr_called_within_step")


def test_swalr_on_fastopt_optimizer():
    w = np.zeros(4)
    opt = fastopt.SGD([w], lr=0.5)
    sched = swa_utils.SWALR(opt, swa_lr=0.1, anneal_epochs=4, anneal_strategy="linear")
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(5):
        opt.step([np.ones(4)])
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    # linear annealing from 0.5 to 0.1 over 4 epochs, then 0.1
    np.testing.assert_allclose(lrs, [0.5, 0.4, 0.3, 0.2, 0.1, 0.1], rtol=1e-12)
    np.testing.assert_allclose(w, -np.sum(lrs[:5]) * np.ones(4), rtol=1e-12)


def test_swalr_bad_arguments():
    with pytest.raises(ValueError, match="anneal_strategy"):
        swa_utils.SWALR(sgd(), swa_lr=0.1, anneal_strategy="exp")
    with pytest.raises(ValueError, match="anneal_epochs"):
        swa_utils.SWALR(sgd(), swa_lr=0.1, anneal_epochs=-1)
    with pytest.raises(ValueError, match="swa_lr must have the same length"):
        swa_utils.SWALR(sgd(), swa_lr=[0.1, 0.2])


# ------------------------------------------------------------------ bad input

def sgd():
    return make_standin("sgd")


BAD = [
    (lambda: L.StepLR(sgd(), step_size=-1), ValueError, "step_size must be >= 1"),
    (lambda: L.StepLR(sgd(), step_size=0), ValueError, "step_size must be >= 1"),
    (lambda: L.StepLR(sgd(), step_size=2.5), TypeError, "step_size must be an int"),
    (lambda: L.StepLR(sgd(), step_size=3, gamma=0), ValueError, "gamma must be > 0"),
    (lambda: L.MultiStepLR(sgd(), [3, 5], gamma=-0.5), ValueError, "gamma must be > 0"),
    (lambda: L.MultiStepLR(sgd(), [3, -5]), ValueError, r"milestones\[1\] must be >= 0"),
    (lambda: L.ExponentialLR(sgd(), gamma=0.0), ValueError, "gamma must be > 0"),
    (lambda: L.CosineAnnealingLR(sgd(), T_max=0), ValueError, "T_max must be >= 1"),
    (lambda: L.CosineAnnealingLR(sgd(), T_max=-3), ValueError, "T_max must be >= 1"),
    (lambda: L.CosineAnnealingWarmRestarts(sgd(), T_0=0), ValueError, "positive integer T_0"),
    (lambda: L.CosineAnnealingWarmRestarts(sgd(), T_0=5, T_mult=0), ValueError, "T_mult >= 1"),
    (lambda: L.OneCycleLR(sgd(), max_lr=0.1), ValueError, "total_steps OR"),
    (lambda: L.OneCycleLR(sgd(), max_lr=0.1, total_steps=0), ValueError, "total_steps"),
    (lambda: L.OneCycleLR(sgd(), max_lr=0.1, total_steps=9, pct_start=1.5), ValueError,
     "pct_start"),
    (lambda: L.OneCycleLR(sgd(), max_lr=0.1, total_steps=9, anneal_strategy="exp"),
     ValueError, "anneal_strategy"),
    (lambda: L.OneCycleLR(StandIn([{"lr": 1.0}], {"lr": 1.0}), max_lr=0.1, total_steps=9),
     ValueError, "momentum or beta1"),
    (lambda: L.SequentialLR(sgd(), [], []), ValueError, "at least one scheduler"),
    (lambda: (lambda o: L.SequentialLR(o, [L.StepLR(o, 3), L.StepLR(o, 4)], [5, 9]))(sgd()),
     ValueError, "one more than the number of milestone"),
    (lambda: (lambda o: L.SequentialLR(o, [L.StepLR(o, 3)] * 3, [9, 5]))(sgd()),
     ValueError, "increasing order"),
    (lambda: L.SequentialLR(sgd(), [L.StepLR(sgd(), 3)], []), ValueError, "same optimizer"),
    (lambda: L.ChainedScheduler([L.ReduceLROnPlateau(sgd())]), ValueError,
     "does not support ReduceLROnPlateau"),
    (lambda: L.ConstantLR(sgd(), factor=1.5), ValueError, "factor"),
    (lambda: L.ConstantLR(sgd(), total_iters=0), ValueError, "total_iters must be >= 1"),
    (lambda: L.LinearLR(sgd(), start_factor=0), ValueError, "Starting multiplicative factor"),
    (lambda: L.LinearLR(sgd(), total_iters=0), ValueError, "total_iters must be >= 1"),
    (lambda: L.PolynomialLR(sgd(), total_iters=-1), ValueError, "total_iters must be >= 1"),
    (lambda: L.CyclicLR(sgd(), 0.01, 0.1, step_size_up=0), ValueError, "step_size_up must be > 0"),
    (lambda: L.CyclicLR(sgd(), 0.01, 0.1, step_size_down=-2), ValueError, "step_size_down"),
    (lambda: L.CyclicLR(sgd(), 0.01, 0.1, mode="sine"), ValueError, "mode is invalid"),
    (lambda: L.CyclicLR(sgd(), [0.01, 0.02], 0.1), ValueError, "base_lr must have the same length"),
    (lambda: L.ReduceLROnPlateau(sgd(), factor=1.0), ValueError, "Factor should be < 1.0"),
    (lambda: L.ReduceLROnPlateau(sgd(), mode="up"), ValueError, "mode 'up' is unknown"),
    (lambda: L.ReduceLROnPlateau(sgd(), threshold_mode="x"), ValueError, "threshold mode"),
    (lambda: L.ReduceLROnPlateau(sgd(), min_lr=[0.1, 0.2]), ValueError, "expected 1 min_lrs"),
    (lambda: L.ReduceLROnPlateau(sgd(), patience=-1), ValueError, "patience must be >= 0"),
    (lambda: L.LambdaLR(sgd(), [decay_97, decay_97]), ValueError, "Expected 1 lr_lambdas"),
    (lambda: L.LambdaLR(sgd(), 0.5), TypeError, "should be a function"),
    (lambda: L.ScheduleLR(sgd(), [schedules.constant_schedule(1.0)] * 2), ValueError,
     "Expected 1 schedules"),
    (lambda: L.StepLR(object(), step_size=3), TypeError, "not an optimizer"),
]


@pytest.mark.parametrize("call, exc, match", BAD, ids=[b[2] for b in BAD])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------- one formula: the classes and fastopt.schedules

ONE_FORMULA = [c for c in CASES if c[0] in ("CyclicLR", "OneCycleLR", "CosineAnnealingWarmRestarts")]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name, kwargs, kind", ONE_FORMULA, ids=[c[0] for c in ONE_FORMULA])
def test_c_formula_classes_match_torch_bit_for_bit(name, kwargs, kind):
    torch = pytest.importorskip("torch")
    topt, fopt = make_torch(kind), make_standin(kind)
    t_lrs, t_moms = trajectory(topt, getattr(torch.optim.lr_scheduler, name)(topt, **kwargs))
    f_lrs, f_moms = trajectory(fopt, getattr(L, name)(fopt, **kwargs))
    assert f_lrs.tobytes() == t_lrs.tobytes()
    assert f_moms.tobytes() == t_moms.tobytes()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_warm_restarts_fractional_epochs_match_torch_bit_for_bit():
    torch = pytest.importorskip("torch")
    epochs = [0.5, 1.25, 3.0, 6.75, 7.0, 20.5, 2.0, 44.125]
    got = {}
    for lib, opt in (("torch", make_torch("sgd")), ("fastopt", make_standin("sgd"))):
        mod = torch.optim.lr_scheduler if lib == "torch" else L
        sched = mod.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.01)
        lrs = []
        for e in epochs:
            sched.step(e)
            sched.step()  # and on from there, by one
            lrs.append(float(opt.param_groups[0]["lr"]))
        got[lib] = lrs
    assert got["fastopt"] == got["torch"]


def _class_lrs(cls, n, **kwargs):
    opt = StandIn([{"lr": 0.1, "momentum": 0.9}], {"lr": 0.1, "momentum": 0.9})
    sched = cls(opt, **kwargs)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(n - 1):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("mode, gamma", [("triangular", 1.0), ("triangular2", 1.0),
                                         ("exp_range", 0.995)])
def test_cyclic_class_equals_schedule(mode, gamma):
    kw = dict(base_lr=0.003, max_lr=0.07, step_size_up=7, step_size_down=13, mode=mode,
              gamma=gamma)
    want = schedules.cyclic_schedule(**kw)(np.arange(N))
    assert _class_lrs(L.CyclicLR, N, **kw) == want.tolist()


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_class_equals_schedule(strategy, three_phase):
    kw = dict(max_lr=0.4, total_steps=N, pct_start=0.35, anneal_strategy=strategy,
              div_factor=20.0, final_div_factor=50.0, three_phase=three_phase)
    want = schedules.one_cycle_schedule(**kw)(np.arange(N))
    assert _class_lrs(L.OneCycleLR, N, **kw) == want.tolist()


def test_warm_restarts_class_equals_schedule():
    want = schedules.cosine_restarts_schedule(0.1, T_0=5, T_mult=3, eta_min=0.002)(np.arange(N))
    assert _class_lrs(L.CosineAnnealingWarmRestarts, N, T_0=5, T_mult=3,
                      eta_min=0.002) == want.tolist()


def test_one_cycle_empty_phase_divides_by_zero_as_torch():
    torch = pytest.importorskip("torch")
    for mod, opt in ((torch.optim.lr_scheduler, make_torch("sgd")), (L, make_standin("sgd"))):
        with pytest.raises(ZeroDivisionError):
            mod.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=0.1)

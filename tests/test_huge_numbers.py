"""Python ints past what a C double or int64 holds are a TypeError/ValueError
(never OverflowError) wherever a public argument becomes one, and a call that
refuses one changes nothing."""
import inspect
import warnings

import numpy as np
import pytest

import fastopt
from fastopt import lr_scheduler as L
from fastopt import schedules as S
from conftest import OPTIMIZERS, TORCH_DENSE, assert_bitwise, assert_unchanged, snapshot

HUGE = [10**400, -10**400, 2**63, 2**64]
PAST_FLOAT = {10**400, -10**400}  # no float64 holds these


def outcome(call):
    """'ok', or the exception type for TypeError/ValueError; anything else fails."""
    try:
        call()
    except (TypeError, ValueError) as e:
        return type(e)
    return "ok"


def check(call, value, must_raise):
    got = outcome(call)
    if must_raise:
        assert got is ValueError, f"{value!r:.20}: expected ValueError, got {got}"


# ---------------------------------------------------------------- schedules
# factory, valid keyword arguments, {argument: "float" | "int64"}

SCHEDULES = [
    (S.FactorScheduler, dict(factor=0.9), dict(factor="float", stop_factor_lr="float",
                                                base_lr="float")),
    (S.MultiFactorScheduler, dict(step=[2, 5]), dict(factor="float", base_lr="float")),
    (S.CosineScheduler, dict(max_update=20, warmup_steps=2),
     dict(max_update="int64", base_lr="float", final_lr="float", warmup_steps="int64",
          warmup_begin_lr="float")),
    (S.SquareRootScheduler, dict(), dict(lr="float")),
    (S.constant_schedule, dict(value=1.0), dict(value="float")),
    (S.linear_schedule, dict(init_value=1.0, end_value=0.0, transition_steps=10),
     dict(init_value="float", end_value="float", transition_steps="int64",
          transition_begin="int64")),
    (S.polynomial_schedule, dict(init_value=1.0, end_value=0.0, power=2.0, transition_steps=10),
     dict(init_value="float", end_value="float", power="float", transition_steps="int64",
          transition_begin="int64")),
    (S.exponential_decay, dict(init_value=1.0, transition_steps=10, decay_rate=0.5, end_value=0.1),
     dict(init_value="float", transition_steps="int64", decay_rate="float",
          transition_begin="int64", end_value="float")),
    (S.cosine_decay_schedule, dict(init_value=1.0, decay_steps=10),
     dict(init_value="float", decay_steps="int64", alpha="float", exponent="float")),
    (S.warmup_cosine_decay_schedule, dict(init_value=0.0, peak_value=1.0, warmup_steps=2,
                                          decay_steps=10),
     dict(init_value="float", peak_value="float", warmup_steps="int64", decay_steps="int64",
          end_value="float", exponent="float")),
    (S.piecewise_constant_schedule, dict(init_value=1.0), dict(init_value="float")),
    (S.cosine_restarts_schedule, dict(init_value=1.0, T_0=5),
     dict(init_value="float", T_0="int64", T_mult="int64", eta_min="float")),
    (S.cyclic_schedule, dict(base_lr=0.1, max_lr=1.0),
     dict(base_lr="float", max_lr="float", step_size_up="float", step_size_down="float",
          gamma="float")),
    (S.one_cycle_schedule, dict(max_lr=1.0, total_steps=10),
     dict(max_lr="float", total_steps="int64", pct_start="float", div_factor="float",
          final_div_factor="float")),
]
SCHEDULE_ARGS = [pytest.param(f, kw, arg, kind, id=f"{f.__name__}-{arg}")
                 for f, kw, args in SCHEDULES for arg, kind in args.items()]


@pytest.mark.parametrize("value", HUGE, ids=["1e400", "-1e400", "2**63", "2**64"])
@pytest.mark.parametrize("factory, kwargs, arg, kind", SCHEDULE_ARGS)
def test_schedule_arguments(factory, kwargs, arg, kind, value):
    def build():
        s = factory(**dict(kwargs, **{arg: value}))
        s(np.arange(12))
        s(11)
    check(build, value, value in PAST_FLOAT or kind == "int64" and value >= 2**63)


@pytest.mark.parametrize("value", HUGE, ids=["1e400", "-1e400", "2**63", "2**64"])
def test_schedule_list_arguments(value):
    check(lambda: S.MultiFactorScheduler(step=[1, value]), value, True)
    check(lambda: S.piecewise_constant_schedule(1.0, {value: 0.5}), value, True)
    check(lambda: S.piecewise_constant_schedule(1.0, {5: value}), value, value in PAST_FLOAT)
    parts = [S.constant_schedule(1.0), S.constant_schedule(2.0)]
    check(lambda: S.join_schedules(parts, [value]), value, True)


@pytest.mark.parametrize("value", HUGE + [-1], ids=["1e400", "-1e400", "2**63", "2**64", "-1"])
def test_schedule_steps(value):
    s = S.linear_schedule(1.0, 0.0, 10)
    for steps in (value, [3, value], [[1], [value]], np.array(value, dtype=object)):
        with pytest.raises(ValueError, match="step"):
            s(steps)
    with pytest.raises(ValueError, match="step"):
        s.fill(value, np.empty(3))


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_schedule_step_dtypes(dtype):
    """Every integer dtype that fits int64 gives the values of Python ints;
    uint64 (which does not) is a TypeError, whatever its values."""
    s = S.cosine_decay_schedule(1.0, 100)
    info = np.iinfo(dtype)
    steps = np.array([0, 1, 50, min(info.max, 2**63 - 1)], dtype)
    if dtype == np.uint64:
        with pytest.raises(TypeError, match="integer dtype"):
            s(steps)
        return
    np.testing.assert_array_equal(s(steps), [s(int(t)) for t in steps])
    if info.min < 0:
        with pytest.raises(ValueError, match=">= 0"):
            s(np.array([3, info.min], dtype))


# --------------------------------------------------------------- clipping

@pytest.mark.parametrize("value", HUGE, ids=["1e400", "-1e400", "2**63", "2**64"])
@pytest.mark.parametrize("call", [
    lambda g, v: fastopt.clip_grad_norm_(g, v),
    lambda g, v: fastopt.clip_grad_norm_(g, 1.0, v),
    lambda g, v: fastopt.clip_grad_value_(g, v),
], ids=["max_norm", "norm_type", "clip_value"])
def test_clip_arguments(call, value):
    grads = [np.linspace(-3, 3, 7), np.arange(5.0)]
    before = [g.copy() for g in grads]
    got = outcome(lambda: call(grads, value))
    if value in PAST_FLOAT:
        assert got is ValueError
        for g, b in zip(grads, before):
            assert_bitwise(g, b)


# ------------------------------------------------------------- optimizers

def numeric_hyperparameters(cls):
    """(name, default) of each number argument of an optimizer class that a
    param group holds; betas become beta1, beta2 (and beta3 for Adan's three).
    ``seed`` is the optimizer's, not a group's (tests/test_master_weights.py)."""
    out = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "seed":
            continue
        if name == "betas":
            out += [(f"beta{k + 1}", None) for k in range(len(p.default))]
        elif type(p.default) in (int, float):
            out.append((name, p.default))
    return out


def with_value(group, name, value, betas=(0.9, 0.999)):
    """group with hyperparameter `name` set to value; `betas` when the group has none."""
    group = dict(group)
    if name.startswith("beta"):
        betas = list(group.get("betas", betas))
        betas[int(name[4:]) - 1] = value
        group["betas"] = tuple(betas)
    else:
        group[name] = value
    return group


HYPER_CASES = [pytest.param(o, name, id=f"{o.name}-{name}")
               for o in OPTIMIZERS for name, _ in numeric_hyperparameters(o.cls)]
TORCH_HYPER_CASES = [case for case in HYPER_CASES if case.values[0] in TORCH_DENSE]


@pytest.mark.parametrize("value", HUGE, ids=["1e400", "-1e400", "2**63", "2**64"])
@pytest.mark.parametrize("opt, name", HYPER_CASES)
def test_optimizer_hyperparameters(opt, name, value):
    params = [np.linspace(-1, 1, 9), np.ones(4)]
    before = [p.copy() for p in params]
    grads = [np.full(9, 0.5), np.full(4, -0.25)]
    # the constructor
    betas = opt.spec.defaults.get("betas", (0.9, 0.999))
    got = outcome(lambda: opt.cls(params, **with_value({}, name, value, betas)).step(grads))
    if value in PAST_FLOAT:
        assert got is ValueError
    if got != "ok":
        for p, b in zip(params, before):
            assert_bitwise(p, b)
    # a param group edited between steps: the next step refuses it, changing nothing
    o = opt.cls([p.copy() for p in before])
    o.step(grads)
    o.param_groups[0].update(with_value(o.param_groups[0], name, value))
    snap = snapshot(o)
    got = outcome(lambda: o.step(grads))
    if value in PAST_FLOAT:
        assert got is ValueError
    if got != "ok":
        assert_unchanged(o, snap)


@pytest.mark.parametrize("value", HUGE, ids=["1e400", "-1e400", "2**63", "2**64"])
def test_functional_step_count(value):
    p, g, buf = np.ones(3), np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match="step"):
        fastopt.functional.sgd_(p, g, buf, step=value, momentum=0.9)
    assert_bitwise(p, np.ones(3))


@pytest.mark.parametrize("value", HUGE, ids=["1e400", "-1e400", "2**63", "2**64"])
def test_state_dict_step(value):
    o = fastopt.Adam([np.ones(3)])
    o.step([np.ones(3)])
    sd = o.state_dict()
    sd["state"][0]["step"] = value
    with pytest.raises(ValueError, match="step"):
        o.load_state_dict(sd)


@pytest.mark.parametrize("value", HUGE, ids=["1e400", "-1e400", "2**63", "2**64"])
@pytest.mark.parametrize("opt, name", TORCH_HYPER_CASES)
def test_torch_hyperparameters(opt, name, value):
    torch = pytest.importorskip("torch")
    import fastopt.torch as ft

    p = torch.nn.Parameter(torch.linspace(-1, 1, 9, dtype=torch.float64))
    before = p.detach().clone()

    def run():
        o = getattr(ft, opt.name)([p], **with_value({}, name, value,
                                                     opt.spec.defaults.get("betas", (0.9, 0.999))))
        p.grad = torch.full_like(p, 0.5)
        o.step()

    got = outcome(run)
    if value in PAST_FLOAT:
        assert got is ValueError
    if got != "ok":
        assert torch.equal(p.detach(), before)


# ---------------------------------------------------------- lr_scheduler

SCHEDULERS = {
    "StepLR": dict(step_size=3), "MultiStepLR": dict(milestones=[2, 5]), "ConstantLR": dict(),
    "LinearLR": dict(), "ExponentialLR": dict(gamma=0.9), "PolynomialLR": dict(),
    "CosineAnnealingLR": dict(T_max=10), "CosineAnnealingWarmRestarts": dict(T_0=5),
    "CyclicLR": dict(base_lr=0.01, max_lr=0.1), "OneCycleLR": dict(max_lr=0.1, total_steps=100),
    "ReduceLROnPlateau": dict(),
}
SCHEDULER_ARGS = [
    pytest.param(name, arg, id=f"{name}-{arg}")
    for name in SCHEDULERS
    for arg, p in inspect.signature(getattr(L, name).__init__).parameters.items()
    if arg not in ("self", "optimizer", "last_epoch")
    and (type(p.default) in (int, float) or arg in SCHEDULERS[name])
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("value", HUGE, ids=["1e400", "-1e400", "2**63", "2**64"])
@pytest.mark.parametrize("name, arg", SCHEDULER_ARGS)
def test_scheduler_arguments(name, arg, value):
    def run():
        opt = fastopt.SGD([np.zeros(3)], lr=0.1, momentum=0.9)
        kwargs = dict(SCHEDULERS[name], **{arg: [value] if arg == "milestones" else value})
        sched = getattr(L, name)(opt, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(3):
                opt.step([np.ones(3)])
                sched.step(1.0) if name == "ReduceLROnPlateau" else sched.step()

    outcome(run)  # never OverflowError (nor anything but TypeError/ValueError)

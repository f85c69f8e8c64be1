"""fastopt.schedules: the d2l.ai book's definitions, optax's formulas and
torch's closed forms; scalar and array evaluation agree bit for bit."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_isolated
from fastopt import schedules as S

N = 300
STEPS = np.arange(N)


# ------------------------------------------- the d2l.ai book's schedulers
# ("Learning Rate Scheduling"): stateful objects, called with 0, 1, 2, ...

class BookSquareRoot:
    def __init__(self, lr=0.1):
        self.lr = lr

    def __call__(self, num_update):
        return self.lr * pow(num_update + 1.0, -0.5)


class BookFactor:
    def __init__(self, factor=1, stop_factor_lr=1e-7, base_lr=0.1):
        self.factor = factor
        self.stop_factor_lr = stop_factor_lr
        self.base_lr = base_lr

    def __call__(self, num_update):
        self.base_lr = max(self.stop_factor_lr, self.base_lr * self.factor)
        return self.base_lr


class BookCosine:
    def __init__(self, max_update, base_lr=0.01, final_lr=0, warmup_steps=0, warmup_begin_lr=0):
        self.base_lr_orig = base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.warmup_steps = warmup_steps
        self.warmup_begin_lr = warmup_begin_lr
        self.max_steps = self.max_update - self.warmup_steps

    def get_warmup_lr(self, epoch):
        increase = ((self.base_lr_orig - self.warmup_begin_lr)
                    * float(epoch) / float(self.warmup_steps))
        return self.warmup_begin_lr + increase

    def __call__(self, epoch):
        if epoch < self.warmup_steps:
            return self.get_warmup_lr(epoch)
        if epoch <= self.max_update:
            self.base_lr = self.final_lr + (self.base_lr_orig - self.final_lr) * (
                1 + math.cos(math.pi * (epoch - self.warmup_steps) / self.max_steps)) / 2
        return self.base_lr


class BookMultiFactor:
    """API.md's definition: base_lr * factor^k, k = number of milestones <= t."""

    def __init__(self, step, factor=1, base_lr=0.1):
        self.step, self.factor, self.base_lr = step, factor, base_lr

    def __call__(self, t):
        return self.base_lr * self.factor ** sum(s <= t for s in self.step)


D2L = [
    ("FactorScheduler", dict(factor=0.9, stop_factor_lr=1e-2, base_lr=2.0)),
    ("FactorScheduler", dict()),
    ("FactorScheduler", dict(factor=0.99, stop_factor_lr=1e-7, base_lr=0.1)),
    ("FactorScheduler", dict(factor=1.1, stop_factor_lr=0.5, base_lr=0.1)),
    ("FactorScheduler", dict(factor=1.02, stop_factor_lr=1e-3, base_lr=0.1)),
    ("MultiFactorScheduler", dict(step=[15, 30], factor=0.5, base_lr=0.5)),
    ("MultiFactorScheduler", dict(step=[0, 1, 100, 299, 1000], factor=0.9)),
    ("CosineScheduler", dict(max_update=20, base_lr=0.3, final_lr=0.01)),
    ("CosineScheduler", dict(max_update=250, base_lr=0.5, final_lr=0.02, warmup_steps=30,
                             warmup_begin_lr=0.001)),
    ("CosineScheduler", dict(max_update=100, warmup_steps=99, base_lr=1.0)),
    ("SquareRootScheduler", dict(lr=0.1)),
    ("SquareRootScheduler", dict(lr=3.0)),
]
BOOK = {"FactorScheduler": BookFactor, "MultiFactorScheduler": BookMultiFactor,
        "CosineScheduler": BookCosine, "SquareRootScheduler": BookSquareRoot}


@pytest.mark.parametrize("name, kwargs", D2L, ids=[f"{n}-{i}" for i, (n, _) in enumerate(D2L)])
def test_d2l_equals_book(name, kwargs):
    sched = getattr(S, name)(**kwargs)
    book = BOOK[name](**kwargs)
    want = [book(t) for t in range(N)]
    np.testing.assert_allclose(sched(STEPS), want, rtol=1e-12, atol=0)
    assert isinstance(sched, S.Schedule) and repr(sched).startswith(name)


# --------------------------------------------------- optax's formulas

def ref_polynomial(I, E, P, T, B=0):
    B = max(B, 0)

    def f(t):
        if T <= 0 or t < B:
            return I
        if t >= B + T:
            return E
        return (I - E) * (1 - (t - B) / T) ** P + E
    return f


def ref_linear(I, E, T, B=0):
    B = max(B, 0)

    def f(t):
        if T <= 0 or t < B:
            return I
        return E if t >= B + T else I + (t - B) / T * (E - I)
    return f


def ref_exponential(I, T, r, B=0, staircase=False, end=None):
    B = max(B, 0)

    def f(t):
        if T <= 0 or r == 0:
            return I
        v = I
        if t > B:
            p = (t - B) / T
            v = I * r ** (math.floor(p) if staircase else p)
        if end is not None:
            v = max(v, end) if r < 1 else min(v, end)
        return v
    return f


def ref_cosine(I, T, alpha=0.0, p=1.0):
    def f(t):
        if t > T:
            return alpha * I
        return alpha * I + (1 - alpha) * I * (0.5 * (1 + math.cos(math.pi * t / T))) ** p
    return f


def ref_warmup_cosine(I, peak, W, D, end=0.0, p=1.0):
    decay = ref_cosine(peak, D - W, 0.0 if peak == 0 else end / peak, p)
    return lambda t: I + (peak - I) * t / W if t < W else decay(t - W)


def ref_piecewise(I, bs=None):
    return lambda t: I * math.prod(s for b, s in (bs or {}).items() if b <= t)


def ref_join(fns, bounds):
    def f(t):
        k = sum(b <= t for b in bounds)
        return fns[k](t - (bounds[k - 1] if k else 0))
    return f


# --------------------------------------------------- torch's closed forms

def ref_restarts(I, T_0, T_mult=1, eta_min=0.0):
    def f(t):
        T_i, T_cur = T_0, t
        while T_cur >= T_i:
            T_cur, T_i = T_cur - T_i, T_i * T_mult
        return eta_min + (I - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2
    return f


def ref_cyclic(lo, hi, up=2000, down=None, mode="triangular", gamma=1.0):
    down = up if down is None else down

    def f(t):
        cycle = 1 + t // (up + down)
        into = t - (cycle - 1) * (up + down)
        h = into / up if into <= up else (up + down - into) / down
        g = {"triangular": 1.0, "triangular2": 0.5 ** (cycle - 1), "exp_range": gamma ** t}[mode]
        return lo + (hi - lo) * h * g
    return f


def ref_one_cycle(peak, T, pct=0.3, strategy="cos", div=25.0, final_div=1e4, three=False):
    lo = peak / div
    end = lo / final_div
    a1, a2 = pct * T - 1, 2 * pct * T - 2
    if three:
        phases = [(0, a1, lo, peak), (a1, a2, peak, lo), (a2, T - 1, lo, end)]
    else:
        phases = [(0, a1, lo, peak), (a1, T - 1, peak, end)]

    def f(t):
        t = min(t, T - 1)
        s0, s1, v0, v1 = next(ph for ph in phases if t <= ph[1] or ph is phases[-1])
        q = (t - s0) / (s1 - s0)
        if strategy == "linear":
            return v0 + (v1 - v0) * q
        return v1 + (v0 - v1) * (1 + math.cos(math.pi * q)) / 2
    return f


# (id, schedule, closed-form reference)
CASES = [
    ("constant", S.constant_schedule(0.3), lambda t: 0.3),
    ("linear", S.linear_schedule(1.0, 0.01, 100), ref_linear(1.0, 0.01, 100)),
    ("linear-begin", S.linear_schedule(0.0, 2.0, 250, transition_begin=20),
     ref_linear(0.0, 2.0, 250, 20)),
    ("linear-off", S.linear_schedule(1.0, 0.5, 0), ref_linear(1.0, 0.5, 0)),
    ("linear-negbegin", S.linear_schedule(1.0, 0.5, 10, -5), ref_linear(1.0, 0.5, 10, -5)),
    ("poly", S.polynomial_schedule(1.0, 0.01, 2, 100), ref_polynomial(1.0, 0.01, 2, 100)),
    ("poly-begin", S.polynomial_schedule(0.5, 0.0, 0.7, 200, 50),
     ref_polynomial(0.5, 0.0, 0.7, 200, 50)),
    ("exp", S.exponential_decay(1.0, 10, 0.9), ref_exponential(1.0, 10, 0.9)),
    ("exp-stair", S.exponential_decay(1.0, 25, 0.5, 10, staircase=True),
     ref_exponential(1.0, 25, 0.5, 10, True)),
    ("exp-end", S.exponential_decay(1.0, 5, 0.9, end_value=0.1),
     ref_exponential(1.0, 5, 0.9, end=0.1)),
    ("exp-grow", S.exponential_decay(0.01, 20, 1.5, 30, end_value=2.0),
     ref_exponential(0.01, 20, 1.5, 30, end=2.0)),
    ("exp-zero-rate", S.exponential_decay(0.7, 5, 0.0, end_value=1.0),
     ref_exponential(0.7, 5, 0.0, end=1.0)),
    ("cosine", S.cosine_decay_schedule(1.0, 200), ref_cosine(1.0, 200)),
    ("cosine-alpha", S.cosine_decay_schedule(0.5, 150, alpha=0.1, exponent=2.0),
     ref_cosine(0.5, 150, 0.1, 2.0)),
    ("warmup-cosine", S.warmup_cosine_decay_schedule(0.0, 1.0, 50, 250, end_value=0.05),
     ref_warmup_cosine(0.0, 1.0, 50, 250, 0.05)),
    ("warmup-cosine-0", S.warmup_cosine_decay_schedule(0.1, 0.5, 0, 300, exponent=0.5),
     ref_warmup_cosine(0.1, 0.5, 0, 300, 0.0, 0.5)),
    ("piecewise", S.piecewise_constant_schedule(1.0, {100: 0.1, 200: 0.5, 30: 2.0}),
     ref_piecewise(1.0, {100: 0.1, 200: 0.5, 30: 2.0})),
    ("piecewise-none", S.piecewise_constant_schedule(0.25), ref_piecewise(0.25)),
    ("join", S.join_schedules([S.linear_schedule(0.0, 1.0, 20), S.cosine_decay_schedule(1.0, 100),
                               S.constant_schedule(0.05)], [20, 120]),
     ref_join([ref_linear(0.0, 1.0, 20), ref_cosine(1.0, 100), lambda t: 0.05], [20, 120])),
    ("join-nested", S.join_schedules(
        [S.SquareRootScheduler(0.5),
         S.join_schedules([S.constant_schedule(0.2), S.exponential_decay(0.2, 7, 0.8)], [10])],
        [100]),
     ref_join([BookSquareRoot(0.5), ref_join([lambda t: 0.2, ref_exponential(0.2, 7, 0.8)], [10])],
              [100])),
    ("restarts", S.cosine_restarts_schedule(0.1, 10), ref_restarts(0.1, 10)),
    ("restarts-mult", S.cosine_restarts_schedule(0.1, 7, 2, 0.001), ref_restarts(0.1, 7, 2, 0.001)),
    ("cyclic", S.cyclic_schedule(0.001, 0.1, 20), ref_cyclic(0.001, 0.1, 20)),
    ("cyclic2", S.cyclic_schedule(0.001, 0.1, 15, 35, "triangular2"),
     ref_cyclic(0.001, 0.1, 15, 35, "triangular2")),
    ("cyclic-exp", S.cyclic_schedule(0.001, 0.01, 10, mode="exp_range", gamma=0.99),
     ref_cyclic(0.001, 0.01, 10, mode="exp_range", gamma=0.99)),
    ("onecycle", S.one_cycle_schedule(0.1, 300), ref_one_cycle(0.1, 300)),
    ("onecycle-lin3", S.one_cycle_schedule(0.5, 200, 0.25, "linear", 10.0, 100.0, True),
     ref_one_cycle(0.5, 200, 0.25, "linear", 10.0, 100.0, True)),
    ("onecycle-cos3", S.one_cycle_schedule(0.5, 320, three_phase=True),
     ref_one_cycle(0.5, 320, three=True)),
] + [(f"d2l-{n}-{i}", getattr(S, n)(**kw), None) for i, (n, kw) in enumerate(D2L)]
REF_CASES = [c for c in CASES if c[2] is not None]


@pytest.mark.parametrize("name, sched, ref", REF_CASES, ids=[c[0] for c in REF_CASES])
def test_closed_form(name, sched, ref):
    want = [ref(t) for t in range(N)]
    scale = max(abs(w) for w in want)
    np.testing.assert_allclose(sched(STEPS), want, rtol=1e-12, atol=1e-15 * scale)


@pytest.mark.parametrize("name, sched, ref", CASES, ids=[c[0] for c in CASES])
def test_scalar_and_array_agree_exactly(name, sched, ref):
    steps = np.array([0, 1, 2, 7, 99, 100, 101, 150, 299, 300, 1000, 123456, 2**31 - 1,
                      2**40, 2**62, 2**63 - 1], dtype=np.int64)
    scalar = np.array([sched(int(t)) for t in steps])
    assert all(isinstance(sched(int(t)), float) for t in steps[:3])
    assert np.array_equal(sched(steps), scalar, equal_nan=True)
    assert np.array_equal(sched(np.int64(7)), scalar[3])
    grid = STEPS.reshape(3, 10, 10)
    for dtype in (np.int32, np.int64, np.uint16):
        out = sched(grid.astype(dtype))
        assert out.dtype == np.float64 and out.shape == grid.shape
        assert np.array_equal(out.ravel(), [sched(int(t)) for t in STEPS])
    assert np.array_equal(sched(list(range(5))), sched(np.arange(5)))
    filled = np.empty(N)
    sched.fill(0, filled)
    assert np.array_equal(filled, sched(STEPS))
    sched.fill(250, filled[:40])
    assert np.array_equal(filled[:40], sched(np.arange(250, 290)))


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=40),
       which=st.sampled_from(range(len(CASES))))
def test_scalar_and_array_agree_hypothesis(steps, which):
    sched = CASES[which][1]
    assert np.array_equal(sched(np.array(steps, dtype=np.int64)),
                          [sched(t) for t in steps], equal_nan=True)


@settings(max_examples=80, deadline=None)
@given(init=st.floats(-10, 10), end=st.floats(-10, 10), power=st.floats(0.1, 4),
       T=st.integers(-3, 500), B=st.integers(-10, 100), t=st.integers(0, 2000))
def test_polynomial_and_linear_hypothesis(init, end, power, T, B, t):
    p = S.polynomial_schedule(init, end, power, T, B)(t)
    assert p == pytest.approx(ref_polynomial(init, end, power, T, B)(t), rel=1e-12, abs=1e-12)
    lin = S.linear_schedule(init, end, T, B)(t)
    assert lin == pytest.approx(ref_linear(init, end, T, B)(t), rel=1e-12, abs=1e-12)
    assert lin == S.polynomial_schedule(init, end, 1.0, T, B)(t)  # optax: the same function


@settings(max_examples=80, deadline=None)
@given(init=st.floats(1e-3, 10), T=st.integers(-2, 50), rate=st.floats(0.0, 2.0),
       B=st.integers(-5, 50), stair=st.booleans(), end=st.none() | st.floats(1e-4, 5),
       t=st.integers(0, 500))
def test_exponential_hypothesis(init, T, rate, B, stair, end, t):
    got = S.exponential_decay(init, T, rate, B, stair, end)(t)
    assert got == pytest.approx(ref_exponential(init, T, rate, B, stair, end)(t), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(T_0=st.integers(1, 20), T_mult=st.integers(1, 4), t=st.integers(0, 10**6))
def test_restarts_hypothesis(T_0, T_mult, t):
    got = S.cosine_restarts_schedule(1.0, T_0, T_mult)(t)
    assert got == pytest.approx(ref_restarts(1.0, T_0, T_mult)(t), rel=1e-12, abs=1e-15)


TORCH_CLOSED_FORMS = [
    (S.cosine_restarts_schedule(0.1, 7, 2, 0.001),
     "CosineAnnealingWarmRestarts", dict(T_0=7, T_mult=2, eta_min=0.001)),
    (S.cyclic_schedule(0.1, 1.0, 15, 35, "triangular2"),
     "CyclicLR", dict(base_lr=0.1, max_lr=1.0, step_size_up=15, step_size_down=35,
                      mode="triangular2")),
    (S.cyclic_schedule(0.1, 1.0, 10, mode="exp_range", gamma=0.995),
     "CyclicLR", dict(base_lr=0.1, max_lr=1.0, step_size_up=10, mode="exp_range", gamma=0.995)),
    (S.one_cycle_schedule(1.0, 301, 0.25, three_phase=True),
     "OneCycleLR", dict(max_lr=1.0, total_steps=301, pct_start=0.25, three_phase=True)),
    (S.one_cycle_schedule(1.0, 301, anneal_strategy="linear"),
     "OneCycleLR", dict(max_lr=1.0, total_steps=301, anneal_strategy="linear")),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("sched, name, kwargs", TORCH_CLOSED_FORMS,
                         ids=[c[1] for c in TORCH_CLOSED_FORMS])
def test_torch_closed_forms_match_torch(sched, name, kwargs):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    tsched = getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
    want = []
    for _ in range(N):
        want.append(tsched.get_last_lr()[0])
        opt.step()
        tsched.step()
    np.testing.assert_allclose(sched(STEPS), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("bounds", [[10, 5], [5, 5], [0, 7], [20, 3]])
def test_join_boundaries_in_optax_order(bounds):
    """optax applies each boundary in turn, in the order given."""
    parts = [S.constant_schedule(1.0), S.linear_schedule(2.0, 0.0, 8),
             S.SquareRootScheduler(3.0)]
    s = S.join_schedules(parts, bounds)
    for t in range(30):
        want = parts[0](t)
        for b, part in zip(bounds, parts[1:]):
            want = want if t < b else part(t - b)
        assert s(t) == want


def test_schedule_is_pure():
    s = S.FactorScheduler(factor=0.5, base_lr=1.0)
    assert [s(3), s(0), s(3)] == [0.0625, 0.5, 0.0625]


# ------------------------------------------------------------------ bad input

BAD = [
    (lambda: S.FactorScheduler(factor=0), ValueError, "factor must be > 0"),
    (lambda: S.FactorScheduler(factor=-0.5), ValueError, "factor must be > 0"),
    (lambda: S.MultiFactorScheduler(step=[5, 3]), ValueError, "strictly increasing"),
    (lambda: S.MultiFactorScheduler(step=[-1, 3]), ValueError, r"step\[0\] must be >= 0"),
    (lambda: S.MultiFactorScheduler(step=[1], factor=0), ValueError, "factor must be > 0"),
    (lambda: S.CosineScheduler(10, warmup_steps=10), ValueError, "must be > warmup_steps"),
    (lambda: S.CosineScheduler(10, warmup_steps=-1), ValueError, "warmup_steps must be >= 0"),
    (lambda: S.CosineScheduler(10.5), TypeError, "max_update must be an int"),
    (lambda: S.cosine_decay_schedule(1.0, 0), ValueError, "decay_steps must be >= 1"),
    (lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10), ValueError,
     r"decay_steps \(10\) must be > warmup_steps"),
    (lambda: S.piecewise_constant_schedule(1.0, {5: -0.1}), ValueError, "scales must be >= 0"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 2, [1, 2]), ValueError,
     "one boundary fewer"),
    (lambda: S.join_schedules([], []), ValueError, "one boundary fewer"),
    (lambda: S.join_schedules([lambda t: 1.0], []), TypeError, "must be a fastopt"),
    (lambda: S.linear_schedule(1.0, 0.0, 2.5), TypeError, "transition_steps must be an int"),
    (lambda: S.constant_schedule("a"), TypeError, "value must be a real number"),
    (lambda: S.cyclic_schedule(0.1, 1.0, 0), ValueError, "step_size_up must be > 0"),
    (lambda: S.cyclic_schedule(0.1, 1.0, 5, -1), ValueError, "step_size_down must be >= 0"),
    (lambda: S.cyclic_schedule(0.1, 1.0, mode="sin"), ValueError, "mode must be"),
    (lambda: S.one_cycle_schedule(1.0, 0), ValueError, "total_steps must be >= 1"),
    (lambda: S.one_cycle_schedule(1.0, 10, pct_start=1.5), ValueError, "pct_start"),
    (lambda: S.one_cycle_schedule(1.0, 10, anneal_strategy="x"), ValueError, "anneal_strategy"),
    (lambda: S.one_cycle_schedule(1.0, 10, div_factor=0), ValueError, "div_factor must be > 0"),
    (lambda: S.cosine_restarts_schedule(1.0, 0), ValueError, "T_0 must be >= 1"),
    (lambda: S.cosine_restarts_schedule(1.0, 5, 0), ValueError, "T_mult must be >= 1"),
    # calls
    (lambda: S.constant_schedule(1.0)(-1), ValueError, "step must be in"),
    (lambda: S.constant_schedule(1.0)(2**63), ValueError, "step must be in"),
    (lambda: S.constant_schedule(1.0)(1.5), TypeError, "step must be an int"),
    (lambda: S.constant_schedule(1.0)(np.array([1, -2])), ValueError, "steps must be >= 0"),
    (lambda: S.constant_schedule(1.0)(np.array([1.0])), TypeError, "integer dtype"),
    (lambda: S.constant_schedule(1.0)(np.array([1], np.uint64)), TypeError, "integer dtype"),
    (lambda: S.constant_schedule(1.0).fill(0, np.empty(3, np.float32)), TypeError, "float64"),
    (lambda: S.constant_schedule(1.0).fill(-1, np.empty(3)), ValueError, "step must be in"),
    (lambda: S.constant_schedule(1.0).fill(2**63 - 2, np.empty(3)), ValueError, "fit int64"),
]


@pytest.mark.parametrize("call, exc, match", BAD, ids=[b[2] for b in BAD])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_empty_arrays():
    s = S.cosine_decay_schedule(1.0, 10)
    for shape in [(0,), (2, 0)]:
        out = s(np.zeros(shape, np.int32))
        assert out.shape == shape and out.dtype == np.float64
    s.fill(0, np.empty(0))


@pytest.mark.slow
def test_plot_example(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "examples" / "plot_schedules.py"
    if not path.exists():
        pytest.skip("needs a source tree (examples/)")
    spec = importlib.util.spec_from_file_location("plot_schedules", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "schedules.png"
    module.main(str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------- where torch raises, fastopt raises

def torch_lrs(name, steps, **kwargs):
    """torch's scheduler's lr at steps 0 .. steps - 1, or the exception it raises."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sched = getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
            lrs = [sched.get_last_lr()[0]]
            for _ in range(steps - 1):
                opt.step()
                sched.step()
                lrs.append(sched.get_last_lr()[0])
        except (ZeroDivisionError, ValueError, OverflowError) as e:
            return e
    return lrs


ONE_CYCLE_GRID = [(T, pct, three) for T in (1, 2, 3, 4, 5, 10, 20)
                  for pct in (0.0, 0.05, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.6, 0.95, 1.0)
                  for three in (False, True)]


@pytest.mark.parametrize("T, pct, three", ONE_CYCLE_GRID)
def test_one_cycle_raises_where_torch_raises(T, pct, three):
    """Over total_steps x pct_start x three_phase: torch's OneCycleLR raises
    exactly where one_cycle_schedule raises ValueError, and elsewhere both
    give the same finite values."""
    want = torch_lrs("OneCycleLR", T, max_lr=1.0, total_steps=T, pct_start=float(pct),
                     three_phase=three)
    if isinstance(want, Exception):
        with pytest.raises(ValueError, match="pct_start"):
            S.one_cycle_schedule(1.0, T, pct, three_phase=three)
        return
    got = S.one_cycle_schedule(1.0, T, pct, three_phase=three)(np.arange(T))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


CYCLIC_SIZES = [(1e-320, 1e300), (1e308, 1e308), (5e-324, 1.0), (1.0, 0.0), (3.0, 1e-300),
                (2.0, 2.0), (1.0, math.nan)]


@pytest.mark.parametrize("up, down", CYCLIC_SIZES)
def test_cyclic_raises_where_torch_raises(up, down):
    """Step sizes whose ratio is 0 (torch divides by it) or whose sum is not
    finite: a ValueError, never NaN; the others match torch."""
    want = torch_lrs("CyclicLR", 20, base_lr=0.1, max_lr=1.0, step_size_up=up,
                     step_size_down=down)
    ours = S.cyclic_schedule(0.1, 1.0, up, down)(np.arange(20)) if not (
        isinstance(want, Exception) or not math.isfinite(up + down)) else None
    if ours is None:
        with pytest.raises(ValueError, match="step_size"):
            S.cyclic_schedule(0.1, 1.0, up, down)
    else:
        np.testing.assert_allclose(ours, want, rtol=1e-12)


# ------------------------------------------------------------- array shapes

@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_zero_d_array_gives_zero_d(dtype):
    s = S.cosine_decay_schedule(1.0, 10)
    out = s(np.array(4, dtype))
    assert type(out) is np.ndarray and out.shape == () and out.dtype == np.float64
    assert out[()] == s(4)
    assert type(s(4)) is float and type(s(np.int64(4))) is float
    assert s([[1, 2]]).shape == (1, 2) and s([]).shape == (0,)


# --------------------------------------------------------- deep join nests

def test_deep_join_repr_is_short():
    s = S.constant_schedule(1.0)
    for i in range(50):
        s = S.join_schedules([s, S.linear_schedule(1.0, 0.0, i + 1)], [i + 1])
    r = repr(s)
    assert r.startswith("join_schedules(schedules=[join_schedules(") and "(...)" in r
    assert len(r) < 2000


def test_piecewise_repr_is_a_snapshot():
    bs = {2: 0.5}
    s = S.piecewise_constant_schedule(1.0, bs)
    bs[4] = 0.1
    assert repr(s) == "piecewise_constant_schedule(init_value=1.0, boundaries_and_scales={2: 0.5})"


def test_deep_join_memory_and_stack():
    """6,000 schedules joined one inside the other: small memory, linear in
    the depth (each level used to hold its whole repr string: 1.3 GiB), and
    evaluation and freeing need no stack per level (they run in a thread
    with a 256 KiB stack)."""
    out = run_isolated("""
        import threading, tracemalloc
        import numpy as np
        from fastopt import schedules as S

        def fold(depth):
            s = S.constant_schedule(1.0)
            for i in range(depth):
                s = S.join_schedules([s, S.constant_schedule(float(i))], [1])
            return s

        for depth in (3000, 6000):
            tracemalloc.start()
            s = fold(depth)
            print("peak", depth, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            del s

        result = {}
        def run():
            s = fold(6000)
            # each join takes its second schedule from step 1 on: step 0 goes down every level
            result["values"] = [s(0), *s(np.zeros(3, np.int64)).tolist(), s(5)]
            result["repr"] = len(repr(s))
            del s
            result["freed"] = True
        threading.stack_size(256 * 1024)
        t = threading.Thread(target=run)
        t.start()
        t.join()
        print("values", *result["values"])
        print("repr", result["repr"])
        print("freed", result["freed"])
    """, timeout=120)
    lines = {}
    for line in out.splitlines():
        key, *values = line.split()
        lines.setdefault(key, []).append(values)
    peaks = {int(d): int(p) for d, p in lines["peak"]}
    print(f"peak traced memory of a join_schedules nest: {peaks[3000] / 2**20:.1f} MiB at "
          f"depth 3000, {peaks[6000] / 2**20:.1f} MiB at depth 6000")
    assert peaks[6000] < 16 * 2**20 and peaks[6000] < 2.5 * peaks[3000]
    # up to step 0 the innermost constant; from step 1 on the outermost join's last one
    assert [float(v) for v in lines["values"][0]] == [1.0, 1.0, 1.0, 1.0, 6000 - 1.0]
    assert int(lines["repr"][0][0]) < 2000
    assert lines["freed"] == [["True"]]

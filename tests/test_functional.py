"""fastopt.functional gives exactly the classes' numbers."""
import math

import numpy as np
import pytest

import fastopt
from conftest import OPTION_CASES, assert_bitwise, assert_close, functional_step, new_state
from fastopt import functional as F
from fastopt._spec import SPECS


@pytest.mark.parametrize("opt, options", OPTION_CASES)
def test_functional_equals_class(opt, options, dtype, rng):
    sizes = (1, 7, 63, 1000)
    start = [rng.standard_normal(n).astype(dtype) for n in sizes]
    cls_params = [p.copy() for p in start]
    fast = opt.cls(cls_params, **options)
    fn_options = {k: v for k, v in options.items() if k != "initial_accumulator_value"}
    fn_params = [p.copy() for p in start]
    states = [new_state(opt.name, p, options.get("initial_accumulator_value", 0.0)) for p in fn_params]
    for t in range(1, 21):
        grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
        copies = [g.copy() for g in grads]
        fast.step(grads)
        for p, g, s in zip(fn_params, grads, states):
            assert functional_step(opt.name, p, g, s, t, fn_options) is None
        for g, c in zip(grads, copies):
            assert_bitwise(g, c, "gradient")
    for i, (a, b) in enumerate(zip(cls_params, fn_params)):
        assert_bitwise(b, a, f"parameter {i}")
        for name, value in fast.state.get(i, {}).items():
            if name != "step":
                assert_bitwise(states[i][name], value, f"parameter {i} {name}")


def test_functional_step_number_matters(rng):
    """``step`` is the number of this update: Adam's bias correction and
    SGD's first momentum step follow it."""
    p, g = rng.standard_normal(5), rng.standard_normal(5)
    a, b = p.copy(), p.copy()
    F.adam_(a, g, np.zeros(5), np.zeros(5), step=1, lr=0.1)
    F.adam_(b, g, np.zeros(5), np.zeros(5), step=2, lr=0.1)
    assert not np.array_equal(a, b)
    # SGD step 1: the buffer becomes the gradient; later steps blend it in.
    buf = np.full(5, 7.0)
    F.sgd_(p.copy(), g, buf, step=1, lr=0.1, momentum=0.9, dampening=0.5)
    assert_bitwise(buf, g)
    buf2 = np.full(5, 7.0)
    F.sgd_(p.copy(), g, buf2, step=2, lr=0.1, momentum=0.9, dampening=0.5)
    np.testing.assert_allclose(buf2, 0.9 * 7.0 + 0.5 * g)


def test_functional_docstring_example():
    p, g = np.ones(4), np.full(4, 0.5)
    m, v = np.zeros(4), np.zeros(4)
    F.adam_(p, g, m, v, step=1, lr=0.1)
    np.testing.assert_allclose(p, 0.9)


@pytest.mark.parametrize("fn, buffers", [
    (getattr(F, spec.function + "_"), (len(spec.state), len(spec.scalars))) for spec in SPECS.values()],
    ids=list(SPECS))
def test_functional_accepts_unused_buffers_and_float32(fn, buffers, rng):
    p = rng.standard_normal(9).astype(np.float32)
    bufs = [np.zeros(9, np.float32) for _ in range(buffers[0])]
    bufs += [np.array(1.0, np.float32) for _ in range(buffers[1])]  # 0-d scalar state
    fn(p, np.ones(9, np.float32), *bufs, step=1)
    assert p.dtype == np.float32 and np.isfinite(p).all()


def test_functional_all_exported():
    # one function per optimizer in the spec
    assert sorted(F.__all__) == sorted(spec.function + "_" for spec in SPECS.values())
    assert fastopt.functional is F


def _adam_at(step, rng_seed=5):
    rng = np.random.default_rng(rng_seed)
    p, g = rng.standard_normal(7), rng.standard_normal(7)
    m, v = rng.standard_normal(7), rng.random(7)
    args = [a.copy() for a in (p, g, m, v)]
    F.adam_(*args, step=step, lr=0.1)
    return args, (p, g, m, v)


def test_functional_huge_step_is_a_real_update():
    """The largest step the int64 counter holds is an update like any other
    (the bias corrections are 1); one past it is an error, never a silent
    no-op."""
    from fastopt.reference import adam
    step = 2**63 - 1
    (p, _, m, v), (p0, g0, m0, v0) = _adam_at(step)
    expected, state = adam(p0, g0, {"exp_avg": m0, "exp_avg_sq": v0}, step, lr=0.1)
    assert_close(p, expected, np.float64)
    assert_close(m, state["exp_avg"], np.float64)
    assert not np.array_equal(p, p0)


@pytest.mark.parametrize("step", [3.0, np.int64(3), np.uint16(3), np.float32(3), np.array(3),
                                  np.array(3.0)], ids=repr)
def test_functional_step_accepts_whole_numbers(step):
    assert_bitwise(_adam_at(step)[0][0], _adam_at(3)[0][0])


def test_functional_step_accepts_torch_tensor():
    torch = pytest.importorskip("torch")
    assert_bitwise(_adam_at(torch.tensor(3.0))[0][0], _adam_at(3)[0][0])


@pytest.mark.parametrize("step, exc", [
    (True, TypeError), (np.bool_(True), TypeError), ("5", TypeError), (None, TypeError),
    (np.array([2]), TypeError), (0, ValueError), (-3, ValueError), (2.5, ValueError),
    (math.nan, ValueError), (math.inf, ValueError), (2**63, ValueError), (2**64 + 1, ValueError),
    (1e300, ValueError), (np.uint64(2**64 - 1), ValueError),
], ids=repr)
def test_functional_bad_step_changes_nothing(step, exc):
    """The rule of load_state_dict's step counts (test_state_dict.py), never
    an OverflowError, nothing written."""
    before = _adam_at(1)[1]
    args = [a.copy() for a in before]
    with pytest.raises(exc, match="step"):
        F.adam_(*args, step=step, lr=0.1)
    for a, b in zip(args, before):
        assert_bitwise(a, b)

"""Property tests (Hypothesis): random shapes, dtypes, hyperparameters and
gradient magnitudes agree with the NumPy oracle, and every class of bad
input raises and leaves the optimizer exactly as it was."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import BY_NAME, OPTIMIZERS, assert_close, assert_unchanged, snapshot
from fastopt.reference import ReferenceOptimizer
from test_reference import hyperparameters

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

shapes = st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple)
dtypes = st.sampled_from([np.float32, np.float64])
# What one gradient element can be: zero, subnormal, ordinary, or huge.
MAGNITUDES = ("zero", "subnormal", "normal", "huge")


def gradient(rng, shape, dtype, kinds):
    info = np.finfo(dtype)
    scale = {
        "zero": 0.0,
        "subnormal": float(info.smallest_subnormal) * 7,
        "normal": 1.0,
        "huge": float(info.max) ** 0.5 * 0.5,  # squares stay finite
    }
    choice = rng.choice(len(kinds), size=shape)
    values = rng.standard_normal(shape) * np.array([scale[k] for k in kinds])[choice]
    return values.astype(dtype)


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_random_problems_match_the_oracle(opt):
    @SETTINGS
    @given(options=hyperparameters(opt), shape_list=st.lists(shapes, min_size=1, max_size=4),
           dtype=dtypes, kinds=st.lists(st.sampled_from(MAGNITUDES), min_size=1, max_size=4),
           seed=st.integers(0, 2**32 - 1))
    def check(options, shape_list, dtype, kinds, seed):
        assume(opt.valid(options))  # the spec's rule across them (SGD's Nesterov)
        rng = np.random.default_rng(seed)
        params = [rng.standard_normal(s).astype(dtype) for s in shape_list]
        fast = opt.cls([p.copy() for p in params], **options)
        ref = ReferenceOptimizer(opt.name, params, options)
        with np.errstate(all="ignore"):  # huge gradients may overflow, in both
            for _ in range(4):
                grads = [gradient(rng, p.shape, dtype, kinds) for p in params]
                assert fast.step(grads) is True
                ref.step(grads)
            for i, p in enumerate(fast._params):
                assert p.shape == params[i].shape and p.dtype == dtype
                assert_close(p, ref.params[i], dtype, f"parameter {i}")
    check()


def _bad_inputs(opt):
    """(description, action) pairs: each action must raise before writing."""
    p = opt._params[0]
    good = [np.ones_like(q) for q in opt._params]
    other = np.float64 if p.dtype == np.float32 else np.float32

    def replace(k, g):
        grads = list(good)
        grads[k] = g
        return lambda: opt.step(grads)

    def edit(key, value):
        def run():
            opt.param_groups[0][key] = value
            opt.step(good)
        return run

    cases = [
        ("wrong dtype", replace(0, good[0].astype(other)), TypeError),
        ("wrong shape", replace(0, np.ones(p.size + 1, p.dtype)), ValueError),
        ("non-contiguous", replace(0, np.ones((p.size, 2), p.dtype)[:, 0].reshape(p.shape))
         if p.size > 1 else replace(0, np.ones(p.size + 2, p.dtype)), ValueError),
        ("too few", lambda: opt.step(good[:-1]), ValueError),
        ("too many", lambda: opt.step(good + [good[0]]), ValueError),
        ("aliases a parameter", replace(len(good) - 1, opt._params[0]) if p.size else
         replace(0, np.ones(1, p.dtype)), ValueError),
        ("negative lr", edit("lr", -1.0), ValueError),
        ("NaN lr", edit("lr", float("nan")), ValueError),
        ("lr of the wrong type", edit("lr", "0.1"), TypeError),
    ]
    if "weight_decay" in opt.defaults:
        cases.append(("negative weight decay", edit("weight_decay", -0.5), ValueError))
    if "betas" in opt.defaults:
        # the last of the betas (beta2 of a pair) set to 1
        cases.append(("beta2 = 1", edit("betas", tuple(opt.defaults["betas"][:-1]) + (1.0,)),
                      ValueError))
    if "etas" in opt.defaults:
        cases.append(("etaminus = 1", edit("etas", (1.0, 1.2)), ValueError))
    if "rho" in opt.defaults:
        cases.append(("rho > 1", edit("rho", 1.5), ValueError))
    return cases


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_every_bad_input_leaves_everything_untouched(opt):
    @SETTINGS
    @given(shape_list=st.lists(shapes.filter(lambda s: np.prod(s) > 0), min_size=1, max_size=3),
           dtype=dtypes, warmup=st.integers(0, 3), case=st.integers(0, 10**6),
           seed=st.integers(0, 2**32 - 1))
    def check(shape_list, dtype, warmup, case, seed):
        rng = np.random.default_rng(seed)
        options = BY_NAME[opt.name].options[-1]
        fast = opt.cls([rng.standard_normal(s).astype(dtype) for s in shape_list], **options)
        for _ in range(warmup):
            fast.step([rng.standard_normal(p.shape).astype(dtype) for p in fast._params])
        cases = _bad_inputs(fast)
        what, action, error = cases[case % len(cases)]
        before = snapshot(fast)
        groups = [dict(g) for g in fast.param_groups]
        with pytest.raises(error):
            action()
        for g, saved in zip(fast.param_groups, groups):  # undo a hyperparameter edit
            g.update(saved)
        assert_unchanged(fast, before)
    check()

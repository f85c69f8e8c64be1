"""Bad input: a table of call -> exception. Each error names what is wrong
(the parameter by index or key, or the hyperparameter), and nothing changes."""
import math

import numpy as np
import pytest

import fastopt
from conftest import assert_bitwise, assert_state_dicts_equal, assert_unchanged, snapshot


class Env:
    """A stepped optimizer with params of sizes 3, 4, 5 (float32) and good grads."""

    def __init__(self, cls=fastopt.Adam, keys=None, **options):
        rng = np.random.default_rng(0)
        arrays = [rng.standard_normal(n).astype(np.float32) for n in (3, 4, 5)]
        self.params = dict(zip(keys, arrays)) if keys else arrays
        self.opt = cls(self.params, **options)
        self.arrays = arrays
        for _ in range(3):
            self.opt.step(self.good())

    def good(self):
        grads = [np.full_like(p, 0.5) for p in self.arrays]
        return dict(zip(self.params, grads)) if isinstance(self.params, dict) else grads

    def with_grad(self, i, value):
        grads = self.good()
        key = list(grads)[i] if isinstance(grads, dict) else i
        grads[key] = value
        return grads


def noncontig(a):
    return np.repeat(a, 2)[::2]


def unaligned(n, dtype):
    """A writeable C-contiguous array whose data does not start at a multiple of its item size."""
    raw = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    a = raw[1:].view(dtype)
    assert not a.flags.aligned and a.flags.writeable and a.flags.c_contiguous
    return a


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


# id -> (make the call from an Env, exception type, message pattern, Env arguments)
STEP_CASES = {
    "grad-float64-for-float32": (lambda e: e.opt.step(e.with_grad(1, np.zeros(4))),
                                 TypeError, r"parameter 1\b.*dtype", {}),
    "grad-int": (lambda e: e.opt.step(e.with_grad(2, np.zeros(5, np.int32))),
                 TypeError, r"parameter 2\b.*dtype", {}),
    "grad-shape": (lambda e: e.opt.step(e.with_grad(2, np.zeros((5, 1), np.float32))),
                   ValueError, r"parameter 2\b.*shape", {}),
    "grad-size": (lambda e: e.opt.step(e.with_grad(0, np.zeros(4, np.float32))),
                  ValueError, r"parameter 0\b.*shape", {}),
    "grad-noncontiguous": (lambda e: e.opt.step(e.with_grad(2, noncontig(np.zeros(5, np.float32)))),
                           ValueError, r"parameter 2\b.*contiguous", {}),
    "grad-not-array": (lambda e: e.opt.step(e.with_grad(1, "abcd")),
                       TypeError, r"parameter 1\b", {}),
    "grad-byteswapped": (lambda e: e.opt.step(e.with_grad(1, np.zeros(4, ">f4"))),
                         TypeError, r"parameter 1\b.*dtype", {}),
    "grad-unaligned": (lambda e: e.opt.step(e.with_grad(1, unaligned(4, np.float32))),
                       ValueError, r"parameter 1\b.*aligned", {}),
    "grads-too-few": (lambda e: e.opt.step(e.good()[:2]), ValueError, r"expected 3 gradients", {}),
    "grads-too-many": (lambda e: e.opt.step(e.good() + [np.zeros(1, np.float32)]),
                       ValueError, r"expected 3 gradients", {}),
    "grads-ndarray": (lambda e: e.opt.step(np.zeros(3)), TypeError, r"list of gradients", {}),
    "grads-dict-for-list": (lambda e: e.opt.step({0: np.zeros(3)}), TypeError, r"list", {}),
    "grad-is-param": (lambda e: e.opt.step(e.with_grad(1, e.arrays[1])),
                      ValueError, r"parameter 1\b.*share", {}),
    "grad-is-other-param": (lambda e: e.opt.step(e.with_grad(0, e.arrays[2][:3])),
                            ValueError, r"parameter 0\b.*share", {}),
    "grad-is-state": (lambda e: e.opt.step(e.with_grad(1, e.opt.state[1]["exp_avg"])),
                      ValueError, r"parameter 1\b.*share", {}),
    "grad-overlaps-param": (lambda e: e.opt.step(e.with_grad(
        0, np.frombuffer(e.arrays[1].data, np.float32)[1:4])), ValueError, r"parameter 0\b.*share", {}),
    "param-made-readonly": (lambda e: (e.arrays[2].setflags(write=False), e.opt.step(e.good())),
                            ValueError, r"parameter 2\b.*read-only", {}),
    # dict params
    "dict-missing-key": (lambda e: e.opt.step({k: v for k, v in e.good().items() if k != "b"}),
                         ValueError, r"'b'", {"keys": "abc"}),
    "dict-extra-key": (lambda e: e.opt.step({**e.good(), "zz": np.zeros(1, np.float32)}),
                       ValueError, r"'zz'", {"keys": "abc"}),
    "dict-renamed-key": (lambda e: e.opt.step({("x" if k == "c" else k): v for k, v in e.good().items()}),
                         ValueError, r"'c'", {"keys": "abc"}),
    "dict-wrong-dtype": (lambda e: e.opt.step(e.with_grad(1, np.zeros(4))),
                         TypeError, r"parameter 'b'.*dtype", {"keys": "abc"}),
    "dict-shape": (lambda e: e.opt.step(e.with_grad(2, np.zeros(4, np.float32))),
                   ValueError, r"parameter 'c'.*shape", {"keys": "abc"}),
    "dict-grad-is-param": (lambda e: e.opt.step(e.with_grad(0, e.arrays[0])),
                           ValueError, r"parameter 'a'.*share", {"keys": "abc"}),
    "dict-list-grads": (lambda e: e.opt.step(list(e.good().values())), TypeError, r"dict",
                        {"keys": "abc"}),
}


def _set(group, key, value):
    group[key] = value


# Hyperparameters edited in param_groups after construction: checked at the next step.
EDIT_CASES = {
    "lr-negative": (fastopt.Adam, "lr", -1e-3, ValueError, r"lr"),
    "lr-nan": (fastopt.Adam, "lr", math.nan, ValueError, r"lr"),
    "lr-string": (fastopt.Adam, "lr", "0.1", TypeError, r"lr"),
    "lr-none": (fastopt.SGD, "lr", None, TypeError, r"lr"),
    "beta1-one": (fastopt.Adam, "betas", (1.0, 0.999), ValueError, r"beta1"),
    "beta2-one": (fastopt.AdamW, "betas", (0.9, 1.0), ValueError, r"beta2"),
    "beta1-negative": (fastopt.Adam, "betas", (-0.1, 0.999), ValueError, r"beta1"),
    "beta2-nan": (fastopt.Adam, "betas", (0.9, math.nan), ValueError, r"beta2"),
    "betas-scalar": (fastopt.Adam, "betas", 0.9, TypeError, r"betas"),
    "eps-negative": (fastopt.Adam, "eps", -1e-8, ValueError, r"eps"),
    "weight-decay-negative": (fastopt.AdamW, "weight_decay", -0.1, ValueError, r"weight_decay"),
    "momentum-negative": (fastopt.SGD, "momentum", -0.5, ValueError, r"momentum"),
    "nesterov-no-momentum": (fastopt.SGD, "nesterov", True, ValueError, r"[Nn]esterov"),
    "rmsprop-alpha-negative": (fastopt.RMSprop, "alpha", -0.1, ValueError, r"alpha"),
    "rmsprop-momentum-negative": (fastopt.RMSprop, "momentum", -0.1, ValueError, r"momentum"),
    "adagrad-lr-decay-negative": (fastopt.Adagrad, "lr_decay", -0.1, ValueError, r"lr_decay"),
    "adagrad-initial-accumulator-negative": (fastopt.Adagrad, "initial_accumulator_value", -0.5,
                                             ValueError, r"initial_accumulator_value"),
    "lr-bool": (fastopt.SGD, "lr", True, TypeError, r"lr"),
    "adagrad-eps-inf-negative": (fastopt.Adagrad, "eps", -math.inf, ValueError, r"eps"),
    "adadelta-lr-negative": (fastopt.Adadelta, "lr", -1.0, ValueError, r"lr"),
    "adadelta-rho-above-one": (fastopt.Adadelta, "rho", 1.5, ValueError, r"rho"),
    "adadelta-rho-negative": (fastopt.Adadelta, "rho", -0.1, ValueError, r"rho"),
    "adadelta-eps-negative": (fastopt.Adadelta, "eps", -1e-6, ValueError, r"eps"),
    "adadelta-weight-decay-negative": (fastopt.Adadelta, "weight_decay", -0.1, ValueError,
                                       r"weight_decay"),
    "radam-lr-negative": (fastopt.RAdam, "lr", -1e-3, ValueError, r"lr"),
    "radam-beta1-one": (fastopt.RAdam, "betas", (1.0, 0.999), ValueError, r"beta1"),
    "radam-beta2-negative": (fastopt.RAdam, "betas", (0.9, -0.5), ValueError, r"beta2"),
    "radam-eps-negative": (fastopt.RAdam, "eps", -1e-8, ValueError, r"eps"),
    "radam-weight-decay-negative": (fastopt.RAdam, "weight_decay", -0.1, ValueError,
                                    r"weight_decay"),
    "rprop-lr-negative": (fastopt.Rprop, "lr", -0.01, ValueError, r"lr"),
    "rprop-etaminus-zero": (fastopt.Rprop, "etas", (0.0, 1.2), ValueError, r"etas"),
    "rprop-etaminus-one": (fastopt.Rprop, "etas", (1.0, 1.2), ValueError, r"etas"),
    "rprop-etaplus-one": (fastopt.Rprop, "etas", (0.5, 1.0), ValueError, r"etas"),
    "rprop-etaminus-nan": (fastopt.Rprop, "etas", (math.nan, 1.2), ValueError, r"etaminus"),
    "rprop-etas-scalar": (fastopt.Rprop, "etas", 0.5, TypeError, r"etas"),
    "rprop-step-sizes-string": (fastopt.Rprop, "step_sizes", (1e-6, "50"), TypeError,
                                r"step_size_max"),
}


@pytest.mark.parametrize("case", list(STEP_CASES))
def test_bad_step(case):
    call, exc, pattern, env_args = STEP_CASES[case]
    env = Env(**env_args)
    snap = snapshot(env.opt)
    with pytest.raises(exc, match=pattern):
        call(env)
    for a in env.arrays:
        a.setflags(write=True)
    assert_unchanged(env.opt, snap)
    # The optimizer still works, and steps as if the bad call never happened.
    twin = Env(**env_args)
    assert env.opt.step(env.good()) and twin.opt.step(twin.good())
    for a, b in zip(env.arrays, twin.arrays):
        assert_bitwise(a, b)


@pytest.mark.parametrize("case", list(EDIT_CASES))
def test_bad_edited_hyperparameter(case):
    cls, key, value, exc, pattern = EDIT_CASES[case]
    env = Env(cls)
    snap = snapshot(env.opt)
    good = env.opt.param_groups[0][key]
    env.opt.param_groups[0][key] = value
    with pytest.raises(exc, match=f"param group 0.*{pattern}"):
        env.opt.step(env.good())
    env.opt.param_groups[0][key] = good
    assert_unchanged(env.opt, snap)


@pytest.mark.parametrize("case", list(EDIT_CASES))
def test_bad_constructor_hyperparameter(case):
    cls, key, value, exc, pattern = EDIT_CASES[case]
    p = np.ones(3)
    with pytest.raises(exc, match=pattern):
        cls([p], **{key: value})
    with pytest.raises(exc, match=f"param group 1.*{pattern}"):
        cls([{"params": [p]}, {"params": [np.ones(2)], key: value}])
    np.testing.assert_array_equal(p, 1)


@pytest.mark.parametrize("case", [c for c in EDIT_CASES if EDIT_CASES[c][3] is ValueError])
def test_torch_rejects_the_same_hyperparameters(case):
    torch = pytest.importorskip("torch")
    cls, key, value, exc, pattern = EDIT_CASES[case]
    with pytest.raises(ValueError):
        getattr(torch.optim, cls.__name__)([torch.ones(3)], **{key: value})


def _bad_param_cases():
    base = np.zeros(40)
    return {
        "param-int": ([np.zeros(3), np.zeros(3, np.int64)], TypeError, r"parameter 1\b.*dtype"),
        # float16 and bfloat16 are parameters; their bits as uint16 are not
        "param-uint16": ([np.zeros(3), np.zeros(3), np.zeros(3, np.uint16)], TypeError,
                         r"parameter 2\b.*dtype"),
        "param-complex": ([np.zeros(3, np.complex128)], TypeError, r"parameter 0\b.*dtype"),
        "param-byteswapped": ([np.zeros(3), np.zeros(3, ">f8")], TypeError, r"parameter 1\b"),
        "param-noncontiguous": ([np.zeros(3), noncontig(np.zeros(3))], ValueError,
                                r"parameter 1\b.*contiguous"),
        "param-fortran": ([np.zeros((3, 4), order="F")], ValueError, r"parameter 0\b.*contiguous"),
        "param-readonly": ([np.zeros(3), readonly(np.zeros(3))], ValueError, r"parameter 1\b.*read-only"),
        "param-unaligned": ([np.zeros(3), unaligned(5, np.float64)], ValueError,
                            r"parameter 1\b.*aligned"),
        "param-list": ([np.zeros(3), [1.0, 2.0]], TypeError, r"parameter 1\b"),
        "same-array-twice": ([base, np.zeros(2), base], ValueError, r"parameter 0 and parameter 2"),
        "overlapping-views": ([base[:10], base[5:15]], ValueError, r"parameter 0 and parameter 1"),
        "view-inside-other": ([np.zeros(2), base, base[20:22]], ValueError,
                              r"parameter 1 and parameter 2"),
        "dict-overlap": ({"w": base[:10], "b": base[9:12]}, ValueError, r"parameter 'w' and parameter 'b'"),
        "dict-dtype": ({"w": np.zeros(3), "b": np.zeros(3, np.int32)}, TypeError, r"parameter 'b'.*dtype"),
        "empty": ([], ValueError, r"empty"),
        "bare-array": (np.zeros(3), TypeError, r"params"),
        "not-iterable": (3.0, TypeError, r"params"),
        "nested-groups": ([{"params": [{"params": [np.zeros(3)]}]}], TypeError, r"nested"),
        "group-without-params": ([{"lr": 0.1}], ValueError, r"params"),
    }


@pytest.mark.parametrize("case", list(_bad_param_cases()))
@pytest.mark.parametrize("cls", [fastopt.SGD, fastopt.Adam])
def test_bad_params(cls, case):
    params, exc, pattern = _bad_param_cases()[case]
    with pytest.raises(exc, match=pattern):
        cls(params)


def test_disjoint_views_of_one_buffer_work():
    rng = np.random.default_rng(1)
    start = rng.standard_normal(30)
    buf = start.copy()
    views = [buf[:10], buf[10:25], buf[25:]]
    separate = [start[:10].copy(), start[10:25].copy(), start[25:].copy()]
    a = fastopt.Adam(views, lr=0.1, amsgrad=True)
    b = fastopt.Adam(separate, lr=0.1, amsgrad=True)
    for _ in range(5):
        g = rng.standard_normal(30)
        a.step([g[:10], g[10:25], g[25:]])
        b.step([g[:10].copy(), g[10:25].copy(), g[25:].copy()])
    assert_bitwise(buf, np.concatenate(separate))
    assert not np.array_equal(buf, start)


def test_bad_add_param_group_changes_nothing():
    env = Env(fastopt.SGD, lr=0.1, momentum=0.9)
    snap = snapshot(env.opt)
    cases = [
        ({"params": [env.arrays[1][1:3]]}, ValueError, r"parameter 1 and parameter 3"),
        ({"params": [np.zeros(2)], "lr": -1.0}, ValueError, r"param group 1.*lr"),
        ({"params": [np.zeros(2), np.zeros(2, np.int8)]}, TypeError, r"parameter 4\b"),
        ({"lr": 0.1}, ValueError, r"params"),
    ]
    for group, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            env.opt.add_param_group(group)
        assert len(env.opt.param_groups) == 1
        assert_unchanged(env.opt, snap)
    assert env.opt.step(env.good())


# load_state_dict: id -> (edit a valid state dict in place, exception, pattern)
LOAD_CASES = {
    "group-count": (lambda sd: sd["param_groups"].append({"params": []}), ValueError, r"2 parameter groups"),
    "group-size": (lambda sd: sd["param_groups"][0]["params"].pop(), ValueError, r"group 0 has 2"),
    "unknown-buffer": (lambda sd: sd["state"][1].update(momentum_buffer=np.zeros(4, np.float32)),
                       ValueError, r"parameter 1\b.*momentum_buffer"),
    "shape": (lambda sd: sd["state"][2].update(exp_avg=np.zeros(4, np.float32)),
              ValueError, r"parameter 2\b.*exp_avg.*shape"),
    "shape-2d": (lambda sd: sd["state"][2].update(exp_avg_sq=np.zeros((5, 1), np.float32)),
                 ValueError, r"parameter 2\b.*exp_avg_sq.*shape"),
    "int-dtype": (lambda sd: sd["state"][2].update(exp_avg=np.zeros(5, np.int64)),
                  TypeError, r"parameter 2\b.*exp_avg.*dtype"),
    "bool-dtype": (lambda sd: sd["state"][0].update(exp_avg_sq=np.zeros(3, bool)),
                   TypeError, r"parameter 0\b.*exp_avg_sq"),
    "not-array": (lambda sd: sd["state"][2].update(exp_avg="x"), TypeError, r"parameter 2\b.*exp_avg"),
    "missing-buffer": (lambda sd: sd["state"][2].pop("exp_avg_sq"), ValueError,
                       r"parameter 2\b.*exp_avg_sq"),
    "missing-step": (lambda sd: sd["state"][1].pop("step"), ValueError, r"parameter 1\b.*step"),
    "negative-step": (lambda sd: sd["state"][2].update(step=-1.0), ValueError, r"parameter 2\b.*step"),
    "fractional-step": (lambda sd: sd["state"][2].update(step=2.5), ValueError, r"parameter 2\b.*step"),
    "unknown-id": (lambda sd: sd["state"].update({7: sd["state"][0]}), ValueError, r"unknown parameter id 7"),
    "bad-lr": (lambda sd: sd["param_groups"][0].update(lr=-1.0), ValueError, r"lr"),
    "bad-betas": (lambda sd: sd["param_groups"][0].update(betas=(0.9, 1.5)), ValueError, r"beta2"),
    "no-state-key": (lambda sd: sd.pop("state"), TypeError, r"state"),
    "state-not-dict": (lambda sd: sd.update(state=[1, 2]), TypeError, r"state"),
}


@pytest.mark.parametrize("case", list(LOAD_CASES))
def test_bad_state_dict(case):
    edit, exc, pattern = LOAD_CASES[case]
    env = Env(lr=0.01)
    donor = Env(lr=0.02)
    donor.opt.step(donor.good())  # a different state than env's
    sd = donor.opt.state_dict()
    edit(sd)
    snap = snapshot(env.opt)
    with pytest.raises(exc, match=pattern):
        env.opt.load_state_dict(sd)
    assert_unchanged(env.opt, snap)
    assert env.opt.param_groups[0]["lr"] == 0.01


def test_bad_state_dict_for_dict_params_names_the_key():
    env = Env(keys=("w", "b", "c"))
    sd = env.opt.state_dict()
    sd["state"][1]["exp_avg"] = np.zeros(9, np.float32)
    with pytest.raises(ValueError, match=r"parameter 'b'"):
        env.opt.load_state_dict(sd)


# functional API: id -> (call with good arrays p, g, m, v; exception; pattern)
def _functional_cases():
    from fastopt import functional as F
    return {
        "step-zero": (lambda p, g, m, v: F.adam_(p, g, m, v, step=0), ValueError, r"step"),
        # integral floats are steps (torch keeps steps as floats); fractions are not
        "step-fractional": (lambda p, g, m, v: F.adam_(p, g, m, v, step=1.5), ValueError, r"step"),
        "step-str": (lambda p, g, m, v: F.adam_(p, g, m, v, step="1"), TypeError, r"step"),
        "lr-negative": (lambda p, g, m, v: F.adam_(p, g, m, v, step=1, lr=-1), ValueError, r"lr"),
        "beta-one": (lambda p, g, m, v: F.adam_(p, g, m, v, step=1, betas=(1, 0.9)), ValueError, r"beta1"),
        "amsgrad-without-buffer": (lambda p, g, m, v: F.adam_(p, g, m, v, step=1, amsgrad=True),
                                   ValueError, r"max_exp_avg_sq"),
        "sgd-momentum-without-buffer": (lambda p, g, m, v: F.sgd_(p, g, step=1, momentum=0.9),
                                        ValueError, r"momentum_buffer"),
        "state-dtype": (lambda p, g, m, v: F.adam_(p, g, m.astype(np.float32), v, step=1),
                        ValueError, r"exp_avg\b.*dtype"),
        "state-shape": (lambda p, g, m, v: F.adam_(p, g, m, v[:5], step=1), ValueError, r"exp_avg_sq"),
        "state-aliases-param": (lambda p, g, m, v: F.adam_(p, g, p, v, step=1), ValueError, r"share"),
        "states-alias": (lambda p, g, m, v: F.adam_(p, g, m, m, step=1), ValueError, r"share"),
        "grad-aliases-state": (lambda p, g, m, v: F.adam_(p, v, m, v, step=1), ValueError, r"share"),
        "grad-dtype": (lambda p, g, m, v: F.adam_(p, g.astype(np.float32), m, v, step=1),
                       TypeError, r"dtype"),
        "param-readonly": (lambda p, g, m, v: F.adam_(readonly(p), g, m, v, step=1), ValueError,
                           r"param\b.*read-only"),
        "state-readonly": (lambda p, g, m, v: F.adam_(p, g, m, readonly(v), step=1), ValueError,
                           r"exp_avg_sq.*read-only"),
        "unknown-isa": (lambda p, g, m, v: F.adam_(p, g, m, v, step=1, isa="mmx"), ValueError, r"mmx"),
    }


@pytest.mark.parametrize("case", list(_functional_cases()))
def test_bad_functional_call(case):
    call, exc, pattern = _functional_cases()[case]
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(6) for _ in range(4)]
    copies = [a.copy() for a in arrays]
    with pytest.raises(exc, match=pattern):
        call(*arrays)
    for a, c in zip(arrays, copies):
        assert_bitwise(a, c)


@pytest.mark.parametrize("failure", ["bad-grad", "bad-other-group", "nonfinite"])
@pytest.mark.parametrize("cls, edit", [
    (fastopt.Adam, {"amsgrad": True}),
    (fastopt.RMSprop, {"centered": True, "momentum": 0.5}),
    (fastopt.SGD, {"momentum": 0.9}),
], ids=["Adam-amsgrad", "RMSprop-centered", "SGD-momentum"])
def test_failed_step_after_enabling_state_changes_nothing(cls, edit, failure):
    """An edit that needs new state buffers (amsgrad, centered, momentum),
    followed by a step that fails or is skipped, leaves the state as it
    was; the next good step then starts the new buffers as usual."""
    rng = np.random.default_rng(3)
    start = [rng.standard_normal(n) for n in (3, 4)]
    opt = cls([{"params": [start[0].copy()]}, {"params": [start[1].copy()]}], lr=0.01,
              skip_nonfinite=True)
    twin = cls([{"params": [start[0].copy()]}, {"params": [start[1].copy()]}], lr=0.01)
    grads = [rng.standard_normal(3), rng.standard_normal(4)]
    opt.step(grads)
    twin.step(grads)
    snap = snapshot(opt)
    opt.param_groups[0].update(edit)
    bad = [g.copy() for g in grads]
    if failure == "bad-grad":
        bad[1] = np.zeros(5)
    elif failure == "bad-other-group":
        opt.param_groups[1]["lr"] = -1.0
    else:
        bad[1][2] = np.nan
    if failure == "nonfinite":
        assert opt.step(bad) is False
    else:
        with pytest.raises(ValueError):
            opt.step(bad)
    opt.param_groups[1]["lr"] = 0.01
    saved = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    opt.param_groups[0].update({k: snap["groups"][0][k] for k in edit})
    assert_unchanged(opt, snap)
    opt.param_groups[0].update(saved)
    twin.param_groups[0].update(edit)
    opt.step(grads)
    twin.step(grads)
    for a, b in zip(opt._params, twin._params):
        assert_bitwise(a, b)
    assert_state_dicts_equal(opt.state_dict(), twin.state_dict())


# ---------------------------------------------- what a NumPy newcomer meets

@pytest.mark.parametrize("cls", [fastopt.Adam, fastopt.SGD, fastopt.RMSprop])
def test_torch_parameter_points_to_fastopt_torch(cls):
    torch = pytest.importorskip("torch")
    for p in (torch.nn.Parameter(torch.zeros(3)), torch.zeros(3, dtype=torch.bfloat16)):
        with pytest.raises(TypeError, match=rf"parameter 1\b.*numpy array.*fastopt\.torch\.{cls.__name__}\b"):
            cls([np.zeros(2), p])
    # torch itself takes these; fastopt.torch's class of the same name too
    getattr(torch.optim, cls.__name__)([torch.nn.Parameter(torch.zeros(3))])


@pytest.mark.parametrize("params, pattern", [
    ({"w": np.zeros(3), "b": {"x": np.zeros(2)}}, r"parameter 'b' is a dict.*nested"),
    ({"w": {"x": np.zeros(2)}}, r"parameter 'w' is a dict.*nested"),
    ([{"params": [{"params": [np.zeros(3)]}]}], r"parameter 0 is a dict.*nested"),
    ([{"params": [np.zeros(3), {"params": [np.zeros(2)]}]}], r"parameter 1 is a dict.*nested"),
    ([{"params": [np.zeros(3)]}, {"params": [np.zeros(1), np.zeros(2), {}]}],
     r"parameter 3 is a dict.*nested"),
    ([np.zeros(3), {"params": [np.zeros(2)]}], r"parameter 1 is a dict.*nested"),
], ids=["dict-second", "dict-first", "group-first", "group-second", "second-group", "list"])
def test_nested_params_name_the_offender(params, pattern):
    with pytest.raises(TypeError, match=pattern):
        fastopt.Adam(params)


def test_empty_dict_is_rejected_like_an_empty_list():
    for cls in (fastopt.SGD, fastopt.Adam):
        with pytest.raises(ValueError, match="empty parameter list") as from_list:
            cls([])
        with pytest.raises(ValueError, match="empty parameter list") as from_dict:
            cls({})
        assert str(from_dict.value) == str(from_list.value)
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.optim.SGD({})


# each error says what to do about it (the old key phrases stay)
FIX_CASES = {
    "param-dtype": (lambda: fastopt.Adam([np.zeros(3, np.int64)]), TypeError,
                    r"parameter 0\b.*dtype.*astype\(np\.float32\)"),
    "param-byteswapped": (lambda: fastopt.Adam([np.zeros(3, ">f4")]), TypeError,
                          r"parameter 0\b.*dtype.*astype"),
    "param-noncontiguous": (lambda: fastopt.Adam([noncontig(np.zeros(3))]), ValueError,
                            r"parameter 0\b.*contiguous.*np\.ascontiguousarray"),
    "param-readonly": (lambda: fastopt.SGD([readonly(np.zeros(3))]), ValueError,
                       r"parameter 0\b.*read-only.*np\.require\(.*'W'\)"),
    "param-unaligned": (lambda: fastopt.SGD([unaligned(3, np.float64)]), ValueError,
                        r"parameter 0\b.*aligned.*np\.require\(.*'A'\)"),
    "grad-dtype": (lambda: fastopt.Adam([np.zeros(3, np.float32)]).step([np.zeros(3)]), TypeError,
                   r"parameter 0\b.*dtype float32.*astype\(np\.float32\)"),
    "grad-noncontiguous": (lambda: fastopt.Adam([np.zeros(3)]).step([noncontig(np.zeros(3))]),
                           ValueError, r"parameter 0\b.*contiguous.*np\.ascontiguousarray"),
    "grad-unaligned": (lambda: fastopt.Adam([np.zeros(3)]).step([unaligned(3, np.float64)]),
                       ValueError, r"parameter 0\b.*aligned.*np\.require\(.*'A'\)"),
}


@pytest.mark.parametrize("case", list(FIX_CASES))
def test_array_errors_say_how_to_fix_them(case):
    call, exc, pattern = FIX_CASES[case]
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("case", ["param-dtype", "param-noncontiguous", "param-readonly",
                                  "param-unaligned"])
def test_the_suggested_fix_works(case):
    """Doing what the message says gives an array the optimizer takes."""
    bad = {"param-dtype": np.zeros(3, np.int64), "param-noncontiguous": noncontig(np.zeros(3)),
           "param-readonly": readonly(np.zeros(3)), "param-unaligned": unaligned(3, np.float64)}[case]
    fixed = {"param-dtype": lambda w: w.astype(np.float32),
             "param-noncontiguous": np.ascontiguousarray,
             "param-readonly": lambda w: np.require(w, requirements="W"),
             "param-unaligned": lambda w: np.require(w, requirements="A")}[case](bad)
    opt = fastopt.SGD([fixed], lr=0.5)
    opt.step([np.ones(3, fixed.dtype)])
    np.testing.assert_array_equal(fixed, -0.5)


def test_sgd_load_lists_what_its_state_may_hold():
    """A 'step' is accepted (and ignored, as torch does); the message for an
    unknown entry lists exactly what is accepted."""
    opt = fastopt.SGD([np.zeros(3)], lr=0.1, momentum=0.9)
    opt.step([np.ones(3)])
    sd = opt.state_dict()
    sd["state"][0]["step"] = 1.0
    opt.load_state_dict(sd)
    sd["state"][0]["exp_avg"] = np.zeros(3)
    snap = snapshot(opt)
    with pytest.raises(ValueError, match=r"parameter 0\b.*'exp_avg'.*\('step', 'momentum_buffer'\)"):
        opt.load_state_dict(sd)
    assert_unchanged(opt, snap)

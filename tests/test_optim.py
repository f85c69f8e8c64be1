"""Optimizer behaviour: dict params, groups, hyperparameter edits, None
gradients, add_param_group, skip_nonfinite, one C call per step, config."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastopt
from conftest import (BY_NAME, OPTIMIZERS, assert_bitwise, assert_close, assert_unchanged,
                      make_params, snapshot)
from fastopt import reference
from fastopt.reference import ReferenceOptimizer


def check_against(ref, params, dtype):
    for i, p in enumerate(params):
        assert_close(p, ref.params[i], dtype, f"parameter {i}")


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_dict_params(opt, dtype, rng):
    options = max(opt.options, key=len)
    start = make_params(rng, (3, 4, 5), dtype)
    named = dict(zip(["w", "b", "c"], [p.copy() for p in start]))
    listed = [p.copy() for p in start]
    a = opt.cls(named, **options)
    b = opt.cls(listed, **options)
    for _ in range(4):
        grads = make_params(rng, (3, 4, 5), dtype)
        # any key order: the dict is matched by key
        assert a.step({"c": grads[2], "w": grads[0], "b": grads[1]})
        b.step(grads)
    for key, p in zip(["w", "b", "c"], listed):
        assert_bitwise(named[key], p, key)
    assert sorted(a.state) == sorted(k for k, i in zip("wbc", range(3)) if i in b.state)
    for key, i in zip("wbc", range(3)):
        for name, value in b.state.get(i, {}).items():
            if isinstance(value, np.ndarray):
                assert_bitwise(a.state[key][name], value)


def test_groups_with_different_hyperparameters(dtype, rng):
    start = make_params(rng, (5, 6, 7, 8), dtype)
    groups = [{"params": [start[0]]},
              {"params": [start[1]], "lr": 0.05, "amsgrad": True},
              {"params": [start[2]], "weight_decay": 0.1, "betas": (0.5, 0.9)},
              {"params": [start[3]], "maximize": True, "eps": 1e-3}]
    ref = ReferenceOptimizer("Adam", [dict(g) for g in groups], {"lr": 0.01})
    opt = fastopt.Adam(groups, lr=0.01)
    # missing keys take the constructor's values (and torch's defaults)
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert opt.param_groups[1]["lr"] == 0.05 and opt.param_groups[1]["amsgrad"] is True
    assert opt.param_groups[2]["amsgrad"] is False and opt.param_groups[2]["lr"] == 0.01
    assert opt.param_groups[3]["weight_decay"] == 0
    for _ in range(20):
        grads = make_params(rng, (5, 6, 7, 8), dtype)
        opt.step(grads)
        ref.step(grads)
    check_against(ref, start, dtype)
    assert sorted(opt.state[1]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert "max_exp_avg_sq" not in opt.state[0]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_editing_lr_takes_effect_next_step(opt, dtype, rng):
    options = max(opt.options, key=len)
    start = make_params(rng, (5, 6), dtype)
    fast = opt.cls([{"params": [start[0]]}, {"params": [start[1]]}], **options)
    ref = ReferenceOptimizer(opt.name, [{"params": [start[0]]}, {"params": [start[1]]}], options)
    for t in range(12):
        if t == 4:
            fast.param_groups[1]["lr"] = options["lr"] * 3
            ref.hyper[1]["lr"] = options["lr"] * 3
        if t == 8:
            for g in fast.param_groups:
                g["lr"] = 0.0
            ref.hyper[0]["lr"] = ref.hyper[1]["lr"] = 0.0
        grads = make_params(rng, (5, 6), dtype)
        fast.step(grads)
        ref.step(grads)
        check_against(ref, start, dtype)
    if opt.name == "Rprop":
        return  # Rprop's lr is only its initial step size (as torch's): no freezing
    if opt.name == "LARS":
        return  # optax.lars scales by lr before its momentum: the buffer keeps moving θ
    frozen = [p.copy() for p in start]  # lr 0 (set at step 8) freezes the parameters
    fast.step(make_params(rng, (5, 6), dtype))
    for p, q in zip(start, frozen):
        assert_bitwise(p, q)


@pytest.mark.parametrize("edit", [
    ("SGD", {"lr": 0.1}, {"momentum": 0.9}),           # a momentum buffer appears mid-run
    ("SGD", {"lr": 0.1, "momentum": 0.9}, {"nesterov": True}),
    ("RMSprop", {"lr": 0.01}, {"centered": True, "momentum": 0.5}),
    ("Adam", {"lr": 0.01}, {"betas": (0.5, 0.9), "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1}, {"lr_decay": 0.1, "eps": 1e-3}),
], ids=lambda e: f"{e[0]}-{'-'.join(e[2])}")
def test_editing_other_hyperparameters(edit, rng):
    name, options, change = edit
    start = make_params(rng, (5, 6), np.float64)
    fast = BY_NAME[name].cls(start, **options)
    ref = ReferenceOptimizer(name, start, options)
    for t in range(8):
        if t == 3:
            fast.param_groups[0].update(change)
            ref.hyper[0].update(change)
        grads = make_params(rng, (5, 6), np.float64)
        fast.step(grads)
        ref.step(grads)
        check_against(ref, start, np.float64)


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_none_grad_skips_parameter(opt, dtype, rng):
    options = max(opt.options, key=len)
    start = make_params(rng, (5, 6, 7), dtype)
    fast = opt.cls(start, **options)
    ref = ReferenceOptimizer(opt.name, start, options)
    for t in range(9):
        grads = make_params(rng, (5, 6, 7), dtype)
        grads[t % 3] = None
        before = {k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in s.items()}
                  for k, s in fast.state.items()}
        skipped = start[t % 3].copy()
        fast.step(grads)
        ref.step(grads)
        assert_bitwise(start[t % 3], skipped)
        for name, value in before.get(t % 3, {}).items():
            now = fast.state[t % 3][name]
            if isinstance(value, np.ndarray):
                assert_bitwise(now, value, name)
            else:
                assert now == value, name
        check_against(ref, start, dtype)
    if opt.spec.step:
        assert [fast.state[i]["step"] for i in range(3)] == [6.0, 6.0, 6.0]
    # All None: nothing at all happens.
    snap = snapshot(fast)
    assert fast.step([None, None, None])
    assert_unchanged(fast, snap)


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_add_param_group(opt, dtype, rng):
    options = max(opt.options, key=len)
    start = make_params(rng, (5, 6, 7), dtype)
    fast = opt.cls([start[0]], **options)
    ref = ReferenceOptimizer(opt.name, [{"params": [start[0]]},
                                        {"params": start[1:], "lr": options["lr"] / 2}], options)
    for _ in range(3):
        g = make_params(rng, (5,), dtype)
        fast.step(g)
        ref.step(g + [None, None])
    fast.add_param_group({"params": start[1:], "lr": options["lr"] / 2})
    assert len(fast.param_groups) == 2
    assert {k: v for k, v in fast.param_groups[1].items() if k not in ("params", "lr")} == \
           {k: v for k, v in fast.param_groups[0].items() if k not in ("params", "lr")}
    for _ in range(5):
        grads = make_params(rng, (5, 6, 7), dtype)
        fast.step(grads)
        ref.step(grads)
    check_against(ref, start, dtype)
    if opt.spec.step:
        assert [fast.state[i]["step"] for i in range(3)] == [8.0, 5.0, 5.0]
    sd = fast.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1, 2]]


def test_add_param_group_not_for_dict_params():
    opt = fastopt.SGD({"w": np.zeros(3)})
    with pytest.raises(TypeError):
        opt.add_param_group({"params": [np.zeros(2)]})


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_skip_nonfinite(opt, bad, dtype, rng):
    options = max(opt.options, key=len)
    start = make_params(rng, (5, 6, 1000), dtype)
    a = opt.cls([p.copy() for p in start], **options, skip_nonfinite=True)
    b = opt.cls([p.copy() for p in start], **options)
    for _ in range(3):
        grads = make_params(rng, (5, 6, 1000), dtype)
        assert a.step(grads) is True
        b.step(grads)
    snap = snapshot(a)
    for where in [(0, 0), (2, 999), (1, 3)]:
        grads = make_params(rng, (5, 6, 1000), dtype)
        grads[where[0]][where[1]] = bad
        assert a.step(grads) is False
        assert_unchanged(a, snap)
    grads = make_params(rng, (5, 6, 1000), dtype)
    grads[1] = None  # skipping a parameter and a finite step proceed as usual
    assert a.step(grads) is True
    b.step(grads)
    for p, q in zip(a._params, b._params):
        assert_bitwise(p, q)


def test_skip_nonfinite_ignores_params_without_grad(rng):
    opt = fastopt.Adam([np.zeros(3), np.zeros(3)], skip_nonfinite=True)
    assert opt.step([np.ones(3), None]) is True


class CountingEngine:
    """Forwards to the real engine, counting calls of step."""

    def __init__(self, engine):
        self._engine, self.calls = engine, 0

    def step(self, *args, **kwargs):
        self.calls += 1
        return self._engine.step(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._engine, name)


def python_events(fn):
    """Number of Python-visible calls (Python and builtin functions) made by fn()."""
    count = [0]

    def profile(frame, event, arg):
        if event in ("call", "c_call"):
            count[0] += 1
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count[0]


def test_one_call_into_c_per_step(rng):
    """A step over 1,000 tensors is one Engine.step call, which fills one item
    array and calls the C core once (fastopt/_core.pyx, Engine._step): the
    Python-visible work of a step does not grow with the number of tensors."""
    def setup(n):
        params = [np.zeros(10, np.float32) for _ in range(n)]
        grads = [np.ones(10, np.float32) for _ in range(n)]
        opt = fastopt.Adam([{"params": params[: n // 2]}, {"params": params[n // 2:], "lr": 0.1}])
        opt.step(grads)
        return opt, grads

    opt, grads = setup(1000)
    opt._engine = counter = CountingEngine(opt._engine)
    opt.step(grads)
    assert counter.calls == 1
    opt._engine = counter._engine
    assert opt.state[999]["step"] == 2.0 and opt.state[0]["step"] == 2.0

    small, small_grads = setup(2)
    big_events = python_events(lambda: opt.step(grads))
    small_events = python_events(lambda: small.step(small_grads))
    assert 0 < big_events == small_events, (big_events, small_events)


@pytest.mark.parametrize("opt", ["SGD", "Adagrad", "RMSprop", "Adam"])
def test_state_buffers_sit_together(opt, rng):
    """A group's new state buffers of one kind come from one allocation, each
    on a 64-byte boundary, in parameter order, whatever the shapes and dtypes
    (fastopt/optim.py, _state_buffers); Adagrad's start at its initial value."""
    shapes = [(10,), (3, 5), (), (0, 4), (7,), (2, 2, 2)]
    params = [rng.standard_normal(s).astype(np.float32 if k % 2 else np.float64)
              for k, s in enumerate(shapes)]
    hyper = {"SGD": {"momentum": 0.9}, "Adagrad": {"initial_accumulator_value": 0.25},
             "RMSprop": {"momentum": 0.9, "centered": True}, "Adam": {"amsgrad": True}}[opt]
    def check(o):
        names = {k for entry in o.state.values() for k in entry if k != "step"}
        assert len(names) == {"SGD": 1, "Adagrad": 1, "RMSprop": 3, "Adam": 3}[opt]
        for name in names:
            bufs = [o.state[i][name] for i in range(len(params))]
            addresses = [b.ctypes.data for b in bufs]
            for b, p, a in zip(bufs, params, addresses):
                assert b.shape == p.shape and b.dtype == p.dtype and b.flags.c_contiguous
                assert a % 64 == 0 or b.nbytes == 0
            used = [a for a, b in zip(addresses, bufs) if b.nbytes]
            assert used == sorted(used) and used[-1] - used[0] < 64 * len(params)

    o = getattr(fastopt, opt)(params, lr=0.1, **hyper)
    o.step([np.ones_like(p) for p in params])
    check(o)
    loaded = getattr(fastopt, opt)([p.copy() for p in params], lr=0.1, **hyper)
    loaded.load_state_dict(o.state_dict())  # a fresh optimizer's buffers come from loading
    check(loaded)
    if opt == "Adagrad":
        fresh = getattr(fastopt, opt)([np.zeros(3)], initial_accumulator_value=0.25)
        fresh.step([np.zeros(3)])
        np.testing.assert_array_equal(fresh.state[0]["sum"], 0.25)


@pytest.mark.parametrize("offset", [0, 16, 48, 2048, 4032])
def test_large_state_buffers_start_half_a_page_from_their_parameter(offset, rng):
    """A state buffer of 256 KiB or more starts 2 KiB (after its parameter's
    offset rounded up to 64 bytes) from where its parameter starts in a 4 KiB
    page, wherever the parameter sits; smaller ones keep sitting together.
    Each is still a zero-filled buffer of its own, and the step is the same."""
    n = 1 << 16  # float32: 256 KiB
    raw = np.zeros(4 * n + 8192, np.uint8)
    start = -raw.ctypes.data % 4096 + offset
    big = raw[start:start + 4 * n].view(np.float32)
    big[:] = rng.standard_normal(n).astype(np.float32)
    small = rng.standard_normal(10).astype(np.float32)
    params = [big, small, big.copy()]
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    ref = [p.astype(np.float64) for p in params]
    o = fastopt.Adam(params, lr=0.1)
    o.step(grads)
    for i in (0, 2):
        want = ((params[i].ctypes.data + 63) // 64 * 64 + 2048) % 4096
        for name in ("exp_avg", "exp_avg_sq"):
            buf = o.state[i][name]
            assert buf.ctypes.data % 4096 == want and buf.ctypes.data % 64 == 0
    spans = [(o.state[i][k].ctypes.data, o.state[i][k].ctypes.data + o.state[i][k].nbytes)
             for i in range(3) for k in ("exp_avg", "exp_avg_sq")]
    assert all(a1 <= b0 or b1 <= a0 for j, (a0, a1) in enumerate(spans) for b0, b1 in spans[:j])
    for p, r, g in zip(params, ref, grads):
        want, _ = reference.adam(r, g.astype(np.float64), {}, 1, lr=0.1)
        np.testing.assert_allclose(p, want, rtol=0, atol=1e-6)


def test_show_config(capsys):
    fastopt.show_config()
    out = capsys.readouterr().out
    assert f"fastopt {fastopt.__version__}" in out
    assert fastopt._core.active_isa() in out
    assert f"threads:     {fastopt.get_num_threads()}" in out
    for name in fastopt._core.isa_names():
        assert name in out


def run_python(code, **env):
    full = dict(os.environ, **env)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastopt.__file__)))
    full["PYTHONPATH"] = root + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          timeout=60)


def test_environment_variables():
    names = fastopt._core.isa_names()
    code = "import fastopt; print(fastopt._core.active_isa(), fastopt.get_num_threads()); fastopt.show_config()"
    for name in (names[0], names[-1]):
        r = run_python(code, FASTOPT_SIMD=name, FASTOPT_NUM_THREADS="3")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split("\n")[0] == f"{name} 3"
        assert f"simd path:   {name}" in r.stdout
    r = run_python("import fastopt", FASTOPT_SIMD="no-such-isa")
    assert r.returncode != 0 and "no-such-isa" in r.stderr and "ValueError" in r.stderr
    missing = [n for n in fastopt._core.compiled_isa_names() if n not in names]
    for name in missing:  # compiled in but this CPU lacks it: a clear error
        r = run_python("import fastopt", FASTOPT_SIMD=name)
        assert r.returncode != 0 and "not supported on this CPU" in r.stderr
    r = run_python("import fastopt", FASTOPT_NUM_THREADS="many")
    assert r.returncode != 0 and "FASTOPT_NUM_THREADS" in r.stderr


def test_importing_fastopt_does_not_import_torch():
    r = run_python("import sys, fastopt, fastopt.functional, fastopt.reference; "
                   "print('torch' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"

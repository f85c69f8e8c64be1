"""float16 and bfloat16 parameters and gradients with float32 state (API.md,
"16-bit parameters"): every optimizer against fastopt.reference run in
float32 on the widened values with the parameter rounded each step
(reference.half_step), bit for bit; torch's step on float32 master copies
rounded each step; fastopt.torch on 16-bit tensors; validation, state dicts
and checkpoints."""
import numpy as np
import pytest

import fastopt
from fastopt import reference
from conftest import OPTIMIZERS, IN_TORCH, TORCH_DENSE, assert_bitwise, grouped, run_isolated, snapshot, \
    assert_unchanged

ml_dtypes = pytest.importorskip("ml_dtypes")
HALF = [np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)]
SIZES = (1, 7, 63, 1000)


@pytest.fixture(params=HALF, ids=["bf16", "f16"])
def half(request):
    return request.param


def params_of(rng, dtype, sizes=SIZES):
    return [rng.standard_normal(n).astype(np.float32).astype(dtype) for n in sizes]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_matches_reference_rounded_each_step(opt, half, threads, rng):
    """θ16 ← round(update_f32(float32(θ16), float32(g16), state_f32)), bit
    for bit, with float32 state, for every option dict of every optimizer."""
    before = fastopt.get_num_threads()
    fastopt.set_num_threads(threads)
    try:
        for options in opt.options:
            params = params_of(rng, half)
            groups = grouped([p.copy() for p in params], options)
            ref = reference.ReferenceOptimizer(opt.name, groups, options)
            fast = opt.cls(groups, **options)
            ordered = [p for g in fast.param_groups for p in g["params"]]
            for _ in range(4):
                grads = [rng.standard_normal(p.shape).astype(np.float32).astype(half)
                         for p in ordered]
                fast.step(grads)
                ref.step(grads)
            state = fast.state_dict()["state"]
            for i, p in enumerate(ordered):
                what = f"{opt.name} {options} parameter {i}"
                assert p.dtype == half
                assert_bitwise(p, ref.params[i], what)
                for name, value in ref.state[i].items():
                    assert state[i][name].dtype == np.float32, what
                    assert_bitwise(state[i][name], value, f"{what} {name}")
    finally:
        fastopt.set_num_threads(before)


def test_half_step_is_the_float32_step_rounded(half, rng):
    """The reference semantics itself: one float32 step, then one rounding to
    nearest even (checked against ml_dtypes'/NumPy's conversion of float32)."""
    p, g = params_of(rng, half, [257])[0], params_of(rng, half, [257])[0]
    p16, state = reference.half_step(reference.adam, p, g, {}, 1, lr=0.1)
    p32, state32 = reference.adam(p.astype(np.float32), g.astype(np.float32), {}, 1, lr=0.1)
    assert p16.dtype == half and state["exp_avg"].dtype == np.float32
    assert_bitwise(p16, p32.astype(half))
    assert_bitwise(state["exp_avg_sq"], state32["exp_avg_sq"])


torch = pytest.importorskip("torch")
import fastopt.torch  # noqa: E402  (after the skip: it needs torch)
TORCH_DTYPES = {np.dtype(ml_dtypes.bfloat16): torch.bfloat16, np.dtype(np.float16): torch.float16}


def ulps_apart(a, b):
    """Per element, how many 16-bit values lie between a and b (same dtype)."""
    def ordered(x):
        bits = x.view(np.uint16).astype(np.int32)
        return np.where(bits & 0x8000, 0x8000 - bits, bits)
    return np.abs(ordered(a) - ordered(b))


@pytest.mark.parametrize("opt", IN_TORCH, ids=str)
def test_matches_torch_on_rounded_float32_masters(opt, half, rng):
    """torch.optim on float32 copies of the widened 16-bit values, each
    parameter rounded to the 16-bit type after every step (and widened again
    for the next): within one unit in the last place of the 16-bit type
    (torch's float32 arithmetic is fastopt's up to rounding)."""
    options = opt.full
    params = params_of(rng, half)
    fast = opt.cls([p.copy() for p in params], **options)
    masters = [torch.from_numpy(p.astype(np.float32)) for p in params]
    topt = getattr(torch.optim, opt.name)(masters, **options, foreach=False)
    for _ in range(10):
        grads = [rng.standard_normal(p.shape).astype(np.float32).astype(half) for p in params]
        fast.step(grads)
        for m, g in zip(masters, grads):
            m.grad = torch.from_numpy(g.astype(np.float32))
        topt.step()
        for m in masters:  # the 16-bit parameter torch would hold, widened again
            m.copy_(torch.from_numpy(m.numpy().astype(half).astype(np.float32)))
    for i, (p, m) in enumerate(zip(fast._params, masters)):
        assert ulps_apart(p, m.numpy().astype(half)).max() <= 1, f"{opt.name} parameter {i}"


@pytest.mark.parametrize("opt", TORCH_DENSE, ids=str)
def test_torch_class_steps_16bit_tensors_as_numpy(opt, half, rng):
    """fastopt.torch on bfloat16/float16 tensors: zero-copy views, float32
    state, the NumPy class's bits, and the fast path kept between steps."""
    options = opt.full
    params = params_of(rng, half)
    numpy_opt = opt.cls([p.copy() for p in params], **options)
    tensors = [torch.from_numpy(p.astype(np.float32)).to(TORCH_DTYPES[half]) for p in params]
    topt = getattr(fastopt.torch, opt.name)(tensors, **options)
    for _ in range(3):
        grads = [rng.standard_normal(p.shape).astype(np.float32).astype(half) for p in params]
        numpy_opt.step(grads)
        for t, g in zip(tensors, grads):
            t.grad = torch.from_numpy(g.astype(np.float32)).to(t.dtype)
        plan = topt._fo_plan
        topt.step()
        assert plan is None or topt._fo_plan is plan  # the plan was not rebuilt
    for i, (t, p) in enumerate(zip(tensors, numpy_opt._params)):
        assert t.dtype == TORCH_DTYPES[half]
        assert_bitwise(t.float().numpy().astype(half), p, f"{opt.name} parameter {i}")
        for name, value in topt.state[t].items():
            if name != "step":
                assert value.dtype == torch.float32
                assert_bitwise(value.numpy(), numpy_opt.state[i][name], f"{i} {name}")


def test_torch_refuses_mismatched_grads_and_state(half):
    dt = TORCH_DTYPES[half]
    w = torch.ones(5, dtype=dt)
    opt = fastopt.torch.Adam([w], lr=0.1)
    w.grad_dtype = None  # torch itself refuses a gradient of another dtype otherwise
    w.grad = torch.ones(5, dtype=torch.float32)
    with pytest.raises(TypeError, match="gradient of parameter 0"):
        opt.step()
    assert (w == 1).all() and not opt.state
    w.grad = torch.ones(5, dtype=dt)
    opt.step()
    opt.state[w]["exp_avg"] = torch.zeros(5, dtype=dt)  # torch's own state dtype: not ours
    before = w.clone()
    with pytest.raises(TypeError, match="expected torch.float32"):
        opt.step()
    assert torch.equal(w, before)


def test_numpy_validation(half, rng):
    w = params_of(rng, half, [9])[0]
    opt = fastopt.Adam([w], lr=0.1)
    opt.step([np.ones(9, half)])
    snap = snapshot(opt)
    for bad in (np.ones(9, np.float32), np.ones(9, np.uint16), np.ones(9, HALF[half == HALF[0]])):
        with pytest.raises(TypeError, match="must have dtype"):
            opt.step([bad])
        assert_unchanged(opt, snap)
    with pytest.raises(TypeError, match="float16 or bfloat16"):
        fastopt.Adam([np.ones(3, np.int16)])
    with pytest.raises(TypeError, match="float16 or bfloat16"):
        fastopt.Adam([np.ones(3, np.dtype(np.float16).newbyteorder())])
    with pytest.raises(TypeError, match="float16 or bfloat16"):
        fastopt.Adam([np.ones(3, np.uint16)])  # bits are bfloat16 only in fastopt.torch
    # state is float32 by default (state_dtype: tests/test_state_dtype.py); another
    # 16-bit type, float64 and mixed dtypes are refused
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"] = sd["state"][0]["exp_avg"].astype(half)
    opt.load_state_dict(sd)  # converted into the float32 buffer, as any loaded value
    assert opt.state[0]["exp_avg"].dtype == np.float32
    other = HALF[half == HALF[0]]
    with pytest.raises(ValueError, match="state slot 0 .* expected float32 or"):
        opt._engine.set_state(0, (np.zeros(9, other), None, None, None))
    with pytest.raises(ValueError, match="expected float32"):
        opt._engine.set_state(0, (np.zeros(9, np.float64), None, None, None))
    with pytest.raises(ValueError, match="exp_avg must have dtype float32 or"):
        fastopt.functional.adam_(w, np.ones(9, half), np.zeros(9, other), np.zeros(9, np.float32),
                                 step=1)
    with pytest.raises(ValueError, match="exp_avg must have dtype float32"):
        fastopt.functional.adam_(w, np.ones(9, half), np.zeros(9), np.zeros(9, np.float32),
                                 step=1)


def test_skip_nonfinite_reads_16bit_grads(half):
    w = np.ones(100, half)
    opt = fastopt.Adam([w], lr=0.1, skip_nonfinite=True)
    for bad in (np.inf, -np.inf, np.nan):
        g = np.ones(100, half)
        g[57] = bad
        assert opt.step([g]) is False
        assert (w == 1).all()
    big = np.full(100, 60000.0, half)  # finite, near float16's largest
    assert opt.step([big]) is True
    assert (w < 1).all()


def test_state_dict_and_checkpoint_round_trip(half, rng, tmp_path):
    params = params_of(rng, half)
    opt = fastopt.AdamW(params, lr=0.01, amsgrad=True)
    for _ in range(2):
        opt.step([rng.standard_normal(p.shape).astype(half) for p in params])
    path = tmp_path / "ckpt"
    fastopt.save({"params": params, "opt": opt.state_dict()}, path)
    back = fastopt.load(path)
    for p, q in zip(params, back["params"]):
        assert_bitwise(q, p)
    restored = [q.copy() for q in back["params"]]
    again = fastopt.AdamW(restored, lr=0.01, amsgrad=True)
    again.load_state_dict(back["opt"])
    grads = [rng.standard_normal(p.shape).astype(half) for p in params]
    opt.step(grads)
    again.step(grads)
    for p, q in zip(params, restored):
        assert_bitwise(q, p)
    for i in opt.state:
        for name, value in opt.state[i].items():
            if name != "step":
                assert value.dtype == np.float32
                assert_bitwise(again.state[i][name], value)


def test_checkpoint_of_torch_bfloat16_tensor(tmp_path):
    t = torch.tensor([1.5, -2.25, 3e38, float("inf")], dtype=torch.bfloat16)
    fastopt.save({"t": t}, tmp_path / "c")
    back = fastopt.load(tmp_path / "c")["t"]
    assert back.dtype == np.dtype(ml_dtypes.bfloat16)
    assert_bitwise(back.view(np.uint16), t.view(torch.int16).numpy().view(np.uint16))


def test_imports_and_steps_without_ml_dtypes():
    """fastopt never needs ml_dtypes: float16 steps, and a bfloat16 tensor
    through fastopt.torch, with ml_dtypes made unimportable."""
    out = run_isolated("""
import sys
sys.modules["ml_dtypes"] = None  # import ml_dtypes raises ImportError
import numpy as np, torch, fastopt, fastopt.torch
w = np.ones(3, np.float16)
fastopt.Adam([w], lr=0.5).step([np.ones(3, np.float16)])
t = torch.ones(3, dtype=torch.bfloat16)
opt = fastopt.torch.Adam([t], lr=0.5)
t.grad = torch.ones(3, dtype=torch.bfloat16)
opt.step()
print(w[0], float(t[0]), "ml_dtypes" in sys.modules and sys.modules["ml_dtypes"] is not None)
""")
    assert out.split() == ["0.5", "0.5", "False"]

"""16-bit optimizer state (API.md, "16-bit parameters and compressed
optimizer state": ``state_dtype=``): every optimizer with bfloat16 state on
float32 parameters and with state of the parameter's own 16-bit type,
against fastopt.reference stepping in float32 on the widened values and
rounding parameter and state each step (reference.half_step), bit for bit on
every SIMD path and thread count; torch's fused CPU Adam, AdamW and Adagrad
on bfloat16/float16 tensors; validation, state dicts and checkpoints."""
import inspect

import numpy as np
import pytest

import fastopt
from fastopt import _core, reference
from conftest import OPTIMIZERS, assert_bitwise, functional_step, grouped, snapshot, \
    assert_unchanged

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
SIZES = (1, 7, 63, 1000)
# (parameter dtype, state_dtype, the state's dtype)
CASES = [pytest.param(np.dtype(np.float32), "bfloat16", BF16, id="f32-bf16state"),
         pytest.param(BF16, "param", BF16, id="bf16-bf16state"),
         pytest.param(F16, "param", F16, id="f16-f16state")]
# Adafactor (its factors) and Muon (the update it orthogonalises) keep float32
# state; the generic OPTIMIZERS leave them out anyway.
STATE16 = [o for o in OPTIMIZERS if o.spec.algo in _core.STATE16_ALGOS]


def params_of(rng, dtype, sizes=SIZES):
    return [rng.standard_normal(n).astype(np.float32).astype(dtype) for n in sizes]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("pdtype, choice, sdtype", CASES)
@pytest.mark.parametrize("opt", STATE16, ids=str)
def test_matches_reference_rounded_each_step(opt, pdtype, choice, sdtype, threads, rng):
    """Parameter and state both rounded to nearest even after a float32 step
    on their widened values, bit for bit, for every option dict."""
    against_reference(opt, opt.options, pdtype, choice, sdtype, threads, rng, SIZES, 4)


def against_reference(opt, option_dicts, pdtype, choice, sdtype, threads, rng, sizes, steps):
    """`steps` steps of `opt` with state_dtype `choice` and of
    reference.ReferenceOptimizer, on `threads` threads: the same parameter
    and buffer bits (buffers of dtype `sdtype`), for each option dict."""
    before = fastopt.get_num_threads()
    fastopt.set_num_threads(threads)
    try:
        for options in option_dicts:
            params = params_of(rng, pdtype, sizes)
            groups = grouped([p.copy() for p in params], options)
            ref = reference.ReferenceOptimizer(opt.name, groups, options, state_dtype=choice)
            fast = opt.cls(groups, **options, state_dtype=choice)
            ordered = [p for g in fast.param_groups for p in g["params"]]
            for _ in range(steps):
                grads = [rng.standard_normal(p.shape).astype(np.float32).astype(pdtype)
                         for p in ordered]
                fast.step(grads)
                ref.step(grads)
            state = fast.state_dict()["state"]
            for i, p in enumerate(ordered):
                what = f"{opt.name} {options} parameter {i}"
                assert_bitwise(p, ref.params[i], what)
                for name, value in ref.state[i].items():
                    if np.ndim(value) == 0:
                        continue  # NAdam's mu_product, ASGD's eta and mu: 0-d, as torch's
                    assert state[i][name].dtype == sdtype, what
                    assert_bitwise(state[i][name], value, f"{what} {name}")
    finally:
        fastopt.set_num_threads(before)


@pytest.mark.parametrize("pdtype, choice, sdtype", CASES)
@pytest.mark.parametrize("opt", STATE16, ids=str)
def test_every_isa_gives_the_scalar_bits(opt, pdtype, choice, sdtype, rng):
    """One function step per SIMD path on sizes around every vector width:
    the scalar path's bits."""
    from conftest import new_state
    takes = inspect.signature(getattr(fastopt.functional, opt.spec.function + "_")).parameters
    for options in opt.options:
        options = {k: v for k, v in options.items() if k in takes}  # not Adagrad's initial value
        for n in (1, 15, 17, 33, 100):
            p0 = rng.standard_normal(n).astype(np.float32).astype(pdtype)
            g = rng.standard_normal(n).astype(np.float32).astype(pdtype)
            init = {k: (rng.random(n).astype(np.float32).astype(sdtype) if v.ndim else v)
                    for k, v in new_state(opt.name, p0.astype(np.float32)).items()}
            assert_every_isa_gives_the_scalar_bits(opt, p0, g, init, options)


def assert_every_isa_gives_the_scalar_bits(opt, p0, g, init, options):
    """Step 3 of `opt`'s function from (p0, state `init`) on each SIMD path:
    the scalar path's parameter and state bits."""
    results = {}
    for isa in _core.isa_names():
        p = p0.copy()
        state = {k: v.copy() for k, v in init.items()}
        functional_step(opt.name, p, g, state, 3, options, isa=isa)
        results[isa] = (p, state)
    p_s, state_s = results["scalar"]
    for isa, (p, state) in results.items():
        what = f"{opt.name} {options} n={p0.size} {isa}"
        assert_bitwise(p, p_s, what)
        for k in state:
            assert_bitwise(state[k], state_s[k], f"{what} {k}")


@pytest.mark.parametrize("opt", STATE16, ids=str)
def test_master_weights_with_16bit_state_step_as_float32_parameters(opt, rng):
    """master_weights=True with bfloat16 state: the master steps exactly as a
    float32 parameter with bfloat16 state does (the same state bits), and the
    bfloat16 parameter is its rounding."""
    options = opt.full
    p16 = params_of(rng, BF16)
    p32 = [p.astype(np.float32) for p in p16]
    a = opt.cls(p16, **options, master_weights=True, state_dtype="bfloat16")
    b = opt.cls(p32, **options, state_dtype="bfloat16")
    if opt.spec.group_state:
        a.train()
        b.train()
    for _ in range(3):
        grads = [rng.standard_normal(p.shape).astype(np.float32).astype(BF16) for p in p16]
        a.step(grads)
        b.step([g.astype(np.float32) for g in grads])
    for i, (x, y) in enumerate(zip(p16, p32)):
        assert_bitwise(a.state[i]["master_param"], y, f"{opt.name} {i}")
        assert_bitwise(x, y.astype(BF16), f"{opt.name} {i}")
        for name, value in b.state[i].items():
            if np.ndim(value):
                assert_bitwise(a.state[i][name], value, f"{opt.name} {i} {name}")


def test_bytes_per_parameter():
    """The state holds 2 bytes per element and buffer."""
    w = np.zeros(1000, np.float32)
    opt = fastopt.Adam([w], state_dtype="bfloat16", amsgrad=True)
    opt.step([np.ones(1000, np.float32)])
    assert {k: v.nbytes for k, v in opt.state[0].items() if k != "step"} == \
        {"exp_avg": 2000, "exp_avg_sq": 2000, "max_exp_avg_sq": 2000}
    assert fastopt.Adam([np.zeros(4, BF16)], state_dtype=np.dtype(BF16)).state_dtype == "bfloat16"


def test_default_and_float32_keep_float32_state():
    for choice in (None, "float32", np.float32):
        w = np.zeros(5, BF16)
        opt = fastopt.AdamW([w], state_dtype=choice)
        opt.step([np.ones(5, BF16)])
        assert opt.state[0]["exp_avg"].dtype == np.float32
    w64 = np.zeros(5)
    opt = fastopt.Adam([w64], state_dtype="param")
    opt.step([np.ones(5)])
    assert opt.state[0]["exp_avg"].dtype == np.float64


def test_bad_choices_are_refused_before_anything_changes():
    with pytest.raises(ValueError, match="state_dtype must be"):
        fastopt.Adam([np.zeros(3, np.float32)], state_dtype="int4")
    with pytest.raises(TypeError, match="state_dtype must be"):
        fastopt.Adam([np.zeros(3, np.float32)], state_dtype=3.5)
    with pytest.raises(ValueError, match="float64: its state can be float64"):
        fastopt.Adam([np.zeros(3)], state_dtype="bfloat16")
    with pytest.raises(ValueError, match="float16: its state can be float32 or float16"):
        fastopt.Adam([np.zeros(3, F16)], state_dtype="bfloat16")
    with pytest.raises(ValueError, match="keeps float32 state"):
        fastopt.Adafactor([np.zeros(3, np.float32)], state_dtype="bfloat16")
    with pytest.raises(ValueError, match="its state can be float32 under the muon"):
        fastopt.Muon([np.zeros((3, 3), BF16)], state_dtype="param")
    # a parameter added later is checked as in the constructor
    w = np.zeros(3, np.float32)
    opt = fastopt.SGD([w], lr=0.1, momentum=0.9, state_dtype="bfloat16")
    opt.step([np.ones(3, np.float32)])
    snap = snapshot(opt)
    with pytest.raises(ValueError, match="float64"):
        opt.add_param_group({"params": [np.zeros(2)]})
    assert_unchanged(opt, snap)


def test_engine_refuses_mixed_or_wrong_state_dtypes():
    w = np.zeros(9, np.float32)
    opt = fastopt.Adam([w], state_dtype="bfloat16", amsgrad=True)
    opt.step([np.ones(9, np.float32)])
    with pytest.raises(ValueError, match="one dtype for all its slots"):
        opt._engine.set_state(0, (np.zeros(9, BF16), np.zeros(9, np.float32), np.zeros(9, BF16), None))
    with pytest.raises(ValueError, match="expected float32 or bfloat16"):
        opt._engine.set_state(0, (np.zeros(9, F16), None, None, None))
    with pytest.raises(ValueError, match="must have dtype float32 or bfloat16"):
        fastopt.functional.adam_(w, np.ones(9, np.float32), np.zeros(9, F16), np.zeros(9, F16), step=1)
    a = fastopt.Adafactor([np.zeros(9, np.float32)])
    a.step([np.ones(9, np.float32)])
    with pytest.raises(ValueError, match="expected float32 .one dtype"):
        a._engine.set_state(0, (None, None, np.zeros(9, BF16), None))


def test_resume_is_bit_identical(tmp_path, rng):
    """Save after 3 steps, load into a new optimizer, 3 more: the run that
    never stopped, bit for bit (the state dict holds the bfloat16 buffers)."""
    params = params_of(rng, np.float32)
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for _ in range(6)]
    straight = [p.copy() for p in params]
    a = fastopt.Adam(straight, lr=0.01, amsgrad=True, state_dtype="bfloat16")
    for g in grads:
        a.step(g)
    first = [p.copy() for p in params]
    b = fastopt.Adam(first, lr=0.01, amsgrad=True, state_dtype="bfloat16")
    for g in grads[:3]:
        b.step(g)
    fastopt.save({"params": first, "optimizer": b.state_dict()}, tmp_path / "ckpt")
    saved = fastopt.load(tmp_path / "ckpt")
    assert saved["optimizer"]["state"][0]["exp_avg"].dtype == BF16
    resumed = [np.array(p) for p in saved["params"]]
    c = fastopt.Adam(resumed, lr=0.01, amsgrad=True, state_dtype="bfloat16")
    c.load_state_dict(saved["optimizer"])
    for g in grads[3:]:
        c.step(g)
    for x, y in zip(resumed, straight):
        assert_bitwise(x, y)


def test_float32_checkpoint_loads_rounded():
    """A float32-state checkpoint loads into bfloat16 state rounded to
    nearest even (as torch casts loaded state to its own dtype)."""
    w = np.ones(4, np.float32)
    a = fastopt.Adam([w.copy()], lr=0.1)
    a.step([np.full(4, 0.3, np.float32)])
    b = fastopt.Adam([w.copy()], lr=0.1, state_dtype="bfloat16")
    b.load_state_dict(a.state_dict())
    assert b.state[0]["exp_avg"].dtype == BF16
    assert_bitwise(b.state[0]["exp_avg"], a.state[0]["exp_avg"].astype(BF16))


torch = pytest.importorskip("torch")
TORCH_DTYPES = {BF16: torch.bfloat16, F16: torch.float16}


def ordered_bits(x):
    """16-bit values as integers in the order of the values (-0 next to +0)."""
    bits = x.view(np.uint16).astype(np.int64)
    return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)


def within_one_ulp(actual, expected, scale):
    """Per element, |actual - expected| is at most one unit in the last place
    of the 16-bit type, or (where the result cancelled to near zero) within
    float32's rounding of the terms it was computed from (magnitude `scale`):
    torch's vector path contracts lerp into a fused multiply-add, fastopt
    rounds the product first (no FMA contraction), and that is the difference
    the result keeps when the two terms nearly cancel."""
    ulps = np.abs(ordered_bits(actual) - ordered_bits(expected))
    gap = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    return (ulps <= 1) | (gap <= 2.0**-22 * scale)


# torch's fused CPU kernels for 16-bit tensors (aten/src/ATen/native/cpu/Fused*.cpp).
# Its fused SGD is left out: in torch 2.13 its vector loop for bfloat16 and
# float16 never stores the parameter and reads the 16-bit momentum buffer as
# float32 (docs/precision.md); fastopt's SGD is checked against the reference above.
# Its Adagrad converts lr, eps and weight_decay to the 16-bit type first in its
# vector loop: the learning rates here are exact in both 16-bit types.
FUSED = [("Adam", {"lr": 0.01}), ("Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
         ("AdamW", {"lr": 0.01, "weight_decay": 0.1}), ("Adam", {"lr": 0.01, "maximize": True}),
         ("Adagrad", {"lr": 0.125}), ("Adagrad", {"lr": 0.0625, "weight_decay": 0.25})]


@pytest.mark.parametrize("half", [BF16, F16], ids=["bf16", "f16"])
@pytest.mark.parametrize("name, options", FUSED, ids=lambda x: x if isinstance(x, str) else None)
def test_param_state_matches_torch_fused(name, options, half, rng):
    """state_dtype="param" against torch's fused=True on 16-bit tensors, step
    by step from torch's own parameter and state: parameter and every buffer
    within one 16-bit ulp (cancellation-aware, within_one_ulp)."""
    tdt = TORCH_DTYPES[half]

    def to_numpy(t):
        return t.detach().view(torch.int16).numpy().view(half).copy()

    n = 4099  # vector loops and their tails
    tp = torch.from_numpy(rng.standard_normal(n).astype(np.float32)).to(tdt).requires_grad_()
    topt = getattr(torch.optim, name)([tp], fused=True, **options)
    for step in range(1, 9):
        p = to_numpy(tp)
        fopt = getattr(fastopt, name)([p], **options, state_dtype="param")
        old = {}
        if step > 1:
            saved = topt.state_dict()["state"][0]
            old = {k: (float(v) if k == "step" else to_numpy(v)) for k, v in saved.items()}
            fopt.load_state_dict({"state": {0: old}, "param_groups": fopt.state_dict()["param_groups"]})
        g = rng.standard_normal(n).astype(np.float32).astype(half)
        tp.grad = torch.from_numpy(g.view(np.int16)).view(tdt)
        p_old = p.astype(np.float32)
        topt.step()
        fopt.step([g])
        # the terms each result is made of: parameter and update, buffer and gradient (squared)
        g32 = np.abs(g.astype(np.float32))
        assert within_one_ulp(p, to_numpy(tp), np.abs(p_old) + options["lr"]).all(), f"{name} step {step}"
        for key, value in topt.state[tp].items():
            if key == "step":
                continue
            mine = fopt.state[0][key]
            assert mine.dtype == half
            prev = np.abs(old[key].astype(np.float32)) if key in old else 0.0
            scale = prev + g32 + g32 * g32
            assert within_one_ulp(mine, to_numpy(value), scale).all(), f"{name} step {step} {key}"


import fastopt.torch  # noqa: E402  (after the skip: it needs torch)
from conftest import TORCH_DENSE  # noqa: E402


def tensor_of(a):
    """A torch tensor of a NumPy array's values and dtype (bfloat16 by its bits)."""
    if a.dtype == BF16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


def numpy_of(t, dtype):
    return t.detach().view(torch.int16).numpy().view(dtype) if t.dtype == torch.bfloat16 else t.numpy()


@pytest.mark.parametrize("pdtype, choice, sdtype", CASES)
@pytest.mark.parametrize("opt", [o for o in TORCH_DENSE if o in STATE16], ids=str)
def test_torch_class_gives_the_numpy_bits(opt, pdtype, choice, sdtype, rng):
    """fastopt.torch with state_dtype: the NumPy class's parameter and state
    bits, state tensors of the 16-bit dtype, and a state dict that loads back
    with that dtype."""
    options = opt.full
    params = params_of(rng, pdtype)
    numpy_opt = opt.cls([p.copy() for p in params], **options, state_dtype=choice)
    tensors = [tensor_of(p) for p in params]
    topt = getattr(fastopt.torch, opt.name)(tensors, **options, state_dtype=choice)
    if opt.spec.group_state:
        numpy_opt.train()
        topt.train()
    for _ in range(3):
        grads = [rng.standard_normal(p.shape).astype(np.float32).astype(pdtype) for p in params]
        numpy_opt.step(grads)
        for t, g in zip(tensors, grads):
            t.grad = tensor_of(g)
        topt.step()
    again = getattr(fastopt.torch, opt.name)([t.clone() for t in tensors], **options, state_dtype=choice)
    again.load_state_dict(topt.state_dict())
    for i, (t, p) in enumerate(zip(tensors, numpy_opt._params)):
        assert_bitwise(numpy_of(t, pdtype), p, f"{opt.name} parameter {i}")
        loaded = list(again.state.values())[i]
        for name, value in topt.state[t].items():
            if name == "step" or value.ndim == 0:
                continue
            assert value.dtype == TORCH_DTYPES.get(sdtype, torch.float32)
            assert loaded[name].dtype == value.dtype
            assert_bitwise(numpy_of(value, sdtype), numpy_opt.state[i][name], f"{i} {name}")


# ---------------------------------------------------------------- 8-bit state

STATE8 = [o for o in OPTIMIZERS if o.spec.algo in _core.STATE8_ALGOS]


def int8_options(opt):
    """The option dicts 8-bit state steps (not centered RMSprop: refused)."""
    return [o for o in opt.options if not o.get("centered")]
Q8_CASES = [pytest.param(np.dtype(np.float32), id="f32"), pytest.param(BF16, id="bf16"),
            pytest.param(F16, id="f16")]


def test_int8_algorithms_are_the_six():
    assert sorted(o.name for o in STATE8) == ["Adagrad", "Adam", "AdamW", "Lion", "RMSprop", "SGD"]


def test_q8_maps_are_bitsandbytes_and_the_reference():
    for signed in (True, False):
        assert_bitwise(_core.q8_code(signed), reference.q8_code(signed))
    bnb = pytest.importorskip("bitsandbytes.functional", reason="bitsandbytes: the maps' origin")
    for signed in (True, False):
        assert_bitwise(_core.q8_code(signed), bnb.create_dynamic_map(signed).numpy())


def test_q8_signedness_is_the_specs():
    for o in STATE8:
        for b in o.spec.state:
            assert _core.q8_signed(o.spec.algo, b.slot) == (not b.nonneg), (o.name, b.name)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_q8_encode_decode_match_the_reference(signed, rng):
    cases = [rng.standard_normal(1000), rng.standard_normal(300) * 1e-30, np.zeros(257),
             np.r_[rng.standard_normal(300), np.nan, rng.standard_normal(10)],
             np.r_[rng.standard_normal(10), np.inf], np.array([1e-8, -0.0, 2.5]),
             rng.random(777) ** 8]
    code = reference.q8_code(signed)
    mid = ((code[:-1].astype(np.float64) + code[1:]) / 2).astype(np.float32)
    for side in (-np.inf, 0, np.inf):  # every midpoint, and the floats either side: scale 1
        near = np.nextafter(mid, np.float32(side)) if side else mid
        cases += [np.r_[np.float32(1), block] for block in np.array_split(near, 2)]
    for x in cases:
        x = np.abs(x) if not signed else x
        x = x.astype(np.float32)
        blob = _core.q8_encode(x, signed)
        assert_bitwise(blob, reference.q8_encode(x, signed))
        assert_bitwise(_core.q8_decode(blob, x.size, signed), reference.q8_decode(blob, x.size, signed))
        if np.isfinite(x).all():  # each value went to its nearest code (a midpoint's float32
            y = _core.q8_decode(blob, x.size, signed)  # rounding aside: ties either way)
            scale = np.repeat(blob[-(-x.size // 64) * 64:].view(np.float32), 256)[:x.size]
            gaps = np.abs(code[None, :] * scale[:, None] - x[:, None]).min(axis=1)
            assert (np.abs(y - x) <= gaps * (1 + 1e-6) + 2 * np.spacing(np.abs(x))).all()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("pdtype", Q8_CASES)
@pytest.mark.parametrize("opt", STATE8, ids=str)
def test_int8_matches_reference(opt, pdtype, threads, rng):
    """Codes and scales as reference.q8_step makes them, and the parameter, bit
    for bit, over sizes around the block, for every option dict."""
    against_reference(opt, int8_options(opt), pdtype, "int8", np.dtype(np.uint8), threads, rng,
                      (1, 255, 257, 1000, 70001), 3)


@pytest.mark.parametrize("opt", STATE8, ids=str)
def test_int8_every_isa_gives_the_scalar_bits(opt, rng):
    from conftest import new_state
    takes = inspect.signature(getattr(fastopt.functional, opt.spec.function + "_")).parameters
    for options in int8_options(opt):
        options = {k: v for k, v in options.items() if k in takes}
        n = 1000
        p0 = rng.standard_normal(n).astype(np.float32)
        g = rng.standard_normal(n).astype(np.float32)
        init = {}
        for b in opt.spec.state:
            values = rng.random(n).astype(np.float32) * (1 if b.nonneg else rng.choice([-1, 1], n))
            init[b.name] = _core.q8_encode(values, not b.nonneg)
        init.update({k: v for k, v in new_state(opt.name, p0).items() if v.ndim == 0})
        assert_every_isa_gives_the_scalar_bits(opt, p0, g, init, options)


def test_int8_bytes_per_parameter():
    n = 10**6
    opt = fastopt.Adam([np.zeros(n, np.float32)], state_dtype="int8")
    opt.step([np.ones(n, np.float32)])
    sizes = {k: v.nbytes for k, v in opt.state[0].items() if k != "step"}
    assert sizes == {"exp_avg": n + 4 * 3907, "exp_avg_sq": n + 4 * 3907}  # 1.0156 bytes per value


def test_int8_resume_and_conversions(tmp_path, rng):
    """Bit-identical resume from fastopt.save; a float32 checkpoint loads
    quantized, an 8-bit one into float32 state dequantized."""
    params = params_of(rng, np.float32, (5, 600))
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for _ in range(6)]
    straight = [p.copy() for p in params]
    a = fastopt.Adam(straight, lr=0.01, state_dtype="int8")
    for g in grads:
        a.step(g)
    first = [p.copy() for p in params]
    b = fastopt.Adam(first, lr=0.01, state_dtype="int8")
    for g in grads[:3]:
        b.step(g)
    fastopt.save({"params": first, "optimizer": b.state_dict()}, tmp_path / "ckpt")
    saved = fastopt.load(tmp_path / "ckpt")
    resumed = [np.array(p) for p in saved["params"]]
    c = fastopt.Adam(resumed, lr=0.01, state_dtype="int8")
    c.load_state_dict(saved["optimizer"])
    for g in grads[3:]:
        c.step(g)
    for x, y in zip(resumed, straight):
        assert_bitwise(x, y)
    f32 = fastopt.Adam([p.copy() for p in params], lr=0.01)
    f32.load_state_dict(b.state_dict())
    assert_bitwise(f32.state[1]["exp_avg"], _core.q8_decode(b.state[1]["exp_avg"], 600, True))
    back = fastopt.Adam([p.copy() for p in params], lr=0.01, state_dtype="int8")
    back.load_state_dict(f32.state_dict())
    assert_bitwise(back.state[1]["exp_avg_sq"], _core.q8_encode(f32.state[1]["exp_avg_sq"], False))


def test_int8_refusals_change_nothing():
    with pytest.raises(ValueError, match="int8"):
        fastopt.Adadelta([np.zeros(3, np.float32)], state_dtype="int8")
    with pytest.raises(ValueError, match="float64"):
        fastopt.Adam([np.zeros(3)], state_dtype="int8")
    with pytest.raises(ValueError, match="master_weights"):
        fastopt.Adam([np.zeros(3, BF16)], state_dtype="int8", master_weights=True)
    with pytest.raises(ValueError, match="stochastic"):
        fastopt.Adam([np.zeros(3, BF16)], state_dtype="int8", rounding="stochastic")
    # centered RMSprop's v - ḡ² of two quantized averages can be negative
    with pytest.raises(ValueError, match="centered"):
        fastopt.RMSprop([np.zeros(3, np.float32)], state_dtype="int8", centered=True)
    r = fastopt.RMSprop([np.zeros(3, np.float32)], state_dtype="int8")
    r.param_groups[0]["centered"] = True
    with pytest.raises(ValueError, match="centered"):
        r.step([np.ones(3, np.float32)])
    assert (r.param_groups[0]["params"][0] == 0).all()
    with pytest.raises(ValueError, match="centered"):
        fastopt.torch.RMSprop([torch.zeros(3)], state_dtype="int8", centered=True)
    w = np.ones((4, 3), np.float32)
    opt = fastopt.Adagrad([w], lr=0.1, state_dtype="int8")  # it takes row-sparse gradients
    opt.step([np.ones((4, 3), np.float32)])
    snap = snapshot(opt)
    with pytest.raises(ValueError, match="8-bit state"):
        opt.step([fastopt.RowSparse(np.array([1]), np.ones((1, 3), np.float32))])
    assert_unchanged(opt, snap)
    a = fastopt.Adam([np.zeros(600, np.float32)], state_dtype="int8")
    a.step([np.ones(600, np.float32)])
    with pytest.raises(ValueError, match="8-bit"):
        a._engine.set_state(0, (np.zeros(100, np.uint8), None, None, None))
    with pytest.raises(ValueError, match="one dtype"):
        a._engine.set_state(0, (np.zeros(_core.q8_bytes(600), np.uint8), np.zeros(600, np.float32),
                                None, None))


def test_int8_torch_class_gives_the_numpy_bits(rng):
    for opt in STATE8:
        options = max(int8_options(opt), key=len)
        params = params_of(rng, np.float32, (7, 1000))
        params[1] = params[1].reshape(40, 25)  # 8-bit buffers are flat whatever the shape
        numpy_opt = opt.cls([p.copy() for p in params], **options, state_dtype="int8")
        tensors = [torch.from_numpy(p.copy()) for p in params]
        topt = getattr(fastopt.torch, opt.name)(tensors, **options, state_dtype="int8")
        for _ in range(3):
            grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
            numpy_opt.step(grads)
            for t, g in zip(tensors, grads):
                t.grad = torch.from_numpy(g)
            topt.step()
        again = getattr(fastopt.torch, opt.name)([t.clone() for t in tensors], **options, state_dtype="int8")
        again.load_state_dict(topt.state_dict())
        for i, (t, p) in enumerate(zip(tensors, numpy_opt._params)):
            assert_bitwise(t.numpy(), p, f"{opt.name} parameter {i}")
            loaded = list(again.state.values())[i]
            for name, value in topt.state[t].items():
                if name == "step" or value.ndim == 0:
                    continue
                assert value.dtype == torch.uint8 and loaded[name].dtype == torch.uint8
                assert_bitwise(value.numpy(), numpy_opt.state[i][name], f"{opt.name} {i} {name}")
                assert_bitwise(loaded[name].numpy(), value.numpy())


@pytest.mark.slow  # two models trained three times each (about a minute)
def test_16bit_and_8bit_state_train_within_2_percent():
    """The digits MLP and the tiny GPT-2-style model of
    benchmarks/bench_precision_training.py: with bfloat16 or 8-bit state,
    the loss after training is at most 2% above the float32-state run's."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_precision_training.py")
    if not os.path.isfile(path):
        pytest.skip("needs the source tree's benchmarks/")
    pytest.importorskip("sklearn", reason="the digits data set")
    spec = importlib.util.spec_from_file_location("bench_precision_training", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for curve in (bench.digits_curve, bench.gpt_curve):
        base = curve(None)[1]
        for state in ("bfloat16", "int8"):
            final = curve(state)[1]
            assert final <= 1.02 * base, (curve.__name__, state, final, base)

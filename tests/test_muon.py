"""Muon against torch.optim.Muon and fastopt.reference.

torch runs the Newton-Schulz iteration in bfloat16; fastopt runs it in
float32 (API.md). The oracle is torch.optim.Muon with its
``_zeropower_via_newtonschulz`` replaced by the same function in float32:
torch's own code (it casts to bfloat16 unconditionally, so it cannot be
called on a float32 tensor as it is), line for line, with a float32 copy for
``.bfloat16()``. Tolerance: the matmuls go through different BLAS kernels
(NumPy's vs torch's), whose summation orders differ; five Newton-Schulz
iterations amplify those float32 roundings (the quintic has slope ~3.4 at
small singular values), so after 100 steps parameters agree to about 1e-5
relative. rtol 1e-4, atol 1e-5 times the magnitude (floored at 1) bounds
that with room and still fails for any formula slip (a wrong lerp, decay
order, transpose or lr factor moves values by 1e-3 or more). The momentum
buffer does not depend on the iteration and matches bit for bit.
"""
import numpy as np
import pytest

import fastopt
from fastopt import functional as F, reference
from conftest import assert_bitwise, snapshot, assert_unchanged

RTOL, ATOL = 1e-4, 1e-5
SHAPES = [(8, 5), (4, 6), (7, 7), (1, 9)]


def close(actual, expected, what=""):
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max(initial=0)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=RTOL,
                               atol=ATOL * scale, err_msg=what)


@pytest.fixture
def torch_f32_ns(monkeypatch):
    torch = pytest.importorskip("torch")
    import torch.optim._muon as tm
    import fastopt.torch  # noqa: F401  (importing fastopt never imports torch)

    def zeropower_f32(grad, ns_coefficients, ns_steps, eps):
        assert ns_steps < 100 and grad.ndim == 2 and len(ns_coefficients) == 3
        a, b, c = ns_coefficients
        ortho = grad.to(torch.float32, copy=True)  # torch: grad.bfloat16(), a copy as this
        if grad.size(0) > grad.size(1):
            ortho = ortho.T
        ortho.div_(ortho.norm().clamp(min=eps))
        for _ in range(ns_steps):
            gram = ortho @ ortho.T
            update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
            ortho = torch.addmm(ortho, update, ortho, beta=a)
        if grad.size(0) > grad.size(1):
            ortho = ortho.T
        return ortho

    monkeypatch.setattr(tm, "_zeropower_via_newtonschulz", zeropower_f32)
    return torch


CASES = [
    dict(lr=0.02),
    dict(lr=0.02, nesterov=False),
    dict(lr=0.02, adjust_lr_fn="original", weight_decay=0.0),
    dict(lr=0.01, adjust_lr_fn="match_rms_adamw", weight_decay=0.3, momentum=0.9),
    dict(lr=0.02, momentum=0.3, ns_steps=3, eps=1e-3, ns_coefficients=(2.0, -1.5, 0.5)),
]


def groups_of(params, options):
    return [{"params": params[0::2]}, {"params": params[1::2], "lr": options["lr"] * 1.5,
                                       "weight_decay": 0.05}]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", CASES, ids=range(len(CASES)))
def test_against_torch_two_groups_100_steps(torch_f32_ns, dtype, options):
    torch = torch_f32_ns
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    fparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    ours = fastopt.Muon(groups_of(params, options), **options)
    theirs = torch.optim.Muon(groups_of(tparams, options), **options)
    mine = fastopt.torch.Muon(groups_of(fparams, options), **options)
    order = params[0::2] + params[1::2]
    torder = tparams[0::2] + tparams[1::2]
    forder = fparams[0::2] + fparams[1::2]
    for _ in range(100):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in order]
        ours.step(grads)
        for p, q, g in zip(torder, forder, grads):
            p.grad, q.grad = torch.tensor(g), torch.tensor(g)
        theirs.step()
        mine.step()
    for i, (p, t, f) in enumerate(zip(order, torder, forder)):
        close(p, t.detach().numpy(), f"param {i}")
        assert_bitwise(f.detach().numpy(), p, f"fastopt.torch param {i}")
        close(ours.state[i]["momentum_buffer"], theirs.state[t]["momentum_buffer"].numpy(),
              f"buffer {i}")
        assert_bitwise(mine.state[f]["momentum_buffer"].numpy(), ours.state[i]["momentum_buffer"])


def test_state_dict_layout_and_checkpoints_both_ways(torch_f32_ns):
    torch = torch_f32_ns
    rng = np.random.default_rng(2)
    params = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    ours, theirs = fastopt.Muon(params, lr=0.02), torch.optim.Muon(tparams, lr=0.02)
    for _ in range(3):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
        ours.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        theirs.step()
    mine, tsd = ours.state_dict(), theirs.state_dict()
    assert mine["param_groups"] == [{k: v for k, v in g.items()} for g in tsd["param_groups"]]
    assert mine["state"].keys() == tsd["state"].keys()
    for i in mine["state"]:
        assert list(mine["state"][i]) == list(tsd["state"][i]) == ["momentum_buffer"]
    # torch's checkpoint into fastopt, fastopt's into torch: the same next step
    fresh = fastopt.Muon([p.copy() for p in params], lr=0.02)
    fresh.load_state_dict(tsd)
    back = torch.optim.Muon([torch.tensor(p.copy(), requires_grad=True) for p in params], lr=0.02)
    back.load_state_dict({"state": {i: {k: torch.tensor(v) for k, v in e.items()}
                                    for i, e in mine["state"].items()},
                          "param_groups": mine["param_groups"]})
    for i in mine["state"]:
        assert_bitwise(fresh.state[i]["momentum_buffer"], tsd["state"][i]["momentum_buffer"].numpy())
        assert_bitwise(back.state_dict()["state"][i]["momentum_buffer"].numpy(),
                       mine["state"][i]["momentum_buffer"])
    tmine = fastopt.torch.Muon([torch.tensor(p.copy(), requires_grad=True) for p in params], lr=0.02)
    tmine.load_state_dict(tsd)
    assert tmine.state_dict()["param_groups"] == tsd["param_groups"]


def test_resume_is_bit_identical(tmp_path):
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    # in group order (groups_of: the even-indexed arrays, then the odd ones)
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES[0::2] + SHAPES[1::2]]
             for _ in range(20)]
    a = fastopt.Muon(groups_of([p.copy() for p in params], dict(lr=0.02)), lr=0.02)
    for g in grads:
        a.step(g)
    b_params = [p.copy() for p in params]
    b = fastopt.Muon(groups_of(b_params, dict(lr=0.02)), lr=0.02)
    for g in grads[:10]:
        b.step(g)
    fastopt.save(b.state_dict(), tmp_path / "ck.fo")
    c_params = [p.copy() for p in b.param_groups[0]["params"] + b.param_groups[1]["params"]]
    c = fastopt.Muon([{"params": c_params[:2]}, {"params": c_params[2:]}], lr=0.02)
    c.load_state_dict(fastopt.load(tmp_path / "ck.fo"))
    for g in grads[10:]:
        c.step(g)
    final_a = a.param_groups[0]["params"] + a.param_groups[1]["params"]
    for x, y in zip(final_a, c_params):
        assert_bitwise(y, x)


@pytest.mark.parametrize("bad", [
    dict(lr=-1.0), dict(momentum=-0.1), dict(weight_decay=-0.1), dict(adjust_lr_fn="other"),
    dict(ns_steps=100), dict(ns_coefficients=(1.0, 2.0)), dict(ns_steps=2.5),
])
def test_invalid_hyperparameters_touch_nothing(bad):
    rng = np.random.default_rng(4)
    params = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    with pytest.raises((ValueError, TypeError)):
        fastopt.Muon(params, **bad)
    opt = fastopt.Muon(params, lr=0.02)
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    opt.step(grads)
    opt.param_groups[0].update(bad)
    snap = snapshot(opt)
    with pytest.raises((ValueError, TypeError)):
        opt.step(grads)
    assert_unchanged(opt, snap)


def test_torch_class_checks_like_torch(torch_f32_ns):
    torch = torch_f32_ns
    w = torch.zeros(3, 4, requires_grad=True)
    for bad in (dict(lr=-1.0), dict(adjust_lr_fn="x"), dict(ns_steps=100)):
        with pytest.raises(ValueError):
            fastopt.torch.Muon([w], **bad)
    opt = fastopt.torch.Muon([w], lr=0.1)
    w.grad = torch.ones(3, 4)
    opt.step()
    before = (w.detach().clone(), opt.state[w]["momentum_buffer"].clone())
    opt.param_groups[0]["ns_coefficients"] = (1.0, 2.0)  # torch checks this only at its step
    with pytest.raises(ValueError):
        opt.step()
    assert torch.equal(w.detach(), before[0])
    assert torch.equal(opt.state[w]["momentum_buffer"], before[1])
    with pytest.raises(ValueError, match="2D"):
        fastopt.torch.Muon([torch.zeros(5, requires_grad=True)])


@pytest.mark.parametrize("shape", [(5,), (), (2, 3, 4)])
def test_non_2d_parameter_is_a_value_error(shape):
    good = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="parameter 1 .*2-D"):
        fastopt.Muon([good, np.zeros(shape, np.float32)])
    p, g, b = np.ones(shape, np.float32), np.ones(shape, np.float32), np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match="2-D"):
        F.muon_(p, g, b, step=1)
    assert_bitwise(p, np.ones(shape, np.float32))
    assert_bitwise(b, np.zeros(shape, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", CASES, ids=range(len(CASES)))
def test_against_reference_without_torch(dtype, options):
    rng = np.random.default_rng(5)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ref = reference.ReferenceOptimizer("Muon", groups_of(params, options), options)
    opt = fastopt.Muon(groups_of([p.copy() for p in params], options), **options)
    order = opt.param_groups[0]["params"] + opt.param_groups[1]["params"]
    for _ in range(100):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in order]
        opt.step(grads)
        ref.step(grads)
    for i, p in enumerate(order):
        close(p, ref.params[i], f"param {i}")
        assert_bitwise(opt.state[i]["momentum_buffer"], ref.state[i]["momentum_buffer"])


def test_functional_is_one_step_of_the_class():
    rng = np.random.default_rng(6)
    p = rng.standard_normal((6, 4)).astype(np.float32)
    q, buf = p.copy(), np.zeros_like(p)
    opt = fastopt.Muon([p], lr=0.05, adjust_lr_fn="match_rms_adamw")
    for step in range(1, 4):
        g = rng.standard_normal(p.shape).astype(np.float32)
        opt.step([g])
        F.muon_(q, g, buf, step=step, lr=0.05, adjust_lr_fn="match_rms_adamw")
    assert_bitwise(q, p)
    assert_bitwise(buf, opt.state[0]["momentum_buffer"])


def test_threads_and_isa_give_the_same_bits():
    from conftest import run_isolated
    code = """
import numpy as np, fastopt
def run():
    rng = np.random.default_rng(7)
    p = rng.standard_normal((300, 70)).astype(np.float32)
    opt = fastopt.Muon([p], lr=0.02)
    for _ in range(5):
        opt.step([rng.standard_normal(p.shape).astype(np.float32)])
    return p, opt.state[0]["momentum_buffer"]
fastopt.set_num_threads(1)
a = run()
fastopt.set_num_threads(2)
b = run()
assert all(np.array_equal(x.view(np.uint32), y.view(np.uint32)) for x, y in zip(a, b))
"""
    run_isolated(code)


def test_bfloat16_parameters_step_in_float32_state():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(8)
    p32 = rng.standard_normal((6, 5)).astype(np.float32)
    p = p32.astype(ml_dtypes.bfloat16)
    opt = fastopt.Muon([p], lr=0.02)
    ref_p, state = p.copy(), {}
    for step in range(1, 6):
        g = rng.standard_normal(p.shape).astype(ml_dtypes.bfloat16)
        opt.step([g])
        ref_p, state = reference.half_step(reference.muon, ref_p, g, state, step, lr=0.02)
    assert opt.state[0]["momentum_buffer"].dtype == np.float32
    assert_bitwise(opt.state[0]["momentum_buffer"], state["momentum_buffer"])
    np.testing.assert_allclose(p.astype(np.float32), ref_p.astype(np.float32), rtol=1e-2, atol=1e-2)

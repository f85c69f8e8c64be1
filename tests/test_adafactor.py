"""fastopt.reference.adafactor against torch.optim.Adafactor (foreach=False),
and fastopt's Adafactor against both (without torch, against the reference).

100 steps of both from the same parameters and gradients, two param groups
with different hyperparameters, every shape torch handles differently (0-d
and 1-d: one ``variance``; 2-d: row and column factors; 3-d: factors batched
over the leading axis). Parameters and every state buffer are compared with
API.md's tolerances; the state shapes must be torch's exactly.
"""
import numpy as np
import pytest

from fastopt import reference
from conftest import assert_close

try:
    import torch
    import fastopt.torch as fot
except ImportError:  # the NumPy tests below still run, against fastopt.reference
    torch = fot = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 7), (1, 4), (6, 1)]
GROUPS = [
    {},
    {"lr": 0.05, "beta2_decay": -0.5, "eps": (1e-6, 1e-2), "d": 1.5, "weight_decay": 0.1},
]
CASES = {
    "defaults": {},
    "maximize": {"maximize": True},
    "eps1_given": {"eps": (1e-4, 1e-3)},
    "weight_decay": {"weight_decay": 0.3, "lr": 0.02},
    "clip_off": {"d": 1e3},
}


def run_both(rng, shapes, dtype, groups, steps=100):
    """(fastopt.reference's params and states, torch's) after `steps` steps;
    group k holds every shape, its gradients of scale 10^k (so the two groups'
    RMS clipping and floors differ too)."""
    params = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in groups]
    tparams = [[torch.tensor(p, requires_grad=True) for p in ps] for ps in params]
    topt = torch.optim.Adafactor([{"params": tp, **g} for tp, g in zip(tparams, groups)],
                                 foreach=False)
    mine = [[(p.copy(), {}) for p in ps] for ps in params]
    for t in range(1, steps + 1):
        for k, (group, tps) in enumerate(zip(groups, tparams)):
            for i, tp in enumerate(tps):
                g = (rng.standard_normal(tp.shape) * 10.0 ** k).astype(dtype)
                tp.grad = torch.tensor(g)
                p, state = mine[k][i]
                mine[k][i] = reference.adafactor(p, g, state, t, **group)
        topt.step()
    return mine, tparams, topt


def compare(mine, tparams, topt, dtype):
    for k, (ms, tps) in enumerate(zip(mine, tparams)):
        for i, ((p, state), tp) in enumerate(zip(ms, tps)):
            what = f"group {k}, param {i} {tuple(tp.shape)}"
            assert_close(p, tp.detach().numpy(), dtype, what)
            tstate = topt.state[tp]
            assert set(state) | {"step"} == set(tstate), what
            for name, buf in state.items():
                expected = tstate[name].numpy()
                assert buf.shape == expected.shape and buf.dtype == expected.dtype, (what, name)
                assert_close(buf, expected, dtype, f"{what}: {name}")


@needs_torch
@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c == "defaults" else pytest.mark.slow)
                                  for c in sorted(CASES)])
def test_reference_matches_torch(rng, dtype, case):
    groups = [{**g, **CASES[case]} for g in GROUPS]
    compare(*run_both(rng, SHAPES, dtype, groups), dtype)


@needs_torch
@pytest.mark.slow
def test_reference_matches_torch_on_a_big_vector(rng, dtype):
    compare(*run_both(rng, [(1000003,)], dtype, [{}], steps=20), dtype)


def test_state_shapes_are_torchs(rng):
    shapes = {(): {"variance": ()}, (5,): {"variance": (5,)},
              (3, 5): {"row_var": (3, 1), "col_var": (1, 5)},
              (2, 3, 7): {"row_var": (2, 3, 1), "col_var": (2, 1, 7)}}
    for shape, expected in shapes.items():
        p = rng.standard_normal(shape).astype(np.float32)
        _, state = reference.adafactor(p, np.ones_like(p), {}, 1)
        assert {k: v.shape for k, v in state.items()} == expected


def test_first_step_is_torchs_formula_written_out():
    """At step 1 the averages' weight is 1: R and C are the plain means of g²,
    and for a 2-d g with one ε-free row sum the estimate is R·C / mean(R)."""
    p = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = np.array([[0.5, -1.0], [2.0, 0.25]])
    new, state = reference.adafactor(p, g, {}, 1, lr=0.1)
    row = (g * g).mean(axis=1, keepdims=True)
    col = (g * g).mean(axis=0, keepdims=True)
    u = g / np.sqrt(row * col / row.mean())
    alpha = max(1e-3, np.sqrt((p * p).mean())) * 0.1
    expected = p - alpha / max(1.0, np.sqrt((u * u).mean())) * u
    np.testing.assert_allclose(state["row_var"], row, rtol=1e-15)
    np.testing.assert_allclose(state["col_var"], col, rtol=1e-15)
    np.testing.assert_allclose(new, expected, rtol=1e-14)


def test_inputs_are_not_modified(rng):
    p = rng.standard_normal((3, 4))
    g = rng.standard_normal((3, 4))
    _, state = reference.adafactor(p, g, {}, 1)
    before = [p.copy(), g.copy()] + [v.copy() for v in state.values()]
    reference.adafactor(p, g, state, 2, maximize=True, weight_decay=0.1)
    for a, b in zip([p, g] + list(state.values()), before):
        np.testing.assert_array_equal(a, b)


# ---- fastopt's Adafactor (NumPy class, fastopt.torch, fastopt.functional) against torch

import copy  # noqa: E402

import fastopt  # noqa: E402
import fastopt.functional as F  # noqa: E402
from conftest import assert_bitwise, assert_unchanged, snapshot  # noqa: E402

TORCH_SHAPES = SHAPES + [(64, 33), (300, 700)]  # the last: several bands of rows


def torch_pair(rng, dtype, groups, shapes=TORCH_SHAPES):
    """fastopt.torch.Adafactor and torch.optim.Adafactor over copies of the
    same parameters, one group per entry of `groups`, each holding every shape."""
    params = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in groups]
    mine = [[torch.tensor(p.copy()) for p in ps] for ps in params]
    theirs = [[torch.tensor(p.copy()) for p in ps] for ps in params]
    a = fot.Adafactor([{"params": ps, **g} for ps, g in zip(mine, groups)])
    b = torch.optim.Adafactor([{"params": ps, **g} for ps, g in zip(theirs, groups)], foreach=False)
    return a, b


def step_both(rng, a, b, steps):
    for _ in range(steps):
        for ga, gb in zip(a.param_groups, b.param_groups):
            for k, (p, q) in enumerate(zip(ga["params"], gb["params"])):
                g = rng.standard_normal(tuple(p.shape)) * 10.0 ** (k % 2)
                p.grad = torch.tensor(g, dtype=p.dtype)
                q.grad = p.grad.clone()
        a.step()
        b.step()


def compare_torch(a, b, dtype):
    for ga, gb in zip(a.param_groups, b.param_groups):
        for p, q in zip(ga["params"], gb["params"]):
            what = f"{tuple(p.shape)}"
            assert_close(p.numpy(), q.numpy(), dtype, what)
            assert set(a.state[p]) == set(b.state[q]), what
            for name, buf in b.state[q].items():
                mine = a.state[p][name]
                assert mine.shape == buf.shape and mine.dtype == buf.dtype, (what, name)
                assert_close(mine.numpy(), buf.numpy(), dtype, f"{what} {name}")


@needs_torch
@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c == "defaults" else pytest.mark.slow)
                                  for c in CASES])
def test_fastopt_torch_matches_torch(rng, dtype, case):
    a, b = torch_pair(rng, dtype, [{}, {**GROUPS[1], **CASES[case]}])
    step_both(rng, a, b, 100)
    compare_torch(a, b, dtype)


@needs_torch
@pytest.mark.slow
def test_fastopt_torch_matches_torch_on_a_big_vector(rng):
    a, b = torch_pair(rng, np.float32, [{}], shapes=[(1000003,), (2, 300, 7)])
    step_both(rng, a, b, 100)
    compare_torch(a, b, np.float32)


def test_numpy_class_and_functional_match_the_reference(rng, dtype):
    """fastopt.Adafactor and fastopt.functional.adafactor_ against
    fastopt.reference (no torch), two groups, 100 steps."""
    groups = [{}, {**GROUPS[1], "maximize": True}]
    params = [[rng.standard_normal(s).astype(dtype) for s in TORCH_SHAPES] for _ in groups]
    opt = fastopt.Adafactor([{"params": [p.copy() for p in ps], **g} for ps, g in zip(params, groups)])
    ref = [[(p.copy(), {}) for p in ps] for ps in params]
    fun = [[(p.copy(), {}) for p in ps] for ps in params]
    for t in range(1, 101):
        grads = [[rng.standard_normal(p.shape).astype(dtype) for p in ps] for ps in params]
        opt.step([g for gs in grads for g in gs])
        for k, g in enumerate(groups):
            for i, grad in enumerate(grads[k]):
                p, state = ref[k][i]
                ref[k][i] = reference.adafactor(p, grad, state, t, **g)
                q, bufs = fun[k][i]
                if not bufs:
                    bufs = {n: np.zeros(s, dtype) for n, s in
                            (("row_var", q.shape[:-1] + (1,)), ("col_var", q.shape[:-2] + (1, q.shape[-1])))
                            } if q.ndim >= 2 else {"variance": np.zeros(q.shape, dtype)}
                F.adafactor_(q, grad, **bufs, step=t, **g)
                fun[k][i] = (q, bufs)
    state = opt.state
    for j, ((p, st), (q, bufs)) in enumerate(zip(sum(ref, []), sum(fun, []))):
        assert_close(opt._params[j], p, dtype, str(j))
        assert_bitwise(q, opt._params[j], str(j))
        assert set(state[j]) == set(st) | {"step"}
        for name, buf in st.items():
            assert state[j][name].shape == buf.shape
            assert_close(state[j][name], buf, dtype, f"{j} {name}")
            assert_bitwise(bufs[name], state[j][name], f"{j} {name}")


@needs_torch
def test_state_dict_layout_is_torchs_and_checkpoints_go_both_ways(rng):
    a, b = torch_pair(rng, np.float32, [{}, GROUPS[1]])
    step_both(rng, a, b, 5)
    sa, sb = a.state_dict(), b.state_dict()
    def plain(groups):  # foreach: torch's None here, False there (how b was built)
        return [{k: v for k, v in g.items() if k != "foreach"} for g in groups]
    assert plain(sa["param_groups"]) == plain(sb["param_groups"])
    assert sa["state"].keys() == sb["state"].keys()
    for k in sb["state"]:
        assert sa["state"][k].keys() == sb["state"][k].keys()
        for name, value in sb["state"][k].items():
            assert sa["state"][k][name].shape == value.shape and sa["state"][k][name].dtype == value.dtype
    # torch's checkpoint into fastopt.torch, and fastopt.torch's into torch: both go on as torch
    for src, dst_cls in ((b, fot.Adafactor), (a, torch.optim.Adafactor)):
        twin = [[p.detach().clone() for p in g["params"]] for g in src.param_groups]
        kw = {"foreach": False} if dst_cls is torch.optim.Adafactor else {}
        dst = dst_cls([{"params": ps} for ps in twin], **kw)
        dst.load_state_dict(copy.deepcopy(src.state_dict()))
        ref_twin = [[p.detach().clone() for p in g["params"]] for g in b.param_groups]
        ref = torch.optim.Adafactor([{"params": ps} for ps in ref_twin], foreach=False)
        ref.load_state_dict(copy.deepcopy(b.state_dict()))
        if src is a:  # a and b differ by rounding: continue both from a's numbers
            for ps, qs in zip(ref_twin, twin):
                for p, q in zip(ps, qs):
                    p.copy_(q)
            ref.load_state_dict(copy.deepcopy(a.state_dict()))
        other = dst if dst_cls is fot.Adafactor else ref
        mine = dst if dst_cls is torch.optim.Adafactor else ref
        step_both(rng, other, mine, 5)
        compare_torch(other, mine, np.float32)


def test_state_dict_resumes_bitwise(rng, dtype):
    params = [rng.standard_normal(s).astype(dtype) for s in TORCH_SHAPES]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(20)]
    opt = fastopt.Adafactor([p.copy() for p in params], lr=0.05)
    for g in grads[:10]:
        opt.step(g)
    saved = copy.deepcopy(opt.state_dict())
    at10 = [p.copy() for p in opt._params]
    for g in grads[10:]:
        opt.step(g)
    again = fastopt.Adafactor(at10)
    again.load_state_dict(saved)
    for g in grads[10:]:
        again.step(g)
    for i, (p, q) in enumerate(zip(opt._params, again._params)):
        assert_bitwise(p, q, str(i))
        for key, value in opt.state[i].items():
            if isinstance(value, np.ndarray):
                assert_bitwise(again.state[i][key], value, f"{i} {key}")


def test_a_state_dict_with_param_shaped_factors_is_refused(rng):
    opt = fastopt.Adafactor([np.ones((3, 4))])
    opt.step([np.ones((3, 4))])
    sd = opt.state_dict()
    bad = copy.deepcopy(sd)
    bad["state"][0]["row_var"] = np.zeros((3, 4))
    with pytest.raises(ValueError):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    bad["state"][0]["variance"] = np.zeros((3, 4))
    with pytest.raises(ValueError):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError):
        F.adafactor_(np.ones((3, 4)), np.ones((3, 4)), np.zeros((3, 4)), np.zeros((1, 4)), step=1)


def test_one_and_two_threads_and_every_simd_path_give_the_same_bits(rng, dtype):
    """Bands of rows (several per matrix, batches, a long vector), each
    summed on one thread and combined in order."""
    shapes = [(5,), (300, 700), (3, 40, 50), (200003,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    before = fastopt.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            fastopt.set_num_threads(threads)
            opt = fastopt.Adafactor([p.copy() for p in params], weight_decay=0.1)
            for g in grads:
                opt.step(g)
            runs.append(opt._params)
    finally:
        fastopt.set_num_threads(before)
    for p, q in zip(*runs):
        assert_bitwise(p, q)
    for path in fastopt._core.isa_names():
        for i, p in enumerate(params):
            q = p.copy()
            bufs = ({"row_var": np.zeros(p.shape[:-1] + (1,), dtype),
                     "col_var": np.zeros(p.shape[:-2] + (1, p.shape[-1]), dtype)}
                    if p.ndim >= 2 else {"variance": np.zeros(p.shape, dtype)})
            for t, g in enumerate(grads, 1):
                F.adafactor_(q, g[i], **bufs, step=t, weight_decay=0.1, isa=path)
            assert_bitwise(q, runs[0][i], f"{path} {p.shape}")


BAD = [{"lr": -1.0}, {"beta2_decay": 0.5}, {"eps": (-1e-3, 1e-3)}, {"eps": (None, -1.0)},
       {"d": 0.5}, {"weight_decay": -0.1}, {"eps": (None, None)}, {"eps": 1e-3}]


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_bad_hyperparameters_are_rejected_and_nothing_is_touched(bad, rng):
    if torch is not None:
        if "eps" not in bad or bad["eps"] == (-1e-3, 1e-3) or bad["eps"] == (None, -1.0):
            with pytest.raises(ValueError):  # torch's own
                torch.optim.Adafactor([torch.ones(3)], **bad)
        with pytest.raises((TypeError, ValueError)):
            fot.Adafactor([torch.ones(3)], **bad)
    with pytest.raises((TypeError, ValueError)):
        fastopt.Adafactor([np.ones(3)], **bad)
    opt = fastopt.Adafactor([rng.standard_normal((4, 5)), rng.standard_normal(3)])
    opt.step([np.ones((4, 5)), np.ones(3)])
    snap = snapshot(opt)
    saved = dict(opt.param_groups[0])
    opt.param_groups[0].update(bad)  # as a scheduler or a user would, between steps
    with pytest.raises((TypeError, ValueError)):
        opt.step([np.ones((4, 5)), np.ones(3)])
    opt.param_groups[0].update(saved)
    assert_unchanged(opt, snap)

"""Row-sparse gradients: fastopt.RowSparse, SparseAdam in its four forms, and
sparse gradients in SGD and Adagrad.

Oracles: torch.optim.SparseAdam / SGD / Adagrad on sparse COO gradients (from
nn.Embedding(sparse=True) and built by hand with repeated rows), and
fastopt.reference without torch, which fastopt matches bit for bit.
fastopt.torch coalesces with torch's own coalesce(), so the moments (and
Adagrad's sum) match torch's bit for bit. The parameters match to rounding
(conftest.assert_close: 1e-5 relative for float32, 1e-10 for float64 after
100 steps): torch's CPU sqrt goes through MKL's vector math, within one ulp
but not always correctly rounded, where fastopt's is IEEE sqrt; and torch's
dense += sparse (SGD's and Adagrad's parameter update) is BLAS axpy, which
fuses the multiply-add where the CPU has FMA (SGD adds each repeated row on
its own), where fastopt rounds the product and the sum.

The NumPy RowSparse sums repeated rows in the order given (torch's coalesce
sums them in an order of its own), so NumPy runs are compared with the
reference bit for bit, and with torch bit for bit on gradients without
repeated rows.
"""
import copy
import re

import numpy as np
import pytest

import fastopt
from fastopt import functional as F, reference
from fastopt._sparse import coalesced
from conftest import assert_bitwise, assert_close, assert_unchanged, snapshot

RowSparse = fastopt.RowSparse
DTYPES = [np.float32, np.float64]


def lookups(rng, rows, count):
    """Row indices as an embedding lookup makes them: repeats, any order."""
    return rng.integers(0, rows, count)


def sparse_grad(rng, shape, count, dtype):
    idx = lookups(rng, shape[0], count)
    return RowSparse(idx, rng.standard_normal((count,) + shape[1:]).astype(dtype))


# ---- RowSparse: coalescing and validation ----------------------------------

def test_coalesce_sums_repeated_rows_in_order(rng):
    idx = np.array([4, 1, 4, 0, 4, 1])
    vals = rng.standard_normal((6, 3)).astype(np.float32)
    rows, out = coalesced(RowSparse(idx, vals), (5, 3), np.dtype(np.float32), "g")
    np.testing.assert_array_equal(rows, [0, 1, 4])
    assert_bitwise(out[0], vals[3])
    assert_bitwise(out[1], vals[1] + vals[5])
    assert_bitwise(out[2], (vals[0] + vals[2]) + vals[4])


def test_coalesce_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    idx = lookups(rng, 50, 400)
    vals = rng.standard_normal((400, 4))
    rows, out = coalesced(RowSparse(idx, vals), (50, 4), np.dtype(np.float64), "g")
    t = torch.sparse_coo_tensor(torch.from_numpy(idx)[None], torch.from_numpy(vals), (50, 4)).coalesce()
    np.testing.assert_array_equal(rows, t.indices()[0].numpy())
    np.testing.assert_allclose(out, t.values().numpy(), rtol=1e-13, atol=1e-13)  # order of sums


@pytest.mark.parametrize("indices, values, error, match", [
    (np.array([0.0, 1.0]), np.ones((2, 3), np.float32), TypeError, "int64"),
    (np.array([[0, 1]]), np.ones((2, 3), np.float32), ValueError, "1-D"),
    (np.array([0, 1]), np.ones((3, 3), np.float32), ValueError, "shape"),
])
def test_rowsparse_refuses_malformed(indices, values, error, match):
    with pytest.raises(error, match=match):
        RowSparse(indices, values)


@pytest.mark.parametrize("grad, error, match", [
    (RowSparse([0, 5], np.ones((2, 3), np.float32)), ValueError, "row index 5 is out of range"),
    (RowSparse([-1, 2], np.ones((2, 3), np.float32)), ValueError, "row index -1 is out of range"),
    (RowSparse([0, 2], np.ones((2, 3), np.float64)), TypeError, "dtype float32"),
    (RowSparse([0, 2], np.ones((2, 4), np.float32)), ValueError, "shape"),
    (RowSparse([0, 2], np.ones((2,), np.float32)), ValueError, "shape"),
])
@pytest.mark.parametrize("name", ["SparseAdam", "SGD", "Adagrad"])
def test_bad_rows_rejected_with_nothing_touched(name, grad, error, match, rng):
    params = [rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    opt = getattr(fastopt, name)(params, lr=0.1)
    opt.step([sparse_grad(rng, (5, 3), 4, np.float32), RowSparse([1], np.ones(1, np.float32))])
    snap = snapshot(opt)
    # the second parameter's (good) gradient comes after the bad one: nothing of it is written either
    with pytest.raises(error, match=match):
        opt.step([grad, RowSparse([3], np.ones(1, np.float32))])
    assert_unchanged(opt, snap)


def test_rowsparse_refused_where_not_supported(rng):
    p = rng.standard_normal((4, 2)).astype(np.float32)
    opt = fastopt.Adam([p])
    with pytest.raises(TypeError, match="dense gradients only"):
        opt.step([RowSparse([1], np.ones((1, 2), np.float32))])
    with pytest.raises(ValueError, match="0-d"):
        fastopt.SparseAdam([np.zeros((), np.float32)]).step([RowSparse([0], np.ones(1, np.float32))])


@pytest.mark.parametrize("name, options, match", [
    ("SGD", {"weight_decay": 0.1}, "add\\(sparse, dense\\)"),
    ("Adagrad", {"weight_decay": 0.1}, "weight_decay option is not compatible"),
])
def test_hyperparameters_refused_with_rows(name, options, match, rng):
    p = rng.standard_normal((4, 2)).astype(np.float32)
    opt = getattr(fastopt, name)([p], lr=0.1, **options)
    snap = snapshot(opt)
    with pytest.raises(ValueError, match=match):
        opt.step([RowSparse([1, 1], np.ones((2, 2), np.float32))])
    assert_unchanged(opt, snap)


# ---- SparseAdam against fastopt.reference (no torch) -----------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape, count", [((1, 4), 3), ((7, 5), 9), ((7,), 4), ((100003, 3), 700)])
@pytest.mark.parametrize("options", [{}, {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-4,
                                          "maximize": True}])
def test_sparse_adam_matches_reference(dtype, shape, count, options, rng):
    p = rng.standard_normal(shape).astype(dtype)
    q = rng.standard_normal((3, 2)).astype(dtype)  # a second group, dense gradients
    opt = fastopt.SparseAdam([{"params": [p]}, {"params": [q], "lr": 0.02}], **options)
    ref_p, ref_q, sp, sq = p.copy(), q.copy(), {}, {}
    for t in range(1, 101 if shape[0] < 1000 else 11):
        g = sparse_grad(rng, shape, count, dtype) if t % 10 else RowSparse(np.zeros(0, np.int64),
                                                                           np.zeros((0,) + shape[1:], dtype))
        h = rng.standard_normal(q.shape).astype(dtype)
        opt.step([g, h])
        ref_p, sp = reference.sparse_adam(ref_p, g, sp, t, **options)
        ref_q, sq = reference.sparse_adam(ref_q, h, sq, t, **{**options, "lr": 0.02})
    assert_bitwise(p, ref_p, "param")
    assert_bitwise(q, ref_q, "dense param")
    state = opt.state_dict()["state"]
    for i, ref in ((0, sp), (1, sq)):
        assert state[i]["step"] == t
        for key in ("exp_avg", "exp_avg_sq"):
            assert_bitwise(state[i][key], ref[key], key)


def test_empty_gradient_counts_the_step_only(rng):
    p = rng.standard_normal((6, 2))
    opt = fastopt.SparseAdam([p])
    before = p.copy()
    opt.step([RowSparse([], np.zeros((0, 2)))])
    assert_bitwise(p, before)
    assert opt.state_dict()["state"][0]["step"] == 1
    assert not opt.state[0]["exp_avg"].any()


def test_functional_matches_reference(rng):
    p = rng.standard_normal((9, 4)).astype(np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    ref, state = p.copy(), {}
    for t in range(1, 21):
        g = sparse_grad(rng, p.shape, 6, np.float32)
        F.sparse_adam_(p, g, m, v, step=t, lr=0.01, maximize=t % 2 == 0)
        ref, state = reference.sparse_adam(ref, g, state, t, lr=0.01, maximize=t % 2 == 0)
    assert_bitwise(p, ref)
    assert_bitwise(m, state["exp_avg"])
    assert_bitwise(v, state["exp_avg_sq"])


@pytest.mark.slow
def test_bfloat16_rows_are_the_float32_step_rounded(rng):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = ml_dtypes.bfloat16
    p = rng.standard_normal((11, 3)).astype(bf16)
    opt = fastopt.SparseAdam([p], lr=0.01)
    ref, state = p.astype(np.float32), {}
    for t in range(1, 21):
        idx = rng.permutation(11)[:5]  # no repeats: the sum's rounding is not the question here
        vals = rng.standard_normal((5, 3)).astype(bf16)
        opt.step([RowSparse(idx, vals)])
        ref, state = reference.sparse_adam(ref, RowSparse(idx, vals.astype(np.float32)), state, t, lr=0.01)
        ref = ref.astype(bf16).astype(np.float32)  # the parameter is stored rounded at every step
        assert_bitwise(p.astype(np.float32), ref, f"step {t}")
    assert_bitwise(opt.state[0]["exp_avg"], state["exp_avg"])


def test_resume_is_bit_identical(rng):
    p = rng.standard_normal((30, 4))
    grads = [sparse_grad(rng, p.shape, 12, np.float64) for _ in range(20)]
    a, b = p.copy(), p.copy()
    oa = fastopt.SparseAdam([a], lr=0.01)
    for g in grads:
        oa.step([g])
    ob = fastopt.SparseAdam([b], lr=0.01)
    for g in grads[:8]:
        ob.step([g])
    sd = ob.state_dict()
    oc = fastopt.SparseAdam([b], lr=0.01)
    oc.load_state_dict(sd)
    for g in grads[8:]:
        oc.step([g])
    assert_bitwise(b, a)


# ---- SGD and Adagrad with RowSparse: the dense step on the rows present -----

@pytest.mark.parametrize("name, options", [
    ("SGD", {"lr": 0.1}), ("SGD", {"lr": 0.1, "maximize": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}), ("Adagrad", {"lr": 0.1, "maximize": True,
                                                             "initial_accumulator_value": 0.5}),
])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_sgd_adagrad_rows_match_reference(name, options, dtype, rng):
    p = rng.standard_normal((13, 3)).astype(dtype)
    opt = getattr(fastopt, name)([p], **options)
    update = getattr(reference, name.lower())
    ref = p.copy()
    state = {"sum": np.full_like(p, options.get("initial_accumulator_value", 0.0))} if name == "Adagrad" else {}
    for t in range(1, 31):
        g = sparse_grad(rng, p.shape, 8, dtype)
        opt.step([g])
        rows, vals = coalesced(g, p.shape, p.dtype, "g")
        sub = {k: v[rows] for k, v in state.items()}
        new, sub = update(ref[rows], vals, sub, t, **options)
        ref[rows] = new
        for k, v in sub.items():
            state[k][rows] = v
    assert_bitwise(p, ref)
    for k, v in state.items():
        assert_bitwise(opt.state[0][k], v, k)


# ---- SGD momentum with RowSparse: the dense step of the gradient it stands for

def dense_of(g, shape, dtype):
    """The dense gradient a RowSparse stands for: its coalesced rows, zero elsewhere."""
    rows, vals = coalesced(g, shape, dtype, "g")
    out = np.zeros(shape, dtype)
    out[rows] = vals
    return out


SGD_MOMENTUM = [{"momentum": 0.9}, {"momentum": 0.9, "nesterov": True},
                {"momentum": 0.5, "dampening": 0.3, "maximize": True}]


@pytest.mark.parametrize("options", SGD_MOMENTUM, ids=["momentum", "nesterov", "dampening-max"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("form", ["class", "functional"])
def test_sgd_momentum_rows_match_reference(options, dtype, form, rng):
    """Rows without a gradient move too (their buffer decays), as in torch."""
    p = rng.standard_normal((13, 3)).astype(dtype)
    buf = np.zeros_like(p)
    opt = fastopt.SGD([p], lr=0.1, **options)
    ref, state = p.copy(), {}
    for t in range(1, 31):
        g = RowSparse([], np.zeros((0, 3), dtype)) if t == 5 else sparse_grad(rng, p.shape, 8, dtype)
        if form == "class":
            opt.step([g])
        else:
            F.sgd_(p, g, buf, step=t, lr=0.1, **options)
        ref, state = reference.sgd(ref, dense_of(g, p.shape, dtype), state, t, lr=0.1, **options)
    assert_bitwise(p, ref)
    assert_bitwise(opt.state[0]["momentum_buffer"] if form == "class" else buf,
                   state["momentum_buffer"])


def test_sgd_momentum_rows_with_int8_state(rng):
    p = rng.standard_normal((300, 4)).astype(np.float32)
    q = p.copy()
    a = fastopt.SGD([p], lr=0.1, momentum=0.9, state_dtype="int8")
    b = fastopt.SGD([q], lr=0.1, momentum=0.9, state_dtype="int8")
    for _ in range(5):
        g = sparse_grad(rng, p.shape, 40, np.float32)
        a.step([g])
        b.step([dense_of(g, p.shape, np.float32)])
    assert_bitwise(p, q)
    assert_bitwise(a.state[0]["momentum_buffer"], b.state[0]["momentum_buffer"])


# ---- thread count and SIMD path ---------------------------------------------

def test_threads_and_simd_paths_agree(rng):
    shape = (5000, 37)  # odd rows: every ISA's tail, pieces that cut rows
    p0 = rng.standard_normal(shape).astype(np.float32)
    grads = [sparse_grad(rng, shape, 3000, np.float32) for _ in range(3)]
    results = []
    old = fastopt.get_num_threads()
    try:
        for isa in fastopt._core.isa_names():
            for threads in (1, 2, 3):
                fastopt.set_num_threads(threads)
                p, m, v = p0.copy(), np.zeros(shape, np.float32), np.zeros(shape, np.float32)
                for t, g in enumerate(grads, 1):
                    F.sparse_adam_(p, g, m, v, step=t, lr=0.01, isa=isa)
                results.append((f"{isa}/{threads}", p, m, v))
    finally:
        fastopt.set_num_threads(old)
    for what, p, m, v in results[1:]:
        for a, b in zip((p, m, v), results[0][1:]):
            assert_bitwise(a, b, what)


# ---- against torch ------------------------------------------------------------

try:  # the tests above run without torch
    import torch
    import fastopt.torch as fot
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
TORCH_DTYPES = [torch.float32, torch.float64] if torch is not None else [None, None]


def embedding_pair(shapes, dtype, seed):
    """Two identical lists of sparse embeddings."""
    torch.manual_seed(seed)
    a = [torch.nn.Embedding(n, d, sparse=True).to(dtype) for n, d in shapes]
    b = [torch.nn.Embedding(n, d, sparse=True).to(dtype) for n, d in shapes]
    for x, y in zip(a, b):
        y.weight.data.copy_(x.weight.data)
    return a, b


def run_embeddings(opt, embs, batches):
    for batch in batches:
        opt.zero_grad()
        loss = sum(((e(idx) * w).sum()) for e, (idx, w) in zip(embs, batch))
        loss.backward()
        opt.step()


def make_batches(shapes, steps, seed, empty_every=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in range(steps):
        batch = []
        for n, d in shapes:
            count = 0 if empty_every and t % empty_every == empty_every - 1 else min(3 * n, 64)
            idx = torch.randint(0, n, (count,), generator=g)
            batch.append((idx, torch.randn(count, d, generator=g)))
        out.append(batch)
    return out


def assert_same_state(a, b):
    """The same state dict layout (keys, types, groups) and values, bit for bit:
    the moments and sums do not depend on the parameters' rounding."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sorted(sa["state"]) == sorted(sb["state"])
    for i in sa["state"]:
        assert sorted(sa["state"][i]) == sorted(sb["state"][i])
        for key, x in sa["state"][i].items():
            y = sb["state"][i][key]
            assert type(x) is type(y), key
            if isinstance(x, torch.Tensor):
                assert x.dtype == y.dtype and torch.equal(x, y), (i, key)
            else:
                assert x == y, (i, key)


def assert_close_params(ta, fa):
    for x, y in zip(ta, fa):
        dtype = np.float32 if x.weight.dtype == torch.float32 else np.float64
        assert_close(y.weight.detach().numpy(), x.weight.detach().numpy(), dtype)


SHAPES = [(1, 3), (7, 5), (100003, 3)]


@needs_torch
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("maximize", [False, True])
def test_sparse_adam_matches_torch(dtype, maximize):
    ta, fa = embedding_pair(SHAPES, dtype, 0)
    params = lambda embs: [{"params": [embs[0].weight, embs[2].weight]},
                           {"params": [embs[1].weight], "lr": 0.05, "betas": (0.5, 0.9)}]
    topt = torch.optim.SparseAdam(params(ta), lr=0.01, maximize=maximize)
    fopt = fot.SparseAdam(params(fa), lr=0.01, maximize=maximize)
    batches = make_batches(SHAPES, 100, 1, empty_every=25)
    run_embeddings(topt, ta, batches)
    run_embeddings(fopt, fa, batches)
    assert_close_params(ta, fa)
    assert_same_state(topt, fopt)


@needs_torch
def test_sparse_adam_hand_built_coo_with_repeats():
    torch.manual_seed(3)
    p = torch.randn(9, dtype=torch.float64, requires_grad=True)  # 1-D: every element a row
    q = p.detach().clone().requires_grad_(True)
    topt, fopt = torch.optim.SparseAdam([p], lr=0.1), fot.SparseAdam([q], lr=0.1)
    for t in range(100):
        idx = torch.randint(0, 9, (12,))
        vals = torch.randn(12, dtype=torch.float64)
        for x, opt in ((p, topt), (q, fopt)):
            x.grad = torch.sparse_coo_tensor(idx[None], vals, (9,))
            opt.step()
    assert_close(q.detach().numpy(), p.detach().numpy(), np.float64)
    assert_same_state(topt, fopt)


@needs_torch
def test_sparse_adam_checkpoints_cross_both_ways():
    shapes = [(20, 4)]
    batches = make_batches(shapes, 30, 5)
    ref, mixed = embedding_pair(shapes, torch.float32, 7)
    ropt = torch.optim.SparseAdam(ref[0].parameters(), lr=0.01)
    run_embeddings(ropt, ref, batches)
    # torch for 10 steps, fastopt for 10, torch again for 10
    opt = torch.optim.SparseAdam(mixed[0].parameters(), lr=0.01)
    run_embeddings(opt, mixed, batches[:10])
    fopt = fot.SparseAdam(mixed[0].parameters(), lr=0.01)
    fopt.load_state_dict(opt.state_dict())
    run_embeddings(fopt, mixed, batches[10:20])
    assert type(fopt.state_dict()["state"][0]["step"]) is int
    opt = torch.optim.SparseAdam(mixed[0].parameters(), lr=0.01)
    opt.load_state_dict(fopt.state_dict())
    run_embeddings(opt, mixed, batches[20:])
    assert_close_params(ref, mixed)
    assert_same_state(ropt, opt)


@needs_torch
def test_torch_resume_is_bit_identical():
    shapes = [(30, 3)]
    batches = make_batches(shapes, 20, 6)
    a, b = embedding_pair(shapes, torch.float64, 8)
    run_embeddings(fot.SparseAdam(a[0].parameters(), lr=0.01), a, batches)
    opt = fot.SparseAdam(b[0].parameters(), lr=0.01)
    run_embeddings(opt, b, batches[:7])
    sd = opt.state_dict()
    opt = fot.SparseAdam(b[0].parameters(), lr=0.01)
    opt.load_state_dict(sd)
    run_embeddings(opt, b, batches[7:])
    assert torch.equal(a[0].weight, b[0].weight)


@needs_torch
def test_numpy_sparse_adam_matches_torch_without_repeats():  # to rounding: see the docstring
    rng = np.random.default_rng(4)
    p = rng.standard_normal((50, 6)).astype(np.float32)
    t = torch.from_numpy(p.copy()).requires_grad_(True)
    opt, topt = fastopt.SparseAdam([p], lr=0.01), torch.optim.SparseAdam([t], lr=0.01)
    for _ in range(100):
        idx = rng.permutation(50)[:10]
        vals = rng.standard_normal((10, 6)).astype(np.float32)
        opt.step([RowSparse(idx, vals)])
        t.grad = torch.sparse_coo_tensor(torch.from_numpy(idx)[None], torch.from_numpy(vals), (50, 6))
        topt.step()
    assert_close(p, t.detach().numpy(), np.float32)
    assert_bitwise(opt.state[0]["exp_avg_sq"], topt.state[t]["exp_avg_sq"].numpy())


@needs_torch
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name, options", [
    ("SGD", {"lr": 0.1}), ("SGD", {"lr": 0.1, "maximize": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ("Adagrad", {"lr": 0.1, "maximize": True, "initial_accumulator_value": 0.3}),
])
def test_sgd_adagrad_sparse_match_torch(name, options, dtype):
    ta, fa = embedding_pair(SHAPES[:2], dtype, 2)
    params = lambda embs: [{"params": [embs[0].weight]}, {"params": [embs[1].weight], "lr": 0.05}]
    topt = getattr(torch.optim, name)(params(ta), **options)
    fopt = getattr(fot, name)(params(fa), **options)
    batches = make_batches(SHAPES[:2], 100, 3)
    run_embeddings(topt, ta, batches)
    run_embeddings(fopt, fa, batches)
    assert_close_params(ta, fa)
    assert_same_state(topt, fopt)


@needs_torch
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("options", SGD_MOMENTUM, ids=["momentum", "nesterov", "dampening-max"])
def test_sgd_momentum_sparse_matches_torch(options, dtype):
    """torch keeps the momentum buffer of a sparse gradient sparse (and uncoalesced, its
    entries growing with the steps); fastopt keeps it dense. The same numbers, to rounding."""
    ta, fa = embedding_pair(SHAPES[:2], dtype, 2)
    topt = torch.optim.SGD([e.weight for e in ta], lr=0.1, **options)
    fopt = fot.SGD([e.weight for e in fa], lr=0.1, **options)
    batches = make_batches(SHAPES[:2], 100, 3, empty_every=7)
    run_embeddings(topt, ta, batches)
    run_embeddings(fopt, fa, batches)
    assert_close_params(ta, fa)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    for x, y in zip(ta, fa):
        tb, fb = topt.state[x.weight]["momentum_buffer"], fopt.state[y.weight]["momentum_buffer"]
        assert tb.is_sparse and fb.layout == torch.strided
        assert_close(fb.numpy(), tb.to_dense().numpy(), np_dtype)


@needs_torch
def test_sgd_momentum_sparse_checkpoints_cross_both_ways():
    """torch's sparse buffer loads as a dense one; fastopt's dense buffer steps on in torch."""
    shapes = SHAPES[:2]
    batches = make_batches(shapes, 40, 5)
    for first, second in ((torch.optim.SGD, fot.SGD), (fot.SGD, torch.optim.SGD)):
        embs, _ = embedding_pair(shapes, torch.float32, 4)
        opt = first([e.weight for e in embs], lr=0.1, momentum=0.9)
        run_embeddings(opt, embs, batches[:20])
        opt.zero_grad()
        moved, _ = embedding_pair(shapes, torch.float32, 4)
        for x, y in zip(embs, moved):
            y.weight.data.copy_(x.weight.data)
        resumed = second([e.weight for e in moved], lr=0.1, momentum=0.9)
        resumed.load_state_dict(copy.deepcopy(opt.state_dict()))  # torch shares the tensors
        run_embeddings(opt, embs, batches[20:])
        run_embeddings(resumed, moved, batches[20:])
        assert_close_params(embs, moved)


@needs_torch
@pytest.mark.parametrize("name, options", [
    ("SGD", {"weight_decay": 0.1}), ("Adagrad", {"weight_decay": 0.1}), ("SGD", {"fused": True}),
])
def test_sparse_errors_as_torch(name, options):
    embs = embedding_pair([(5, 2)], torch.float32, 0)[0]
    topt = getattr(torch.optim, name)(embs[0].parameters(), lr=0.1, **options)
    embs[0](torch.tensor([1, 1, 3])).sum().backward()
    with pytest.raises(RuntimeError) as expected:
        topt.step()
    fopt = getattr(fot, name)(embs[0].parameters(), lr=0.1, **options)
    before = embs[0].weight.detach().clone()
    if options.get("fused"):  # fastopt keeps fused in the groups only: it steps, as fused=False
        fopt.step()
        return
    with pytest.raises(RuntimeError, match=re.escape(str(expected.value))):
        fopt.step()
    assert torch.equal(embs[0].weight, before)


@needs_torch
def test_torch_sparse_adam_refuses_what_torch_refuses():
    p = torch.nn.Parameter(torch.zeros(4, 2))
    opt = fot.SparseAdam([p])
    p.grad = torch.ones(4, 2)
    with pytest.raises(RuntimeError, match="does not support dense gradients"):
        opt.step()
    p.grad = torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), torch.ones(2), (4, 2))
    with pytest.raises(ValueError, match="sparse in 2 dimensions"):
        opt.step()
    with pytest.raises(ValueError):
        fot.SparseAdam([p], lr=0.0)
    assert not p.detach().any() and not opt.state


@needs_torch
def test_defaults_and_signature_match_torch():
    import inspect
    fast = fastopt.SparseAdam([np.zeros(3)])
    topt = torch.optim.SparseAdam([torch.zeros(3)])
    for key, value in fast.param_groups[0].items():
        if key != "params":
            assert topt.param_groups[0][key] == value, key
    names = list(inspect.signature(fot.SparseAdam).parameters)
    # fastopt's own keyword-only arguments come last
    assert names == list(inspect.signature(torch.optim.SparseAdam).parameters) + [
        "master_weights", "rounding", "seed", "state_dtype"]

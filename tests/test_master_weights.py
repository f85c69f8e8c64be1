"""master_weights=True and rounding="stochastic" (API.md, "16-bit parameters
and compressed optimizer state"): the master copy steps as a float32 run of
the same optimizer, bit for bit, and the 16-bit parameter is its rounding;
stochastic rounding's bits are the same for every thread count and SIMD path,
follow the seed, and are unbiased; state dicts round-trip and resume."""
import copy

import numpy as np
import pytest

import fastopt
from fastopt import _core
from fastopt._spec import SPECS
from conftest import BY_NAME, assert_bitwise

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16, F16 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)


@pytest.fixture(params=[BF16, F16], ids=["bf16", "f16"])
def half(request):
    return request.param


def shapes_of(name):
    return [(8, 12), (3, 5)] if SPECS[name].ndim == 2 else [(1,), (7,), (63,), (1000,)]


def options_of(name):
    return dict(BY_NAME[name].full) if name in BY_NAME else {"lr": 0.01}


def run(cls, params, grads, **kwargs):
    opt = cls(params, **kwargs)
    if hasattr(opt, "train"):  # Schedule-Free steps in train mode
        opt.train()
    for g in grads:
        opt.step(g)
    return opt


@pytest.mark.parametrize("name", list(SPECS))
def test_master_is_the_float32_run(name, half, rng):
    """master_param holds the bits of a float32 run on the master copy (the
    gradients widened); each 16-bit parameter is its rounding to nearest."""
    cls, options = getattr(fastopt, name), options_of(name)
    params = [rng.standard_normal(s).astype(np.float32).astype(half) for s in shapes_of(name)]
    grads = [[rng.standard_normal(p.shape).astype(np.float32).astype(half) for p in params]
             for _ in range(3)]
    wide = [p.astype(np.float32) for p in params]
    opt = run(cls, params, grads, master_weights=True, **options)
    run(cls, wide, [[g.astype(np.float32) for g in gs] for gs in grads], **options)
    for i, (p, w) in enumerate(zip(params, wide)):
        master = opt.state[i]["master_param"]
        assert master.dtype == np.float32
        assert_bitwise(master, w, f"{name} master {i}")
        assert_bitwise(p, w.astype(half), f"{name} parameter {i}")


def engine_run(half, isa, rounding="stochastic", seed=7, master=True, steps=3, n=1037):
    """Adam through one engine on one ISA path: the parameter and master after `steps`."""
    rng = np.random.default_rng(0)
    p = (rng.standard_normal(n) * 1e-2).astype(np.float32).astype(half)
    bufs = (np.zeros(n, np.float32), np.zeros(n, np.float32), None, None,
            p.astype(np.float32) if master else None)
    engine = _core.Engine("adam", [p], [bufs], [0], [0], rounding=rounding, seed=seed)
    hypers = [dict(SPECS["Adam"].defaults, lr=0.1)]
    for _ in range(steps):
        engine.step([rng.standard_normal(n).astype(np.float32).astype(half)], hypers, isa=isa)
    return p, bufs[4]


@pytest.mark.parametrize("master", [False, True], ids=["plain", "master"])
def test_stochastic_bits_on_every_path(half, isa, master):
    p, m = engine_run(half, "scalar", master=master)
    q, n = engine_run(half, isa, master=master)
    assert_bitwise(q, p, isa)
    if master:
        assert_bitwise(n, m, isa)
    near, _ = engine_run(half, "scalar", rounding="nearest", master=master)
    assert (near.view(np.uint16) != p.view(np.uint16)).any()  # it does round otherwise


def test_stochastic_bits_for_any_thread_count(half, rng):
    params = [rng.standard_normal(n).astype(np.float32).astype(half) for n in (5, 100_003)]
    grads = [[rng.standard_normal(p.shape).astype(np.float32).astype(half) for p in params]
             for _ in range(2)]
    before, out = fastopt.get_num_threads(), []
    try:
        for threads in (1, 2):
            fastopt.set_num_threads(threads)
            copies = [p.copy() for p in params]
            run(fastopt.Adam, copies, grads, lr=0.1, rounding="stochastic", seed=3)
            out.append(copies)
    finally:
        fastopt.set_num_threads(before)
    for a, b in zip(*out):
        assert_bitwise(a, b)


def test_seed_reproduces_and_another_differs(half):
    a, _ = engine_run(half, "scalar", seed=11)
    b, _ = engine_run(half, "scalar", seed=11)
    c, _ = engine_run(half, "scalar", seed=12)
    assert_bitwise(a, b)
    assert (a.view(np.uint16) != c.view(np.uint16)).mean() > 0.05


@pytest.mark.parametrize("frac", [0.3125, 0.75])
def test_stochastic_rounding_is_unbiased(half, frac):
    """SGD (lr 1) moves 1 to x = 1 + frac ulp, exactly in float32; the mean
    of N stochastic roundings of x is within 4 standard errors of x."""
    ulp = 2.0 ** -7 if half == BF16 else 2.0 ** -10
    n = 40_000
    p = np.ones(n, half)
    g = np.full(n, -frac * ulp, np.float32).astype(half)
    assert float(g[0]) == -frac * ulp
    fastopt.SGD([p], lr=1.0, rounding="stochastic", seed=1).step([g])
    x = 1 + frac * ulp
    values = p.astype(np.float64)
    assert set(np.unique(values)) == {1.0, 1.0 + ulp}
    se = ulp * np.sqrt(frac * (1 - frac) / n)
    assert abs(values.mean() - x) < 4 * se


def test_tiny_updates_accumulate(half):
    """64 updates of 1/32 ulp each: nearest rounding loses every one; stochastic
    rounding moves the parameter by their sum on average; a master copy keeps
    them exactly."""
    ulp = 2.0 ** -7 if half == BF16 else 2.0 ** -10
    n, steps, d = 4096, 64, ulp / 32
    g = np.full(n, -d, np.float32).astype(half)
    result = {}
    for key, kw in {"nearest": {}, "stochastic": {"rounding": "stochastic"},
                    "master": {"master_weights": True}}.items():
        p = np.ones(n, half)
        opt = fastopt.SGD([p], lr=1.0, **kw)
        for _ in range(steps):
            opt.step([g])
        result[key] = p.astype(np.float64)
    assert (result["nearest"] == 1.0).all()
    assert (result["master"] == 1 + steps * d).all()  # 1 + 2^-6 (bf16) / 2^-9 (f16): exact
    se = np.sqrt(steps) * ulp / 2 / np.sqrt(n)  # each rounding's sd is at most ulp / 2
    assert abs(result["stochastic"].mean() - (1 + steps * d)) < 4 * se


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_state_dict_round_trip_and_resume(name, half, rng):
    """master_param and the step count the random bits use are in the state
    dict; a loaded optimizer continues bit for bit as the uninterrupted one."""
    cls = getattr(fastopt, name)
    kw = dict(lr=0.05, master_weights=True, rounding="stochastic", seed=9)
    params = [rng.standard_normal(n).astype(np.float32).astype(half) for n in (17, 300)]
    grads = [[rng.standard_normal(p.shape).astype(np.float32).astype(half) for p in params]
             for _ in range(6)]
    opt = run(cls, params, grads[:3], **kw)
    sd = opt.state_dict()
    assert all("master_param" in sd["state"][i] and "step" in sd["state"][i] for i in range(2))
    copies = [p.copy() for p in params]
    other = cls(copies, **kw)
    other.load_state_dict(sd)
    for gs in grads[3:]:
        opt.step(gs)
        other.step(gs)
    for i, (a, b) in enumerate(zip(params, copies)):
        assert_bitwise(b, a)
        assert_bitwise(other.state[i]["master_param"], opt.state[i]["master_param"])


def test_master_param_refused_without_master_weights(half):
    p = np.ones(4, half)
    opt = fastopt.Adam([p], master_weights=True)
    opt.step([np.ones(4, half)])
    with pytest.raises(ValueError, match="master_weights=False"):
        fastopt.Adam([p.copy()]).load_state_dict(opt.state_dict())


@pytest.mark.parametrize("kwargs, error", [
    ({"rounding": "up"}, ValueError),
    ({"rounding": None}, ValueError),
    ({"seed": "1"}, TypeError),
    ({"seed": 1.0}, TypeError),
    ({"seed": -1}, ValueError),
    ({"seed": 2**64}, ValueError),
    ({"master_weights": "yes"}, TypeError),
])
def test_bad_values_rejected(kwargs, error):
    p = np.ones(4, BF16)
    with pytest.raises(error):
        fastopt.Adam([p], **kwargs)
    assert (p == 1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_master_weights_refuse_float32_and_float64(dtype):
    with pytest.raises(ValueError, match="16-bit"):
        fastopt.Adam([np.ones(3, BF16), np.ones(3, dtype)], master_weights=True)
    opt = fastopt.Adam([np.ones(3, BF16)], master_weights=True)
    with pytest.raises(ValueError, match="16-bit"):
        opt.add_param_group({"params": [np.ones(3, dtype)]})


def test_stochastic_rounding_leaves_float32_alone(rng):
    p = rng.standard_normal(100).astype(np.float32)
    q = p.copy()
    g = rng.standard_normal(100).astype(np.float32)
    fastopt.Adam([p], rounding="stochastic").step([g])
    fastopt.Adam([q]).step([g])
    assert_bitwise(p, q)


@pytest.mark.slow
def test_digits_mlp_closer_to_float32():
    """The digits MLP trained by SGD with bf16 parameters: master weights and
    stochastic rounding each end closer to the float32 run's loss than bf16
    rounded to nearest (whose small updates are lost)."""
    demo = pytest.importorskip("fastopt.demo")
    pytest.importorskip("sklearn")
    data = demo.load_digits_split()
    batches = np.random.default_rng(0).permutation(np.tile(np.arange(len(data.y_train)), 4))

    def final_loss(dtype, **kw):
        params = [w.astype(dtype) for w in demo.init_mlp()]
        opt = fastopt.SGD(params, lr=0.02, **kw)
        for k in range(0, len(batches) - 63, 64):
            rows = batches[k:k + 64]
            _, grads = demo.loss_and_grads([w.astype(np.float32) for w in params],
                                           data.x_train[rows], data.y_train[rows])
            opt.step([g.astype(dtype) for g in grads])
        return demo.loss_and_grads([w.astype(np.float32) for w in params],
                                   data.x_train, data.y_train)[0]

    f32 = final_loss(np.float32)
    nearest = final_loss(BF16)
    master = final_loss(BF16, master_weights=True)
    stochastic = final_loss(BF16, rounding="stochastic")
    assert abs(master - f32) < abs(nearest - f32)
    assert abs(stochastic - f32) < abs(nearest - f32)


torch = pytest.importorskip("torch")
import fastopt.torch  # noqa: E402  (after the skip: it needs torch)


def torch_run(dtype, grads, **kw):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(n).to(dtype)) for n in (9, 257)]
    opt = fastopt.torch.Adam(params, lr=0.05, **kw)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()
    return params, opt


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_torch_master_weights_and_resume(dtype):
    """fastopt.torch: master_param is the NumPy optimizer's (the same engine),
    the parameter its rounding, and a state dict loads into fastopt.torch and
    continues bit for bit."""
    gen = torch.Generator().manual_seed(1)
    grads = [[torch.randn(n, generator=gen).to(dtype) for n in (9, 257)] for _ in range(4)]
    kw = dict(master_weights=True, rounding="stochastic", seed=5)
    params, opt = torch_run(dtype, grads, **kw)
    half = BF16 if dtype == torch.bfloat16 else F16
    arrays = [p.detach().float().numpy().astype(half) for p in torch_run(dtype, [])[0]]
    ref = run(fastopt.Adam, arrays, [[g.float().numpy().astype(half) for g in gs] for gs in grads],
              lr=0.05, **kw)
    for i, p in enumerate(params):
        master = opt.state[p]["master_param"]
        assert master.dtype == torch.float32
        assert_bitwise(master.numpy(), ref.state[i]["master_param"])
        assert_bitwise(p.detach().float().numpy(), arrays[i].astype(np.float32))
    # resume: the state dict of 2 steps, loaded, then 2 more steps
    first, opt1 = torch_run(dtype, grads[:2], **kw)
    second, opt2 = torch_run(dtype, [], **kw)
    with torch.no_grad():
        for a, b in zip(second, first):
            a.copy_(b)
    opt2.load_state_dict(copy.deepcopy(opt1.state_dict()))  # as a checkpoint file holds it
    for gs in grads[2:]:
        for o, ps in ((opt1, first), (opt2, second)):
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            o.step()
    for a, b, c in zip(first, second, params):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_torch_bad_values_rejected():
    p = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="16-bit"):
        fastopt.torch.Adam([p], master_weights=True)
    with pytest.raises(ValueError):
        fastopt.torch.SGD([p], rounding="up")
    with pytest.raises(TypeError):
        fastopt.torch.Lion([p], seed="0")


def test_row_sparse_master_is_the_float32_run(half, rng):
    """A row-sparse gradient steps the master copy's rows present as a float32
    run steps the parameter's (the kernel's row loop moves the master with them)."""
    table = rng.standard_normal((40, 6)).astype(np.float32).astype(half)
    wide = table.astype(np.float32)
    steps = [(np.array(rows), rng.standard_normal((len(rows), 6)).astype(np.float32).astype(half))
             for rows in ([3, 17, 39], [0, 3, 20], [39])]  # no repeats: they sum in 16 bits
    opt = run(fastopt.SparseAdam, [table], [[fastopt.RowSparse(i, v)] for i, v in steps],
              lr=0.05, master_weights=True)
    run(fastopt.SparseAdam, [wide], [[fastopt.RowSparse(i, v.astype(np.float32))] for i, v in steps],
        lr=0.05)
    assert_bitwise(opt.state[0]["master_param"], wide, "master")
    assert_bitwise(table, wide.astype(half), "parameter")

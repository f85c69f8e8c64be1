"""The optimizers torch.optim lacks, against their reference implementations.

Each runs 100 steps on parameters of odd sizes in two param groups with
different hyperparameters, in float32 and float64, next to its oracle:
Lion against lion-pytorch (and optax.lion), AdaBelief against
optax.adabelief, ADOPT against optax.contrib.adopt, Adan against
pytorch-optimizer's Adan. optax runs its float64 cases under jax's x64 mode.
A test whose oracle is not installed is skipped, naming the package. The
generic tests (test_reference.py, test_state_dict.py, test_kernels.py, ...)
run these optimizers too, against fastopt.reference.
"""
import copy
import importlib

import numpy as np
import pytest

import fastopt
from conftest import BY_NAME, SIZES, assert_bitwise, assert_close, assert_unchanged, snapshot
from fastopt import functional as F


def need(module, package):
    """The module, or a skip that names the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.skip(f"the oracle needs {package} (pip install {package})")


# Per optimizer: the options of its two groups (the second group sets them on
# top of the first, which the constructor gets).
GROUPS = {
    "Lion": ({"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.1},
             {"lr": 0.003, "betas": (0.8, 0.9), "weight_decay": 0.0}),
    "AdaBelief": ({"lr": 0.01, "betas": (0.9, 0.999), "weight_decay": 0.1},
                  {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-8, "eps_root": 0.0,
                   "weight_decay": 0.0}),
    "ADOPT": ({"lr": 0.01, "betas": (0.9, 0.9999), "weight_decay": 0.1},
              {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.0}),
    "Adan": ({"lr": 0.01, "betas": (0.98, 0.92, 0.99), "weight_decay": 0.1},
             {"lr": 0.003, "betas": (0.9, 0.8, 0.999), "eps": 1e-6, "weight_decay": 0.05,
              "weight_decouple": True}),
}


def start(rng, dtype):
    return [rng.standard_normal(n).astype(dtype) for n in SIZES]


def grad_stream(rng, params, steps):
    return [[rng.standard_normal(p.shape).astype(p.dtype) for p in params] for _ in range(steps)]


def split(name, params):
    """The parameters in two groups (odd indices in the second)."""
    first, second = GROUPS[name]
    return [{"params": params[0::2]}, {"params": params[1::2], **second}], first


def fastopt_run(name, params, grads, **extra):
    groups, first = split(name, [p.copy() for p in params])
    opt = getattr(fastopt, name)(groups, **first, **extra)
    ordered = [p for g in opt.param_groups for p in g["params"]]
    for g in grads:
        opt.step([g[i] for i in order(len(params))])
    return opt, ordered


def order(n):
    """Where the parameters of split() come from, in group order."""
    return list(range(0, n, 2)) + list(range(1, n, 2))


# ------------------------------------------------------------------- oracles

def torch_oracle(cls, name, params, grads, rename=None, sign=1.0, **extra):
    """A torch optimizer class `cls` stepped on the same groups: its params and
    per-parameter state (as NumPy, by `rename` of its names), in group order."""
    torch = need("torch", "torch")
    groups, first = split(name, [torch.tensor(p.copy()) for p in params])
    opt = cls(groups, **{**first, **extra})
    ordered = [p for g in opt.param_groups for p in g["params"]]
    for g in grads:
        for p, i in zip(ordered, order(len(params))):
            p.grad = torch.tensor(sign * g[i])  # a fresh tensor: some oracles change p.grad
        opt.step()
    state = [{(rename or {}).get(k, k): v.numpy() for k, v in opt.state[p].items()
              if isinstance(v, torch.Tensor) and v.dim()} for p in ordered]
    return [p.numpy() for p in ordered], state, opt


def optax_groups(make, groups, params, grads, state_names):
    """optax: one transformation per group (options, member indices), made by
    make(optax, **options), each step jitted (as optax is meant to run: the
    same arithmetic, without one dispatch per operation); the members'
    params and the state fields named in `state_names` (optax field -> name),
    in group order."""
    jax = need("jax", "jax")
    optax = need("optax", "optax")

    def apply(tx, g, st, ps):
        updates, st = tx.update(g, st, ps)
        return optax.apply_updates(ps, updates), st

    out_p, out_s = [], []
    with jax.enable_x64(params[0].dtype == np.float64):
        for opts, members in groups:
            tx = make(optax, **opts)
            step = jax.jit(lambda g, st, ps, tx=tx: apply(tx, g, st, ps))
            ps = [jax.numpy.asarray(params[i]) for i in members]
            st = tx.init(ps)
            for g in grads:
                ps, st = step([jax.numpy.asarray(g[i]) for i in members], st, ps)
            fields = _find_state(st, state_names)
            out_p += [np.asarray(p) for p in ps]
            out_s += [{name: np.asarray(fields[f][k]) for f, name in state_names.items()}
                      for k in range(len(members))]
    return out_p, out_s


def optax_oracle(make, name, params, grads, state_names):
    """optax on GROUPS[name]'s two groups (the even and the odd parameters)."""
    first, second = GROUPS[name]
    groups = [(first, list(range(0, len(params), 2))),
              ({**first, **second}, list(range(1, len(params), 2)))]
    return optax_groups(make, groups, params, grads, state_names)


def _find_state(state, names):
    """The fields `names` of the first optax state in a chain's nested tuples that has them."""
    if hasattr(state, "_fields") and all(n in state._fields for n in names):
        return {n: getattr(state, n) for n in names}
    if isinstance(state, tuple):
        for s in state:
            found = _find_state(s, names)
            if found is not None:
                return found
    return None


def assert_matches(opt, ordered, params, state, dtype, tol=None):
    """fastopt's parameters and state against the oracle's (group order)."""
    for i, (p, q) in enumerate(zip(ordered, params)):
        close(p, q, dtype, tol, f"parameter {i}")
        for key, value in state[i].items():
            close(opt.state[i][key], value, dtype, tol, f"parameter {i} {key}")


def close(actual, expected, dtype, tol, what):
    if tol is None:
        assert_close(actual, expected, dtype, what)
    else:
        np.testing.assert_allclose(actual, expected, rtol=tol[0], atol=tol[1], err_msg=what)


# ----------------------------------------------------------------------- Lion

def lion_pytorch():
    return need("lion_pytorch", "lion-pytorch").Lion


@pytest.mark.parametrize("maximize", [False, True])
def test_lion_matches_lion_pytorch(dtype, maximize, rng):
    params = start(rng, dtype)
    grads = grad_stream(rng, params, 100)
    opt, ordered = fastopt_run("Lion", params, grads, maximize=maximize)
    # lion-pytorch has no maximize: it gets the negated gradients
    theirs, state, _ = torch_oracle(lion_pytorch(), "Lion", params, grads,
                                    sign=-1.0 if maximize else 1.0)
    assert_matches(opt, ordered, theirs, state, dtype)


def test_lion_matches_optax(dtype, rng):
    params = start(rng, dtype)
    grads = grad_stream(rng, params, 100)
    opt, ordered = fastopt_run("Lion", params, grads)
    theirs, state = optax_oracle(
        lambda optax, lr, betas, weight_decay: optax.lion(lr, *betas, weight_decay=weight_decay),
        "Lion", params, grads, {"mu": "exp_avg"})
    # optax applies the decay as -lr * (sign + wd * p): one rounding away in float32
    assert_matches(opt, ordered, theirs, state, dtype,
                   None if dtype == np.float64 else (1e-5, 1e-5))


def test_lion_sign_of_zero_and_nan_is_zero():
    """sign(0) = 0 (an exactly zero interpolation leaves the parameter alone), and a
    NaN gradient too, as lion-pytorch (torch.sign) does."""
    torch = need("torch", "torch")
    p = np.array([1.0, 2.0, 3.0, -0.0])
    g = np.array([0.0, np.nan, -0.0, 0.0])
    ours = fastopt.Lion([p], lr=0.5)
    ours.step([g])
    tp = torch.tensor([1.0, 2.0, 3.0, -0.0], dtype=torch.float64)
    theirs = lion_pytorch()([tp], lr=0.5)
    tp.grad = torch.tensor(g)
    theirs.step()
    assert_bitwise(p, tp.numpy())
    assert_bitwise(p, np.array([1.0, 2.0, 3.0, -0.0]))


def torch_interchange(name, oracle_cls, dtype, rng, check, **extra):
    """The oracle runs 30 steps; its state dict loads into fastopt.torch.<name>
    (over copies of its parameters), both run 30 more; fastopt's state dict
    then loads into a fresh oracle, and both run 10 more. At the end of each
    of the last two, check(fastopt optimizer, its params, oracle, its params)."""
    torch = need("torch", "torch")
    import fastopt.torch as fot
    params = start(rng, dtype)
    grads = grad_stream(rng, params, 70)
    n = len(params)

    def copies(tensors):  # group order -> the original order, as new tensors
        out = [None] * n
        for pos, i in enumerate(order(n)):
            out[i] = torch.tensor(tensors[pos].detach().numpy().copy())
        return out

    def steps(pairs, stream):
        for g in stream:
            for opt, ps in pairs:
                for p, i in zip(ps, order(n)):
                    p.grad = torch.tensor(g[i])
                opt.step()

    def make(cls, tensors):
        groups, first = split(name, tensors)
        opt = cls(groups, **first, **extra)
        return opt, [p for g in opt.param_groups for p in g["params"]]

    _, _, oracle = torch_oracle(oracle_cls, name, params, grads[:30], **extra)
    theirs = [p for g in oracle.param_groups for p in g["params"]]
    mine, ours = make(getattr(fot, name), copies(theirs))
    # a copy: torch's load_state_dict keeps the tensors it gets, shared with the oracle
    mine.load_state_dict(copy.deepcopy(oracle.state_dict()))
    steps([(oracle, theirs), (mine, ours)], grads[30:60])
    check(mine, ours, oracle, theirs)
    back, backs = make(oracle_cls, copies(ours))
    back.load_state_dict(copy.deepcopy(mine.state_dict()))
    steps([(mine, ours), (back, backs)], grads[60:])
    check(mine, ours, back, backs)


def assert_same_run(mine, ours, oracle, theirs, dtype, tol=None):
    for k, (p, q) in enumerate(zip(ours, theirs)):
        close(p.detach().numpy(), q.detach().numpy(), dtype, tol, f"parameter {k}")
        bufs = {key for key, v in oracle.state[q].items() if v.dim()}
        assert bufs <= set(mine.state[p]), (bufs, sorted(mine.state[p]))
        for key in bufs:
            close(mine.state[p][key].numpy(), oracle.state[q][key].numpy(), dtype, tol,
                  f"parameter {k} {key}")


def test_fastopt_torch_lion_interchanges_state_with_lion_pytorch(dtype, rng):
    def check(mine, ours, oracle, theirs):
        assert all(g["maximize"] is False for g in mine.param_groups)  # not in lion-pytorch's
        assert sorted(mine.state[ours[0]]) == ["exp_avg"]
        assert_same_run(mine, ours, oracle, theirs, dtype)
    torch_interchange("Lion", lion_pytorch(), dtype, rng, check)


# ------------------------------------------------------------------ AdaBelief

def adabelief_tx(optax, lr, betas, eps=1e-16, eps_root=1e-16, weight_decay=0.0):
    """optax.adabelief, with decoupled weight decay chained as optax.adamw chains it."""
    if weight_decay == 0:
        return optax.adabelief(lr, *betas, eps=eps, eps_root=eps_root)
    return optax.chain(optax.scale_by_belief(*betas, eps=eps, eps_root=eps_root),
                       optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(lr))


def test_adabelief_matches_optax(dtype, rng):
    params = start(rng, dtype)
    grads = grad_stream(rng, params, 100)
    opt, ordered = fastopt_run("AdaBelief", params, grads)
    theirs, state = optax_oracle(adabelief_tx, "AdaBelief", params, grads,
                                 {"mu": "exp_avg", "nu": "exp_avg_var"})
    assert [opt.state[i]["step"] for i in range(len(params))] == [100.0] * len(params)
    assert_matches(opt, ordered, theirs, state, dtype)


# ---------------------------------------------------------------------- ADOPT

def adopt_tx(optax, lr, betas, eps=1e-6, weight_decay=0.0):
    """optax.contrib.adopt (clipping on), with decoupled weight decay chained as optax.adamw."""
    if weight_decay == 0:
        return optax.contrib.adopt(lr, *betas, eps=eps)
    return optax.chain(optax.contrib.scale_by_adopt(*betas, eps=eps),
                       optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(lr))


def test_adopt_matches_optax(dtype, rng):
    params = start(rng, dtype)
    grads = grad_stream(rng, params, 100)
    opt, ordered = fastopt_run("ADOPT", params, grads)
    theirs, state = optax_oracle(adopt_tx, "ADOPT", params, grads,
                                 {"mu": "exp_avg", "nu": "exp_avg_sq"})
    assert_matches(opt, ordered, theirs, state, dtype)


def test_adopt_first_step_sets_the_second_moment_only(dtype, rng):
    p = rng.standard_normal(9).astype(dtype)
    g = rng.standard_normal(9).astype(dtype)
    g[:3] = [0.0, -0.0, 1e18]
    opt = fastopt.ADOPT([p], lr=0.5)
    before = p.copy()
    opt.step([g])
    assert_bitwise(p, before)
    assert_bitwise(opt.state[0]["exp_avg"], np.zeros(9, dtype))
    assert_bitwise(opt.state[0]["exp_avg_sq"], g * g)
    opt.step([g])  # the second moves: |u| is at most the clip, 1, so |m| <= 1 - beta1
    assert 0 < np.abs(p - before).max() <= 0.5 * 0.1 * (1 + 1e-6)


# ----------------------------------------------------------------------- Adan

def pytorch_optimizer_adan():
    return need("pytorch_optimizer", "pytorch_optimizer").Adan


@pytest.mark.parametrize("foreach", [False, None], ids=["per-tensor", "default"])
@pytest.mark.parametrize("maximize", [False, True])
def test_adan_matches_pytorch_optimizer(dtype, maximize, foreach, rng):
    """Both of pytorch-optimizer's paths (its default on CPU is the foreach one)."""
    params = start(rng, dtype)
    grads = grad_stream(rng, params, 100)
    opt, ordered = fastopt_run("Adan", params, grads, maximize=maximize)
    theirs, state, oracle = torch_oracle(pytorch_optimizer_adan(), "Adan", params, grads,
                                         maximize=maximize, foreach=foreach)
    assert sorted(state[0]) == ["exp_avg", "exp_avg_diff", "exp_avg_sq", "previous_grad"]
    assert all(g["step"] == 100 for g in oracle.param_groups)  # per group there
    assert [opt.state[i]["step"] for i in range(len(params))] == [100.0] * len(params)
    assert_matches(opt, ordered, theirs, state, dtype)


def test_adan_max_grad_norm_is_refused():
    with pytest.raises(ValueError, match="max_grad_norm"):
        fastopt.Adan([np.zeros(3)], max_grad_norm=1.0)


# ------------------------------------------------- every one of them: errors

BAD = {
    "Lion": [{"lr": -1.0}, {"betas": (1.0, 0.9)}, {"betas": (0.9, -0.1)},
             {"weight_decay": -0.1}, {"betas": (0.9,)}],
    "AdaBelief": [{"lr": -1.0}, {"betas": (1.0, 0.9)}, {"eps": -1e-8}, {"eps_root": -1.0},
                  {"weight_decay": -0.1}, {"betas": (0.9, 0.9, 0.9)}],
    "ADOPT": [{"lr": -1.0}, {"betas": (0.9, 1.0)}, {"eps": -1e-8}, {"weight_decay": -0.1},
              {"betas": 0.9}],
    "Adan": [{"lr": -1.0}, {"betas": (0.98, 0.92, 1.0)}, {"betas": (0.9, 0.9)}, {"eps": -1e-8},
             {"weight_decay": -0.1}, {"max_grad_norm": -1.0}, {"max_grad_norm": 1.0}],
}


@pytest.mark.parametrize("name", list(GROUPS))
def test_fastopt_torch_is_the_numpy_class_and_resumes_bitwise(name, dtype, rng):
    """fastopt.torch.<name> steps as fastopt.<name> does, bit for bit, and a
    state dict saved mid-run resumes the same bits in a new optimizer."""
    torch = need("torch", "torch")
    import fastopt.torch as fot
    params = start(rng, dtype)
    grads = grad_stream(rng, params, 40)
    ref, ordered = fastopt_run(name, params, grads)
    groups, first = split(name, [torch.tensor(p.copy()) for p in params])
    mine = getattr(fot, name)(groups, **first)
    ts = [p for g in mine.param_groups for p in g["params"]]

    def steps(opt, tensors, stream):
        for g in stream:
            for t, i in zip(tensors, order(len(params))):
                t.grad = torch.tensor(g[i])
            opt.step()
    steps(mine, ts, grads[:20])
    saved = copy.deepcopy(mine.state_dict())
    at20 = [t.clone() for t in ts]
    steps(mine, ts, grads[20:])
    tensors = [t.clone() for t in at20]  # in group order
    n0 = len(mine.param_groups[0]["params"])
    again = getattr(fot, name)([{"params": tensors[:n0]},
                                {"params": tensors[n0:], **GROUPS[name][1]}], **first)
    again.load_state_dict(saved)
    steps(again, tensors, grads[20:])
    for k, (p, t, u) in enumerate(zip(ordered, ts, tensors)):
        assert_bitwise(t.numpy(), p, f"parameter {k}")
        assert_bitwise(u.numpy(), p, f"resumed parameter {k}")
        for key, value in ref.state[k].items():
            if isinstance(value, np.ndarray):
                assert_bitwise(mine.state[t][key].numpy(), value, f"{k} {key}")
                assert_bitwise(again.state[u][key].numpy(), value, f"resumed {k} {key}")
            else:
                assert float(mine.state[t][key]) == value == float(again.state[u][key])


@pytest.mark.parametrize("name, bad", [(n, b) for n, bads in BAD.items() for b in bads],
                         ids=lambda x: x if isinstance(x, str) else repr(x))
def test_bad_hyperparameters_are_rejected_and_nothing_is_touched(name, bad, rng):
    p = rng.standard_normal(5)
    with pytest.raises((ValueError, TypeError)):
        getattr(fastopt, name)([p.copy()], **bad)
    opt = getattr(fastopt, name)([p], lr=0.01)
    opt.step([rng.standard_normal(5)])
    snap = snapshot(opt)
    saved = dict(opt.param_groups[0])
    opt.param_groups[0].update(bad)  # as a scheduler or a user would, between steps
    with pytest.raises((ValueError, TypeError)):
        opt.step([rng.standard_normal(5)])
    opt.param_groups[0].update(saved)
    assert_unchanged(opt, snap)
    spec = BY_NAME[name].spec
    buffers = [np.zeros(5) for _ in spec.state]
    before = p.copy()
    with pytest.raises((ValueError, TypeError)):
        getattr(F, name.lower() + "_")(p, np.ones(5), *buffers, step=1, **bad)
    assert_bitwise(p, before)
    assert all(not b.any() for b in buffers)
    torch = pytest.importorskip("torch")
    import fastopt.torch as fot
    with pytest.raises((ValueError, TypeError)):
        getattr(fot, name)([torch.zeros(3, requires_grad=True)], **bad)

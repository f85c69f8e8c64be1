"""LAMB and LARS against optax.lamb and optax.lars, and their trust ratios.

Each runs 100 steps on parameters of odd sizes (one 2-D, one all zeros, one
spanning several blocks of the norm phase) in two param groups with
different hyperparameters, in float64 under jax's x64 mode (API.md's
tolerances) and in float32 (rtol 1e-5: optax sums the norms in float32, in
XLA's order, and computes the bias corrections in float32; fastopt sums in
double in a fixed order). Without optax those tests are skipped, naming the
package; the tests against fastopt.reference run regardless. The generic
tests (test_kernels.py, test_state_dict.py, ...) run both optimizers too.
"""
import copy

import numpy as np
import pytest

import fastopt
from conftest import assert_bitwise, assert_close, assert_unchanged, snapshot
from fastopt import reference
from fastopt import functional as F
from test_beyond_torch import need, optax_groups

SHAPES = [(1,), (7,), (63,), (37, 41), (1000,), (5000,)]  # 5000: three blocks of 2048
ZERO = 2  # the index of the all-zero parameter (both trust-ratio norms start at 0 for LARS)

GROUPS = {
    "LAMB": ({"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.1},
             {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.0}),
    "LARS": ({"lr": 0.5, "momentum": 0.9, "weight_decay": 0.1, "trust_coefficient": 0.001},
             {"lr": 0.2, "momentum": 0.5, "weight_decay": 0.0, "trust_coefficient": 0.02,
              "eps": 1e-3}),
}


def lamb_tx(optax, lr, betas, eps, weight_decay, maximize=False):
    return optax.lamb(lr, *betas, eps=eps, weight_decay=weight_decay)


def lars_tx(optax, lr, momentum, weight_decay, trust_coefficient, eps=0.0, nesterov=False):
    return optax.lars(lr, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps,
                      momentum=momentum, nesterov=nesterov)


TX = {"LAMB": (lamb_tx, {"mu": "exp_avg", "nu": "exp_avg_sq"}),
      "LARS": (lars_tx, {"trace": "momentum_buffer"})}


def start(rng, dtype):
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    params[ZERO][...] = 0
    return params


def stream(rng, params, steps):
    return [[rng.standard_normal(p.shape).astype(p.dtype) for p in params] for _ in range(steps)]


def groups_of(name, params, extra):
    """Even indices in the first group, odd in the second; both get `extra`."""
    first, second = GROUPS[name]
    return ([{"params": params[0::2], **first, **extra},
             {"params": params[1::2], **first, **second, **extra}])


def order(n):
    return list(range(0, n, 2)) + list(range(1, n, 2))


def fastopt_run(name, params, grads, extra=None):
    opt = getattr(fastopt, name)(groups_of(name, [p.copy() for p in params], extra or {}))
    for g in grads:
        opt.step([g[i] for i in order(len(params))])
    return opt


def optax_run(name, params, grads, extra):
    """optax's transformation per group; params and state in group order."""
    make, names = TX[name]
    groups = []
    for group in groups_of(name, list(range(len(params))), extra):
        members = group.pop("params")
        groups.append((group, members))
    return optax_groups(make, groups, params, grads, names)


def check(opt, params, states, dtype):
    rtol = 1e-5 if dtype == np.float32 else 1e-10  # float32: see the module docstring
    for i, (p, q) in enumerate(zip(opt._params, params)):
        if dtype == np.float32:
            np.testing.assert_allclose(p, q, rtol=rtol, atol=1e-6, err_msg=f"parameter {i}")
        else:
            assert_close(p, q, dtype, f"parameter {i}")
        for key, value in states[i].items():
            if dtype == np.float32:
                np.testing.assert_allclose(opt.state[i][key], value, rtol=rtol, atol=1e-6,
                                           err_msg=f"parameter {i} {key}")
            else:
                assert_close(opt.state[i][key], value, dtype, f"parameter {i} {key}")


CASES = [("LAMB", {}), ("LARS", {}), ("LARS", {"nesterov": True})]
IDS = ["LAMB", "LARS", "LARS-nesterov"]


@pytest.mark.parametrize("name, extra", CASES, ids=IDS)
def test_matches_optax_after_100_steps(name, extra, dtype, rng):
    params = start(rng, dtype)
    grads = stream(rng, params, 100)
    theirs, state = optax_run(name, params, grads, extra)
    opt = fastopt_run(name, params, grads, extra)
    check(opt, theirs, state, dtype)
    if name == "LAMB":
        assert [opt.state[i]["step"] for i in range(len(params))] == [100.0] * len(params)


@pytest.mark.parametrize("name, extra", CASES, ids=IDS)
def test_matches_reference_after_100_steps(name, extra, dtype, rng):
    """fastopt.reference (NumPy, norms by np.linalg.norm), no optax needed."""
    params = start(rng, dtype)
    grads = stream(rng, params, 100)
    opt = fastopt_run(name, params, grads, extra)
    ref = reference.ReferenceOptimizer(name, groups_of(name, [p.copy() for p in params], {}),
                                       dict(extra))
    for g in grads:
        ref.step([g[i] for i in order(len(params))])
    for i, (p, q) in enumerate(zip(opt._params, ref.params)):
        assert_close(p, q, dtype, f"parameter {i}")


@pytest.mark.parametrize("name", ["LAMB", "LARS"])
def test_zero_norms_give_a_trust_ratio_of_one(name, dtype):
    """optax: a zero parameter or a zero update norm makes the ratio 1, so a zero
    parameter still moves (LAMB; LARS by lr times the gradient) and a zero
    gradient leaves LARS's parameter as it is."""
    p = np.zeros(9, dtype)
    g = np.linspace(-1, 1, 9).astype(dtype)
    opt = getattr(fastopt, name)([p], lr=0.1)
    opt.step([g])
    expected, _ = reference.UPDATES[name](np.zeros(9, dtype), g, {}, 1, lr=0.1)
    assert_bitwise(p, expected)
    if name == "LARS":
        assert_bitwise(p, np.zeros(9, dtype) + dtype.type(-0.1) * g)  # ratio 1, empty trace
        q = np.ones(5, dtype)
        fastopt.LARS([q], lr=0.1, momentum=0.0).step([np.zeros(5, dtype)])
        assert_bitwise(q, np.ones(5, dtype))


@pytest.mark.parametrize("name, extra", CASES, ids=IDS)
def test_one_and_two_threads_and_neighbours_give_the_same_bits(name, extra, dtype, rng):
    """Tensors spanning many pieces of the pool, one thread against two, and a
    tensor stepped alone against the same tensor among others: the norms are
    summed per block from each tensor's own start."""
    params = [rng.standard_normal(n).astype(dtype) for n in (3, 70001, 131073, 20000)]
    grads = stream(rng, params, 3)
    before = fastopt.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            fastopt.set_num_threads(threads)
            runs.append(fastopt_run(name, params, grads, extra))
    finally:
        fastopt.set_num_threads(before)
    for p, q in zip(runs[0]._params, runs[1]._params):
        assert_bitwise(p, q)
    first = GROUPS[name][0]
    k = order(len(params)).index(2)  # 131073 elements, in the first group
    alone = getattr(fastopt, name)([params[2].copy()], **first, **extra)
    for g in grads:
        alone.step([g[2]])
    assert_bitwise(alone._params[0], runs[0]._params[k])


@pytest.mark.parametrize("name, extra", CASES, ids=IDS)
def test_every_simd_path_gives_the_scalar_bits(name, extra, isa, dtype, rng):
    spec = fastopt._spec.SPECS[name]
    fn = getattr(F, spec.function + "_")
    hyper = {**GROUPS[name][0], **extra}
    out = []
    for path in ("scalar", isa):
        r = np.random.default_rng(5)
        p = r.standard_normal(6001).astype(dtype)
        bufs = [np.zeros_like(p) for _ in spec.state]
        for t in range(1, 4):
            g = r.standard_normal(p.shape).astype(dtype)
            g[7], g[4100] = np.inf, np.nan
            fn(p, g, *bufs, step=t, isa=path, **hyper)
        out.append([p] + bufs)
    for a, b in zip(*out):
        assert_bitwise(a, b)


@pytest.mark.parametrize("name", ["LAMB", "LARS"])
def test_state_dict_resumes_bitwise(name, dtype, rng):
    params = start(rng, dtype)
    grads = stream(rng, params, 30)
    cls = getattr(fastopt, name)
    opt = cls(groups_of(name, [p.copy() for p in params], {}))
    for g in grads[:10]:
        opt.step([g[i] for i in order(len(params))])
    saved = copy.deepcopy(opt.state_dict())
    at10 = [p.copy() for p in opt._params]
    for g in grads[10:]:
        opt.step([g[i] for i in order(len(params))])
    n0 = len(opt.param_groups[0]["params"])
    again = cls([{"params": at10[:n0]}, {"params": at10[n0:]}])
    again.load_state_dict(saved)
    for g in grads[10:]:
        again.step([g[i] for i in order(len(params))])
    for p, q in zip(opt._params, again._params):
        assert_bitwise(p, q)
    for i in range(len(params)):
        for key, value in opt.state[i].items():
            if isinstance(value, np.ndarray):
                assert_bitwise(again.state[i][key], value, f"{i} {key}")
            else:
                assert again.state[i][key] == value


@pytest.mark.parametrize("name", ["LAMB", "LARS"])
def test_fastopt_torch_steps_the_numpy_bits(name, dtype, rng):
    torch = need("torch", "torch")
    import fastopt.torch as fot
    params = start(rng, dtype)
    grads = stream(rng, params, 20)
    opt = fastopt_run(name, params, grads)
    tensors = [torch.tensor(p.copy()) for p in params]
    mine = getattr(fot, name)(groups_of(name, tensors, {}))
    ordered = [t for g in mine.param_groups for t in g["params"]]
    for g in grads:
        for t, i in zip(ordered, order(len(params))):
            t.grad = torch.tensor(g[i])
        mine.step()
    for t, p in zip(ordered, opt._params):
        assert_bitwise(t.numpy(), p)


BAD = {
    "LAMB": [{"lr": -1.0}, {"betas": (1.0, 0.9)}, {"betas": (0.9, -0.1)}, {"eps": -1e-6},
             {"weight_decay": -0.1}, {"betas": (0.9,)}],
    "LARS": [{"lr": -1.0}, {"momentum": -0.5}, {"weight_decay": -0.1},
             {"trust_coefficient": -0.001}, {"eps": -1.0}, {"lr": "fast"}],
}


@pytest.mark.parametrize("name, bad", [(n, b) for n, bads in BAD.items() for b in bads],
                         ids=lambda x: x if isinstance(x, str) else repr(x))
def test_bad_hyperparameters_are_rejected_and_nothing_is_touched(name, bad, rng):
    cls = getattr(fastopt, name)
    params = start(rng, np.dtype(np.float64))
    with pytest.raises((TypeError, ValueError)):
        cls(params, **bad)
    opt = cls(groups_of(name, params, {}))
    grads = [[g[i] for i in order(len(params))] for g in stream(rng, params, 2)]
    opt.step(grads[0])
    snap = snapshot(opt)
    saved = dict(opt.param_groups[1])
    opt.param_groups[1].update(bad)  # as a scheduler or a user would, between steps
    with pytest.raises((TypeError, ValueError)):
        opt.step(grads[1])
    opt.param_groups[1].update(saved)
    assert_unchanged(opt, snap)
    p = np.ones(5)
    buffers = [np.zeros(5) for _ in fastopt._spec.SPECS[name].state]
    with pytest.raises((TypeError, ValueError)):
        getattr(F, name.lower() + "_")(p, np.ones(5), *buffers, step=1, **bad)
    assert_bitwise(p, np.ones(5))
    assert all(not b.any() for b in buffers)


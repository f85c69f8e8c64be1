"""fastopt.reference.adafactor against torch.optim.Adafactor (foreach=False).

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

torch = pytest.importorskip("torch")

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


@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c == "defaults" else pytest.mark.slow)
                                  for c in sorted(CASES)])
def test_reference_matches_torch(rng, dtype, case):
    groups = [{**g, **CASES[case]} for g in GROUPS]
    compare(*run_both(rng, SHAPES, dtype, groups), dtype)


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

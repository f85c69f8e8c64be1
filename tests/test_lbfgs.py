"""LBFGS against torch.optim.LBFGS and fastopt.reference.lbfgs.

Tolerances: torch's dot products and sums run in the parameters' dtype in
its own (vectorised, blocked) order and its axpys use fused multiply-adds,
while fastopt sums in double over eight fixed lanes and rounds once. In
float64 those roundings (1e-16 relative) grow over a few dozen iterations to
about 1e-13, so rtol 1e-10 (atol 1e-10 times the scale) leaves room and still
fails for any wrong branch or formula, which moves values by far more. In
float32 the same differences start at 1e-7 and the line search amplifies
them; rtol and atol 2e-3 bound what was seen (1.4e-4 on the logistic
regression with strong_wolfe; see STEPS). The evaluation and iteration counts are
compared exactly. ro = 1/yᵀs and H_diag = yᵀs/yᵀy are compared at the
square root of those tolerances: near the optimum yᵀs is a difference of
nearly equal numbers (2.6e-9 relative apart in float64 after four steps).
"""
import numpy as np
import pytest

import fastopt
from fastopt import _core, reference
from conftest import assert_bitwise

TOL = {np.float64: 1e-10, np.float32: 2e-3}
# Outer steps compared: in float32 near the optimum, yᵀs is a difference of
# nearly equal numbers, so ro = 1/yᵀs differs by percents between summation
# orders: float32 runs are compared before they get there.
STEPS = {np.float64: 4, np.float32: 2}
CONFIGS = [dict(history_size=3, max_iter=6),  # the history wraps
           dict(history_size=100, max_iter=3, max_eval=4)]  # max_eval stops the step


def close(actual, expected, dtype, what="", tol=None):
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max(initial=0)))
    tol = TOL[dtype] if tol is None else tol
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=tol,
                               atol=tol * scale, err_msg=what)


# ---- problems: initial parameters and f(params) -> (loss, grads) in NumPy

def quadratic(dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 6))
    a = (a @ a.T + np.eye(6)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)

    def f(ps):
        x = ps[0].reshape(-1)
        return float(0.5 * x @ a @ x - b @ x), [(a @ x - b).reshape(ps[0].shape)]
    return [np.full((2, 3), 0.5, dtype)], f


def rosenbrock(dtype):
    def f(ps):
        x = ps[0]
        loss = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
        g = np.zeros_like(x)
        g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
        g[1:] += 200 * (x[1:] - x[:-1] ** 2)
        return float(loss), [g]
    return [np.array([-1.2, 1.0, -0.5, 0.8], dtype)], f


def logistic(dtype):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 5)).astype(dtype)
    y = (rng.random(40) > 0.5).astype(dtype)

    def f(ps):
        w, b = ps
        z = X @ w + b[0]
        p = 1 / (1 + np.exp(-z))
        loss = np.mean(np.logaddexp(0, z) - y * z) + 0.01 * w @ w
        r = (p - y) / len(y)
        return float(loss), [(X.T @ r + 0.02 * w).astype(dtype), np.array([r.sum()], dtype)]
    return [np.zeros(5, dtype), np.zeros(1, dtype)], f


PROBLEMS = {"quadratic": quadratic, "rosenbrock": rosenbrock, "logistic": logistic}
HYPER = {"quadratic": {}, "rosenbrock": {"lr": 0.1}, "logistic": {}}


def torch_run(problem, dtype, steps, **hyper):
    """torch.optim.LBFGS on the problem (its gradients from f, through autograd's hooks)."""
    torch = pytest.importorskip("torch")
    p0, f = PROBLEMS[problem](dtype)
    ts = [torch.tensor(p, requires_grad=True) for p in p0]
    opt = torch.optim.LBFGS(ts, **hyper)

    def closure():
        loss, grads = f([t.detach().numpy().copy() for t in ts])
        for t, g in zip(ts, grads):
            t.grad = torch.from_numpy(np.ascontiguousarray(g))
        return torch.tensor(loss, dtype=ts[0].dtype)
    losses = [float(opt.step(closure)) for _ in range(steps)]
    return [t.detach().numpy() for t in ts], losses, opt.state[ts[0]], opt


def fastopt_run(problem, dtype, steps, **hyper):
    ps, f = PROBLEMS[problem](dtype)
    opt = fastopt.LBFGS(ps, **hyper)
    losses = [opt.step(lambda: f(ps)) for _ in range(steps)]
    return ps, losses, opt.state[0], opt


def as_numpy(v):
    return v.detach().numpy() if hasattr(v, "detach") else v


def assert_state_close(mine, theirs, dtype):
    assert sorted(mine) == sorted(theirs)
    for key in ("func_evals", "n_iter"):
        assert mine[key] == theirs[key], key
    for key in ("d", "t", "prev_flat_grad", "prev_loss"):
        close(as_numpy(mine[key]), as_numpy(theirs[key]), dtype, key)
    # 1/yᵀs and yᵀs/yᵀy: yᵀs is a difference of nearly equal numbers near the optimum
    close(as_numpy(mine["H_diag"]), as_numpy(theirs["H_diag"]), dtype, "H_diag", TOL[dtype] ** 0.5)
    for key in ("old_dirs", "old_stps", "ro"):
        assert len(mine[key]) == len(theirs[key]), key
        for a, b in zip(mine[key], theirs[key]):
            close(as_numpy(a), as_numpy(b), dtype, key, TOL[dtype] ** 0.5 if key == "ro" else None)


@pytest.mark.parametrize("config", CONFIGS, ids=["wrap", "max_eval"])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_matches_torch(problem, dtype, line_search_fn, config):
    hyper = {**HYPER[problem], **config, "line_search_fn": line_search_fn}
    steps = STEPS[dtype]
    ps, losses, state, _ = fastopt_run(problem, dtype, steps, **hyper)
    tps, tlosses, tstate, _ = torch_run(problem, dtype, steps, **hyper)
    for p, t in zip(ps, tps):
        close(p, t, dtype, "params")
    close(losses, tlosses, dtype, "losses")
    assert_state_close(state, tstate, dtype)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_matches_reference(problem, dtype, line_search_fn):
    hyper = {**HYPER[problem], "history_size": 3, "max_iter": 6, "line_search_fn": line_search_fn}
    ps, losses, state, _ = fastopt_run(problem, dtype, STEPS[dtype], **hyper)
    rp, rstate, rlosses = PROBLEMS[problem](dtype)[0], {}, []
    f = PROBLEMS[problem](dtype)[1]
    for _ in range(STEPS[dtype]):
        rp, loss, rstate = reference.lbfgs(rp, f, rstate, **hyper)
        rlosses.append(loss)
    for p, r in zip(ps, rp):
        assert p.dtype == r.dtype
        close(p, r, dtype, "params")
    close(losses, rlosses, dtype, "losses")
    assert_state_close(state, rstate, dtype)


def test_first_iteration_and_stops_as_torch():
    """Already optimal: one evaluation and nothing moves; max_iter=1: torch's first step length."""
    ps, f = quadratic(np.float64)
    opt = fastopt.LBFGS(ps, tolerance_grad=1e9)
    before = ps[0].copy()
    assert opt.step(lambda: f(ps)) == f([before])[0]
    assert_bitwise(ps[0], before)
    assert opt.state[0] == {"func_evals": 1, "n_iter": 0}
    mine, _, state, _ = fastopt_run("quadratic", np.float64, 1, max_iter=1, lr=0.5)
    theirs, _, tstate, _ = torch_run("quadratic", np.float64, 1, max_iter=1, lr=0.5)
    close(mine[0], theirs[0], np.float64)
    g = f(quadratic(np.float64)[0])[1][0]
    assert state["t"] == pytest.approx(min(1.0, 1.0 / np.abs(g).sum()) * 0.5, rel=1e-15)
    assert state["func_evals"] == tstate["func_evals"] == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_torch_class_state_dict_round_trip(dtype):
    torch = pytest.importorskip("torch")
    import fastopt.torch as FT
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    X = torch.from_numpy(np.random.default_rng(3).standard_normal((30, 4)).astype(dtype))
    y = (X.sum(1) > 0).to(tdtype)

    def make(cls, start=None):
        w = torch.zeros(4, dtype=tdtype, requires_grad=True)
        if start is not None:
            w.data.copy_(start)
        opt = cls([w], history_size=3, max_iter=5, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y) + 0.1 * (w * w).sum()
            loss.backward()
            return loss
        return w, opt, closure

    w, opt, closure = make(FT.LBFGS)
    tw, topt, tclosure = make(torch.optim.LBFGS)
    for _ in range(2):
        close(float(opt.step(closure)), float(topt.step(tclosure)), dtype)
    close(w.detach().numpy(), tw.detach().numpy(), dtype)
    sd = opt.state_dict()
    w_torch, o_torch, c_torch = make(torch.optim.LBFGS, w.detach())
    o_torch.load_state_dict(sd)
    w_back, o_back, c_back = make(FT.LBFGS, w.detach())
    o_back.load_state_dict(o_torch.state_dict())  # torch's state dict, back into fastopt
    for _ in range(2):
        opt.step(closure)
        o_torch.step(c_torch)
        o_back.step(c_back)
    assert_bitwise(w_back.detach().numpy(), w.detach().numpy())
    close(w_torch.detach().numpy(), w.detach().numpy(), dtype)
    assert o_back.state[w_back]["func_evals"] == opt.state[w]["func_evals"]
    assert o_torch.state[w_torch]["n_iter"] == opt.state[w]["n_iter"]


def test_numpy_state_dict_resumes_bitwise():
    ps, f = logistic(np.float64)
    opt = fastopt.LBFGS(ps, history_size=2, max_iter=4)
    opt.step(lambda: f(ps))
    sd = opt.state_dict()
    qs = [p.copy() for p in ps]
    other = fastopt.LBFGS(qs, history_size=2, max_iter=4)
    other.load_state_dict(sd)
    for _ in range(2):
        opt.step(lambda: f(ps))
        other.step(lambda: f(qs))
    for p, q in zip(ps, qs):
        assert_bitwise(q, p)


def test_same_bits_for_any_thread_count_and_simd_path():
    """A 300,000-element quadratic (many pieces of the thread pool)."""
    rng = np.random.default_rng(4)
    scale = rng.uniform(0.5, 2.0, 300_000)

    def run():
        x = np.ones(300_000)
        opt = fastopt.LBFGS([x], history_size=4, max_iter=6, line_search_fn="strong_wolfe")
        opt.step(lambda: (float(0.5 * np.sum(scale * x * x)), [scale * x]))
        return x, opt.state[0]

    threads, isa = fastopt.get_num_threads(), _core.active_isa()
    try:
        results = []
        for name in _core.isa_names():
            _core.select_isa(name)
            for n in (1, 3):
                fastopt.set_num_threads(n)
                results.append(run())
    finally:
        fastopt.set_num_threads(threads)
        _core.select_isa(isa)
    x0, s0 = results[0]
    for x, s in results[1:]:
        assert_bitwise(x, x0)
        assert_bitwise(s["d"], s0["d"])
        assert s["ro"] == s0["ro"] and s["H_diag"] == s0["H_diag"]


# ---- validation

@pytest.mark.parametrize("bad, error", [
    (dict(lr=-1.0), ValueError), (dict(history_size=0), ValueError),
    (dict(line_search_fn="armijo"), ValueError), (dict(max_iter=1.5), TypeError),
    (dict(line_search_fn="strong_wolfe", max_eval=0), ValueError),
    (dict(tolerance_grad="x"), TypeError)])
def test_bad_hyperparameters(bad, error):
    with pytest.raises(error):
        fastopt.LBFGS([np.zeros(3)], **bad)


def test_bad_hyperparameters_match_torch():
    torch = pytest.importorskip("torch")
    import fastopt.torch as FT
    t = torch.zeros(3, requires_grad=True)
    for cls in (torch.optim.LBFGS, FT.LBFGS):
        with pytest.raises(ValueError, match="Invalid learning rate"):
            cls([t], lr=-1.0)
        with pytest.raises(ValueError, match="parameter groups"):
            cls([{"params": [t]}, {"params": [torch.zeros(2, requires_grad=True)]}])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        fastopt.LBFGS([np.zeros(3)], lr=-1.0)
    with pytest.raises(ValueError, match="parameter groups"):
        fastopt.LBFGS([{"params": [np.zeros(3)]}, {"params": [np.zeros(2)]}])


def test_bad_parameters():
    with pytest.raises(TypeError):
        fastopt.LBFGS([np.zeros(3, np.float16)])
    with pytest.raises(TypeError):
        fastopt.LBFGS([np.zeros(3), np.zeros(2, np.float32)])
    with pytest.raises(ValueError):
        fastopt.LBFGS([])


def _bad_closures(ps, f):
    good = lambda: f(ps)  # noqa: E731
    yield lambda: f(ps)[1], TypeError                                   # not (loss, grads)
    yield lambda: (f(ps)[0], [np.zeros(3)]), ValueError                 # wrong shape
    yield lambda: (f(ps)[0], [g.astype(np.float32) for g in f(ps)[1]]), TypeError
    yield lambda: (f(ps)[0], []), ValueError                            # wrong count
    yield lambda: (float("nan"), f(ps)[1]), ValueError
    yield lambda: (f(ps)[0], [np.full_like(g, np.inf) for g in f(ps)[1]]), ValueError
    calls = [0]

    def late():  # a failure at the third evaluation, after the parameters moved
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("model failed")
        return good()
    yield late, RuntimeError

    def late_nan():
        calls[0] += 1
        loss, grads = good()
        return (float("nan") if calls[0] > 5 else loss), grads
    yield late_nan, ValueError


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_bad_closure_leaves_everything_as_before(line_search_fn):
    ps, f = quadratic(np.float64)
    opt = fastopt.LBFGS(ps, history_size=3, max_iter=8, line_search_fn=line_search_fn)
    opt.step(lambda: f(ps))
    for closure, error in _bad_closures(ps, f):
        before, state = ps[0].copy(), opt.state_dict()
        with pytest.raises(error):
            opt.step(closure)
        assert_bitwise(ps[0], before)
        after = opt.state_dict()["state"][0]
        assert after.keys() == state["state"][0].keys()
        assert after["func_evals"] == state["state"][0]["func_evals"]
        assert_bitwise(after["d"], state["state"][0]["d"])


def test_torch_closure_raising_restores_parameters():
    torch = pytest.importorskip("torch")
    import fastopt.torch as FT
    w = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = FT.LBFGS([w], max_iter=5)
    calls = [0]

    def closure():
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("model failed")
        opt.zero_grad()
        loss = ((w - 2) ** 2).sum()
        loss.backward()
        return loss
    with pytest.raises(RuntimeError):
        opt.step(closure)
    assert torch.equal(w.detach(), torch.ones(3, dtype=torch.float64))
    assert opt.state[w] == {}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_maxabs_is_the_largest_magnitude_or_the_first_nan(dtype):
    # LBFGS's max |grad| (and clip_grad_norm_'s inf norm) read eight lanes at a
    # time: the value must be one ordered pass's, on every SIMD path
    from fastopt import _flat
    rng = np.random.default_rng(7)
    for n in (1, 7, 8, 9, 1000, 70001):
        x = rng.standard_normal(n).astype(dtype)
        for path in _core.isa_names():
            assert _flat.maxabs(x, isa=path) == np.abs(x).max()
        x[:] = -0.0
        assert all(np.copysign(1.0, _flat.maxabs(x, isa=path)) == 1.0 for path in _core.isa_names())
        if n < 9:
            continue
        # two NaNs with different payloads: the first one in order, as it is
        first, second = (np.array([bits], "u8" if dtype == np.float64 else "u4").view(dtype)[0]
                         for bits in ((0x7FF8000000000123, 0xFFF8000000000456) if dtype == np.float64
                                      else (0x7FC00123, 0xFFC00456)))
        x = rng.standard_normal(n).astype(dtype)
        x[n // 2], x[n // 3] = second, first
        want = np.float64(first).tobytes()
        for path in _core.isa_names():
            assert np.float64(_flat.maxabs(x, isa=path)).tobytes() == want, (n, path)

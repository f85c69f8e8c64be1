"""The engine owns the step counters: one validated API reads and sets them,
fo_step (C) advances them, and fastopt.torch meets torch's step tensors in
one place. Also: hyperparameters out of float64's range are ValueErrors."""
import numpy as np
import pytest

import fastopt
from fastopt import _core
from conftest import run_isolated


def engine_of(n=3):
    ps = [np.zeros(4) for _ in range(n)]
    states = [(np.zeros(4), np.zeros(4), None) for _ in range(n)]
    return ps, _core.Engine("adam", ps, states, list(range(n)), [0] * n)


def test_counters_are_read_only_copies():
    _, engine = engine_of()
    with pytest.raises(ValueError):
        engine.steps[0] = 5  # read-only: set_counters is the writer
    steps, started = engine.counters()
    steps[0] = 7  # a copy
    assert engine.steps.tolist() == [0, 0, 0] and started.tolist() == [0, 0, 0]


def test_set_counters_checks_everything_first():
    _, engine = engine_of()
    engine.set_counters([1, 2, 3], [True, False, True])
    bad = [dict(steps=[1, 2]), dict(steps=[1, 2, -1]), dict(steps=[1, 2, 2.5]),
           dict(steps=[1, 2, "3"]), dict(steps=[1, 2, True]), dict(steps=[1, 2, 2**63 - 1]),
           dict(steps=[1, 2, float("nan")]), dict(started=[1, 0]),
           dict(steps=[9], index=[7]), dict(steps=[9, 9], index=[0])]
    for kwargs in bad:
        with pytest.raises((TypeError, ValueError, IndexError)):
            engine.set_counters(**kwargs)
        assert engine.steps.tolist() == [1, 2, 3], kwargs
        assert engine.started.tolist() == [1, 0, 1], kwargs
    engine.set_counters(steps=[np.float32(40), np.array(41.0), np.int64(42)])
    engine.set_counters(steps=[9], started=[0], index=[1])
    assert engine.steps.tolist() == [40, 9, 42] and engine.started.tolist() == [1, 0, 1]
    engine.set_counters(steps=[2**63 - 2] * 3)  # the largest count that can still step


def test_step_advances_only_the_stepped_counters():
    ps, engine = engine_of()
    engine.set_counters([4, 0, 9], [1, 0, 1])
    assert engine.step([np.ones(4), None, np.ones(4)], [{"lr": 0.1}])
    assert engine.steps.tolist() == [5, 0, 10] and engine.started.tolist() == [1, 0, 1]
    # the update numbered 5 and 10: Adam's bias corrections from each count
    for p, t in ((ps[0], 5), (ps[2], 10)):
        m, v = 1 - 0.9, 1 - 0.999  # first moments of a first update from zero state
        want = -0.1 / (1 - 0.9**t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999**t) + 1e-8)
        np.testing.assert_allclose(p, want, rtol=1e-12)
    assert (ps[1] == 0).all()


def test_a_count_that_cannot_advance_is_refused_before_anything_is_written():
    ps, engine = engine_of(1)
    engine.set_counters([2**63 - 2])
    assert engine.step([np.ones(4)], [{"lr": 0.1}])  # update number 2**63 - 1
    with pytest.raises(ValueError, match="no further update"):
        engine.step([np.ones(4)], [{"lr": 0.1}])
    assert engine.steps.tolist() == [2**63 - 1]


def test_hyperparameters_outside_float64_are_value_errors():
    for hyper in ({"lr": 10**400}, {"lr": 0.1, "eps": -10**400}, {"lr": 0.1, "betas": (10**400, 0.9)}):
        with pytest.raises(ValueError, match="float64"):
            _core.Hypers("adam", [hyper])
        with pytest.raises(ValueError):
            _core.state_slots("adam", hyper)
    w = np.zeros(3)
    opt = fastopt.Adam([w])
    opt.param_groups[0]["eps"] = 10**400
    assert set(opt.state_dict()["param_groups"][0]) >= {"eps"}  # no slot is needed: no error
    with pytest.raises(ValueError):
        opt.step([np.ones(3)])
    assert (w == 0).all()


def test_functional_step_numbers_the_update():
    a, b = np.ones(5), np.ones(5)
    g = np.full(5, 0.5)
    ma, va, mb, vb = (np.zeros(5) for _ in range(4))
    fastopt.functional.adam_(a, g, ma, va, step=7, lr=0.1)
    opt = fastopt.Adam([b], lr=0.1)
    opt.load_state_dict({"state": {0: {"step": 6.0, "exp_avg": mb, "exp_avg_sq": vb}},
                         "param_groups": [{**opt.param_groups[0], "params": [0]}]})
    opt.step([g])
    np.testing.assert_array_equal(a, b)


def test_torch_step_tensors_are_the_truth():
    pytest.importorskip("torch")
    run_isolated("""
        import numpy as np, torch, fastopt.torch
        for dtype in (torch.float32, torch.float64):
            torch.set_default_dtype(dtype)
            ps = [torch.zeros(3, requires_grad=True) for _ in range(2)]
            qs = [p.detach().clone().requires_grad_() for p in ps]
            mine, theirs = fastopt.torch.Adam(ps, lr=0.1), torch.optim.Adam(qs, lr=0.1)
            for step in range(6):
                for p, q in zip(ps, qs):
                    p.grad = torch.full_like(p, 0.5 + step)
                    q.grad = p.grad.clone()
                mine.step(); theirs.step()
                if step == 2:  # edited in place, as a user may: both optimizers read it
                    for opt, p in ((mine, ps[1]), (theirs, qs[1])):
                        opt.state[p]["step"].fill_(2.0**24)  # float32 stops counting here
            for p, q in zip(ps, qs):
                sm, st = mine.state[p]["step"], theirs.state[q]["step"]
                assert sm.dtype == st.dtype and sm.item() == st.item(), (sm, st)
                torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
            assert mine.state[ps[0]]["step"].item() == 6
        torch.set_default_dtype(torch.float32)
        print("ok")
    """)

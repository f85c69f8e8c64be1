"""fastopt.swa_utils.ema_ and AveragedParams against torch's AveragedModel and
get_ema_*_fn (skipped without torch) and a NumPy formula in torch's order of
operations, on every SIMD path; their checks, checkpoints and crash cases."""
import doctest

import numpy as np
import pytest

import fastopt
import fastopt.swa_utils
from conftest import assert_bitwise, run_isolated
from fastopt import _average, _core
from fastopt.swa_utils import AveragedParams, ema_

SIZES = (1, 7, 1000)
TAILS = (0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000, 4099)
DECAYS = (0.999, 0.9, 0.5, 0.3, 0.0, 1.0)


def numpy_ema(avg, p, decay):
    """torch's get_ema_avg_fn in the arrays' dtype: each scalar rounded to it once."""
    t = avg.dtype.type
    return t(decay) * avg + t(1 - decay) * p


def numpy_swa(avg, p, n_averaged):
    """torch's get_swa_avg_fn: n_averaged + 1 as the dtype, a true division."""
    return avg + (p - avg) / avg.dtype.type(n_averaged + 1)


def snapshots(rng, dtype, count=6, sizes=SIZES):
    """`count` successive sets of parameters, as training would give them."""
    return [[(rng.standard_normal(n) * 3).astype(dtype) for n in sizes] for _ in range(count)]


# ---------------------------------------------------------------- NumPy formula

@pytest.mark.parametrize("decay", DECAYS)
def test_ema_matches_numpy_formula(decay, dtype, rng):
    sets = snapshots(rng, dtype)
    avg = [p.copy() for p in sets[0]]
    expected = [p.copy() for p in sets[0]]
    for params in sets[1:]:
        ema_(avg, params, decay)
        expected = [numpy_ema(e, p, decay) for e, p in zip(expected, params)]
        for a, e in zip(avg, expected):
            assert_bitwise(a, e, f"ema decay={decay} n={a.size}")


@pytest.mark.parametrize("decay", [None, 0.9])
def test_averaged_params_match_numpy_formula(decay, dtype, rng):
    sets = snapshots(rng, dtype)
    avg = AveragedParams([np.zeros_like(p) for p in sets[0]], decay=decay)
    for k, params in enumerate(sets):
        avg.update_parameters(params)
        if k == 0:
            expected = [p.copy() for p in params]  # the first update copies, as torch's
        elif decay is None:
            expected = [numpy_swa(e, p, k) for e, p in zip(expected, params)]
        else:
            expected = [numpy_ema(e, p, decay) for e, p in zip(expected, params)]
        assert avg.n_averaged == k + 1
        for a, e in zip(avg.averaged, expected):
            assert_bitwise(a, e, f"update {k} n={a.size}")


def test_swa_is_the_mean(rng):
    sets = snapshots(rng, np.float64, count=10)
    avg = AveragedParams(sets[0])
    for params in sets:
        avg.update_parameters(params)
    for i, a in enumerate(avg.averaged):
        np.testing.assert_allclose(a, np.mean([s[i] for s in sets], axis=0), rtol=1e-12, atol=1e-14)


def test_averages_are_copies(rng):
    params = [rng.standard_normal(5) for _ in range(2)]
    avg = AveragedParams(params)
    avg.update_parameters(params)
    for a, p in zip(avg.averaged, params):
        assert not np.shares_memory(a, p)
    params[0][:] = 100.0
    assert not (avg.averaged[0] == 100.0).any()


# ---------------------------------------------------------------- SIMD paths

def _tail_values(rng, n, dtype):
    x = (rng.standard_normal(n) * 5).astype(dtype)
    if n > 4:  # inf, NaN and subnormals: every path stores the same bits for them too
        x[1], x[2], x[3] = np.inf, np.nan, np.finfo(dtype).tiny / 4
    return x


@pytest.mark.parametrize("kind", ["ema", "swa"])
def test_every_isa_gives_the_scalar_bits(kind, isa, dtype, rng):
    for n in TAILS:
        start, p = _tail_values(rng, n, dtype), _tail_values(rng, n, dtype)
        out = {}
        for path in ("scalar", isa):
            a = start.copy()
            for k in range(1, 4):
                if kind == "ema":
                    ema_([a], [p], 0.7, isa=path)
                else:
                    _average.swa_([a], [p], k, isa=path)
            out[path] = a
        assert_bitwise(out[isa], out["scalar"], f"{kind} {isa} n={n}")


@pytest.mark.parametrize("isa_name", _core.isa_names())
def test_every_isa_matches_numpy(isa_name, dtype, rng):
    for n in TAILS:
        a, p = (rng.standard_normal(n) * 4).astype(dtype), rng.standard_normal(n).astype(dtype)
        e, s = a.copy(), a.copy()
        ema_(e, p, 0.25, isa=isa_name)
        _average.swa_(s, p, 2, isa=isa_name)
        assert_bitwise(e, numpy_ema(a, p, 0.25), f"ema {isa_name} n={n}")
        assert_bitwise(s, numpy_swa(a, p, 2), f"swa {isa_name} n={n}")


def test_tail_leaves_neighbours_alone(dtype, rng):
    for path in _core.isa_names():
        for n in TAILS[1:12]:
            buf = rng.standard_normal(n + 34).astype(dtype)
            before = buf.copy()
            p = rng.standard_normal(n).astype(dtype)
            ema_(buf[17:17 + n], p, 0.5, isa=path)
            assert_bitwise(buf[:17], before[:17], f"{path} n={n} before")
            assert_bitwise(buf[17 + n:], before[17 + n:], f"{path} n={n} after")


def test_forced_simd_path_gives_the_same_bits():
    code = """
        import os
        {force}
        import numpy as np
        from fastopt import _core
        from fastopt.swa_utils import AveragedParams
        print(_core.active_isa())
        rng = np.random.default_rng(5)
        for decay in (None, 0.9):
            for dt in (np.float32, np.float64):
                avg = AveragedParams([np.zeros(1001, dt)], decay=decay)
                for _ in range(5):
                    avg.update_parameters([rng.standard_normal(1001).astype(dt)])
                print(avg.averaged[0].tobytes().hex())
    """
    best = _core.isa_names()[-1]
    forced = run_isolated(code.format(force='os.environ["FASTOPT_SIMD"] = "scalar"')).split()
    default = run_isolated(code.format(force='os.environ.pop("FASTOPT_SIMD", None)')).split()
    assert forced[0] == "scalar" and default[0] == best
    assert forced[1:] == default[1:] and len(forced) == 5


# ---------------------------------------------------------------- torch

def _torch_model(torch, params):
    model = torch.nn.Module()
    model.ps = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params])
    return model


def _run_torch(torch, sets, **kwargs):
    from torch.optim.swa_utils import AveragedModel
    model = _torch_model(torch, sets[0])
    averaged = AveragedModel(model, **kwargs)
    for params in sets:
        with torch.no_grad():
            for t, p in zip(model.ps, params):
                t.copy_(torch.from_numpy(p))
        averaged.update_parameters(model)
    return [t.detach().numpy() for t in averaged.module.ps], int(averaged.n_averaged)


@pytest.mark.parametrize("decay", [None, 0.999, 0.9, 0.3])
def test_matches_torch_averaged_model(decay, dtype, rng):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import get_ema_avg_fn
    sets = snapshots(rng, dtype)
    kwargs = {} if decay is None else {"avg_fn": get_ema_avg_fn(decay)}
    expected, n = _run_torch(torch, sets, **kwargs)
    avg = AveragedParams(sets[0], decay=decay)
    for params in sets:
        avg.update_parameters(params)
    assert avg.n_averaged == n
    for a, e in zip(avg.averaged, expected):
        assert_bitwise(a, e, f"decay={decay} n={a.size}")


@pytest.mark.parametrize("decay", [0.999, 0.9, 0.3])
def test_close_to_torch_ema_multi_avg_fn(decay, dtype, rng):
    # torch's foreach lerp: the same average, rounded differently (a fused
    # multiply-add on AVX2 CPUs), so equal to a few roundings of the values' size
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import get_ema_multi_avg_fn
    sets = snapshots(rng, dtype)
    expected, n = _run_torch(torch, sets, multi_avg_fn=get_ema_multi_avg_fn(decay))
    avg = AveragedParams(sets[0], decay=decay)
    for params in sets:
        avg.update_parameters(params)
    assert avg.n_averaged == n
    size = max(float(np.max(np.abs(p), initial=1.0)) for params in sets for p in params)
    for a, e in zip(avg.averaged, expected):
        np.testing.assert_allclose(a, e, rtol=0, atol=8 * np.finfo(dtype).eps * size)


def test_ema_matches_torch_ema_avg_fn(dtype, rng):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import get_ema_avg_fn
    fn = get_ema_avg_fn(0.95)
    a, p = (rng.standard_normal(1000) * 7).astype(dtype), rng.standard_normal(1000).astype(dtype)
    expected = fn(torch.from_numpy(a.copy()), torch.from_numpy(p), 1).numpy()
    ema_(a, p, 0.95)
    assert_bitwise(a, expected, "ema_ vs get_ema_avg_fn")


def test_torch_tensors_are_accepted(rng):
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(7).astype(np.float32)))
    avg = torch.zeros(7)
    ema_([avg], [w], 0.5)  # the average's memory, in place; w needs no grad handling
    assert_bitwise(avg.numpy(), numpy_ema(np.zeros(7, np.float32), w.detach().numpy(), 0.5))
    swa = AveragedParams(w)
    swa.update_parameters([w])
    with torch.no_grad():
        w.mul_(3)
    swa.update_parameters([w])
    assert isinstance(swa.averaged[0], np.ndarray)
    assert_bitwise(swa.averaged[0], numpy_swa(w.detach().numpy() / 3, w.detach().numpy(), 1))


# ---------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("decay", [None, 0.9])
def test_resume_via_state_dict(decay, dtype, rng, tmp_path):
    sets = snapshots(rng, dtype, count=8)
    straight = AveragedParams(sets[0], decay=decay)
    for params in sets:
        straight.update_parameters(params)
    first = AveragedParams(sets[0], decay=decay)
    for params in sets[:3]:
        first.update_parameters(params)
    fastopt.save(first.state_dict(), tmp_path / "swa.fo")
    resumed = AveragedParams(sets[0], decay=decay)
    resumed.load_state_dict(fastopt.load(tmp_path / "swa.fo"))
    assert resumed.n_averaged == 3
    for params in sets[3:]:
        resumed.update_parameters(params)
    assert resumed.n_averaged == straight.n_averaged
    for a, e in zip(resumed.averaged, straight.averaged):
        assert_bitwise(a, e, f"resumed n={a.size}")


def test_state_dict_is_a_copy(rng):
    avg = AveragedParams([rng.standard_normal(3)])
    avg.update_parameters([np.ones(3)])
    sd = avg.state_dict()
    avg.update_parameters([np.zeros(3)])
    assert sd["n_averaged"] == 1 and (sd["averaged"][0] == 1).all()


def _bad_state_dicts(good):
    yield {k: v for k, v in good.items() if k != "decay"}, ValueError
    yield dict(good, decay=0.5), ValueError
    yield dict(good, n_averaged=-1), ValueError
    yield dict(good, n_averaged=1.5), TypeError
    yield dict(good, averaged=good["averaged"][:1]), ValueError
    yield dict(good, averaged=[good["averaged"][0], good["averaged"][1][:2]]), ValueError
    yield dict(good, averaged=[good["averaged"][0], good["averaged"][1].astype(np.float32)]), TypeError
    yield dict(good, averaged="ab"), TypeError
    yield [("averaged", 1)], TypeError


def test_bad_state_dict_changes_nothing(rng):
    avg = AveragedParams([rng.standard_normal(4), rng.standard_normal(5)], decay=0.9)
    avg.update_parameters([np.ones(4), np.ones(5)])
    good = avg.state_dict()
    other = AveragedParams([np.zeros(4), np.zeros(5)], decay=0.9)
    for bad, exc in _bad_state_dicts(good):
        with pytest.raises(exc):
            other.load_state_dict(bad)
        assert other.n_averaged == 0 and all((a == 0).all() for a in other.averaged), bad
    other.load_state_dict(good)
    assert other.n_averaged == 1 and all((a == 1).all() for a in other.averaged)


# ---------------------------------------------------------------- checks

def _bad_ema_calls(rng):
    """(what, averaged, params, decay, exception): each must leave every array alone."""
    a = lambda *s: rng.standard_normal(s)  # noqa: E731
    ro = a(3)
    ro.flags.writeable = False
    yield "dtype", [a(3), a(4)], [a(3), a(4).astype(np.float32)], 0.9, TypeError
    yield "int average", [np.zeros(3, np.int64)], [np.zeros(3, np.int64)], 0.9, TypeError
    yield "float16", [a(3).astype(np.float16)], [a(3).astype(np.float16)], 0.9, TypeError
    yield "shape", [a(3), a(4)], [a(3), a(5)], 0.9, ValueError
    yield "shape 2-d", [a(2, 3)], [a(3, 2)], 0.9, ValueError
    yield "count", [a(3), a(4)], [a(3)], 0.9, ValueError
    yield "non-contiguous average", [a(3), a(8)[::2]], [a(3), a(4)], 0.9, ValueError
    yield "non-contiguous param", [a(3), a(4)], [a(3), a(8)[::2]], 0.9, ValueError
    yield "read-only average", [a(3), ro], [a(3), a(3)], 0.9, ValueError
    yield "decay < 0", [a(3)], [a(3)], -0.1, ValueError
    yield "decay > 1", [a(3)], [a(3)], 1.5, ValueError
    yield "decay NaN", [a(3)], [a(3)], float("nan"), ValueError
    yield "decay str", [a(3)], [a(3)], "0.9", TypeError
    yield "decay huge", [a(3)], [a(3)], 10**400, ValueError
    same = a(4)
    yield "average is its param", [a(3), same], [a(3), same], 0.9, ValueError
    buf = a(8)
    yield "overlapping averages", [buf[:5], buf[3:]], [a(5), a(5)], 0.9, ValueError
    yield "not an array", [a(3), "abc"], [a(3), a(3)], 0.9, TypeError
    yield "not iterable", 3.0, [a(3)], 0.9, TypeError


def test_bad_ema_calls_write_nothing(rng):
    for what, averaged, params, decay, exc in _bad_ema_calls(rng):
        before = [np.array(x, copy=True) for x in (averaged if isinstance(averaged, list) else [])]
        with pytest.raises(exc):
            ema_(averaged, params, decay)
        for x, b in zip(averaged if isinstance(averaged, list) else [], before):
            if isinstance(x, np.ndarray):
                assert_bitwise(x, b, what)


def test_bad_isa_and_count():
    a, p = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match="unknown SIMD path"):
        ema_(a, p, 0.5, isa="mmx")
    with pytest.raises(ValueError):
        _average.swa_(a, p, -1)
    with pytest.raises(ValueError):
        _average.swa_(a, p, 2**53)
    with pytest.raises(TypeError):
        _average.swa_(a, p, 1.0)
    assert (a == 0).all()


def test_averaged_params_checks(rng):
    with pytest.raises(TypeError, match="parameter 1"):
        AveragedParams([np.zeros(3), np.zeros(3, np.int32)])
    with pytest.raises(ValueError, match="C-contiguous"):
        AveragedParams([np.zeros(6)[::2]])
    for bad in (-0.5, 2.0, float("nan")):
        with pytest.raises(ValueError, match="decay"):
            AveragedParams([np.zeros(3)], decay=bad)
    avg = AveragedParams([np.zeros(3), np.zeros(4)], decay=0.5)
    for k in range(2):  # the first update (a copy) checks as the later ones do
        before = [a.copy() for a in avg.averaged]
        for bad, exc in (([np.ones(3)], ValueError), ([np.ones(3), np.ones(5)], ValueError),
                         ([np.ones(3), np.ones(4, np.float32)], TypeError),
                         ([np.ones(3), np.ones(8)[::2]], ValueError),
                         ([np.ones(3), avg.averaged[1]], ValueError)):
            with pytest.raises(exc):
                avg.update_parameters(bad)
            assert avg.n_averaged == k
            for a, b in zip(avg.averaged, before):
                assert_bitwise(a, b)
        avg.update_parameters([np.ones(3), np.ones(4)])


def test_no_parameters():
    avg = AveragedParams([])
    avg.update_parameters([])
    avg.update_parameters([])
    assert avg.n_averaged == 2 and avg.averaged == []
    ema_([], [], 0.5)


def test_docstring_examples():
    result = doctest.testmod(fastopt.swa_utils, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------- crash cases

def test_odd_arrays_do_not_crash():
    out = run_isolated("""
        import numpy as np
        from fastopt import _average
        from fastopt.swa_utils import AveragedParams, ema_
        # empty, 0-d, multi-dimensional, and many small arrays
        for shape in [(0,), (), (3, 0, 2), (2, 3, 5)]:
            a, p = np.zeros(shape), np.ones(shape)
            ema_(a, p, 0.5)
            _average.swa_(a, p, 3)
        many = [np.zeros(k % 17) for k in range(3000)]
        avg = AveragedParams(many)
        for _ in range(3):
            avg.update_parameters([np.ones_like(x) for x in many])
        assert all((x == 1).all() for x in avg.averaged)
        # unaligned and foreign-memory arrays are refused, not read
        raw = np.zeros(8 * 11 + 1, np.uint8)[1:].view(np.float64)
        for bad in (raw, memoryview(b"12345678")):
            try:
                ema_(np.zeros(raw.shape), bad, 0.5)
            except (TypeError, ValueError):
                pass
            else:
                raise SystemExit("accepted a bad array")
        print("ok")
    """)
    assert out.strip() == "ok"


def test_threads_updating_one_average():
    out = run_isolated("""
        import threading
        import numpy as np
        from fastopt.swa_utils import AveragedParams, ema_
        avg = AveragedParams([np.zeros(100_000), np.zeros(7)])
        params = [np.ones(100_000), np.ones(7)]
        def work():
            for _ in range(50):
                avg.update_parameters(params)
                avg.state_dict()
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert avg.n_averaged == 200, avg.n_averaged
        assert all((a == 1).all() for a in avg.averaged)
        # ema_ on separate arrays from several threads at once
        pairs = [(np.zeros(50_001, np.float32), np.ones(50_001, np.float32)) for _ in range(4)]
        def run(a, p):
            for _ in range(20):
                ema_(a, p, 0.5)
        threads = [threading.Thread(target=run, args=pair) for pair in pairs]
        for t in threads: t.start()
        for t in threads: t.join()
        expected = np.float32(0)
        for _ in range(20):
            expected = np.float32(0.5) * expected + np.float32(0.5) * np.float32(1)
        assert all((a == expected).all() for a, _ in pairs)
        print("ok")
    """, timeout=120)
    assert out.strip() == "ok"

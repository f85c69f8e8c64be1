"""Every SIMD path gives the bits of the scalar path, for every algorithm,
mode and dtype, at lengths that exercise full vectors and every tail."""
import itertools

import numpy as np
import pytest

from fastopt import _core, functional as F

ISAS = [name for name in _core.isa_names() if name != "scalar"]
SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000, 4099]
DTYPES = [np.float32, np.float64]

# (function, state buffers, hyperparameter sets covering every compile-time mode)
CASES = {
    "sgd": (F.sgd_, 1, [dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
                        for m, d, n, wd, mx in [(0, 0, False, 0, False), (0, 0, False, 0.1, True),
                                                (0.9, 0, False, 0, False), (0.9, 0.1, False, 0.01, False),
                                                (0.9, 0, True, 0, True), (0.9, 0, True, 0.01, False)]]),
    "adagrad": (F.adagrad_, 1, [dict(), dict(weight_decay=0.1, lr_decay=0.01, maximize=True)]),
    "rmsprop": (F.rmsprop_, 3, [dict(momentum=m, centered=c, weight_decay=wd, alpha=a)
                                for m, c, wd, a in itertools.product((0, 0.9), (False, True), (0, 0.01),
                                                                     (0.99, 0.3))]),
    "adam": (F.adam_, 3, [dict(amsgrad=a, weight_decay=wd, decoupled_weight_decay=dw, betas=b, maximize=mx)
                          for a, (wd, dw), b, mx in itertools.product(
                              (False, True), ((0, False), (0.1, False), (0.1, True)),
                              ((0.9, 0.999), (0.3, 0.99)), (False, True))]),
}


def run(fn, nbuf, hyper, dtype, n, isa, steps=3):
    rng = np.random.default_rng(n * 7 + nbuf)
    p = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(steps)]
    if n > 3:  # non-finite values must travel the same way on every path
        grads[1][:3] = [np.inf, -np.inf, np.nan]
    bufs = [np.zeros(n, dtype) for _ in range(nbuf)]
    for t, g in enumerate(grads, 1):
        fn(p, g, *bufs, step=t, isa=isa, **hyper)
    return [p] + bufs


def bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.skipif(not ISAS, reason="no SIMD path on this CPU")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("algo", list(CASES))
def test_bit_identical_to_scalar(algo, dtype, isa):
    fn, nbuf, hypers = CASES[algo]
    for hyper, n in itertools.product(hypers, SIZES):
        want = run(fn, nbuf, hyper, dtype, n, "scalar")
        got = run(fn, nbuf, hyper, dtype, n, isa)
        for k, (w, g) in enumerate(zip(want, got)):
            # NaN payloads may differ; NaN positions may not
            nan = np.isnan(w)
            np.testing.assert_array_equal(np.isnan(g), nan, err_msg=f"{algo} {hyper} n={n} buffer {k}")
            np.testing.assert_array_equal(bits(g)[~nan], bits(w)[~nan],
                                          err_msg=f"{algo} {hyper} n={n} buffer {k}")


@pytest.mark.parametrize("isa", _core.isa_names())
def test_tail_leaves_neighbours_alone(isa):
    """A partial vector writes only its own elements."""
    for n in (1, 7, 9, 17, 33):
        whole = np.arange(n + 16, dtype=np.float32)
        p, g = whole[8:8 + n], np.ones(n, np.float32)
        m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
        before = whole.copy()
        F.adam_(p, g, m, v, step=1, lr=0.1, isa=isa)
        np.testing.assert_array_equal(whole[:8], before[:8])
        np.testing.assert_array_equal(whole[8 + n:], before[8 + n:])
        assert not np.array_equal(p, before[8:8 + n])


def test_probe_kernels_agree():
    n = 4099
    for isa in _core.isa_names():
        a, b, c = np.ones(n, np.float32), np.full(n, 2.0, np.float32), np.full(n, 3.0, np.float32)
        _core.bandwidth_probe("copy", a, b, isa=isa)
        np.testing.assert_array_equal(a, b)
        _core.bandwidth_probe("triad", a, b, c, 0.5, isa=isa)
        np.testing.assert_array_equal(a, np.full(n, 3.5, np.float32))
        _core.bandwidth_probe("rmw", a, b, None, 0.25, isa=isa)
        np.testing.assert_array_equal(a, np.full(n, 4.0, np.float32))


@pytest.mark.parametrize("isa", _core.isa_names())
def test_same_bits_for_any_thread_count(isa):
    """Large enough to be cut into many pieces: 1, 2 and 3 threads agree bitwise."""
    import fastopt

    before = fastopt.get_num_threads()
    sizes = [300_001, 17, 70_000, 5]
    results = []
    try:
        for threads in (1, 2, 3):
            fastopt.set_num_threads(threads)
            rng = np.random.default_rng(5)
            ps = [rng.standard_normal(n).astype(np.float32) for n in sizes]
            opt = fastopt.AdamW(ps, lr=1e-2)
            for _ in range(3):
                opt._engine.step([rng.standard_normal(n).astype(np.float32) for n in sizes],
                                 opt.param_groups, False, isa)
            results.append([p.copy() for p in ps])
    finally:
        fastopt.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(bits(a), bits(b))

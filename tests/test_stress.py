"""Many Python threads stepping optimizers at once give the serial results."""
import threading

import numpy as np
import pytest

import fastopt

CASES = [
    (fastopt.SGD, dict(lr=0.01, momentum=0.9, nesterov=True)),
    (fastopt.Adagrad, dict(lr=0.05, lr_decay=1e-3)),
    (fastopt.RMSprop, dict(lr=1e-3, centered=True, momentum=0.5)),
    (fastopt.Adam, dict(lr=1e-3, amsgrad=True)),
    (fastopt.AdamW, dict(lr=1e-3, weight_decay=0.1)),
    (fastopt.Adam, dict(lr=1e-2, maximize=True, weight_decay=0.01)),
    (fastopt.SGD, dict(lr=0.1, weight_decay=1e-3)),
    (fastopt.RMSprop, dict(lr=1e-2)),
]
STEPS = 200


def make_problem(seed, dtype):
    rng = np.random.default_rng(seed)
    # sizes big enough that a step is cut into pieces shared by the pool
    params = [rng.standard_normal(n).astype(dtype) for n in (300_000, 17, 40_001)]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(4)]
    return params, grads


def run(cls, kwargs, seed, dtype):
    params, grads = make_problem(seed, dtype)
    opt = cls(params, **kwargs)
    for t in range(STEPS):
        assert opt.step(grads[t % len(grads)])
    return params


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eight_threads_match_serial(dtype):
    serial = [run(cls, kw, seed, dtype) for seed, (cls, kw) in enumerate(CASES)]
    results = [None] * len(CASES)
    errors = []

    def worker(i):
        try:
            cls, kw = CASES[i]
            results[i] = run(cls, kw, i, dtype)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(CASES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, want in zip(results, serial):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_two_threads_on_one_optimizer_take_turns():
    # Same gradient every step, so any interleaving of whole steps gives the
    # serial result; a torn (concurrent) step would not.
    rng = np.random.default_rng(7)
    g = rng.standard_normal(500_000)
    w_shared, w_serial = np.ones(500_000), np.ones(500_000)
    shared = fastopt.Adam([w_shared], lr=1e-3)
    serial = fastopt.Adam([w_serial], lr=1e-3)
    for _ in range(2 * 60):
        serial.step([g])

    def worker():
        for _ in range(60):
            shared.step([g])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(w_shared, w_serial)
    assert shared.state_dict()["state"][0]["step"] == 120

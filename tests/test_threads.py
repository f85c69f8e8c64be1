"""Threads: the GIL is released during a step, results do not depend on the
thread count, and optimizers can step from several Python threads."""
import contextlib
import os
import sys
import threading
import time

import numpy as np
import pytest

import fastopt
from conftest import OPTIMIZERS, assert_bitwise, make_params, one_dtype_by_default


@pytest.fixture
def threads():
    """Set the thread count for the test; restored afterwards."""
    old = fastopt.get_num_threads()
    yield fastopt.set_num_threads
    fastopt.set_num_threads(old)


def run_threaded(fn, n):
    """Run fn(k) for k in range(n) in n threads started together; return results."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def target(k):
        try:
            barrier.wait()
            results[k] = fn(k)
        except BaseException as e:  # reported in the main thread
            errors.append(e)
    ts = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return results


@contextlib.contextmanager
def counting_thread():
    """A thread that counts as long as it holds the GIL, with the switch
    interval raised to 100 s so the interpreter never hands the GIL over on
    its own; yields the one-element counter list."""
    counter = [0]
    stop = threading.Event()
    started = threading.Event()

    def count():
        started.set()
        while not stop.is_set():
            counter[0] += 1
            if counter[0] % 256 == 0:
                time.sleep(1e-6)  # releases the GIL: the main thread gets it back

    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    t = threading.Thread(target=count, daemon=True)
    try:
        t.start()
        started.wait()
        yield counter
    finally:
        stop.set()
        sys.setswitchinterval(old)
        t.join()


def test_step_releases_the_gil(threads):
    """Another Python thread runs while a long step is in C.

    The switch interval is raised to 100 s, so the interpreter never takes
    the GIL away from the main thread on its own: the counting thread can
    advance during ``opt.step`` only if the step releases the GIL. With the
    GIL held throughout the count could not move at all, so any progress
    proves the release; a few tries absorb an unlucky OS scheduler."""
    threads(1)
    n = 20_000_000
    p = np.zeros(n, np.float32)
    g = np.full(n, 0.5, np.float32)
    opt = fastopt.Adam([p], lr=1e-3)
    opt.step([g])  # allocate the state before timing anything
    progress = []
    with counting_thread() as counter:
        for _ in range(5):
            before = counter[0]
            opt.step([g])
            progress.append(counter[0] - before)
            if progress[-1] > 0:
                break
    assert max(progress) > 0, progress
    assert opt.state[0]["step"] == 1.0 + len(progress)


def test_gil_held_without_a_step_blocks_the_counter():
    """The control for the test above: with the switch interval raised, a
    busy main thread that never releases the GIL lets the counter make no
    progress at all, so a moving counter does mean the GIL was released."""
    with counting_thread() as counter:
        before = counter[0]
        total = 0
        for k in range(2_000_000):  # ~0.1 s of pure Python holding the GIL
            total += k
        after = counter[0]
    assert after == before


@one_dtype_by_default(np.float32)
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_thread_count_does_not_change_results(opt, dtype, threads, rng):
    options = max(opt.options, key=len)
    sizes = (1_000_003, 999_999, 17, 1_000_000, 64)  # ~3e6 elements: many pieces per step
    start = make_params(rng, sizes, dtype)
    stream = [make_params(rng, sizes, dtype) for _ in range(3)]
    results = []
    for n in (1, 2):
        threads(n)
        assert fastopt.get_num_threads() == n
        params = [p.copy() for p in start]
        fast = opt.cls([{"params": params[:2]}, {"params": params[2:], "lr": options["lr"] / 2}],
                       **options)
        for grads in stream:
            fast.step(grads)
        results.append((params, fast.state_dict()))
    for i, (a, b) in enumerate(zip(results[0][0], results[1][0])):
        assert_bitwise(b, a, f"parameter {i}")
    for i, entry in results[0][1]["state"].items():
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                assert_bitwise(results[1][1]["state"][i][k], v, f"state {i} {k}")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, np.inf, 3.0])
def test_clip_thread_count_does_not_change_results(norm_type, dtype, threads, rng):
    grads = make_params(rng, (1_500_001, 7, 1_499_999), dtype)
    out = []
    for n in (1, 2):
        threads(n)
        gs = [g.copy() for g in grads]
        out.append((fastopt.clip_grad_norm_(gs, 1.0, norm_type), gs))
    assert out[0][0] == out[1][0]
    for a, b in zip(out[0][1], out[1][1]):
        assert_bitwise(b, a)


def test_skip_nonfinite_with_threads(threads, rng):
    """The non-finite check covers every piece of a split step."""
    threads(2)
    sizes = (1_000_000, 1_000_000)
    params = make_params(rng, sizes, np.float32)
    opt = fastopt.Adam(params, skip_nonfinite=True)
    grads = make_params(rng, sizes, np.float32)
    for where in (0, 999_999, 543_210):
        bad = [g.copy() for g in grads]
        bad[1][where] = np.nan
        assert opt.step(bad) is False
    assert opt.step(grads) is True


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_concurrent_optimizers(opt, threads, rng):
    """Optimizers stepped from several Python threads at once give the same
    numbers as stepped one after another."""
    threads(2)
    options = max(opt.options, key=len)
    sizes = (200_000, 3, 70_000)
    starts = [make_params(rng, sizes, np.float64) for _ in range(4)]
    streams = [[make_params(rng, sizes, np.float64) for _ in range(5)] for _ in range(4)]

    def work(k):
        params = [p.copy() for p in starts[k]]
        o = opt.cls(params, **options)
        for grads in streams[k]:
            o.step(grads)
        return params
    together = run_threaded(work, 4)
    for k in range(4):
        for a, b in zip(together[k], work(k)):
            assert_bitwise(a, b)


def test_one_optimizer_from_two_threads(threads):
    """Steps of one optimizer from two threads take turns: none is lost."""
    threads(2)
    p = np.zeros(100_000)
    opt = fastopt.SGD([p], lr=1.0)
    g = np.full(100_000, 0.25)
    run_threaded(lambda k: [opt.step([g]) for _ in range(40)], 2)
    np.testing.assert_array_equal(p, -0.25 * 80)


def test_num_threads_settings(threads):
    threads(3)
    assert fastopt.get_num_threads() == 3
    for bad, exc in [(0, ValueError), (-1, ValueError), (1025, ValueError), (1.5, TypeError),
                     (True, TypeError), ("2", TypeError)]:
        with pytest.raises(exc):
            fastopt.set_num_threads(bad)
        assert fastopt.get_num_threads() == 3
    if hasattr(os, "sched_getaffinity"):
        assert fastopt._core.default_num_threads() == len(os.sched_getaffinity(0))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_workers_run_in_the_ordinary_scheduling_class(threads):
    """The pool's workers are ordinary (SCHED_OTHER) threads, so a woken one
    can preempt a thread spinning on its core, and the caller's own policy is
    left alone (see csrc/fo_pool.c)."""
    def policies():
        found = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):  # a thread that has just ended
                continue
            found[int(tid)] = int(fields[38])  # field 41, "policy"; the split starts at field 3
        return found
    SCHED_OTHER = 0
    me = threading.get_native_id()
    mine = policies()[me]
    threads(2)
    p = np.zeros(1 << 20, np.float32)  # 4 MiB: runs on the pool
    fastopt.SGD([p], lr=1.0).step([np.ones_like(p)])
    after = policies()
    assert after[me] == mine
    assert len(after) > 1  # the worker is running
    assert all(policy == SCHED_OTHER for tid, policy in after.items() if tid != me)

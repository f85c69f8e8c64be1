"""A step is safe whatever Python code does meanwhile: param_groups edited
(honoured as torch honours them), grads lists mutated by other threads or by
an ``__array__``, hyperparameters toggled, private entry points given wrong
types, a fork while another thread steps; optimizers pickle and deep-copy.
Every crash or hang scenario runs in its own process (run_isolated)."""
import copy
import pickle

import numpy as np
import pytest

import fastopt
from conftest import IN_TORCH, OPTIMIZERS, assert_bitwise, assert_state_dicts_equal, assert_unchanged, run_isolated, snapshot

# per optimizer: options that allocate every state slot it has
FULL = {o.name: o.full for o in OPTIMIZERS}
NAMES = [o.name for o in OPTIMIZERS]


def test_group_edits_match_torch():
    """Groups popped (end and front), cleared, reordered, their "params"
    swapped, an array replaced, groups put back and added: fastopt steps
    exactly the parameters torch.optim steps after the same edits, with the
    hyperparameters of the group each parameter is in now. Every optimizer
    torch has, in one process (torch imports once)."""
    pytest.importorskip("torch")
    cases = [(o.name, FULL[o.name]) for o in IN_TORCH]
    run_isolated(f"""
        import numpy as np, torch, fastopt

        def scenario(name, options):
            rng = np.random.default_rng(0)
            pairs = []  # (fastopt array, torch tensor)

            def new(n):
                a = rng.standard_normal(n)
                pairs.append((a, torch.tensor(a.copy())))
                return pairs[-1]

            groups = [[new(3)], [new(4), new(5)], [new(6)]]
            lrs = [options["lr"], options["lr"] * 2, options["lr"] / 3]
            fast = getattr(fastopt, name)([{{"params": [a for a, _ in g], "lr": lr}}
                                          for g, lr in zip(groups, lrs)], **options)
            tor = getattr(torch.optim, name)([{{"params": [t for _, t in g], "lr": lr}}
                                             for g, lr in zip(groups, lrs)], **options)
            by_tensor = {{id(t): a for a, t in pairs}}
            tensor_of = {{id(a): t for a, t in pairs}}

            def steps(k):
                for _ in range(k):
                    order = [p for g in tor.param_groups for p in g["params"]]
                    grads = [rng.standard_normal(p.shape) for p in order]
                    for p, g in zip(order, grads):
                        p.grad = torch.tensor(g)
                    tor.step()
                    assert fast.step(grads) is True
                for a, t in pairs:
                    np.testing.assert_allclose(a, t.numpy(), rtol=1e-10, atol=1e-12)

            def edit(fn):
                fn(fast.param_groups, False)
                fn(tor.param_groups, True)

            steps(2)
            popped = {{}}
            edit(lambda pg, t: popped.__setitem__(t, pg.pop()))       # remove the last group
            steps(2)
            edit(lambda pg, t: popped.__setitem__((t, 0), pg.pop(0)))  # and the first
            steps(2)
            edit(lambda pg, t: (pg.append(popped[t]), pg.insert(0, popped[(t, 0)])))  # back in
            steps(2)
            edit(lambda pg, t: pg.reverse())
            steps(2)
            def swap(pg, t):
                pg[0]["params"], pg[1]["params"] = pg[1]["params"], pg[0]["params"]
            edit(swap)
            steps(2)
            a, t = new(7)  # a new array in place of an old one: fresh state
            def replace(pg, is_torch):
                pg[1]["params"][0] = t if is_torch else a
            edit(replace)
            steps(3)
            saved = {{}}
            edit(lambda pg, t: (saved.__setitem__(t, list(pg)), pg.clear()))
            assert fast.step([]) is True
            tor.step()
            edit(lambda pg, t: pg.extend(saved[t]))
            steps(2)
            b, u = new(2)
            fast.add_param_group({{"params": [b], "lr": 0.02}})
            tor.add_param_group({{"params": [u], "lr": 0.02}})
            steps(3)
            sizes = [len(g["params"]) for g in tor.param_groups]
            sd = fast.state_dict()  # (torch's own state_dict fails after a replaced tensor)
            assert [len(g["params"]) for g in sd["param_groups"]] == sizes

        for name, options in {cases!r}:
            try:
                scenario(name, options)
            except AssertionError as e:
                raise AssertionError(f"{{name}} {{options}}: {{e}}") from e
        print("ok")
    """, timeout=300)


def test_new_array_in_a_group_is_validated_like_in_the_constructor():
    w = [np.zeros(3), np.zeros(4)]
    opt = fastopt.Adam(w, lr=0.1)
    opt.step([np.ones(3), np.ones(4)])
    snap = snapshot(opt)
    bad = [
        (np.zeros(4, np.int32), TypeError, r"parameter 1\b.*dtype"),
        (np.zeros((4, 2))[:, 0], ValueError, r"parameter 1\b.*contiguous"),
        (w[0][1:], ValueError, r"parameter 0 and parameter 1 share memory"),
        (w[0], ValueError, r"share memory"),
    ]
    for array, exc, pattern in bad:
        opt.param_groups[0]["params"][1] = array
        with pytest.raises(exc, match=pattern):
            opt.step([np.ones(3), np.ones(4)])
        opt.param_groups[0]["params"][1] = w[1]
        assert_unchanged(opt, snap)
    ro = np.zeros(4)
    ro.flags.writeable = False
    opt.param_groups[0]["params"][1] = ro
    with pytest.raises(ValueError, match=r"parameter 1\b.*read-only"):
        opt.step([np.ones(3), np.ones(4)])
    opt.param_groups[0]["params"][1] = w[1]
    assert opt.step([np.ones(3), np.ones(4)])


def test_removed_array_is_no_longer_stepped_and_keeps_its_state():
    """As in torch: an array taken out of its group stays as it is, and when
    it comes back it continues from its own state and step count."""
    a, b = np.zeros(3), np.zeros(3)
    opt = fastopt.Adam([a, b], lr=0.1)
    twin_a = np.zeros(3)
    twin = fastopt.Adam([twin_a], lr=0.1)
    g = np.arange(3.0)
    opt.step([g, g])
    twin.step([g])
    opt.param_groups[0]["params"].remove(a)
    before = a.copy()
    opt.step([g])
    assert_bitwise(a, before)
    opt.param_groups[0]["params"].insert(0, a)
    opt.step([g, g])
    twin.step([g])
    assert_bitwise(a, twin_a)
    assert opt.state[0]["step"] == 2.0 and opt.state[1]["step"] == 3.0


def test_dict_params_refuse_structural_edits():
    w = {"w": np.zeros(3), "b": np.zeros(2)}
    opt = fastopt.SGD(w, lr=0.1, momentum=0.9)
    grads = {"w": np.ones(3), "b": np.ones(2)}
    opt.step(grads)
    snap = snapshot(opt)
    edits = [
        lambda pg: pg[0]["params"].reverse(),
        lambda pg: pg[0]["params"].__setitem__(0, np.zeros(3)),
        lambda pg: pg.append({"params": [np.zeros(1)], "lr": 0.1}),
        lambda pg: pg.pop(),
    ]
    for edit in edits:
        saved = [dict(g, params=list(g["params"])) for g in opt.param_groups]
        edit(opt.param_groups)
        with pytest.raises(ValueError, match="built from a dict"):
            opt.step(grads)
        opt.param_groups[:] = saved
        assert_unchanged(opt, snap)
    opt.param_groups[0]["lr"] = 0.5  # hyperparameters are as editable as ever
    assert opt.step(grads)


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_popped_and_cleared_in_isolation(name):
    """The reported crashes, as they were: pop(), pop(0), clear(), then step."""
    run_isolated(f"""
        import numpy as np, fastopt
        cls = getattr(fastopt, {name!r})
        for edit in ("pop", "pop0", "clear"):
            ps = [np.ones(5) for _ in range(4)]
            opt = cls([{{"params": ps[:2]}}, {{"params": ps[2:3], "lr": 0.1}}, {{"params": ps[3:]}}],
                      **{FULL[name]!r})
            opt.step([np.ones(5)] * 4)
            kept = {{"pop": 3, "pop0": 2, "clear": 0}}[edit]
            {{"pop": lambda: opt.param_groups.pop(), "pop0": lambda: opt.param_groups.pop(0),
              "clear": lambda: opt.param_groups.clear()}}[edit]()
            assert opt.step([np.ones(5)] * kept)
            try:
                opt.step([np.ones(5)] * 4)
            except ValueError as e:
                assert "gradients" in str(e)
            else:
                raise AssertionError("stale gradient count accepted")
        print("ok")
    """)


def test_grads_list_mutated_by_another_thread():
    """Another thread clears and replaces items of the list being stepped
    while the step runs with the GIL released: the step holds its own
    references, so nothing it reads is freed."""
    run_isolated("""
        import threading, time, numpy as np, fastopt
        fastopt.set_num_threads(2)
        n = 200_000
        ps = [np.zeros(n, np.float32) for _ in range(4)]
        opt = fastopt.Adam(ps, lr=1e-3)
        grads = [np.ones(n, np.float32) for _ in range(4)]
        stop = False

        def mutate():
            while not stop:
                grads[1] = np.full(n, 2.0, np.float32)
                grads.clear()
                grads.extend(np.ones(n, np.float32) for _ in range(4))
                time.sleep(0)  # let the stepping thread find the list whole now and then

        t = threading.Thread(target=mutate)
        t.start()
        done = tries = 0
        while done < 100 and tries < 100_000:  # steps that ran while the list kept changing
            tries += 1
            try:
                opt.step(grads)
                done += 1
            except ValueError:
                pass  # caught the list while it was cleared
        stop = True
        t.join()
        assert done > 0 and np.isfinite(ps[0]).all()
        print("ok")
    """, timeout=120)


def test_array_method_that_shrinks_the_grads_list():
    """An ``__array__`` that empties the caller's list cannot change what the
    step reads: each gradient is converted once, before anything else."""
    run_isolated("""
        import numpy as np, fastopt
        grads = []

        class Shrinker:
            def __array__(self, dtype=None, copy=None):
                grads.clear()
                return np.full(3, 0.5)

        ps = [np.zeros(3) for _ in range(3)]
        twin = [np.zeros(3) for _ in range(3)]
        opt, ref = fastopt.Adam(ps, lr=0.1), fastopt.Adam(twin, lr=0.1)
        grads.extend([Shrinker(), np.ones(3), np.ones(3)])
        assert opt.step(grads) and grads == []
        ref.step([np.full(3, 0.5), np.ones(3), np.ones(3)])
        for a, b in zip(ps, twin):
            assert (a == b).all()
        print("ok")
    """)


def test_flags_toggled_by_another_thread():
    """A thread switching momentum / centered / amsgrad on and off while
    another steps: every step runs with one consistent reading."""
    run_isolated("""
        import sys, threading, time, numpy as np, fastopt
        sys.setswitchinterval(1e-6)  # switch threads as often as possible
        n = 1000
        cases = [(fastopt.SGD, "momentum", (0.0, 0.9)), (fastopt.RMSprop, "momentum", (0.0, 0.5)),
                 (fastopt.RMSprop, "centered", (False, True)), (fastopt.Adam, "amsgrad", (False, True)),
                 (fastopt.AdamW, "amsgrad", (False, True))]
        for cls, key, values in cases:
            ps = [np.zeros(n, np.float32) for _ in range(3)]
            opt = cls(ps, lr=1e-3)
            grads = [np.ones(n, np.float32) for _ in range(3)]
            stop = False

            def toggle():
                k = 0
                while not stop:
                    opt.param_groups[0][key] = values[k % 2]
                    k += 1

            t = threading.Thread(target=toggle)
            t.start()
            end = time.monotonic() + 2  # the race used to crash within a second or two
            while time.monotonic() < end:
                assert opt.step(grads)
            stop = True
            t.join()
            assert all(np.isfinite(p).all() for p in ps)
        print("ok")
    """, timeout=120)


def test_hyperparameters_read_once_per_step():
    """A flag whose truth changes at every reading (the worst a second thread
    can do) is read once per step: state allocation and kernel agree."""
    run_isolated("""
        import numpy as np, fastopt

        class Flip:
            calls = 0
            def __bool__(self):
                Flip.calls += 1
                return Flip.calls % 2 == 0  # False first: no buffer, then True: the kernel would need one

        for cls, key in ((fastopt.Adam, "amsgrad"), (fastopt.RMSprop, "centered")):
            ps = [np.zeros(4) for _ in range(2)]
            opt = cls(ps, lr=0.01)
            for _ in range(6):
                opt.param_groups[0][key] = Flip()
                before = Flip.calls
                assert opt.step([np.ones(4), np.ones(4)])
                assert Flip.calls - before == 1, Flip.calls - before
        print("ok")
    """)


def test_engine_refuses_a_mode_whose_state_is_missing():
    """Belt and braces: the engine checks that every state buffer the chosen
    loop needs is there (fastopt/_core.pyx with fo_mode_slots in C)."""
    run_isolated("""
        import re, numpy as np
        from fastopt import _core
        p = np.zeros(3)
        m, v = np.zeros(3), np.zeros(3)
        cases = [(_core.Engine("adam", [p], [(m, v, None)], ["w"], [0]),
                  {"lr": 0.1, "amsgrad": True}, "'w' has no 'max_exp_avg_sq'"),
                 (_core.Engine("sgd", [p], [(None, None, None)], [0], [0]),
                  {"lr": 0.1, "momentum": 0.9}, "parameter 0 has no 'momentum_buffer'"),
                 (_core.Engine("rmsprop", [p], [(m, None, None)], [0], [0]),
                  {"lr": 0.1, "centered": True}, "parameter 0 has no 'grad_avg'")]
        for engine, hyper, message in cases:
            try:
                engine.step([np.ones(3)], [hyper])
            except ValueError as e:
                assert message in str(e), str(e)
            else:
                raise AssertionError("stepped without a state buffer")
            assert (p == 0).all() and engine.steps[0] == 0
        print("ok")
    """)


def test_private_entry_points_reject_wrong_types():
    run_isolated("""
        import numpy as np
        from fastopt import _core
        p, g = np.zeros(3), np.ones(3)
        hy = [{"lr": 0.1}]
        e = _core.Engine("adam", [p], [(np.zeros(3), np.zeros(3), None)], [0], [0])
        calls = [
            lambda: _core.check_disjoint([1, 2], ["a", "b"]),
            lambda: _core.check_disjoint([np.zeros(2), np.zeros(2)], []),
            lambda: _core.check_disjoint(None, None),
            lambda: _core.as_param(1, "x"),
            lambda: _core.Engine("adam", [1], [(None,) * 3], [0], [0]),
            lambda: _core.Engine("adam", [p], [None], [0], [0]),
            lambda: _core.Engine("adam", [p], [(1, 2, 3)], [0], [0]),
            lambda: _core.Engine("adam", [p], [(np.zeros(2), None, None)], [0], [0]),
            lambda: _core.Engine("adam", [p], [(np.zeros(3, np.float32), None, None)], [0], [0]),
            lambda: _core.Engine("adam", [p], [(p, None, None)], [0], [0]),
            lambda: _core.Engine("adam", [p], [(None,) * 3], [0], [-1]),
            lambda: _core.Engine("adam", [p], [(None,) * 3], [0], ["x"]),
            lambda: _core.Engine("adam", [p, np.zeros(2)], [(None,) * 3], [0], [0]),
            lambda: _core.Engine("adam", [p], [(None,) * 3], [], [0]),
            lambda: _core.Engine(None, [p], [(None,) * 3], [0], [0]),
            lambda: _core.Engine("adam", None, None, None, None),
            lambda: e.__init__("adam", [p], [(None,) * 3], [0], [0]),
            lambda: e.set_state(0, None),
            lambda: e.set_state(0, (1, 2, 3)),
            lambda: e.set_state(0, (np.zeros(1), None, None)),
            lambda: e.set_state(5, (None,) * 3),
            lambda: e.step([g], []),
            lambda: e.step([g], [None]),
            lambda: e.step([g], "x"),
            lambda: e.step([g], 5),
            lambda: e.step(5, hy),
            lambda: e.step((object(),), hy),
            lambda: e.step([object()], hy),
            lambda: e.step([np.ones(4)], hy),
            lambda: e.step([g], hy, isa=5),
            lambda: e.step([g], [{"lr": "x"}]),
            lambda: e.step([g], [{}]),
            lambda: e.matches("x"),
            lambda: e.extend([1], [(None,) * 3], [1], [0]),
            lambda: _core.Hypers("adam", [None]),
            lambda: _core.Hypers("nope", []),
            lambda: _core.state_slots("adam", None),
            lambda: _core.gradient_arrays(5),
        ]
        for k, call in enumerate(calls):
            try:
                call()
            except (TypeError, ValueError, LookupError, RuntimeError):
                pass
            else:
                raise AssertionError(f"call {k} was accepted")
        assert e.step([g], hy) and (p != 0).all()  # the engine still works
        print("ok")
    """)


def test_engine_cannot_change_while_it_steps():
    """set_state from another thread while the engine runs (GIL released) is
    refused instead of freeing the buffers the kernels write."""
    run_isolated("""
        import sys, threading, numpy as np, fastopt
        from fastopt import _core
        sys.setswitchinterval(1e-6)
        fastopt.set_num_threads(2)
        n = 500_000
        p = np.zeros(n, np.float32)
        bufs = (np.zeros(n, np.float32), np.zeros(n, np.float32), None)
        e = _core.Engine("adam", [p], [bufs], [0], [0])
        refused, stop = [0], False

        def swap():
            while not stop:
                try:
                    e.set_state(0, (np.zeros(n, np.float32), np.zeros(n, np.float32), None))
                except RuntimeError:
                    refused[0] += 1

        t = threading.Thread(target=swap)
        t.start()
        g = np.ones(n, np.float32)
        for _ in range(200):
            e.step([g], [{"lr": 1e-3}])
        stop = True
        t.join()
        assert np.isfinite(p).all()
        print("ok", refused[0])
    """, timeout=120)


def test_fork_while_another_thread_steps():
    """The child of a fork taken while another thread is inside step() or
    state_dict() gets a fresh lock (and an idle engine): it can step."""
    run_isolated("""
        import os, signal, threading, numpy as np, fastopt
        n = 200_000
        ps = [np.zeros(n, np.float32) for _ in range(2)]
        opt = fastopt.Adam(ps, lr=1e-3)
        grads = [np.ones(n, np.float32)] * 2
        stop = False

        def work(fn):
            while not stop:
                fn()

        threads = [threading.Thread(target=work, args=(lambda: opt.step(grads),)),
                   threading.Thread(target=work, args=(opt.state_dict,))]
        for t in threads:
            t.start()
        for _ in range(20):
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)  # a deadlock kills the child, and fails the check below
                opt.step(grads)
                opt.state_dict()
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        stop = True
        for t in threads:
            t.join()
        print("ok")
    """, timeout=120)


def test_add_param_group_grows_the_engine():
    """add_param_group extends the engine rather than rebuilding it (so many
    groups added one by one cost linear time), and gives the same numbers as
    the groups built at once."""
    rng = np.random.default_rng(1)
    start = [rng.standard_normal(3) for _ in range(300)]
    a = [p.copy() for p in start]
    b = [p.copy() for p in start]
    built = fastopt.Adagrad([{"params": [p], "lr": 0.01 * (1 + k % 3)} for k, p in enumerate(a)])
    grown = fastopt.Adagrad([{"params": [b[0]], "lr": 0.01}])
    engine = grown._engine
    for k, p in enumerate(b[1:], 1):
        grown.add_param_group({"params": [p], "lr": 0.01 * (1 + k % 3)})
    assert grown._engine is engine
    for _ in range(3):
        grads = [rng.standard_normal(3) for _ in range(300)]
        built.step(grads)
        grown.step(grads)
    for p, q in zip(a, b):
        assert_bitwise(p, q)
    assert_state_dicts_equal(built.state_dict(), grown.state_dict())


def continued(opt, other, rng, steps=4):
    """Step two optimizers with the same gradients; they must stay bit-equal."""
    for _ in range(steps):
        grads = [rng.standard_normal(p.shape).astype(p.dtype) for g in opt.param_groups
                 for p in g["params"]]
        assert opt.step(grads) == other.step(grads)
    for g, h in zip(opt.param_groups, other.param_groups):
        for p, q in zip(g["params"], h["params"]):
            assert_bitwise(p, q)
    assert_state_dicts_equal(opt.state_dict(), other.state_dict())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_continue_like_the_original(name, how, rng):
    cls = getattr(fastopt, name)
    params = [rng.standard_normal(n).astype(np.float32) for n in (3, 70, 5)]
    opt = cls([{"params": params[:2]}, {"params": params[2:], "lr": 0.002}], **FULL[name])
    for _ in range(3):
        opt.step([rng.standard_normal(p.shape).astype(np.float32) for p in params])
    opt.param_groups.reverse()  # an edit not stepped yet travels too
    copied = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    mine = [p for g in copied.param_groups for p in g["params"]]
    assert all(not np.shares_memory(p, q) for p in mine for q in params)
    assert all(p is q for p, q in zip(mine, copied._params))
    before = [p.copy() for p in params]
    continued(copied, opt, rng)
    # and the copy is independent of the original
    now = [p.copy() for p in params]
    copied.step([np.ones(p.shape, np.float32) for p in mine])
    for p, q in zip(params, now):
        assert_bitwise(p, q)
    assert any(not np.array_equal(p, q) for p, q in zip(params, before))


def test_dict_optimizer_round_trips():
    w = {"w": np.zeros(3), "b": np.ones(2)}
    opt = fastopt.AdamW(w, lr=0.1)
    opt.step({"w": np.ones(3), "b": np.ones(2)})
    copied = pickle.loads(pickle.dumps(opt))
    grads = {"w": np.full(3, 0.5), "b": np.full(2, -1.0)}
    opt.step(grads)
    copied.step(grads)
    for a, b in zip(opt._params, copied._params):
        assert_bitwise(a, b)
    assert_state_dicts_equal(opt.state_dict(), copied.state_dict())

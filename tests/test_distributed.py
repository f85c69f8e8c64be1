"""fastopt.distributed.ShardedOptimizer: ZeRO stage 1 over MPI, on loopback.

Each scenario runs as its own program under ``mpiexec -n N`` (bounded by a
timeout, so a hang fails the test). Every rank makes all ranks' gradients
from seeds, so each can check itself against the oracle: the unsharded
fastopt optimizer stepped on the gradients averaged in rank order.
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import run_isolated

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))


def _have_mpi4py():
    return importlib.util.find_spec("mpi4py") is not None


def needs_mpi(test):
    """Mark a test distributed; skip it, saying why, without mpi4py or mpiexec."""
    test = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH (pip install mpich)")(test)
    test = pytest.mark.skipif(not _have_mpi4py(), reason="mpi4py is not installed "
                              '(pip install "fastopt[mpi]")')(test)
    return pytest.mark.distributed(test)

# What every scenario starts with: the world, the model's shapes (cut by
# the shards at different places for 2 and 3 ranks), seeded gradients per
# (step, rank), their rank-order mean, and two param groups.
PREAMBLE = """
import os, sys
import numpy as np
import fastopt
from fastopt.distributed import ShardedOptimizer
from mpi4py import MPI

comm = MPI.COMM_WORLD
N, rank = comm.Get_size(), comm.Get_rank()

def abort_all(kind, value, tb):
    # a failed check on one rank ends every rank at once (not at the timeout)
    sys.__excepthook__(kind, value, tb)
    sys.stderr.flush()
    comm.Abort(1)

sys.excepthook = abort_all
SHAPES = [(5, 3), (7,), (2, 2, 2), (1,), (4, 4)]

def init(dtype):
    return [np.random.default_rng(i).standard_normal(s).astype(dtype) for i, s in enumerate(SHAPES)]

def grads(t, k, dtype):
    return [np.random.default_rng((t, k, i)).standard_normal(s).astype(dtype)
            for i, s in enumerate(SHAPES)]

def mean(t, dtype, n=None):
    n = N if n is None else n
    out = grads(t, 0, dtype)
    for k in range(1, n):
        for acc, g in zip(out, grads(t, k, dtype)):
            acc += g
    for acc in out:
        acc /= n
    return out

def groups(params):
    return [{"params": params[:2]}, {"params": params[2:], "lr": 0.05}]

def report(tag):
    # one line from rank 0 with every rank's tag (so outputs never interleave)
    tags = comm.gather(f"{tag}:{rank}", root=0)
    if rank == 0:
        print(" ".join(tags), flush=True)

def same_state(a, b):
    assert a["param_groups"] == b["param_groups"], (a["param_groups"], b["param_groups"])
    assert a["state"].keys() == b["state"].keys(), (a["state"].keys(), b["state"].keys())
    for i in a["state"]:
        assert a["state"][i].keys() == b["state"][i].keys()
        for key, value in a["state"][i].items():
            assert np.array_equal(value, b["state"][i][key]), (i, key)
"""


def mpirun(n, code, *args, timeout=120):
    """Run PREAMBLE + code on n ranks; fail on a non-zero exit or a hang."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        FASTOPT_NUM_THREADS="1")
    script = PREAMBLE + textwrap.dedent(code)
    proc = subprocess.Popen([MPIEXEC, "-n", str(n), sys.executable, "-c", script, *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{n} ranks hung (no exit within {timeout} s)")
    assert proc.returncode == 0, f"{n} ranks failed (exit code {proc.returncode}):\n{out}\n{err}"
    return out


CONFIGS = """
CONFIGS = [
    (fastopt.SGD, dict(lr=0.1)),
    (fastopt.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False)),
    (fastopt.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    (fastopt.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.3)),
    (fastopt.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    (fastopt.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    (fastopt.AdamW, dict(lr=0.01)),
]
"""


@pytest.mark.parametrize("n", [2, 3])
@needs_mpi
def test_matches_one_process_bitwise(n):
    """20 steps on n ranks give the unsharded optimizer's parameters and
    state bit for bit; each rank holds 1/n of the state."""
    out = mpirun(n, CONFIGS + textwrap.dedent("""
    for cls, hyper in CONFIGS:
        for dtype in (np.float32, np.float64):
            params, alone = init(dtype), init(dtype)
            opt = ShardedOptimizer(cls, groups(params), **hyper)
            ref = cls(groups(alone), **hyper)
            for t in range(20):
                assert opt.step(grads(t, rank, dtype)) is True
                ref.step(mean(t, dtype))
            for i, (p, q) in enumerate(zip(params, alone)):
                assert np.array_equal(p, q), (cls.__name__, dtype, i, np.abs(p - q).max())
            total = sum(p.size for p in params)
            held = {}
            for entry in opt.state_dict()["state"].values():
                for key, value in entry.items():
                    if isinstance(value, np.ndarray):
                        held[key] = held.get(key, 0) + value.size
            assert all(v <= total // N + 1 for v in held.values()), (held, total)
            whole = opt.consolidate_state_dict(to=N - 1)
            if rank == N - 1:
                same_state(whole, ref.state_dict())
            else:
                assert whole is None
    report("ok")
    """))
    assert out.split() == [f"ok:{r}" for r in range(n)]


@needs_mpi
def test_checkpoint_from_2_ranks_resumes_on_3(tmp_path):
    """Shards saved on 2 ranks (fastopt.save) load on 3 ranks, and 10 more
    steps give bit for bit what the unsharded optimizer gives after loading
    the consolidated checkpoint; loading the consolidated one on 3 ranks too."""
    save = """
    d = sys.argv[1]
    params = init(np.float32)
    opt = ShardedOptimizer(fastopt.Adam, groups(params), lr=0.01, amsgrad=True)
    for t in range(10):
        opt.step(grads(t, rank, np.float32))
    fastopt.save(opt.state_dict(), os.path.join(d, f"shard{rank}.fo"))
    whole = opt.consolidate_state_dict(to=0)
    if rank == 0:
        fastopt.save(whole, os.path.join(d, "whole.fo"))
        np.savez(os.path.join(d, "params.npz"), *params)
    """
    resume = """
    d = sys.argv[1]
    saved = np.load(os.path.join(d, "params.npz"))
    start = [saved[f"arr_{i}"] for i in range(len(SHAPES))]
    shards = [fastopt.load(os.path.join(d, f"shard{r}.fo")) for r in range(2)]
    whole = fastopt.load(os.path.join(d, "whole.fo"))
    runs = []
    for source in (shards, whole):
        params = [a.copy() for a in start]
        opt = ShardedOptimizer(fastopt.Adam, groups(params), lr=0.5, amsgrad=True)
        opt.load_state_dict(source)
        assert opt.param_groups[0]["lr"] == 0.01
        for t in range(10, 20):
            opt.step(grads(t, rank, np.float32))
        runs.append((params, opt.consolidate_state_dict(to=0)))
    alone = [a.copy() for a in start]
    ref = fastopt.Adam(groups(alone), lr=0.5, amsgrad=True)
    ref.load_state_dict(whole)
    for t in range(10, 20):
        ref.step(mean(t, np.float32))
    for params, state in runs:
        for i, (p, q) in enumerate(zip(params, alone)):
            assert np.array_equal(p, q), (i, np.abs(p - q).max())
        if rank == 0:
            same_state(state, ref.state_dict())
    report("ok")
    """
    mpirun(2, save, str(tmp_path))
    assert mpirun(3, resume, str(tmp_path)).split() == ["ok:0", "ok:1", "ok:2"]


@needs_mpi
def test_a_bad_rank_makes_every_rank_raise():
    """A bad gradient (shape, dtype, None on one rank only, a bad lr) on one
    rank raises on every rank with nothing changed anywhere; a NaN with
    skip_nonfinite skips the step on every rank; the next good step still
    matches the unsharded optimizer."""
    out = mpirun(3, """
    params, alone = init(np.float64), init(np.float64)
    opt = ShardedOptimizer(fastopt.Adam, groups(params), lr=0.01, skip_nonfinite=True)
    ref = fastopt.Adam(groups(alone), lr=0.01)
    opt.step(grads(0, rank, np.float64)); ref.step(mean(0, np.float64))
    before = [p.copy() for p in params]
    state = opt.state_dict()

    # each spoils this rank's gradients (or groups) and returns what step() gets
    def bad_shape(g): return g[:1] + [g[1][:3]] + g[2:]
    def bad_dtype(g): return g[:4] + [g[4].astype(np.float32)]
    def bad_none(g): return [None] + g[1:]
    def bad_count(g): return g[:-1]
    def bad_lr(g): opt.param_groups[1]["lr"] = -1.0; return g
    def bad_kind(g): return np.zeros(3)
    cases = [(bad_shape, ValueError), (bad_dtype, TypeError), (bad_none, ValueError),
             (bad_count, ValueError), (bad_lr, ValueError), (bad_kind, TypeError)]
    for culprit, (spoil, kind) in enumerate(cases):
        culprit %= N
        g = grads(1, rank, np.float64)
        if rank == culprit:
            g = spoil(g)
        try:
            opt.step(g)
        except kind as e:
            # the culprit raises its own error, the others name it (a None on
            # one rank only is the same error everywhere)
            named = f"rank {culprit}" in str(e)
            assert spoil is bad_none or (rank == culprit) != named, (rank, culprit, e)
        else:
            raise AssertionError(f"rank {rank}: {spoil.__name__} on rank {culprit} did not raise")
        opt.param_groups[1]["lr"] = 0.05
        assert all(np.array_equal(p, q) for p, q in zip(params, before)), spoil.__name__
        same_state(opt.state_dict(), state)
        report(spoil.__name__)

    g = grads(1, rank, np.float64)
    if rank == 1:
        g[2][0, 1, 1] = np.nan
    assert opt.step(g) is False
    assert all(np.array_equal(p, q) for p, q in zip(params, before))
    same_state(opt.state_dict(), state)

    assert opt.step(grads(1, rank, np.float64)) is True
    ref.step(mean(1, np.float64))
    assert all(np.array_equal(p, q) for p, q in zip(params, alone))
    report("ok")
    """)
    lines = out.splitlines()
    assert len(lines) == 7, out
    for name, line in zip(["bad_shape", "bad_dtype", "bad_none", "bad_count", "bad_lr",
                           "bad_kind", "ok"], lines):
        assert line.split() == [f"{name}:{r}" for r in range(3)], out


@pytest.mark.parametrize("n", [2, 3])
@needs_mpi
def test_extra_memory_is_two_shards_and_one_parameter(n):
    """What a rank allocates beyond the Adam state (held buffers, and the
    peak within a step, measured by tracemalloc) is at most two shards plus
    one parameter (a strided gradient's contiguous copy), not the model; the
    parameters still match the unsharded optimizer bit for bit."""
    out = mpirun(n, """
    import tracemalloc
    shapes = [(300, 301), (100003,), (250, 401), (77,), (200, 300)]  # cut by the shards
    def model(seed):
        return [np.random.default_rng((seed, i)).standard_normal(s) for i, s in enumerate(shapes)]
    def rank_grads(t, k):
        g = model((t, k))
        g[2] = np.ascontiguousarray(g[2].T).T  # strided: sent from a contiguous copy
        return g
    steps = [[rank_grads(t, k) for k in range(N)] for t in range(2)]
    params, alone = model(0), model(0)
    ref = fastopt.Adam(alone, lr=0.01, amsgrad=True)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    opt = ShardedOptimizer(fastopt.Adam, params, lr=0.01, amsgrad=True)
    opt.step(steps[0][rank])
    state = sum(v.nbytes for entry in opt._local.state.values() for v in entry.values()
                if isinstance(v, np.ndarray))
    tracemalloc.reset_peak()
    opt.step(steps[1][rank])
    extra = tracemalloc.get_traced_memory()[1] - base - state
    tracemalloc.stop()
    for t in range(2):
        total = [sum(g) for g in zip(*steps[t])]  # rank order, as the optimizer sums
        ref.step([np.ascontiguousarray(g / N) for g in total])
    assert all(np.array_equal(p, q) for p, q in zip(params, alone))
    numel = sum(p.size for p in params)
    shard = -(-numel // N) * 8
    limit = 2 * shard + max(p.nbytes for p in params) + 2 ** 16
    assert state >= 3 * (numel // N) * 8, state  # the state was counted, not the buffers
    assert extra <= limit, (extra, limit, numel * 8)
    report("ok")
    """)
    assert out.split() == [f"ok:{r}" for r in range(n)]


@needs_mpi
def test_more_ranks_than_elements_and_dict_params():
    """Ranks with an empty shard still take part; dict params step by key."""
    out = mpirun(3, """
    params = {"a": np.ones(1), "b": np.full(1, 2.0)}
    alone = {k: v.copy() for k, v in params.items()}
    opt = ShardedOptimizer(fastopt.SGD, params, lr=0.1, momentum=0.9)
    ref = fastopt.SGD(alone, lr=0.1, momentum=0.9)
    for t in range(3):
        g = {"b": np.full(1, t + rank + 0.5), "a": np.full(1, 1.0 - rank)}
        opt.step(g)
        ref.step({"b": np.full(1, sum(t + k + 0.5 for k in range(N)) / N),
                  "a": np.full(1, sum(1.0 - k for k in range(N)) / N)})
    assert all(np.array_equal(params[k], alone[k]) for k in params), (params, alone)
    whole = opt.consolidate_state_dict()
    if rank == 0:
        same_state(whole, ref.state_dict())
    report("ok")
    """)
    assert out.split() == ["ok:0", "ok:1", "ok:2"]


@needs_mpi
def test_bad_loaded_groups_raise_as_the_optimizer_class_does():
    """A loaded state dict's groups are checked by the same code as the
    optimizer class's load_state_dict: the same error, word for word."""
    out = mpirun(2, """
    def sd_of(params):
        return fastopt.Adam(params, lr=0.01).state_dict()

    def error(opt, sd):
        try:
            opt.load_state_dict(sd)
        except (TypeError, ValueError) as e:
            return type(e), str(e)
        return None

    named = {"a": np.ones(4), "b": np.ones(3)}
    good = sd_of({k: v.copy() for k, v in named.items()})
    renamed = dict(good, param_groups=[dict(good["param_groups"][0], param_names=["a", "c"])])
    bad_lr = dict(good, param_groups=[dict(good["param_groups"][0], lr=-1.0)])
    bad_betas = dict(good, param_groups=[dict(good["param_groups"][0], betas=[0.9, 1.5])])
    two_groups = dict(good, param_groups=good["param_groups"] * 2)
    for sd in (renamed, bad_lr, bad_betas, two_groups):
        sharded = ShardedOptimizer(fastopt.Adam, {k: v.copy() for k, v in named.items()}, lr=0.01)
        alone = fastopt.Adam({k: v.copy() for k, v in named.items()}, lr=0.01)
        want = error(alone, sd)
        assert want is not None
        assert error(sharded, sd) == want, (error(sharded, sd), want)
    report("ok")
    """)
    assert out.split() == ["ok:0", "ok:1"]


@needs_mpi
def test_example_trains_on_two_ranks():
    """examples/mpi_train.py runs under mpiexec -n 2 and its loss falls."""
    env = dict(os.environ, PYTHONPATH=ROOT, FASTOPT_NUM_THREADS="1")
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable,
                           os.path.join(ROOT, "examples", "mpi_train.py")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    losses = [float(line.split()[-1]) for line in proc.stdout.splitlines()
              if line.startswith("step")]
    assert len(losses) >= 2 and losses[-1] < 0.1 * losses[0], proc.stdout


def test_import_fastopt_never_imports_mpi4py():
    out = run_isolated("""
        import sys
        import fastopt, fastopt.distributed
        print("mpi4py" in sys.modules)
    """)
    assert out.strip() == "False"


def test_clear_import_error_without_mpi4py():
    out = run_isolated("""
        import sys
        import numpy as np
        sys.modules["mpi4py"] = None  # as if it were not installed
        import fastopt
        from fastopt.distributed import ShardedOptimizer
        try:
            ShardedOptimizer(fastopt.Adam, [np.zeros(3)])
        except ImportError as e:
            print(e)
    """)
    assert 'pip install "fastopt[mpi]"' in out

"""Step time and optimizer memory per rank: ZeRO-1 (ShardedOptimizer) against
plain all-reduce data parallelism, on 1, 2 and 3 MPI ranks of this machine.

Run from the repository root (extension built in place, mpi4py and mpiexec
installed: pip install mpi4py mpich):

    python benchmarks/bench_distributed.py [--numel 8e6] [--steps 20] [--ranks 1,2,3]

It times one process stepping fastopt.Adam on the whole model (the
baseline), then for each rank count launches ``mpiexec -n N`` on itself. Each
rank runs one fastopt thread (FASTOPT_NUM_THREADS=1). A step's time is the
slowest rank's median over --steps steps (after 3 warm-up steps); "state" is
the Adam buffers a rank holds, "extra" what ShardedOptimizer allocates beyond
that state (the buffers it holds plus the peak within a step, measured with
tracemalloc in steps apart from the timed ones).
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
import tracemalloc

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("FASTOPT_NUM_THREADS", "1")
import fastopt  # noqa: E402

PARAMS = 8  # the model: 8 float32 tensors of numel / 8 elements


def model(numel):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(numel // PARAMS).astype(np.float32) for _ in range(PARAMS)]


def timed(step, steps):
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def state_bytes(opt):
    return sum(v.nbytes for entry in opt.state_dict()["state"].values()
               for v in entry.values() if isinstance(v, np.ndarray))


def extra_bytes(make, grads):
    """What the optimizer make() returns allocates beyond its state: the
    buffers it holds and the peak of a step's temporaries."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    opt = make()
    opt.step(grads)  # the state exists from the first step on
    tracemalloc.reset_peak()
    opt.step(grads)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base - (state_bytes(opt._local) if opt._local is not None else 0)


def worker(numel, steps):
    from mpi4py import MPI
    from fastopt.distributed import ShardedOptimizer
    comm = MPI.COMM_WORLD
    n, rank = comm.Get_size(), comm.Get_rank()
    grads = [g * (rank + 1) for g in model(numel)]

    params = model(numel)
    zero = ShardedOptimizer(fastopt.Adam, params, lr=1e-3)
    comm.Barrier()
    t_zero = timed(lambda: zero.step(grads), steps)
    zero_state = state_bytes(zero._local) if zero._local is not None else 0
    del zero, params
    params = model(numel)
    zero_extra = extra_bytes(lambda: ShardedOptimizer(fastopt.Adam, params, lr=1e-3), grads)
    del params

    params = model(numel)
    plain = fastopt.Adam(params, lr=1e-3)
    flat = np.empty(numel, np.float32)
    views = [flat[k * (numel // PARAMS):(k + 1) * (numel // PARAMS)] for k in range(PARAMS)]

    def allreduce_step():
        for v, g in zip(views, grads):
            v[...] = g
        comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        np.divide(flat, n, out=flat)
        plain.step(views)
    comm.Barrier()
    t_dp = timed(allreduce_step, steps)
    rows = comm.gather((t_zero, zero_state, zero_extra, t_dp, state_bytes(plain), flat.nbytes))
    if rank == 0:
        worst = [max(r[k] for r in rows) for k in range(6)]
        print(" ".join(repr(x) for x in worst))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=float, default=8e6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--ranks", default="1,2,3")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    numel = int(args.numel) // PARAMS * PARAMS
    if args.worker:
        return worker(numel, args.steps)

    params = model(numel)
    alone = fastopt.Adam(params, lr=1e-3)
    grads = model(numel)
    t_alone = timed(lambda: alone.step(grads), args.steps)
    mib = 2 ** 20
    print(f"Adam, float32, {numel:.3g} elements ({numel * 4 / mib:.0f} MiB of parameters), "
          f"median of {args.steps} steps, load average {os.getloadavg()[0]:.1f}")
    print(f"one process, no MPI: step {t_alone * 1e3:.1f} ms, state {state_bytes(alone) / mib:.0f} MiB\n")
    print("| ranks | ZeRO-1 step (ms) | ZeRO-1 state per rank (MiB) | ZeRO-1 extra (MiB) "
          "| all-reduce DP step (ms) | DP state per rank (MiB) | DP buffer (MiB) |")
    print("|---|---|---|---|---|---|---|")
    mpiexec = shutil.which("mpiexec", path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    for n in [int(r) for r in args.ranks.split(",")]:
        out = subprocess.run([mpiexec, "-n", str(n), sys.executable, os.path.abspath(__file__),
                              "--worker", "--numel", str(numel), "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True).stdout
        tz, sz, bz, td, sd, bd = map(float, out.split())
        print(f"| {n} | {tz * 1e3:.1f} | {sz / mib:.0f} | {bz / mib:.0f} | {td * 1e3:.1f} "
              f"| {sd / mib:.0f} | {bd / mib:.0f} |")


if __name__ == "__main__":
    main()

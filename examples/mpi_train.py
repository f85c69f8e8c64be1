"""Data-parallel training with the optimizer state sharded across processes.

Run: mpiexec -n 2 python examples/mpi_train.py   (pip install "fastopt[mpi]")

Every rank holds the whole model and computes gradients on its own slice of
each batch; fastopt.distributed.ShardedOptimizer averages the gradients,
updates each rank's 1/N of the parameters with its 1/N of Adam's state, and
gathers the parameters, so every rank ends each step with the same model.
"""
import numpy as np
from mpi4py import MPI

import fastopt
from fastopt.distributed import ShardedOptimizer

comm = MPI.COMM_WORLD
rank, world = comm.Get_rank(), comm.Get_size()

rng = np.random.default_rng(0)              # the same data and start on every rank
x = rng.normal(size=(4096, 32)).astype(np.float32)
y = np.tanh(x @ rng.normal(size=(32, 1)).astype(np.float32))
w1 = (rng.normal(size=(32, 64)) / 8).astype(np.float32)
w2 = np.zeros((64, 1), np.float32)
opt = ShardedOptimizer(fastopt.AdamW, [w1, w2], lr=3e-3, weight_decay=1e-4)

for step in range(301):
    batch = rng.integers(0, len(x), size=256)[rank::world]   # this rank's share
    xb, yb = x[batch], y[batch]
    h = np.tanh(xb @ w1)
    err = h @ w2 - yb
    loss = comm.allreduce(float(np.mean(err ** 2)), op=MPI.SUM) / world
    d_out = 2 * err / len(err)
    d_h = (d_out @ w2.T) * (1 - h ** 2)
    opt.step([xb.T @ d_h, h.T @ d_out])
    if step % 50 == 0 and rank == 0:
        print(f"step {step:3d}  loss {loss:.5f}")

"""ZeRO stage 1 for NumPy: optimizer state sharded across MPI processes.

`ShardedOptimizer` runs data-parallel training over ``mpi4py``: every rank
holds all the parameters and computes gradients on its own batch, but keeps
the optimizer state of only 1/N of the parameters' elements. A step

1. checks this rank's gradients, then agrees with the other ranks that all
   of them are fine (one small ``Allreduce``), so a bad gradient on one rank
   makes every rank raise instead of leaving the others waiting;
2. sends each rank the gradient elements of its shard straight from the
   gradient arrays and averages them: the N contributions are summed in rank
   order into a shard-sized buffer, then divided by N, so the result is the
   same bits whatever MPI's reduction order;
3. steps the shard with a fastopt optimizer over views of the parameters;
4. gathers the updated shards into every rank's parameters, in place.

Besides the state, a rank holds two shard-sized buffers.

Every rank ends the step with the parameters one process would have after
stepping on the averaged gradient, bit for bit: the optimizers are
elementwise, so updating a shard is the same arithmetic as updating the
whole.

The shards cut the concatenation of all parameters (in group order,
flattened) into N contiguous ranges of equal size (within one element), so
one parameter may be split between ranks; each piece keeps its own step
count, and the pieces of one parameter always step together.

``mpi4py`` is imported when a `ShardedOptimizer` is made, never by ``import
fastopt``; ``pip install "fastopt[mpi]"`` installs it with an MPI library.
"""
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _core
from . import optim as _optim
from ._typing import Grads, Params, StateDict
from ._validate import float_array

__all__ = ["ShardedOptimizer"]

# Optimizers whose update of an element reads only that element's own
# parameter, gradient and state: stepping a shard equals stepping the whole.
_ELEMENTWISE = ("sgd", "adagrad", "rmsprop", "adam")


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError('fastopt.distributed needs mpi4py and an MPI library: '
                          'pip install "fastopt[mpi]"') from e
    return MPI


def _free(MPI, comm):
    if not MPI.Is_finalized():
        comm.Free()


def _bounds(total, world):
    """Element ranges of the shards: rank r owns [bounds[r], bounds[r + 1])."""
    return [r * total // world for r in range(world + 1)]


def _pieces(sizes, lo, hi):
    """(parameter index, start, stop) of each parameter's elements inside
    [lo, hi) of the concatenation of all parameters."""
    out, offset = [], 0
    for i, n in enumerate(sizes):
        a, b = max(lo, offset), min(hi, offset + n)
        if a < b:
            out.append((i, a - offset, b - offset))
        offset += n
    return out


class ShardedOptimizer:
    """ZeRO stage 1 over MPI: each rank keeps the state of its 1/N of the parameters.

    Parameters
    ----------
    optimizer_cls : type
        An elementwise fastopt optimizer class: `fastopt.SGD`,
        `fastopt.Adagrad`, `fastopt.RMSprop`, `fastopt.Adam` or
        `fastopt.AdamW`.
    params : sequence of arrays, dict of arrays, or list of group dicts
        As for `fastopt.Optimizer`, on every rank the same shapes in the same
        order (and the same values: a step leaves every rank with the same
        parameters). All parameters share one dtype (float32 or float64).
    comm : mpi4py.MPI.Comm, optional
        The processes that share the work; ``MPI.COMM_WORLD`` by default.
    **hyperparameters : any
        ``optimizer_cls``'s arguments (``lr=...``), and ``skip_nonfinite``.

    Notes
    -----
    Making one, ``step`` and ``consolidate_state_dict`` are collective: every
    rank of ``comm`` calls them, in the same order.

    Examples
    --------
    Run with ``mpiexec -n 2 python train.py``::

        opt = ShardedOptimizer(fastopt.AdamW, [w, b], lr=1e-3)
        for batch in my_part_of(data):
            opt.step(grads_of_loss(w, b, batch))  # w, b: the same on every rank
    """

    def __init__(self, optimizer_cls: type[_optim.Optimizer], params: Params, comm: Any = None,
                 **hyperparameters: Any) -> None:
        MPI = _mpi()
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, _optim.Optimizer)
                and optimizer_cls._algo in _ELEMENTWISE):
            raise TypeError("optimizer_cls must be an elementwise fastopt optimizer class "
                            f"(SGD, Adagrad, RMSprop, Adam, AdamW), got {optimizer_cls!r}")
        self.optimizer_cls = optimizer_cls
        self.skip_nonfinite = bool(hyperparameters.pop("skip_nonfinite", False))
        # An unsharded optimizer over one element checks the hyperparameters
        # and tells their defaults.
        self.defaults = optimizer_cls([np.zeros(1)], **hyperparameters).defaults
        self._lock = threading.RLock()
        self._keys = list(params) if isinstance(params, Mapping) else None
        self.param_groups = self._groups(params)
        self._params = [p for g in self.param_groups for p in g["params"]]
        self._group_lists = [g["params"] for g in self.param_groups]
        self._group_index = [gi for gi, g in enumerate(self._group_lists) for _ in g]
        self._check_same_everywhere()

        world, rank = self.comm.Get_size(), self.comm.Get_rank()
        self.world_size, self.rank = world, rank
        sizes = [p.size for p in self._params]
        self._offsets = np.cumsum([0] + sizes).tolist()
        self.numel = self._offsets[-1]
        self._bounds = _bounds(self.numel, world)
        lo, hi = self._bounds[rank], self._bounds[rank + 1]
        self.pieces = _pieces(sizes, lo, hi)
        dtype = self._params[0].dtype

        # What each rank r owns; the MPI type of one element; a communicator
        # of our own, so no message of the user's can match ours.
        self._pieces_of = [_pieces(sizes, self._bounds[r], self._bounds[r + 1])
                           for r in range(world)]
        self._type = MPI.FLOAT if dtype == np.float32 else MPI.DOUBLE
        self._wire = self.comm.Dup()
        weakref.finalize(self, _free, MPI, self._wire)
        # The only buffers, one shard each: the mean gradient of this shard,
        # and one other rank's contribution to it while it is added.
        self._mean = np.empty(hi - lo, dtype)
        self._incoming = np.empty(hi - lo if world > 1 else 0, dtype)
        self._grad_views = [self._mean[self._offsets[i] + a - lo:self._offsets[i] + b - lo]
                            for i, a, b in self.pieces]

        # The local optimizer: one group per original group with pieces here.
        local_groups, self._local_group_of = [], []
        for gi, group in enumerate(self.param_groups):
            views = [self._params[i].reshape(-1)[a:b] for i, a, b in self.pieces
                     if self._group_index[i] == gi]
            if views:
                local_groups.append({**self._hyper(group), "params": views})
                self._local_group_of.append(gi)
        self._local = optimizer_cls(local_groups, **hyperparameters) if local_groups else None

    # -- set-up ---------------------------------------------------------------

    def _name(self, i):
        return i if self._keys is None else self._keys[i]

    def _groups(self, params):
        if isinstance(params, Mapping):
            groups = [{"params": list(params.values())}]
        elif isinstance(params, np.ndarray) or not hasattr(params, "__iter__"):
            raise TypeError("params must be a list of arrays, a dict of arrays or a list of "
                            f"param-group dicts, got {type(params).__name__}")
        else:
            groups = list(params)
            if not groups:
                raise ValueError("optimizer got an empty parameter list")
            if not isinstance(groups[0], Mapping):
                groups = [{"params": groups}]
        out, index = [], 0
        for gi, group in enumerate(groups):
            if not isinstance(group, Mapping) or "params" not in group:
                raise TypeError(f"param group {gi} must be a dict with a 'params' entry")
            arrays = group["params"]
            arrays = [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
            full = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
            self.optimizer_cls._check_group(full, f"param group {gi}")
            full["params"] = [_core.as_param(a, _core.describe(self._name(index + k)))
                              for k, a in enumerate(arrays)]
            index += len(arrays)
            out.append(full)
        params = [p for g in out for p in g["params"]]
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for i, p in enumerate(params):
            if p.dtype != params[0].dtype:
                raise TypeError(f"{_core.describe(self._name(i))} has dtype {p.dtype}, "
                                f"parameter {self._name(0)!r} {params[0].dtype}: a "
                                "ShardedOptimizer's parameters share one dtype")
        spans = sorted((p.ctypes.data, p.ctypes.data + p.nbytes, i)
                       for i, p in enumerate(params) if p.nbytes)
        for (_, end, i), (start, _, j) in zip(spans, spans[1:]):
            if start < end:
                raise ValueError(f"{_core.describe(self._name(i))} and "
                                 f"{_core.describe(self._name(j))} share memory")
        return out

    def _check_same_everywhere(self):
        """Every rank must have built the same optimizer over the same shapes."""
        mine = (self.optimizer_cls.__name__, str(self._params[0].dtype),
                [len(g) for g in self._group_lists], [p.shape for p in self._params])
        theirs = self.comm.allgather(mine)
        for r, other in enumerate(theirs):
            if other != theirs[0]:
                raise ValueError(f"rank {r} built a different ShardedOptimizer than rank 0 "
                                 f"(class, dtype, group sizes, shapes): {other} vs {theirs[0]}")

    @staticmethod
    def _hyper(group):
        return {k: v for k, v in group.items() if k != "params"}

    # -- stepping ---------------------------------------------------------------

    def _check(self, grads):
        """This rank's complaint about its gradients or groups, or None."""
        try:
            for gi, (group, arrays) in enumerate(zip(self.param_groups, self._group_lists)):
                now = group["params"]
                if now is not arrays and (len(now) != len(arrays) or
                                          any(a is not b for a, b in zip(now, arrays))):
                    raise ValueError(f"param group {gi}: the parameters of a ShardedOptimizer "
                                     "cannot be changed after it is made")
                self.optimizer_cls._check_group(group, f"param group {gi}")
            if len(grads) != len(self._params):
                raise ValueError(f"step() got {len(grads)} gradients for "
                                 f"{len(self._params)} parameters")
            for i, (p, g) in enumerate(zip(self._params, grads)):
                if g is None:
                    continue
                what = f"gradient of {_core.describe(self._name(i))}"
                if not isinstance(g, np.ndarray):
                    g = np.asarray(g)
                if g.dtype != p.dtype:
                    raise TypeError(f"{what} has dtype {g.dtype}, its parameter {p.dtype}")
                if g.shape != p.shape:
                    raise ValueError(f"{what} has shape {g.shape}, its parameter {p.shape}")
        except (TypeError, ValueError) as e:
            return e
        return None

    def _agree(self, error, has_grad):
        """Collectively: raise on every rank if any rank found an error, or if
        ranks disagree on which parameters have a gradient."""
        flags = np.zeros(1 + len(self._params), np.int64)
        flags[0] = error is not None
        if error is None:
            flags[1:] = has_grad
        self.comm.Allreduce(self._MPI.IN_PLACE, flags, op=self._MPI.SUM)
        if flags[0]:
            reports = self.comm.allgather(None if error is None else (type(error), str(error)))
            if error is not None:
                raise error
            r, (kind, message) = next((r, e) for r, e in enumerate(reports) if e is not None)
            raise kind(f"rank {r} rejected its gradients, so no rank stepped: {message}")
        world = self.world_size
        split = [i for i, n in enumerate(flags[1:]) if 0 < n < world]
        if split:
            raise ValueError(f"the gradient of {_core.describe(self._name(split[0]))} is None on "
                             f"some ranks but not others ({flags[1 + split[0]]} of {world})")

    def step(self, grads: Grads) -> bool:
        """Average the gradients over the ranks, update the parameters in place.

        Parameters
        ----------
        grads : list of arrays (or dict, for dict params)
            This rank's gradients, one per parameter in group order; None
            skips a parameter (on every rank alike). Only read.

        Returns
        -------
        bool
            True when the update was applied; False (on every rank) when
            ``skip_nonfinite`` is set and the averaged gradient held NaN or
            Inf, and then nothing changed.

        Raises
        ------
        TypeError, ValueError
            On every rank, when any rank's gradients or groups are bad;
            nothing changed on any rank.
        """
        with self._lock:
            try:
                grads = _optim.Optimizer._grad_list(self, grads)
            except (TypeError, ValueError) as e:
                error = e
            else:
                error = self._check(grads)
            has_grad = [g is not None for g in grads] if error is None else None
            self._agree(error, has_grad)
            live = {i: np.ascontiguousarray(g).reshape(-1)  # a copy only if g is strided
                    for i, g in enumerate(grads) if g is not None}
            mean = self._reduce(live)
            if self.skip_nonfinite:
                bad = np.array([not all(np.isfinite(v).all() for v in mean)], np.int64)
                self.comm.Allreduce(self._MPI.IN_PLACE, bad, op=self._MPI.SUM)
                if bad[0]:
                    return False
            if self._local is not None:
                for lg, gi in zip(self._local.param_groups, self._local_group_of):
                    lg.update(self._hyper(self.param_groups[gi]))
                self._local.step([view if grads[i] is not None else None
                                  for view, (i, _, _) in zip(self._grad_views, self.pieces)])
            self._gather(live)
            return True

    def _blocks(self, views):
        """An MPI datatype covering the 1-D contiguous arrays ``views`` where
        they are (used with ``MPI.BOTTOM``): a message goes straight from or
        into them, without a staging copy."""
        return self._type.Create_hindexed([v.size for v in views],
                                          [self._MPI.Get_address(v) for v in views]).Commit()

    def _reduce(self, live):
        """Every rank's gradient elements of this shard, averaged; returns the
        views of ``self._mean`` for the parameters in ``live`` (flat gradients
        by parameter index, the same indices on every rank).

        Each rank sends its elements of every other shard straight from its
        gradients, and adds what it receives in rank order (rank 0's, plus
        rank 1's, ...), then divides by N: the same bits as one process
        summing the N gradients in that order, with one shard of buffer."""
        MPI, wire, rank, world = self._MPI, self._wire, self.rank, self.world_size
        lo = self._bounds[rank]
        types, sends = [], []
        for d in range(world):
            views = [live[i][a:b] for i, a, b in self._pieces_of[d] if i in live]
            if d != rank and views:
                types.append(self._blocks(views))
                sends.append(wire.Isend([MPI.BOTTOM, 1, types[-1]], dest=d))
        spans = [(self._offsets[i] + a - lo, self._offsets[i] + b - lo, live[i][a:b])
                 for i, a, b in self.pieces if i in live]
        mean = [self._mean[x:y] for x, y, _ in spans]
        incoming = [self._incoming[x:y] for x, y, _ in spans]
        if mean and world > 1:
            types += [self._blocks(mean), self._blocks(incoming)]
            into_mean, into_incoming = types[-2:]
        for s in range(world if mean else 0):
            if s == rank:
                for m, (_, _, g) in zip(mean, spans):
                    if s == 0:
                        np.copyto(m, g)
                    else:
                        m += g
            elif s == 0:
                wire.Recv([MPI.BOTTOM, 1, into_mean], source=s)
            else:
                wire.Recv([MPI.BOTTOM, 1, into_incoming], source=s)
                for m, c in zip(mean, incoming):
                    m += c
        for m in mean:
            m /= world
        MPI.Request.Waitall(sends)
        for t in types:
            t.Free()
        return mean

    def _gather(self, live):
        """Every rank's updated elements of the parameters in ``live`` into
        this rank's parameters, in place: one all-to-all whose messages
        go straight between the parameters' own memory."""
        MPI, rank, world = self._MPI, self.rank, self.world_size
        types = [self._blocks(views) if views else None
                 for views in ([self._params[i].reshape(-1)[a:b]
                                for i, a, b in self._pieces_of[r] if i in live]
                               for r in range(world))]
        mine = types[rank]
        sends = [int(mine is not None and r != rank) for r in range(world)]
        receives = [int(t is not None and r != rank) for r, t in enumerate(types)]
        self.comm.Alltoallw(
            [MPI.BOTTOM, (sends, [0] * world), [self._type if mine is None else mine] * world],
            [MPI.BOTTOM, (receives, [0] * world), [self._type if t is None else t for t in types]])
        for t in types:
            if t is not None:
                t.Free()

    # -- state dicts --------------------------------------------------------------

    def _whole_groups(self):
        groups, index = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**self._hyper(group), "params": list(range(index, index + n))})
            if self._keys is not None:  # as the unsharded optimizer records dict params
                groups[-1]["param_names"] = self._keys[index:index + n]
            index += n
        return groups

    def state_dict(self) -> StateDict:
        """This rank's shard of the state, and where it sits.

        ``{"state": {k: <state of piece k>}, "param_groups": <as the unsharded
        optimizer's>, "shard": {"world_size", "rank", "numel", "pieces"}}``,
        where ``pieces[k] = (parameter index, start, stop)``: piece k's state
        covers elements ``start:stop`` of that flattened parameter.
        """
        with self._lock:
            state = self._local.state_dict()["state"] if self._local is not None else {}
            return {"state": state, "param_groups": self._whole_groups(),
                    "shard": {"world_size": self.world_size, "rank": self.rank,
                              "numel": self.numel,
                              "pieces": np.array(self.pieces, np.int64).reshape(-1, 3)}}

    def consolidate_state_dict(self, to: int = 0) -> StateDict | None:
        """Collectively gather the whole state on rank ``to``.

        Returns, on rank ``to``, the state dict the unsharded
        ``optimizer_cls`` would have (``fastopt.save`` writes it; any
        `ShardedOptimizer` or the unsharded optimizer loads it), and None on
        the other ranks.

        Parameters
        ----------
        to : int, default 0
            The rank that receives the whole state.
        """
        shards = self.comm.gather(self.state_dict(), root=to)
        return self._merge(shards) if self.rank == to else None

    def _merge(self, shards):
        """The whole state dict from all the shards of one checkpoint."""
        where = "sharded state dict"
        if not shards or not all(isinstance(s, Mapping) and "shard" in s for s in shards):
            raise TypeError(f"{where}s must all have a 'shard' entry (from state_dict())")
        world = shards[0]["shard"]["world_size"]
        ranks = sorted(int(s["shard"]["rank"]) for s in shards)
        if ranks != list(range(world)) or any(s["shard"]["world_size"] != world for s in shards):
            raise ValueError(f"a checkpoint saved on {world} ranks needs the shards of ranks "
                             f"0..{world - 1}, got ranks {ranks}")
        if any(s["shard"]["numel"] != self.numel for s in shards):
            raise ValueError(f"{where} covers {shards[0]['shard']['numel']} elements, this "
                             f"optimizer's parameters have {self.numel}")
        parts = [[] for _ in self._params]
        for s in shards:
            for k, (i, a, b) in enumerate(np.asarray(s["shard"]["pieces"]).tolist()):
                if not 0 <= i < len(parts):
                    raise ValueError(f"{where} has a piece of unknown parameter {i}")
                parts[i].append((a, b, s["state"].get(k, s["state"].get(str(k)))))
        state = {}
        for i, pieces in enumerate(parts):
            pieces.sort(key=lambda t: t[0])
            what = f"state of {_core.describe(self._name(i))}"
            if [a for a, _, _ in pieces] != [0] + [b for _, b, _ in pieces[:-1]] or \
                    pieces[-1][1] != self._params[i].size:
                raise ValueError(f"{what}: the shards do not cover its elements exactly")
            entries = [e for _, _, e in pieces]
            if all(e is None for e in entries):
                continue
            if any(e is None or set(e) != set(entries[0]) for e in entries):
                raise ValueError(f"{what}: its pieces have different state entries")
            entry = {}
            for key, value in entries[0].items():
                values = [e[key] for e in entries]
                if isinstance(value, np.ndarray) and value.ndim == 1:
                    entry[key] = np.concatenate(values).reshape(self._params[i].shape)
                elif any(not np.array_equal(v, value) for v in values):
                    raise ValueError(f"{what}: its pieces have different {key!r}: {values}")
                else:
                    entry[key] = value
            state[i] = entry
        return {"state": state, "param_groups": [dict(g) for g in shards[0]["param_groups"]]}

    def load_state_dict(self, state_dict: Mapping[str, Any] | list[Mapping[str, Any]]) -> None:
        """Load a whole state dict, this rank's shard, or all shards of a checkpoint.

        ``state_dict`` is one of: a whole (unsharded) state dict, as from
        `consolidate_state_dict` or the unsharded optimizer; the list of all
        ranks' ``state_dict()`` of a checkpoint saved on any number of ranks
        (each rank takes its own part: this re-partitions); or this rank's
        own ``state_dict()`` saved with the same number of ranks. Not
        collective. Everything is checked before anything changes.

        Parameters
        ----------
        state_dict : dict or list of dict
            A whole state dict, all shards of a checkpoint, or this rank's shard.
        """
        with self._lock:
            if isinstance(state_dict, (list, tuple)):
                state_dict = self._merge(list(state_dict))
            if not isinstance(state_dict, Mapping) or "state" not in state_dict or \
                    "param_groups" not in state_dict:
                raise TypeError("state dict must be a dict with 'state' and 'param_groups' "
                                "(or a list of all the shards of a checkpoint)")
            groups, id_map = self._check_groups(state_dict["param_groups"])
            if "shard" in state_dict:
                shard = state_dict["shard"]
                if shard["world_size"] != self.world_size or \
                        np.asarray(shard["pieces"]).tolist() != [list(p) for p in self.pieces]:
                    raise ValueError(
                        f"this shard was saved by rank {shard['rank']} of {shard['world_size']}, "
                        f"this is rank {self.rank} of {self.world_size}: pass the list of all "
                        "the checkpoint's shards (or a consolidated state dict)")
                local = state_dict["state"]  # the local optimizer's layout already
            else:
                local = self._slice(state_dict["state"], id_map)
            if self._local is not None:
                self._local.load_state_dict({"state": local,
                                             "param_groups": self._local_groups(groups)})
            for mine, group in zip(self.param_groups, groups):
                mine.update(group)

    def _check_groups(self, saved):
        """The saved groups' hyperparameters, checked as the optimizer class
        checks them, and saved id -> parameter index."""
        mine = [{**g, "params": arrays} for g, arrays in zip(self.param_groups, self._group_lists)]
        groups, id_map = _optim._loaded_groups(self.optimizer_cls, saved, mine, self._keys)
        return [self._hyper(g) for g in groups], id_map

    def _slice(self, state, id_map):
        """This rank's pieces of a whole state dict's state, checked against
        the whole parameters (so every rank raises alike on a bad one)."""
        if not isinstance(state, Mapping):
            raise TypeError("state dict's 'state' must be a dict")
        names = ("step",) + _core.STATE_NAMES[self.optimizer_cls._algo]
        whole = {}
        for pid, entry in state.items():
            if pid not in id_map:
                raise ValueError(f"state dict has state for unknown parameter id {pid!r}")
            i = id_map[pid]
            what = f"state of {_core.describe(self._name(i))}"
            if not isinstance(entry, Mapping):
                raise TypeError(f"{what} must be a dict")
            for key, value in entry.items():
                if key not in names:
                    raise ValueError(f"{what} has unknown entry {key!r} "
                                     f"(a {self.optimizer_cls.__name__} state has {names})")
                if key != "step" and value is not None:
                    float_array(value, self._params[i].shape, f"{what}, {key!r}")
            whole[i] = entry
        return {k: {key: value if key == "step" or value is None
                    else np.asarray(value).reshape(-1)[a:b]
                    for key, value in whole[i].items()}
                for k, (i, a, b) in enumerate(self.pieces) if i in whole}

    def _local_groups(self, groups):
        out, k = [], 0
        for gi in self._local_group_of:
            n = sum(1 for i, _, _ in self.pieces if self._group_index[i] == gi)
            out.append({**groups[gi], "params": list(range(k, k + n))})
            k += n
        return out

    def __repr__(self):
        return (f"ShardedOptimizer({self.optimizer_cls.__name__}, rank {self.rank} of "
                f"{self.world_size}, elements {self._bounds[self.rank]}:"
                f"{self._bounds[self.rank + 1]} of {self.numel})")

"""Row-sparse gradients: ``fastopt.RowSparse``, checked and coalesced once.

An embedding table's gradient touches a few rows: the rows' indices and
their values stand for the dense gradient that is zero elsewhere (torch's
sparse COO gradient of ``nn.Embedding(sparse=True)``, with one sparse
dimension). ``coalesced`` turns one into what the C core steps: strictly
increasing row indices of its own (a copy, so nothing another thread does to
the caller's array can move a write) and the values of each row summed.
"""
import numpy as np
import numpy.typing as npt

__all__ = ["RowSparse"]


class RowSparse:
    """A row-sparse gradient: ``values[k]`` is the gradient of row ``indices[k]``.

    Parameters
    ----------
    indices : array of int64, shape (nnz,)
        Row indices into the parameter's first axis, each in ``[0, len(p))``
        (negative indices are refused). They may repeat and come in any
        order: the values of a repeated row are summed, as torch's
        ``coalesce()`` does (in the order given, one after the other).
    values : array, shape ``(nnz,) + p.shape[1:]``
        The rows' gradients, of the parameter's dtype. Only read.

    Notes
    -----
    Rows not listed have no gradient: SparseAdam leaves their parameter and
    moments as they are; SGD and Adagrad step the rows present only (the
    dense step there with a zero gradient would change nothing, except for
    the weight decay they refuse). SGD with momentum takes the dense step of
    the gradient it stands for: every row's buffer decays. Each step
    checks the gradient against its parameter before anything is written
    (TypeError for a dtype, ValueError for a shape or an index out of range).

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> table = np.zeros((5, 2), np.float32)
    >>> opt = fastopt.SparseAdam([table], lr=0.1)
    >>> g = fastopt.RowSparse(np.array([3, 1, 3]), np.ones((3, 2), np.float32))
    >>> opt.step([g])
    True
    >>> table[:, 0].round(3).tolist()
    [0.0, -0.1, 0.0, -0.1, 0.0]
    """

    __slots__ = ("indices", "values")

    def __init__(self, indices: npt.ArrayLike, values: npt.ArrayLike) -> None:
        self.indices = np.asarray(indices)
        self.values = np.asarray(values)
        if self.indices.dtype != np.int64:
            if self.indices.dtype.kind not in "iu" and self.indices.size:
                raise TypeError(f"RowSparse indices must be int64, got {self.indices.dtype}")
            self.indices = self.indices.astype(np.int64)  # an empty list, int32 indices, ...
        if self.indices.ndim != 1:
            raise ValueError(f"RowSparse indices must be 1-D, got shape {self.indices.shape}")
        if self.values.ndim < 1 or self.values.shape[0] != self.indices.shape[0]:
            raise ValueError(f"RowSparse values must have shape (len(indices),) + the "
                             f"parameter's shape[1:], got {self.values.shape} for "
                             f"{self.indices.shape[0]} indices")

    @property
    def shape(self) -> tuple[int, ...]:
        """The values' shape (nnz,) + row shape."""
        return self.values.shape

    def __repr__(self) -> str:
        return f"RowSparse(indices={self.indices!r}, values={self.values!r})"


def coalesced(grad, shape, dtype, what):
    """``grad`` (a RowSparse) checked against a parameter of ``shape`` and
    ``dtype``: (indices, values), strictly increasing int64 indices (a new
    array) and C-contiguous values of the parameter's dtype, repeated rows
    summed in the given order."""
    idx, vals = grad.indices, grad.values
    if len(shape) == 0:
        raise ValueError(f"{what} is 0-d: a row-sparse gradient needs a parameter with rows")
    if vals.dtype != dtype:
        raise TypeError(f"{what}: row-sparse values must have dtype {dtype} like its "
                        f"parameter, got {vals.dtype}")
    if vals.shape[1:] != shape[1:]:
        raise ValueError(f"{what}: row-sparse values have shape {vals.shape}, expected "
                         f"({len(idx)},) + {shape[1:]} for a parameter of shape {shape}")
    idx = np.array(idx, np.int64, copy=True)  # ours: checked once, then read by the C core
    if idx.size and (idx.min() < 0 or idx.max() >= shape[0]):
        bad = idx[(idx < 0) | (idx >= shape[0])][0]
        raise ValueError(f"{what}: row index {bad} is out of range for a parameter with "
                         f"{shape[0]} rows (indices must be in [0, {shape[0]}))")
    if idx.size < 2 or bool(np.all(idx[1:] > idx[:-1])):
        return idx, np.ascontiguousarray(vals)
    order = np.argsort(idx, kind="stable")
    idx = idx[order]
    vals = vals[order]
    first = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    out = vals[first].copy()  # each row's first value, then the others added one by one
    count = np.diff(np.r_[first, idx.size])
    for k in range(1, int(count.max())):
        more = count > k
        out[more] += vals[first[more] + k]
    return np.ascontiguousarray(idx[first]), out

"""Type aliases for fastopt's annotations (no runtime role)."""
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

#: A parameter, gradient or state buffer: a float32 or float64 array.
Array: TypeAlias = npt.NDArray[np.floating[Any]]
#: What an optimizer takes: arrays, a dict of named arrays, or param-group dicts.
Params: TypeAlias = Iterable[Any] | Mapping[Any, Any]
#: What ``step`` takes: one gradient (or None) per parameter, or a dict of them
#: (a ``fastopt.RowSparse`` where the optimizer takes row-sparse gradients).
Grads: TypeAlias = Iterable[npt.ArrayLike | None] | Mapping[Any, npt.ArrayLike | None]
#: A state dict: optimizer and scheduler state as plain values and arrays.
StateDict: TypeAlias = dict[str, Any]
#: A learning-rate schedule: ``step -> lr``.
ScheduleFn: TypeAlias = Callable[[int], float]


class HasParamGroups(Protocol):
    """What a scheduler drives: anything with torch-style ``param_groups``."""

    @property
    def param_groups(self) -> list[dict[str, Any]]: ...

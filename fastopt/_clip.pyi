# Types of fastopt._clip (built from _clip.pyx): gradient clipping in C.
from collections.abc import Iterable
from typing import Any

import numpy.typing as npt

def clip_grad_norm_(grads: npt.NDArray[Any] | Iterable[npt.NDArray[Any] | None], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None, *, isa: str | None = None) -> float: ...
def clip_grad_value_(grads: npt.NDArray[Any] | Iterable[npt.NDArray[Any] | None],
                     clip_value: float, foreach: bool | None = None, *,
                     isa: str | None = None) -> None: ...

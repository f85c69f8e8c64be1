# Types of the compiled schedules' public class (fastopt._schedules is built
# from _schedules.pyx); the rest of the module is internal and typed Any.
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

class Schedule:
    @overload
    def __call__(self, step: int | np.integer[Any]) -> float: ...
    @overload
    def __call__(self, step: npt.NDArray[np.integer[Any]] | Sequence[int]) -> npt.NDArray[np.float64]: ...
    def fill(self, start: int, out: npt.NDArray[np.float64]) -> None: ...

def __getattr__(name: str) -> Any: ...

"""fastopt: fast, exact CPU optimizers for NumPy arrays.

Optimizers (``fastopt.SGD``, ``fastopt.Adam``, ...: ``fastopt.optim.__all__``)
with torch.optim's names, defaults, state layout and numbers (and those of
their reference implementation for the ones torch lacks), stepped by a C
core with runtime SIMD dispatch and a thread pool.

Environment variables read at import:
  FASTOPT_SIMD=scalar|sse2|avx2|avx512|neon  force a SIMD path
  FASTOPT_NUM_THREADS=n                      threads per step (default: usable cores)
"""
__version__ = "0.1.0"

import os as _os

try:
    from . import _core
except ImportError as _e:
    # Typically Python started in a source checkout that was installed with
    # `pip install .` (not -e): the checkout's fastopt/ has no compiled core.
    raise ImportError(
        f"fastopt's C extension is not built in {_os.path.dirname(__file__)}: build it in place "
        "(pip install -e . or python setup.py build_ext --inplace), or run Python outside "
        "the source tree") from _e

if _os.environ.get("FASTOPT_SIMD"):
    _core.select_isa(_os.environ["FASTOPT_SIMD"])
if _os.environ.get("FASTOPT_NUM_THREADS"):
    try:
        _threads = int(_os.environ["FASTOPT_NUM_THREADS"])
    except ValueError:
        raise ValueError("FASTOPT_NUM_THREADS must be a positive integer, got "
                         f"{_os.environ['FASTOPT_NUM_THREADS']!r}") from None
    _core.set_num_threads(_threads)

from . import functional, lr_scheduler, schedules, swa_utils  # noqa: E402
from .checkpoint import load, save  # noqa: E402
from ._clip import clip_grad_norm_, clip_grad_value_  # noqa: E402
from ._core import get_num_threads, set_num_threads  # noqa: E402
from ._sparse import RowSparse  # noqa: E402
from . import optim as _optim  # noqa: E402
from .optim import *  # noqa: E402,F401,F403  Optimizer and one class per optimizer of fastopt._spec

__all__ = [
    *_optim.__all__,
    "RowSparse", "functional", "clip_grad_norm_", "clip_grad_value_", "set_num_threads", "get_num_threads",
    "show_config",
    "save", "load", "schedules", "lr_scheduler", "swa_utils",
]


def show_config() -> None:
    """Print the version, the SIMD path in use (and those available) and the thread count."""
    import platform
    import numpy

    print(f"fastopt {__version__}")
    print(f"  simd path:   {_core.active_isa()} (available: {', '.join(_core.isa_names())})")
    print(f"  threads:     {get_num_threads()} (usable cores: {_core.default_num_threads()})")
    print(f"  python:      {platform.python_version()} ({platform.machine()})")
    print(f"  numpy:       {numpy.__version__}")

"""fastopt: fast, exact CPU optimizers for NumPy arrays.

SGD (momentum, Nesterov), Adagrad, RMSprop, Adam (AMSGrad) and AdamW with
torch.optim's names, defaults, state layout and numbers, stepped by a C core
with runtime SIMD dispatch and a thread pool.

Environment variables read at import:
  FASTOPT_SIMD=scalar|sse2|avx2|avx512|neon  force a SIMD path
  FASTOPT_NUM_THREADS=n                      threads per step (default: usable cores)
"""
__version__ = "0.1.0"

import os as _os
import sys as _sys


def _installed_copy():
    """Directory of another fastopt on sys.path whose C extension is built, or None."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    for entry in _sys.path:
        candidate = _os.path.join(_os.path.abspath(entry or "."), "fastopt")
        if candidate != here and _os.path.isdir(candidate) and any(
                name.startswith("_core.") and name.endswith((".so", ".pyd"))
                for name in _os.listdir(candidate)):
            return candidate
    return None


try:
    from . import _core
except ImportError:
    # A source checkout without the built extension shadows the installed
    # package when Python starts in the checkout (`python -m fastopt demo` or
    # `python -m pytest` at the repository root after `pip install .`): take
    # the modules from the installed copy instead.
    _dir = _installed_copy()
    if _dir is None:
        raise ImportError(
            f"fastopt's C extension is not built in {_os.path.dirname(__file__)} and no "
            "installed fastopt was found: install it (pip install .) or build it in place "
            "(python setup.py build_ext --inplace)") from None
    __path__[:] = [_dir]
    from . import _core

if _os.environ.get("FASTOPT_SIMD"):
    _core.select_isa(_os.environ["FASTOPT_SIMD"])
if _os.environ.get("FASTOPT_NUM_THREADS"):
    try:
        _threads = int(_os.environ["FASTOPT_NUM_THREADS"])
    except ValueError:
        raise ValueError("FASTOPT_NUM_THREADS must be a positive integer, got "
                         f"{_os.environ['FASTOPT_NUM_THREADS']!r}") from None
    _core.set_num_threads(_threads)

from . import functional, lr_scheduler, schedules  # noqa: E402
from .checkpoint import load, save  # noqa: E402
from ._core import clip_grad_norm_, get_num_threads, set_num_threads  # noqa: E402
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop  # noqa: E402

__all__ = [
    "Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW",
    "functional", "clip_grad_norm_", "set_num_threads", "get_num_threads", "show_config",
    "save", "load", "schedules", "lr_scheduler",
]


def show_config():
    """Print the version, the SIMD path in use (and those available) and the thread count."""
    import platform
    import numpy

    print(f"fastopt {__version__}")
    print(f"  simd path:   {_core.active_isa()} (available: {', '.join(_core.isa_names())})")
    print(f"  threads:     {get_num_threads()} (usable cores: {_core.default_num_threads()})")
    print(f"  python:      {platform.python_version()} ({platform.machine()})")
    print(f"  numpy:       {numpy.__version__}")

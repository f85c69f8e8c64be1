"""Checks of scalar and array arguments: one helper per idea, used by every module.

Python ints have no bound, so ``float(10**400)`` or a C int64 argument of
``2**63`` raise OverflowError; every public argument that becomes a C double
or int64 goes through these instead, so such values are a ValueError naming
the argument, like any other value out of range.
"""
import numbers
import operator
import sys

import numpy as np

INT64_MIN = -2**63
INT64_MAX = 2**63 - 1

_INT_FITS_DOUBLE = 2**1023  # an int smaller than this in magnitude converts to a float


def shown(value):
    """``value`` for an error message, short even for a huge int."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"{'-' if value < 0 else ''}an int of {value.bit_length()} bits"
    return repr(value)


def as_float(value, name, *, above=None, at_least=None):
    """``value`` (a real number, not a bool) as a float; ValueError past
    float64's range, or unless it is ``> above`` / ``>= at_least``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        v = float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float64, got {shown(value)}") from None
    if above is not None and not v > above:
        raise ValueError(f"{name} must be > {above}, got {value}")
    if at_least is not None and not v >= at_least:
        raise ValueError(f"{name} must be >= {at_least}, got {value}")
    return v


def in_range(value, key, where, low=0.0, high=None, high_open=False):
    """Check a hyperparameter ``key`` (of ``where``, a param group) is a real
    number in [low, high] (or [low, high) when ``high_open``)."""
    # plain floats and ints that fit a double skip the (slow) ABC check: this
    # runs at every step; anything else must be a real number within float64's range
    if type(value) is not float and (
            type(value) is not int or not -_INT_FITS_DOUBLE < value < _INT_FITS_DOUBLE):
        value = as_float(value, f"{where}: {key}")
    if not low <= value or (high is not None and not (value < high if high_open else value <= high)):
        bound = f"[{low}, {high})" if high_open else (f">= {low}" if high is None else f"[{low}, {high}]")
        raise ValueError(f"{where}: invalid {key}: {value} (must be {bound})")


def as_int(value, name, minimum=None):
    """``value`` as an int (bools refused), at least ``minimum``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {shown(v)}")
    return v


def as_int64(value, name, minimum=None):
    """:func:`as_int`, and within int64."""
    v = as_int(value, name, minimum)
    if not INT64_MIN <= v <= INT64_MAX:
        low = "-2**63" if minimum is None else minimum
        raise ValueError(f"{name} must be in [{low}, 2**63 - 1] (an int64), got {shown(v)}")
    return v


def as_int_float64(value, name, minimum=None):
    """:func:`as_int`, and within float64's range: an int of any size that
    is computed with in floats (torch's schedulers take such ints)."""
    v = as_int(value, name, minimum)
    as_float(v, name)
    return v


def is_int(value, minimum):
    """Whether ``value`` is an int (not a bool) >= ``minimum``: for the
    checks that raise torch's own messages."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def as_whole(value, what, low, high):
    """A whole number as an int in [low, high]: an int, a NumPy integer, an
    integral float, or a 0-d int/float array or tensor (torch keeps step
    counts as float tensors); never a bool or a str."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        v = int(value)  # exact, however large
    else:
        try:
            arr = None if isinstance(value, (str, bytes)) else np.asarray(value)
        except Exception:
            arr = None
        if arr is None or arr.shape != () or arr.dtype.kind not in "iuf":
            raise TypeError(f"{what} must be a whole number, got {type(value).__name__}"
                            + ("" if arr is None or arr.shape == () else f" of shape {arr.shape}"))
        x = arr[()]
        if arr.dtype.kind == "f" and not (np.isfinite(x) and x == np.floor(x)):
            raise ValueError(f"{what} must be a whole number, got {value!r}")
        v = int(x)  # exact for every float width
    if not low <= v <= high:
        raise ValueError(f"{what} must be a whole number in [{low}, {high}], got {value!r}")
    return v


def float_array(value, shape, what):
    """``value`` (an array, or anything NumPy makes one of) as a float
    ndarray of ``shape``, without a copy where it already is one."""
    try:
        arr = np.asarray(value)
    except Exception:
        raise TypeError(f"{what} must be an array, got {type(value).__name__}") from None
    if arr.dtype.kind != "f" and arr.dtype.name != "bfloat16":  # ml_dtypes' is kind "V"
        raise TypeError(f"{what} must be a float array, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{what} has shape {arr.shape}, expected {tuple(shape)}")
    return arr


def is_torch_tensor(value):
    """Whether ``value`` is a torch tensor, without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)

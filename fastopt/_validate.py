"""Python numbers as C doubles and int64s, with TypeError/ValueError.

Python ints have no bound, so ``float(10**400)`` or a C int64 argument of
``2**63`` raise OverflowError; every public argument that becomes a C double
or int64 goes through these instead, so such values are a ValueError naming
the argument, like any other value out of range.
"""
import numbers
import operator

INT64_MIN = -2**63
INT64_MAX = 2**63 - 1


def shown(value):
    """``value`` for an error message, short even for a huge int."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"{'-' if value < 0 else ''}an int of {value.bit_length()} bits"
    return repr(value)


def as_float(value, name):
    """``value`` (a real number, not a bool) as a float; ValueError past float64's range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float64, got {shown(value)}") from None


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

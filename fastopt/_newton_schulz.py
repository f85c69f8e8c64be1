"""Muon's stage between its two C passes: the Newton-Schulz iteration.

``prepare(group, shape)`` checks a group's Newton-Schulz hyperparameters and
gives what ``orthogonalize`` needs and the tensor's learning-rate factor; the
engine calls it for every tensor before the first pass writes anything, so a
bad value raises with nothing touched. ``orthogonalize`` then runs torch's
``_zeropower_via_newtonschulz`` in float32 through NumPy's matmul (BLAS):
torch runs it in bfloat16.
"""
import math
import numbers

import numpy as np

ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


def check(group, where):
    """Raise ValueError/TypeError for Newton-Schulz hyperparameters torch
    would refuse (at construction or at its step)."""
    coefficients = group["ns_coefficients"]
    if (not isinstance(coefficients, (tuple, list)) or len(coefficients) != 3
            or not all(isinstance(c, numbers.Real) and not isinstance(c, bool) for c in coefficients)):
        raise ValueError(f"{where}: ns_coefficients must be a tuple of exactly 3 numbers, "
                         f"got {coefficients!r}")
    steps = group["ns_steps"]
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool):
        raise TypeError(f"{where}: ns_steps must be an int, got {type(steps).__name__}")
    if not 0 <= steps < 100:
        raise ValueError(f"{where}: ns_steps must be in [0, 100), got {steps}")
    eps = group["eps"]
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not math.isfinite(eps):
        raise ValueError(f"{where}: eps must be a finite number, got {eps!r}")
    fn = group["adjust_lr_fn"]
    if fn is not None and fn not in ADJUST_LR_FNS:
        raise ValueError(f"{where}: adjust_lr_fn {fn!r} is not supported "
                         f"(one of {ADJUST_LR_FNS})")


def lr_ratio(shape, adjust_lr_fn):
    """torch's _adjust_lr factor for a tensor of this 2-D shape."""
    a, b = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(a, b))
    return math.sqrt(max(1, a / b))


def prepare(group, shape, where):
    """(coefficients, steps, eps) for ``orthogonalize`` and the learning-rate
    factor of a tensor of `shape` in `group`, checked."""
    if len(shape) != 2:
        raise ValueError(f"{where} has shape {tuple(shape)}: Muon only steps 2-D parameters")
    check(group, where)
    a, b, c = (float(x) for x in group["ns_coefficients"])
    return (a, b, c), int(group["ns_steps"]), float(group["eps"]), lr_ratio(shape, group["adjust_lr_fn"])


def orthogonalize(u, coefficients, steps, eps):
    """torch's _zeropower_via_newtonschulz of the 2-D array u, in float32
    (a new array; u is only read)."""
    a, b, c = (np.float32(x) for x in coefficients)
    x = u.astype(np.float32)  # a copy, as torch's .bfloat16()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    norm = np.float32(np.sqrt(np.sum(np.square(x, dtype=np.float32), dtype=np.float32)))
    x = x / max(norm, np.float32(eps))  # torch: norm().clamp(min=eps), in the tensor's dtype
    for _ in range(steps):
        gram = x @ x.T
        update = b * gram + c * (gram @ gram)        # torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = a * x + update @ x                       # torch.addmm(x, update, x, beta=a)
    return x.T if tall else x

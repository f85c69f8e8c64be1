"""Plain NumPy implementations of fastopt's algorithms: the test oracle.

Each function is one update written directly from the formulas in the
torch.optim documentation, element-wise in NumPy, with nothing shared with
the C core. It takes a parameter, its gradient, its state (a dict with
torch's buffer names, empty before the first step), the number of this
update (1 for the first) and the hyperparameters, and returns the updated
parameter and a new state dict. Inputs are never modified.

The arithmetic happens in the parameter's dtype. Scalars are rounded to that
dtype where torch rounds them (hyperparameters passed to a tensor operation),
and the per-step scalars (bias corrections, step sizes) are computed in
double, as torch does, so a float32 run follows torch's float32 operation
order and float64 is plain float64 maths.

Examples
--------
>>> import numpy as np
>>> from fastopt import reference
>>> p, state = reference.adam(np.ones(2), np.full(2, 0.5), {}, 1, lr=0.1)
>>> p
array([0.9, 0.9])
>>> sorted(state)
['exp_avg', 'exp_avg_sq']
"""
import inspect
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _docs
from ._spec import PARAM, SPECS
from ._typing import Array, Grads

# one function per optimizer of fastopt._spec
__all__ = [spec.function for spec in SPECS.values()] + ["lbfgs", "UPDATES", "half_step", "q8_code",
                                                         "q8_bytes", "q8_encode", "q8_decode",
                                                         "q8_step", "ReferenceOptimizer"]

# What the functions' docstrings say of the arguments that are not their
# spec's hyperparameters, and of what they return.
_ARGS = {
    "param": ("ndarray", "The parameter (not modified)."),
    "grad": ("ndarray", "Its gradient."),
    "state": ("dict", "The state, with torch's buffer names; empty before the first step."),
    "step": ("int", "The number of this update, 1 for the first."),
}
_RETURNS = ("(ndarray, dict)", "The updated parameter and the new state.")
_ARGS["lr_max"] = ("float, default -1.0", "The group's largest warmed-up learning rate before this step.")
_ARGS["weight_sum"] = ("float, default 0.0", "The group's sum of averaging weights before this step.")
_ARGS["state_dtype"] = ("dtype, optional", "The 16-bit dtype the state is stored in (None: float32 "
                                           "or the parameter's; see below).")


def _scalar(x, like):
    """x rounded to like's dtype (what torch does with a Python scalar operand)."""
    return like.dtype.type(x)


def _signed(grad, maximize):
    return -grad if maximize else grad.copy()


def _lerp(start, end, weight):
    """torch.lerp: s + w·(e − s), or e − (e − s)·(1 − w) when |w| >= 1/2
    (the form torch switches to, exact at w = 1)."""
    w = _scalar(weight, start)
    if abs(w) < 0.5:
        return start + w * (end - start)
    return end - (end - start) * (_scalar(1, start) - w)


def sgd(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-3,
        momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
        nesterov: bool = False, maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One SGD step.

    For gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇ + λ·θ
        b = g at the first step, else μ·b + (1 − τ)·g
        g = g + μ·b (Nesterov), else b
        θ = θ − γ·g
    """
    del step  # SGD keeps no step count: the momentum buffer's presence marks the first step
    p = param
    g = _signed(grad, maximize)
    state = dict(state)
    if weight_decay != 0:
        g = g + _scalar(weight_decay, p) * p
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = g.copy()
        else:
            buf = buf * _scalar(momentum, p) + _scalar(1 - dampening, p) * g
        state["momentum_buffer"] = buf
        g = g + _scalar(momentum, p) * buf if nesterov else buf
    return p + _scalar(-lr, p) * g, state


def adagrad(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-2,
            lr_decay: float = 0.0, weight_decay: float = 0.0,
            initial_accumulator_value: float = 0.0, eps: float = 1e-10,
            maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One Adagrad step.

    At step t, for gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇ + λ·θ,   γₜ = γ / (1 + (t − 1)·η)
        s = s + g²      (s starts at initial_accumulator_value)
        θ = θ − γₜ·g / (√s + ε)
    """
    p = param
    g = _signed(grad, maximize)
    total = state.get("sum")
    if total is None:
        total = np.full_like(p, initial_accumulator_value)
    if weight_decay != 0:
        g = g + _scalar(weight_decay, p) * p
    clr = lr / (1 + (step - 1) * lr_decay)
    total = total + g * g
    std = np.sqrt(total) + _scalar(eps, p)
    return p + (_scalar(-clr, p) * g) / std, {"sum": total}


def rmsprop(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-2,
            alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
            momentum: float = 0.0, centered: bool = False,
            maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One RMSprop step.

    For gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇ + λ·θ
        v = α·v + (1 − α)·g²
        ḡ = α·ḡ + (1 − α)·g,  d = √(v − ḡ²) + ε (centered), else √v + ε
        b = μ·b + g / d,  θ = θ − γ·b (momentum > 0), else θ = θ − γ·g / d
    """
    del step  # RMSprop's update does not depend on the step number
    p = param
    g = _signed(grad, maximize)
    zeros = np.zeros_like(p)
    if weight_decay != 0:
        g = g + _scalar(weight_decay, p) * p
    square_avg = state.get("square_avg", zeros)
    square_avg = square_avg * _scalar(alpha, p) + _scalar(1 - alpha, p) * g * g
    new = {"square_avg": square_avg}
    if centered:
        grad_avg = _lerp(state.get("grad_avg", zeros), g, 1 - alpha)
        new["grad_avg"] = grad_avg
        avg = np.sqrt(square_avg + (_scalar(-1, p) * grad_avg) * grad_avg)
    else:
        avg = np.sqrt(square_avg)
    avg = avg + _scalar(eps, p)
    if momentum > 0:
        buf = state.get("momentum_buffer", zeros) * _scalar(momentum, p) + g / avg
        new["momentum_buffer"] = buf
        return p + _scalar(-lr, p) * buf, new
    return p + (_scalar(-lr, p) * g) / avg, new


def _adam_moments(param, grad, state, lr, betas, weight_decay, decoupled_weight_decay, maximize):
    """Adam's, RAdam's and NAdam's first half, in torch's order: the weight decay
    (L2 or decoupled), then both moments. Returns (param, grad, exp_avg, exp_avg_sq),
    the gradient with the sign and L2 term applied."""
    beta1, beta2 = betas
    p = param
    g = _signed(grad, maximize)
    zeros = np.zeros_like(p)
    if weight_decay != 0:
        if decoupled_weight_decay:
            p = p * _scalar(1 - lr * weight_decay, p)
        else:
            g = g + _scalar(weight_decay, p) * p
    exp_avg = _lerp(state.get("exp_avg", zeros), g, 1 - beta1)
    exp_avg_sq = state.get("exp_avg_sq", zeros) * _scalar(beta2, p) + _scalar(1 - beta2, p) * g * g
    return p, g, exp_avg, exp_avg_sq


def adam(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-3,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         amsgrad: bool = False, maximize: bool = False,
         decoupled_weight_decay: bool = False) -> tuple[Array, dict[str, Array]]:
    """One Adam (or AMSGrad, or with ``decoupled_weight_decay`` AdamW) step.

    At step t, for gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇ + λ·θ (Adam),   θ = θ·(1 − γ·λ) (AdamW)
        m = β₁·m + (1 − β₁)·g,   v = β₂·v + (1 − β₂)·g²
        v̂ = max(v̂, v) (AMSGrad), else v
        θ = θ − γ / (1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
    """
    beta1, beta2 = betas
    p, _, exp_avg, exp_avg_sq = _adam_moments(param, grad, state, lr, betas, weight_decay,
                                              decoupled_weight_decay, maximize)
    new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    v = exp_avg_sq
    if amsgrad:
        v = np.maximum(state.get("max_exp_avg_sq", np.zeros_like(p)), exp_avg_sq)  # NaN propagates
        new["max_exp_avg_sq"] = v
    denom = np.sqrt(v) / _scalar(bias_correction2_sqrt, p) + _scalar(eps, p)
    return p + (_scalar(-step_size, p) * exp_avg) / denom, new


def adamw(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-3,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
          amsgrad: bool = False, maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One AdamW step: :func:`adam` with decoupled weight decay."""
    return adam(param, grad, state, step, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)


def adamax(param: Array, grad: Array, state: Mapping[str, Array], step: int, *,
           lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
           weight_decay: float = 0.0, maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One Adamax step.

    At step t, for gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇ + λ·θ
        m = β₁·m + (1 − β₁)·g,   u = max(β₂·u, |g| + ε)
        θ = θ − γ / (1 − β₁ᵗ) · m / u
    """
    beta1, beta2 = betas
    p = param
    g = _signed(grad, maximize)
    zeros = np.zeros_like(p)
    if weight_decay != 0:
        g = g + _scalar(weight_decay, p) * p
    exp_avg = _lerp(state.get("exp_avg", zeros), g, 1 - beta1)
    # NaN propagates from either side, as torch.maximum
    exp_inf = np.maximum(state.get("exp_inf", zeros) * _scalar(beta2, p), np.abs(g) + _scalar(eps, p))
    clr = lr / (1 - beta1**step)
    return p + (_scalar(-clr, p) * exp_avg) / exp_inf, {"exp_avg": exp_avg, "exp_inf": exp_inf}


def adadelta(param: Array, grad: Array, state: Mapping[str, Array], step: int, *,
             lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0,
             maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One Adadelta step.

    For gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇ + λ·θ
        v = ρ·v + (1 − ρ)·g²
        δ = √(a + ε) / √(v + ε) · g
        a = ρ·a + (1 − ρ)·δ²
        θ = θ − γ·δ
    """
    del step  # Adadelta's update does not depend on the step number
    p = param
    g = _signed(grad, maximize)
    zeros = np.zeros_like(p)
    if weight_decay != 0:
        g = g + _scalar(weight_decay, p) * p
    square_avg = state.get("square_avg", zeros) * _scalar(rho, p) + _scalar(1 - rho, p) * g * g
    acc_delta = state.get("acc_delta", zeros)
    delta = np.sqrt(acc_delta + _scalar(eps, p)) / np.sqrt(square_avg + _scalar(eps, p)) * g
    acc_delta = acc_delta * _scalar(rho, p) + _scalar(1 - rho, p) * delta * delta
    return p + _scalar(-lr, p) * delta, {"square_avg": square_avg, "acc_delta": acc_delta}


def radam(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-3,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
          decoupled_weight_decay: bool = False,
          maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One RAdam step.

    For gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇ + λ·θ (L2),   θ = θ·(1 − γ·λ) (decoupled)
        m = β₁·m + (1 − β₁)·g,   v = β₂·v + (1 − β₂)·g²
        ρ∞ = 2 / (1 − β₂) − 1,   ρₜ = ρ∞ − 2t·β₂ᵗ / (1 − β₂ᵗ)
        ρₜ > 5:  θ = θ − m / (1 − β₁ᵗ) · γ · √(1 − β₂ᵗ) / (√v + ε) · r,
                 r = √((ρₜ − 4)(ρₜ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρₜ))
        else:    θ = θ − m / (1 − β₁ᵗ) · γ
    """
    beta1, beta2 = betas
    p, _, exp_avg, exp_avg_sq = _adam_moments(param, grad, state, lr, betas, weight_decay,
                                              decoupled_weight_decay, maximize)
    new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    update = exp_avg / _scalar(bias_correction1, p) * _scalar(lr, p)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * beta2**step / bias_correction2
    if rho_t > 5:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))**0.5
        adaptive = _scalar(1, p) / (np.sqrt(exp_avg_sq) + _scalar(eps, p))
        update = update * (adaptive * _scalar(bias_correction2**0.5, p)) * _scalar(rect, p)
    return p - update, new


def nadam(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 2e-3,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
          momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False,
          maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One NAdam step.

    For gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇ + λ·θ (L2),   θ = θ·(1 − γ·λ) (decoupled)
        μₜ = β₁·(1 − ½·0.96^(t·ψ)),   Π = Π·μₜ (in Π's dtype, float32 at first)
        m = β₁·m + (1 − β₁)·g,   v = β₂·v + (1 − β₂)·g²,   d = √(v / (1 − β₂ᵗ)) + ε
        θ = θ − γ·(1 − μₜ)/(1 − Π) · g/d − γ·μₜ₊₁/(1 − Π·μₜ₊₁) · m/d
    """
    beta1, beta2 = betas
    p, g, exp_avg, exp_avg_sq = _adam_moments(param, grad, state, lr, betas, weight_decay,
                                              decoupled_weight_decay, maximize)
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    product = np.asarray(state.get("mu_product", np.float32(1.0)))
    product = product * product.dtype.type(mu)
    denom = np.sqrt(exp_avg_sq / _scalar(1 - beta2**step, p)) + _scalar(eps, p)
    pi = float(product)
    p = p + _scalar(-lr * (1.0 - mu) / (1.0 - pi), p) * g / denom
    p = p + _scalar(-lr * mu_next / (1.0 - pi * mu_next), p) * exp_avg / denom
    return p, {"mu_product": product, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def asgd(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-2,
         lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0.0,
         maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One ASGD step.

    For gradient ∇ and parameter θ (± is − with ``maximize``), with η and μ
    from the state (γ and 1 before the first step, float32)::

        g = ±∇ + ω·θ,   θ = θ·(1 − λ·η) − η·g
        ā = ā + (θ − ā)·μ  (ā = θ while μ = 1)
        η = γ / (1 + λ·γ·t)^α,   μ = 1 / max(1, t − t₀)   (rounded to float32)
    """
    p = param
    g = _signed(grad, maximize)
    if weight_decay != 0:
        g = g + _scalar(weight_decay, p) * p
    eta = np.asarray(state.get("eta", np.float32(lr)))
    mu = np.asarray(state.get("mu", np.float32(1.0)))
    e = float(eta)
    p = p * _scalar(1 - lambd * e, p)
    p = p + _scalar(-e, p) * g
    ax = state.get("ax", np.zeros_like(p))
    ax = ax + (p - ax) * _scalar(float(mu), p) if float(mu) != 1 else p.copy()
    new_eta = eta.dtype.type(np.float32(lr / ((1 + lambd * lr * step) ** alpha)))
    new_mu = mu.dtype.type(np.float32(1 / max(1, step - t0)))
    return p, {"eta": np.asarray(new_eta), "mu": np.asarray(new_mu), "ax": ax}


def _torch_sign(x):
    """torch.sign: 1, -1, or 0 for zeros and NaN (np.sign keeps NaN)."""
    one = np.ones_like(x)
    return np.where(x > 0, one, np.where(x < 0, -one, np.zeros_like(x)))


def rprop(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-2,
          etas: tuple[float, float] = (0.5, 1.2), step_sizes: tuple[float, float] = (1e-6, 50),
          maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One Rprop step.

    For gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇
        f = η₊ where g·g₋ > 0,  η₋ where g·g₋ < 0,  else 1
        s = clamp(s·f, s_min, s_max)          (s starts at lr)
        g = 0 where f == η₋
        θ = θ − sign(g)·s,   g₋ = g            (g₋ starts at 0)
    """
    del step  # the state's presence marks the first step
    etaminus, etaplus = (_scalar(e, param) for e in etas)
    p = param
    g = _signed(grad, maximize)
    prev = state.get("prev", np.zeros_like(p))
    step_size = state.get("step_size", np.full_like(p, lr))
    sign = _torch_sign(g * prev)
    factor = np.where(sign > 0, etaplus, np.where(sign < 0, etaminus, _scalar(1, p)))
    low, high = (_scalar(b, p) for b in step_sizes)
    step_size = step_size * factor
    step_size = np.minimum(np.maximum(step_size, low), high)  # torch's clamp: NaN propagates
    g = np.where(factor == etaminus, np.zeros_like(g), g)
    return p + (_scalar(-1, p) * _torch_sign(g)) * step_size, {"prev": g, "step_size": step_size}


def lion(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-4,
         betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0,
         maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One Lion step, in lion-pytorch's order of operations.

    For gradient ∇ and parameter θ (± is − with ``maximize``)::

        g = ±∇
        θ = θ·(1 − γ·λ)
        θ = θ − γ·sign(β₁·m + (1 − β₁)·g)     (sign(0) = sign(NaN) = 0)
        m = β₂·m + (1 − β₂)·g
    """
    beta1, beta2 = betas
    g = _signed(grad, maximize)
    m = state.get("exp_avg", np.zeros_like(param))
    p = param * _scalar(1 - lr * weight_decay, param)
    c = m * _scalar(beta1, p) + _scalar(1 - beta1, p) * g
    sign = (c > 0).astype(p.dtype) - (c < 0).astype(p.dtype)  # torch.sign: 0 for 0 and NaN
    p = p + _scalar(-lr, p) * sign
    return p, {"exp_avg": m * _scalar(beta2, p) + _scalar(1 - beta2, p) * g}


def adabelief(param: Array, grad: Array, state: Mapping[str, Array], step: int, *,
              lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-16,
              eps_root: float = 1e-16,
              weight_decay: float = 0.0) -> tuple[Array, dict[str, Array]]:
    """One AdaBelief step, in optax.adabelief's order of operations.

    For gradient g and parameter θ::

        m = (1 − β₁)·g + β₁·m
        s = (1 − β₂)·(g − m)² + β₂·s + ε_root
        u = (m / (1 − β₁ᵗ)) / (√(s / (1 − β₂ᵗ)) + ε)
        θ = θ − γ·(u + λ·θ)
    """
    beta1, beta2 = betas
    p, g = param, np.array(grad, copy=True)
    zeros = np.zeros_like(p)
    m = _scalar(1 - beta1, p) * g + _scalar(beta1, p) * state.get("exp_avg", zeros)
    e = g - m
    s = _scalar(1 - beta2, p) * (e * e) + _scalar(beta2, p) * state.get("exp_avg_var", zeros)
    s = s + _scalar(eps_root, p)
    u = (m / _scalar(1 - beta1**step, p)) / (np.sqrt(s / _scalar(1 - beta2**step, p)) + _scalar(eps, p))
    if weight_decay != 0:
        u = u + _scalar(weight_decay, p) * p
    return p + _scalar(-lr, p) * u, {"exp_avg": m, "exp_avg_var": s}


def adopt(param: Array, grad: Array, state: Mapping[str, Array], step: int, *,
          lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.9999), eps: float = 1e-6,
          weight_decay: float = 0.0) -> tuple[Array, dict[str, Array]]:
    """One ADOPT step, in optax.contrib.adopt's order of operations (clipping on).

    For gradient g and parameter θ::

        u = clip(g / max(√v, ε), −c, c),   c = (t − 1)^¼
        v = (1 − β₂)·g² + β₂·v
        m = (1 − β₁)·u + β₁·m
        θ = θ − γ·(m + λ·θ)

    with β₁ = 1 and β₂ = 0 at the first step.
    """
    beta1, beta2 = betas if step > 1 else (1.0, 0.0)
    p, g = param, np.array(grad, copy=True)
    zeros = np.zeros_like(p)
    v = state.get("exp_avg_sq", zeros)
    c = _scalar(float(step - 1) ** 0.25, p)
    u = np.minimum(np.maximum(g / np.maximum(np.sqrt(v), _scalar(eps, p)), -c), c)
    one, b1, b2 = _scalar(1, p), _scalar(beta1, p), _scalar(beta2, p)  # 1 - b in p's dtype, as optax
    v = (one - b2) * (g * g) + b2 * v
    m = (one - b1) * u + b1 * state.get("exp_avg", zeros)
    update = m + _scalar(weight_decay, p) * p if weight_decay != 0 else m
    return p + _scalar(-lr, p) * update, {"exp_avg": m, "exp_avg_sq": v}


def adan(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-3,
         betas: tuple[float, float, float] = (0.98, 0.92, 0.99), weight_decay: float = 0.0,
         weight_decouple: bool = False, max_grad_norm: float = 0.0, eps: float = 1e-8,
         maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One Adan step, in pytorch-optimizer's order of operations.

    For gradient ∇ and parameter θ (± is − with ``maximize``)::

        d = g + q   (q: the negated previous gradient; −g at the first step)
        m = lerp(m, g, 1 − β₁),   n = lerp(n, d, 1 − β₂)
        d = d·β₂ + g,   v = v·β₃ + (1 − β₃)·d·d
        D = √v / √(1 − β₃ᵗ) + ε
        θ = θ·(1 − γλ) (weight_decouple);  θ = θ − γ/(1 − β₁ᵗ)·m/D − γβ₂/(1 − β₂ᵗ)·n/D
        θ = θ / (1 + γλ) (otherwise);  q = −g
    """
    if max_grad_norm != 0:
        raise ValueError("max_grad_norm > 0 is not supported")
    beta1, beta2, beta3 = betas
    p, g = param, _signed(grad, maximize)
    zeros = np.zeros_like(p)
    # pytorch-optimizer starts previous_grad as -grad, before it applies maximize
    q = -np.asarray(grad) if step == 1 else state["previous_grad"]
    d = q + g
    m = _lerp(state.get("exp_avg", zeros), g, 1 - beta1)
    n = _lerp(state.get("exp_avg_diff", zeros), d, 1 - beta2)
    d = d * _scalar(beta2, p) + g
    v = state.get("exp_avg_sq", zeros) * _scalar(beta3, p) + _scalar(1 - beta3, p) * d * d
    den = np.sqrt(v) / _scalar((1 - beta3**step) ** 0.5, p) + _scalar(eps, p)
    if weight_decay != 0 and weight_decouple:
        p = p * _scalar(1 - lr * weight_decay, p)
    p = p + (_scalar(-lr / (1 - beta1**step), p) * m) / den
    p = p + (_scalar(-lr * beta2 / (1 - beta2**step), p) * n) / den
    if weight_decay != 0 and not weight_decouple:
        p = p / _scalar(1 + lr * weight_decay, p)
    return p, {"exp_avg": m, "exp_avg_sq": v, "exp_avg_diff": n, "previous_grad": -g}


def _trust_ratio(p, u, coefficient=1.0, eps=0.0):
    """optax.scale_by_trust_ratio's factor: coefficient·‖p‖ / (‖u‖ + eps), 1 when
    either norm is 0; the norms in double (np.linalg.norm), the rest in p's dtype."""
    pn = _scalar(np.linalg.norm(p.astype(np.float64).ravel()), p)
    un = _scalar(np.linalg.norm(u.astype(np.float64).ravel()), p)
    if pn == 0 or un == 0:
        return _scalar(1, p)
    return _scalar(coefficient, p) * pn / (un + _scalar(eps, p))


def lamb(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-3,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
         maximize: bool = False, state_dtype: Any = None) -> tuple[Array, dict[str, Array]]:
    """One LAMB step, in optax.lamb's order of operations.

    For gradient g (−∇ with ``maximize``) and parameter θ::

        m = (1 − β₁)·g + β₁·m,   v = (1 − β₂)·g² + β₂·v
        u = (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε) + λ·θ
        θ = θ − γ·(u·r),   r = ‖θ‖ / ‖u‖ (1 when either is 0)

    With a 16-bit ``state_dtype`` (the dtype m and v are stored in), u is
    computed from m and v as stored, rounded to it: fastopt's second pass
    over the tensor, after the norms, reads them back.
    """
    beta1, beta2 = betas
    p, g = param, _signed(np.asarray(grad), maximize)
    zeros = np.zeros_like(p)
    m = _scalar(1 - beta1, p) * g + _scalar(beta1, p) * state.get("exp_avg", zeros)
    v = _scalar(1 - beta2, p) * (g * g) + _scalar(beta2, p) * state.get("exp_avg_sq", zeros)
    if state_dtype is not None:
        m, v = m.astype(state_dtype).astype(p.dtype), v.astype(state_dtype).astype(p.dtype)
    u = (m / _scalar(1 - beta1**step, p)) / (np.sqrt(v / _scalar(1 - beta2**step, p))
                                             + _scalar(eps, p))
    if weight_decay != 0:
        u = u + _scalar(weight_decay, p) * p
    u = _scalar(-lr, p) * (u * _trust_ratio(p, u))
    return p + u, {"exp_avg": m, "exp_avg_sq": v}


def lars(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1.0,
         momentum: float = 0.9, weight_decay: float = 0.0, trust_coefficient: float = 0.001,
         eps: float = 0.0, nesterov: bool = False) -> tuple[Array, dict[str, Array]]:
    """One LARS step, in optax.lars's order of operations.

    For gradient g and parameter θ::

        u = g + λ·θ
        u = −γ·(u·r),   r = η·‖θ‖ / (‖u‖ + ε) (1 when either norm is 0)
        b = u + μ·b
        θ = θ + b   (Nesterov: θ + u + μ·b)
    """
    p, g = param, np.array(grad, copy=True)
    u = g + _scalar(weight_decay, p) * p if weight_decay != 0 else g
    u = _scalar(-lr, p) * (u * _trust_ratio(p, u, trust_coefficient, eps))
    mu = _scalar(momentum, p)
    b = u + mu * state.get("momentum_buffer", np.zeros_like(p))
    return p + (u + mu * b if nesterov else b), {"momentum_buffer": b}


def schedule_free_group(step: int, lr: float, warmup_steps: int, r: float, weight_lr_power: float,
                        lr_max: float, weight_sum: float) -> tuple[float, float, float, float]:
    """Step `step`'s group arithmetic of the schedulefree package: from the
    group's ``lr_max`` and ``weight_sum`` before it, the warmed-up learning
    rate, the averaging weight ckp1, and ``lr_max`` and ``weight_sum`` after."""
    sched = step / warmup_steps if step - 1 < warmup_steps else 1.0
    lr = lr * sched
    lr_max = max(lr, lr_max)
    weight = (step ** r) * (lr_max ** weight_lr_power)
    weight_sum = weight_sum + weight
    ckp1 = weight / weight_sum if weight_sum != 0 else 0.0
    return lr, ckp1, lr_max, weight_sum


def _schedule_free_y(y, z, u, lr, ckp1, beta):
    """The y and z updates both Schedule-Free optimizers share (u: the update direction)."""
    y_new = _lerp(y, z, ckp1) + _scalar(lr * (beta * (1 - ckp1) - 1), y) * u
    return y_new, z - _scalar(lr, y) * u


def schedulefreeadamw(param: Array, grad: Array, state: Mapping[str, Array], step: int, *,
                      lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999),
                      eps: float = 1e-8, weight_decay: float = 0, warmup_steps: int = 0,
                      r: float = 0.0, weight_lr_power: float = 2.0, lr_max: float = -1.0,
                      weight_sum: float = 0.0) -> tuple[Array, dict[str, Array]]:
    """One Schedule-Free AdamW step, in the schedulefree package's order of operations.

    For gradient g at the parameter y (``step`` is the group's step count k
    after this step; ``lr_max`` and ``weight_sum`` the group's before it)::

        γₖ, cₖ = schedule_free_group(...)
        v = β₂·v + (1 − β₂)·g·g
        u = g / (√(v / (1 − β₂ᵏ)) + ε) + λ·y
        y = lerp(y, z, cₖ) + γₖ·(β₁·(1 − cₖ) − 1)·u,   z = z − γₖ·u

    z starts as a copy of the parameter.
    """
    beta1, beta2 = betas
    y, g = param, np.asarray(grad)
    lr, ckp1, _, _ = schedule_free_group(step, lr, warmup_steps, r, weight_lr_power, lr_max,
                                         weight_sum)
    z = state.get("z", y)
    v = state.get("exp_avg_sq", np.zeros_like(y)) * _scalar(beta2, y) + _scalar(1 - beta2, y) * g * g
    u = g / (np.sqrt(v / _scalar(1 - beta2 ** step, y)) + _scalar(eps, y))
    if weight_decay != 0:
        u = u + _scalar(weight_decay, y) * y
    y, z = _schedule_free_y(y, z, u, lr, ckp1, beta1)
    return y, {"z": z, "exp_avg_sq": v}


def schedulefreesgd(param: Array, grad: Array, state: Mapping[str, Array], step: int, *,
                    lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0,
                    warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0,
                    lr_max: float = -1.0, weight_sum: float = 0.0) -> tuple[Array, dict[str, Array]]:
    """One Schedule-Free SGD step, in the schedulefree package's order of operations.

    As ``schedulefreeadamw`` with u = g + λ·y and μ = ``momentum`` for β₁.
    """
    y, g = param, np.asarray(grad)
    lr, ckp1, _, _ = schedule_free_group(step, lr, warmup_steps, r, weight_lr_power, lr_max,
                                         weight_sum)
    u = g + _scalar(weight_decay, y) * y if weight_decay != 0 else g
    y, z = _schedule_free_y(y, state.get("z", y), u, lr, ckp1, momentum)
    return y, {"z": z}


def schedule_free_switch(param: Array, z: Array, beta: float, train: bool) -> Array:
    """The package's train() (to y) or eval() (to x) of one parameter."""
    return _lerp(param, z, 1 - beta if train else 1 - 1 / beta)


def _newton_schulz_f32(u, coefficients, steps, eps):
    """torch's _zeropower_via_newtonschulz written out, in float32 (torch: bfloat16)."""
    a, b, c = (np.float32(x) for x in coefficients)
    x = np.array(u, np.float32)
    if x.shape[0] > x.shape[1]:
        return _newton_schulz_f32(x.T, coefficients, steps, eps).T
    x = x / np.maximum(np.linalg.norm(x).astype(np.float32), np.float32(eps))
    for _ in range(steps):
        a_ = x @ x.T
        x = a * x + (b * a_ + c * (a_ @ a_)) @ x
    return x


def muon(param: Array, grad: Array, state: Mapping[str, Array], step: int, *, lr: float = 1e-3,
         weight_decay: float = 0.1, momentum: float = 0.95, nesterov: bool = True,
         ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
         eps: float = 1e-7, ns_steps: int = 5,
         adjust_lr_fn: str | None = None) -> tuple[Array, dict[str, Array]]:
    """One Muon step, in torch.optim.Muon's order of operations, for a 2-D
    parameter of shape (A, B); the Newton-Schulz iteration in float32.

    For gradient g and parameter θ::

        b = lerp(b, g, 1 − μ)
        u = lerp(g, b, μ)   (Nesterov; else u = b)
        O = NSₖ(u / max(‖u‖, ε)),  X ← a·X + (b·XXᵀ + c·(XXᵀ)²)·X   (on uᵀ when A > B)
        θ = θ·(1 − γ·λ) − γ·r·O,   r = √max(1, A/B), or 0.2·√max(A, B) (match_rms_adamw)
    """
    p, g = param, np.asarray(grad)
    buf = _lerp(state.get("momentum_buffer", np.zeros_like(p)), g, _scalar(1 - momentum, p))
    u = _lerp(g, buf, _scalar(momentum, p)) if nesterov else buf
    rows, cols = p.shape
    ratio = 0.2 * np.sqrt(max(rows, cols)) if adjust_lr_fn == "match_rms_adamw" else \
        np.sqrt(max(1, rows / cols))
    o = _newton_schulz_f32(u, ns_coefficients, ns_steps, eps).astype(p.dtype)
    p = p * _scalar(1 - lr * weight_decay, p)
    return p + _scalar(-(lr * ratio), p) * o, {"momentum_buffer": buf}


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """torch.optim.lbfgs._cubic_interpolate: the minimiser of the cubic
    through (x1, f1, g1) and (x2, f2, g2), clamped to bounds."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """torch.optim.lbfgs._strong_wolfe: bracket, then zoom; returns
    (loss, flat gradient, step, evaluations)."""
    d_norm = np.abs(d).max()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = np.dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = np.dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = np.dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new, gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


def lbfgs(params: list[Array], closure: Any, state: Mapping[str, Any], *, lr: float = 1,
          max_iter: int = 20, max_eval: int | None = None, tolerance_grad: float = 1e-7,
          tolerance_change: float = 1e-9, history_size: int = 100,
          line_search_fn: str | None = None) -> tuple[list[Array], float, dict[str, Any]]:
    """One torch.optim.LBFGS step (up to max_iter iterations), line by line
    as torch's, on the flat vector of all parameters.

    L-BFGS's two-loop recursion turns the gradient g into the direction
    d = −H·g from the last history_size pairs (s, y) (steps and gradient
    changes, kept when yᵀs > 1e-10; H₀ = yᵀs / yᵀy); the step moves θ by t·d
    (t = min(1, 1/‖g‖₁)·γ at the very first iteration, γ after, or the strong
    Wolfe line search's t).

    Parameters
    ----------
    params : list of ndarray
        The parameters (not modified), float32 or float64, one dtype.
    closure : callable
        ``closure(params)`` returns ``(loss, grads)`` at the given parameters.
    state : dict
        The state, with torch's names; empty before the first step.
    {hyperparameters}

    Returns
    -------
    (list of ndarray, float, dict)
        The new parameters, the first loss (at the given parameters) and the new state.
    """
    if max_eval is None:
        max_eval = max_iter * 5 // 4
    shapes = [np.shape(p) for p in params]
    sizes = [int(np.prod(s)) for s in shapes]
    dt = np.asarray(params[0]).dtype.type

    def unflat(x):
        return [c.reshape(s) for c, s in zip(np.split(x, np.cumsum(sizes)[:-1]), shapes)]

    def evaluate(x):
        loss, grads = closure(unflat(x))
        return float(loss), np.concatenate([np.ravel(g) for g in grads])

    state = {k: (list(v) if isinstance(v, list) else v) for k, v in state.items()}
    state.setdefault("func_evals", 0)
    state.setdefault("n_iter", 0)
    x = np.concatenate([np.ravel(p) for p in params])
    loss, flat_grad = evaluate(x)
    orig_loss = loss
    current_evals = 1
    state["func_evals"] += 1
    if np.abs(flat_grad).max() <= tolerance_grad:
        return unflat(x), orig_loss, state

    d, t = state.get("d"), state.get("t")
    old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
    H_diag, prev_flat_grad, prev_loss = (state.get("H_diag"), state.get("prev_flat_grad"),
                                         state.get("prev_loss"))
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        state["n_iter"] += 1
        if state["n_iter"] == 1:
            d = -flat_grad
            old_dirs, old_stps, ro = [], [], []
            H_diag = 1
        else:
            y = flat_grad - prev_flat_grad
            s = d * dt(t)
            ys = np.dot(y, s)
            if ys > 1e-10:
                if len(old_dirs) == history_size:
                    old_dirs.pop(0)
                    old_stps.pop(0)
                    ro.pop(0)
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(1.0 / ys)
                H_diag = ys / np.dot(y, y)
            num_old = len(old_dirs)
            if "al" not in state:
                state["al"] = [None] * history_size
            al = state["al"] = list(state["al"])
            q = -flat_grad
            for i in range(num_old - 1, -1, -1):
                al[i] = np.dot(old_stps[i], q) * ro[i]
                q = q + dt(-al[i]) * old_dirs[i]
            d = r = q * dt(H_diag)
            for i in range(num_old):
                be_i = np.dot(old_dirs[i], r) * ro[i]
                r = r + dt(al[i] - be_i) * old_stps[i]
            d = r
        prev_flat_grad = flat_grad
        prev_loss = loss
        if state["n_iter"] == 1:
            t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
        else:
            t = lr
        gtd = np.dot(flat_grad, d)
        if gtd > -tolerance_change:
            break
        ls_func_evals = 0
        if line_search_fn is not None:
            if line_search_fn != "strong_wolfe":
                raise RuntimeError("only 'strong_wolfe' is supported")
            loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                lambda x0, t_, d_: evaluate(x0 + dt(t_) * d_), x, t, d, loss, flat_grad, gtd,
                max_ls=max_eval - current_evals)
            x = x + dt(t) * d
            opt_cond = np.abs(flat_grad).max() <= tolerance_grad
        else:
            x = x + dt(t) * d
            if n_iter != max_iter:
                loss, flat_grad = evaluate(x)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                ls_func_evals = 1
        current_evals += ls_func_evals
        state["func_evals"] += ls_func_evals
        if n_iter == max_iter:
            break
        if current_evals >= max_eval:
            break
        if opt_cond:
            break
        if np.abs(d * dt(t)).max() <= tolerance_change:
            break
        if abs(loss - prev_loss) < tolerance_change:
            break
    state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                 prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
    return unflat(x), orig_loss, state


if lbfgs.__doc__ is not None:  # python -OO
    lbfgs.__doc__ = lbfgs.__doc__.replace("    {hyperparameters}\n", _docs.LBFGS_PARAMETERS.rstrip(" "))


def _rows(grad, param):
    """A gradient as (rows, values): a row-sparse one (``indices``, ``values``)
    with its repeated rows summed in the order given, its rows sorted; a
    dense one as ``...`` (every element) and itself."""
    if not hasattr(grad, "indices"):
        return Ellipsis, np.asarray(grad)  # every element
    sums = {}
    for r, v in zip(np.asarray(grad.indices).tolist(), np.asarray(grad.values)):
        sums[r] = v.copy() if r not in sums else sums[r] + v
    rows = sorted(sums)
    values = np.array([sums[r] for r in rows], param.dtype).reshape((len(rows),) + param.shape[1:])
    return np.array(rows, np.int64), values


def sparse_adam(param: Array, grad: Any, state: Mapping[str, Array], step: int, *,
                lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One SparseAdam step, in torch.optim.SparseAdam's order of operations.

    ``grad`` is dense, or row-sparse (``indices`` and ``values``, as
    ``fastopt.RowSparse``). Only the rows present change: with g the row's
    gradient (negated with ``maximize``) and m, v its moments::

        dm = (g − m)·(1 − β₁),   dv = (g² − v)·(1 − β₂)
        m = m + dm,   v = v + dv
        θ = θ − γ·√(1 − β₂ᵗ) / (1 − β₁ᵗ) · m / (√v + ε)
    """
    beta1, beta2 = betas
    p = np.array(param)
    m = np.array(state.get("exp_avg", np.zeros_like(p)))
    v = np.array(state.get("exp_avg_sq", np.zeros_like(p)))
    rows, g = _rows(grad, p)
    g = _signed(g, maximize)
    m0, v0 = m[rows].copy(), v[rows].copy()  # (a view for a dense gradient)
    dm = (g - m0) * _scalar(1 - beta1, p)
    dv = (g * g - v0) * _scalar(1 - beta2, p)
    m[rows] = m0 + dm
    v[rows] = v0 + dv
    step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    p[rows] = p[rows] + _scalar(-step_size, p) * ((dm + m0) / (np.sqrt(dv + v0) + _scalar(eps, p)))
    return p, {"exp_avg": m, "exp_avg_sq": v}


def _mean_sq(g, axis):
    """torch's ``norm(g, dim=axis, keepdim=True).square_().div_(g.size(axis))``:
    the norm (summed in double) rounded to g's dtype, then squared and divided in it."""
    norm = np.sqrt(np.sum(g.astype(np.float64) ** 2, axis=axis, keepdims=True)).astype(g.dtype)
    return norm * norm / _scalar(g.shape[axis], g)


def _norm(x):
    """‖x‖ as a Python float (torch's ``x.norm(2).item()``), summed in double."""
    return float(np.sqrt(np.sum(np.asarray(x, np.float64) ** 2)))


def adafactor(param: Array, grad: Array, state: Mapping[str, Array], step: int, *,
              lr: float = 1e-2, beta2_decay: float = -0.8,
              eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0,
              weight_decay: float = 0.0, maximize: bool = False) -> tuple[Array, dict[str, Array]]:
    """One Adafactor step, in torch.optim.Adafactor's (single-tensor) order of operations.

    At step t, for gradient g (−∇ with ``maximize``) and parameter θ; ε₁ None
    is the machine epsilon of θ's dtype; a parameter of two or more
    dimensions keeps the factors R (``row_var``, shape θ.shape[:-1] + (1,))
    and C (``col_var``, shape θ.shape[:-2] + (1, θ.shape[-1])) of its last
    two axes, batched over the leading ones; a 0-d or 1-d one keeps
    ``variance`` V, of its shape::

        β̂ = tᵗᵃᵘ (τ = beta2_decay),   ρ = min(γ, 1/√t)
        α = max(ε₂, RMS(θ))·ρ
        θ = θ·(1 − γ·λ)
        R = lerp(R, mean(g², axis −1), β̂),   C = lerp(C, mean(g², axis −2), β̂)
        V̂ = (R @ C) / max(mean(R, axis −2), ε₁)      (else V = lerp(V, g², β̂), V̂ = V)
        u = g / √max(V̂, ε₁²)
        θ = θ − α / max(1, RMS(u)/d)·u

    Parameters
    ----------
    param : ndarray
        The parameter (not modified), float32 or float64, of any shape.
    grad : ndarray
        Its gradient.
    state : dict
        ``row_var`` and ``col_var`` (two or more dimensions) or ``variance``;
        empty before the first step.
    step : int
        The number of this update, 1 for the first.
    lr : float, default 1e-2
        Learning rate γ: the largest relative step size ρ, and the factor of
        the weight decay.
    beta2_decay : float, default -0.8
        Power τ of the step in the averages' weight β̂ = tᵗᵃᵘ, <= 0.
    eps : (float or None, float), default (None, 1e-3)
        ε₁, the floor of the variance estimate (squared) and of the row
        factors' mean (None: the dtype's machine epsilon), and ε₂, the floor
        of the parameter's RMS in the step size.
    d : float, default 1.0
        Clipping threshold d of the update's RMS, >= 1.
    weight_decay : float, default 0.0
        Decoupled weight decay λ (θ is multiplied by (1 − γ·λ) at each step).
    maximize : bool, default False
        Ascend the gradient (maximise the objective) instead of descending.

    Returns
    -------
    (ndarray, dict)
        The updated parameter and the new state.
    """
    p, g = param, _signed(np.asarray(grad), maximize)
    eps1, eps2 = eps
    if eps1 is None:
        eps1 = float(np.finfo(p.dtype).eps)
    weight = float(step) ** beta2_decay
    rho = min(lr, 1 / float(step) ** 0.5)
    alpha = max(eps2, _norm(p) / p.size ** 0.5) * rho
    if weight_decay != 0:
        p = p * _scalar(1 - lr * weight_decay, p)
    if g.ndim > 1:
        row_sq, col_sq = _mean_sq(g, -1), _mean_sq(g, -2)
        row = _lerp(state.get("row_var", np.zeros_like(row_sq)), row_sq, weight)
        col = _lerp(state.get("col_var", np.zeros_like(col_sq)), col_sq, weight)
        row_mean = np.maximum(np.mean(row, axis=-2, keepdims=True), _scalar(eps1, p))
        var = (row * col) / row_mean  # R @ C: an outer product (inner dimension 1)
        new_state = {"row_var": row, "col_var": col}
    else:
        var = _lerp(state.get("variance", np.zeros_like(p)), g * g, weight)
        new_state = {"variance": var}
    u = (_scalar(1, p) / np.sqrt(np.maximum(var, _scalar(eps1 * eps1, p)))) * g  # rsqrt, then · g
    denom = max(1.0, _norm(u) / (u.size ** 0.5 * d))
    return p + _scalar(-alpha / denom, p) * u, new_state


for _spec in SPECS.values():
    _docs.document(globals()[_spec.function], _spec, _ARGS, returns=_RETURNS)

#: The update function of each optimizer class, by class name.
UPDATES = {name: globals()[spec.function] for name, spec in SPECS.items()}


def _is_16bit(a):
    """float16, or bfloat16 (ml_dtypes' dtype, recognised by name)."""
    return a.dtype.itemsize == 2 and (a.dtype.kind == "f" or a.dtype.name == "bfloat16")


def half_step(update: Any, param: Array, grad: Array, state: Mapping[str, Array], step: int,
              state_dtype: Any = None, **hyper: Any) -> tuple[Array, dict[str, Array]]:
    """One step of ``update`` (a function above) for a float16 or bfloat16
    parameter with float32 state, as fastopt computes it::

        θ16 ← round(update_f32(float32(θ16), float32(g16), state_f32))

    the float32 step on the exactly widened values, its parameter rounded to
    nearest even into the parameter's dtype; the state stays float32. With
    a 16-bit ``state_dtype`` (fastopt's ``state_dtype=``, for a float32
    parameter too) the state buffers are widened the same way for the step
    and the new ones rounded to it; the step itself uses the values before
    that rounding.

    Parameters
    ----------
    update : callable
        One of the functions above (``adam``, ``sgd``, ...).
    param : ndarray
        The float16 or bfloat16 parameter (not modified).
    grad : ndarray
        Its gradient, of the parameter's dtype.
    state : dict
        The state (float32, or of ``state_dtype``), with torch's buffer names;
        empty before the first step.
    step : int
        The number of this update, 1 for the first.
    state_dtype : dtype, optional
        The 16-bit dtype the state buffers are stored in; None: float32.
    **hyper : keyword arguments
        The hyperparameters ``update`` takes.

    Returns
    -------
    (ndarray, dict)
        The updated parameter (of param's dtype) and the new state.
    """
    def buffer(v):  # a state buffer (not a 0-d scalar state such as NAdam's mu_product)
        return isinstance(v, np.ndarray) and v.ndim > 0 and _is_16bit(v)
    wide = {k: v.astype(np.float32) if buffer(v) else v for k, v in state.items()}
    if state_dtype is not None and "state_dtype" in inspect.signature(update).parameters:
        hyper = {**hyper, "state_dtype": state_dtype}  # it reads its state back (lamb)
    p, new = update(param.astype(np.float32), np.asarray(grad).astype(np.float32), wide, step,
                    **hyper)
    with np.errstate(over="ignore"):  # past the 16-bit range: rounds to inf, as fastopt
        if state_dtype is not None:
            new = {k: v.astype(state_dtype) if isinstance(v, np.ndarray) and v.ndim > 0 else v
                   for k, v in new.items()}
        return p.astype(param.dtype), new


Q_BLOCK = 256  # values per block of 8-bit state


def _linspace01(k: int) -> Array:
    """torch.linspace(0.1, 1, k) in float32: each half from its end, one
    rounding of the exact start + step·j (a fused multiply-add)."""
    f = np.float32
    step = float((f(1.0) - f(0.1)) / f(k - 1))
    out = [float(f(0.1)) + step * j if j < k // 2 else 1.0 - step * (k - 1 - j) for j in range(k)]
    return np.array(out, np.float64).astype(np.float32)


def q8_code(signed: bool) -> Array:
    """bitsandbytes' dynamic map (create_dynamic_map(signed), Dettmers et al.
    2022): the 256 float32 values an 8-bit code stands for, increasing. For
    each decade 10^(i−6), i = 0..6, the midpoints of a linspace of 2^i + 1
    (signed) or 2^(i+1) + 1 points over [0.1, 1], times it (and negated,
    signed); then 0 and 1.

    Parameters
    ----------
    signed : bool
        The map of buffers of any sign (True) or of non-negative ones.

    Returns
    -------
    ndarray
        256 float32 values, increasing.
    """
    values = []
    for i in range(7):
        b = _linspace01(2**i + 1 if signed else 2 ** (i + 1) + 1)
        means = (b[:-1] + b[1:]) / np.float32(2)
        values += list(np.float32(10.0 ** (i - 6)) * means)
        if signed:
            values += list(np.float32(-(10.0 ** (i - 6))) * means)
    values += [np.float32(0), np.float32(1)]
    return np.sort(np.array(values, np.float32))


def q8_bytes(n: int) -> int:
    """The bytes of an 8-bit buffer of n values: n codes, zeros to a multiple
    of 64, then one float32 scale per block of Q_BLOCK values.

    Parameters
    ----------
    n : int
        The number of values.

    Returns
    -------
    int
        The buffer's size in bytes.
    """
    return -(-n // 64) * 64 + 4 * -(-n // Q_BLOCK)


def q8_encode(values: Array, signed: bool) -> Array:
    """Float32 values (read flat) as an 8-bit buffer: per block of Q_BLOCK, its
    scale the largest magnitude (NaN, codes those of 0, when one is not
    finite), each code the number of the map's midpoints (rounded to
    float32) below value / scale (0 / 0 read as 0).

    Parameters
    ----------
    values : ndarray
        The values (converted to float32, read flat).
    signed : bool
        Which map (``q8_code``).

    Returns
    -------
    ndarray
        The buffer, uint8, of ``q8_bytes(values.size)`` bytes.
    """
    x = np.asarray(values, np.float32).reshape(-1)
    n = x.size
    code = q8_code(signed)
    mid = ((code[:-1].astype(np.float64) + code[1:]) / 2).astype(np.float32)
    out = np.zeros(q8_bytes(n), np.uint8)
    scales = out[-(-n // 64) * 64:].view(np.float32)
    for j, start in enumerate(range(0, n, Q_BLOCK)):
        block = x[start:start + Q_BLOCK]
        if not np.isfinite(block).all():
            scales[j] = np.nan
            out[start:start + block.size] = np.flatnonzero(code == 0)[0]
            continue
        scales[j] = most = np.abs(block).max()
        q = block / most if most > 0 else np.zeros_like(block)
        out[start:start + block.size] = np.searchsorted(mid, q, side="left")
    return out


def q8_decode(buf: Array, n: int, signed: bool) -> Array:
    """The n float32 values of an 8-bit buffer: the code's map value times its
    block's scale.

    Parameters
    ----------
    buf : ndarray
        The buffer (its bytes).
    n : int
        The number of values it holds.
    signed : bool
        Which map (``q8_code``).

    Returns
    -------
    ndarray
        n float32 values.
    """
    raw = np.asarray(buf).reshape(-1).view(np.uint8)
    scales = raw[-(-n // 64) * 64:].view(np.float32)
    return q8_code(signed)[raw[:n]] * np.repeat(scales, Q_BLOCK)[:n]


def q8_step(update: Any, spec: Any, param: Array, grad: Array, state: Mapping[str, Array], step: int,
            **hyper: Any) -> tuple[Array, dict[str, Array]]:
    """One step of ``update`` with 8-bit state (fastopt's ``state_dtype="int8"``):
    the buffers decoded (``q8_decode``; the unsigned map for the spec's
    non-negative ones), the float32 step on them and the widened parameter
    and gradient, the new buffers encoded (``q8_encode``) and the parameter
    rounded to its dtype. The step uses the values before encoding.

    Parameters
    ----------
    update : callable
        One of the functions above (``adam``, ``sgd``, ...).
    spec : fastopt._spec.Spec
        Its optimizer's spec row (which buffers are non-negative).
    param : ndarray
        The parameter (float32, float16 or bfloat16; not modified).
    grad : ndarray
        Its gradient, of the parameter's dtype.
    state : dict
        The 8-bit buffers (``q8_encode``), with torch's buffer names, and any
        0-d state; empty before the first step.
    step : int
        The number of this update, 1 for the first.
    **hyper : keyword arguments
        The hyperparameters ``update`` takes.

    Returns
    -------
    (ndarray, dict)
        The updated parameter (of param's dtype) and the new state.
    """
    nonneg = {b.name: b.nonneg for b in spec.state}
    wide = {k: q8_decode(v, param.size, not nonneg[k]).reshape(param.shape) if k in nonneg else v
            for k, v in state.items()}
    p, new = update(param.astype(np.float32), np.asarray(grad).astype(np.float32), wide, step, **hyper)
    new = {k: q8_encode(v, not nonneg[k]) if k in nonneg else v for k, v in new.items()}
    with np.errstate(over="ignore"):
        return p.astype(param.dtype), new


class ReferenceOptimizer:
    """A slow stateful optimizer over copies of the given arrays, stepping
    with the functions above: the same parameter groups, defaults, per-
    parameter step counts and None-skips as :class:`fastopt.Optimizer`.

    The current parameters are in ``params`` and their state in ``state``
    (by index). A float16 or bfloat16 parameter steps as :func:`half_step`,
    and so does any parameter with a 16-bit ``state_dtype`` (fastopt's
    keyword: ``"param"``, ``"bfloat16"``, or None for float32 state); with
    ``"int8"`` every parameter steps as :func:`q8_step`.

    A Schedule-Free optimizer keeps the package's group state (``k``,
    ``lr_max``, ``weight_sum``, ``scheduled_lr``, ``train_mode``) in
    ``groups``, one dict per parameter group: every step is the group's step
    ``k`` (a parameter skipped with None keeps its y and z while the group
    counts on), and only in train mode (``train()``; ``eval()`` moves the
    parameters to the average x, as :func:`schedule_free_switch`).

    Parameters
    ----------
    name : str
        The optimizer class's name: a key of ``UPDATES`` ("SGD", "Adam", ...).
    params : list of arrays or list of group dicts
        The initial parameters (copied), or groups with their own
        hyperparameters.
    defaults : dict
        The hyperparameters of groups that do not set them.
    state_dtype : {None, "param", "float32", "bfloat16", "int8"}, optional
        As fastopt's keyword (``"bfloat16"`` needs ml_dtypes).
    """

    def __init__(self, name: str, params: list[Any], defaults: Mapping[str, Any],
                 state_dtype: Any = None) -> None:
        self.update = UPDATES[name]
        self.state_dtype = state_dtype
        self.spec = SPECS[name]
        groups = list(params)
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.hyper, self.params, self.state, self.steps = [], [], [], []
        self.groups: list[dict[str, Any]] = []  # per group: its group state (Schedule-Free)
        self.group_hyper: list[dict[str, Any]] = []
        self.group_of: list[int] = []
        for gi, group in enumerate(groups):
            hyper = {**defaults, **{k: v for k, v in group.items() if k != "params"}}
            self.groups.append({h.name: h.default for h in self.spec.group_state})
            self.group_hyper.append({**self.spec.defaults, **hyper})
            for p in group["params"]:
                self.hyper.append(hyper)
                self.params.append(np.array(p, copy=True))
                self.state.append({})
                self.steps.append(0)
                self.group_of.append(gi)

    def _one(self, i: int, grad: Array, step: int, **extra: Any) -> None:
        args = (self.params[i], np.asarray(grad), self.state[i], step)
        hyper = {**self.hyper[i], **extra}
        p = self.params[i]
        if self.state_dtype == "int8":
            if not self.state[i]:  # a buffer with an initial value holds it encoded (Adagrad's sum)
                for b in self.spec.state:
                    if self.spec.eager and isinstance(b.init, str):
                        value = {**self.spec.defaults, **hyper}[b.init]
                        self.state[i][b.name] = q8_encode(np.full(p.size, value, np.float32), not b.nonneg)
            self.params[i], self.state[i] = q8_step(self.update, self.spec, p, args[1], self.state[i],
                                                    step, **hyper)
            return
        state_dtype = {"param": p.dtype if _is_16bit(p) else None, "float32": None, None: None}.get(
            self.state_dtype)
        if self.state_dtype == "bfloat16":
            import ml_dtypes
            state_dtype = np.dtype(ml_dtypes.bfloat16)
        if state_dtype is not None and not self.state[i]:
            # 16-bit state starts as its initial value rounded, where a step reads that value
            for b in self.spec.state:
                if b.init == PARAM or (self.spec.eager and isinstance(b.init, str)):
                    value = {**self.spec.defaults, **hyper}[b.init] if b.init != PARAM else None
                    start = p if b.init == PARAM else np.full(p.shape, value, np.float32)
                    self.state[i][b.name] = start.astype(state_dtype)
        if _is_16bit(p) or state_dtype is not None:
            self.params[i], self.state[i] = half_step(self.update, *args, state_dtype=state_dtype,
                                                      **hyper)
        else:
            self.params[i], self.state[i] = self.update(*args, **hyper)

    def step(self, grads: Grads) -> None:
        """Update every parameter from its gradient.

        Parameters
        ----------
        grads : list of arrays
            One gradient per parameter, in group order; None skips one.
        """
        if self.spec.group_state:
            self._schedule_free_step(grads)
            return
        for i, grad in enumerate(grads):
            if grad is None:
                continue
            self.steps[i] += 1
            self._one(i, grad, self.steps[i])

    def _schedule_free_step(self, grads: Grads) -> None:
        if not self.groups[0]["train_mode"]:
            raise RuntimeError("Optimizer was not in train mode when step is called")
        before = [dict(g) for g in self.groups]
        for g, hyper in zip(self.groups, self.group_hyper):
            g["k"] += 1
            g["scheduled_lr"], _, g["lr_max"], g["weight_sum"] = schedule_free_group(
                g["k"], hyper["lr"], hyper["warmup_steps"], hyper["r"], hyper["weight_lr_power"],
                g["lr_max"], g["weight_sum"])
        for i, grad in enumerate(grads):
            if grad is None:
                continue
            self.steps[i] += 1
            b = before[self.group_of[i]]
            self._one(i, grad, b["k"] + 1, lr_max=b["lr_max"], weight_sum=b["weight_sum"])

    def train(self) -> None:
        """Move every parameter to y (Schedule-Free), as the package's train()."""
        self._switch(True)

    def eval(self) -> None:
        """Move every parameter to x, the average (Schedule-Free), as the package's eval()."""
        self._switch(False)

    def _switch(self, train: bool) -> None:
        if not self.spec.group_state:
            raise TypeError(f"{self.spec.name} has no train()/eval()")
        for gi, g in enumerate(self.groups):
            if g["train_mode"] == train:
                continue
            for i in range(len(self.params)):
                if self.group_of[i] != gi or "z" not in self.state[i]:
                    continue  # as the package: only parameters with a z (a step done) move
                hyper = self.group_hyper[gi]
                beta = hyper["betas"][0] if "betas" in hyper else hyper["momentum"]
                p = self.params[i]
                wide = p.astype(np.float32) if _is_16bit(p) else p  # 16-bit: in float32, rounded once
                z = self.state[i]["z"]
                self.params[i] = schedule_free_switch(wide, z.astype(np.float32) if _is_16bit(z) else z,
                                                      beta, train).astype(p.dtype)
            g["train_mode"] = train

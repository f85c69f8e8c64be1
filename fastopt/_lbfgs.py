"""torch.optim.LBFGS's step, line by line as torch's, over NumPy arrays: one
place for fastopt.LBFGS and fastopt.torch.LBFGS.

L-BFGS is not an elementwise optimizer of the spec (fastopt._spec): it works
on one flat vector over all parameters, keeps one history for all of them
and evaluates the model several times per step. Its flat-vector arithmetic
(dot products, sums and maxima of absolute values, axpys, the parameter
update) runs in C (fastopt._flat), with sums in a fixed order; the
elementwise negations, differences and scalings are NumPy's, and the
scalars are rounded to the parameters' dtype where torch keeps them in 0-d
tensors.

A step is all or nothing: when the closure raises, returns something wrong
or a non-finite loss or gradient, the parameters are put back as they were
before the step and the state is not changed (the state is built anew and
returned, never edited in place).
"""
import math

import numpy as np

from . import _flat
from ._validate import as_float, as_int

DEFAULTS = {"lr": 1, "max_iter": 20, "max_eval": None, "tolerance_grad": 1e-7,
            "tolerance_change": 1e-9, "history_size": 100, "line_search_fn": None}
# torch's state, in the first parameter's state ("al" appears at the second iteration)
STATE = ("func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
         "prev_flat_grad", "prev_loss", "al")


def hypers(group):
    """The group's hyperparameters checked, as a dict (max_eval None: max_iter * 5 // 4)."""
    lr = as_float(group["lr"], "lr")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {group['lr']}")
    h = {"lr": lr, "max_iter": as_int(group["max_iter"], "max_iter", 0),
         "tolerance_grad": as_float(group["tolerance_grad"], "tolerance_grad"),
         "tolerance_change": as_float(group["tolerance_change"], "tolerance_change"),
         "history_size": as_int(group["history_size"], "history_size", 1),
         "line_search_fn": group["line_search_fn"]}
    max_eval = group["max_eval"]
    h["max_eval"] = h["max_iter"] * 5 // 4 if max_eval is None else as_int(max_eval, "max_eval")
    if h["line_search_fn"] not in (None, "strong_wolfe"):
        raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {h['line_search_fn']!r}")
    if h["line_search_fn"] and h["max_eval"] < 1:  # torch's line search would have no bracket
        raise ValueError(f"max_eval must be >= 1 with line_search_fn='strong_wolfe', got {max_eval}")
    return h


def check_params(params):
    """One dtype, float32 or float64, for the one flat vector."""
    if not params:
        raise ValueError("optimizer got an empty parameter list")
    dtype = params[0].dtype
    if dtype not in (np.float32, np.float64) or any(p.dtype != dtype for p in params):
        raise TypeError("LBFGS: every parameter must have the same dtype, float32 or float64, "
                        f"got {sorted({str(p.dtype) for p in params})}")


def checked_loss(loss, evals):
    """The closure's loss as a float; ValueError when it is not finite."""
    try:
        v = float(loss)
    except (TypeError, ValueError):
        raise TypeError(f"LBFGS: the closure's loss must be a real number, got "
                        f"{type(loss).__name__}") from None
    if not math.isfinite(v):
        raise ValueError(f"LBFGS: the closure returned a non-finite loss ({v}) at evaluation "
                         f"{evals} of this step; the parameters and state are as before it")
    return v


def checked_grad(flat, evals):
    if _flat.count_nonfinite(flat):
        raise ValueError(f"LBFGS: the gradient holds NaN or infinity at evaluation {evals} of "
                         "this step; the parameters and state are as before it")
    return flat


class _Step:
    """One step: params (float arrays, updated in place), evaluate(count) (the
    closure at the current parameters: (loss object, float loss, fresh flat
    gradient)), state (read only)."""

    def __init__(self, params, evaluate):
        self.params, self.evaluate = params, evaluate
        self.dt = params[0].dtype.type
        self.evals = 0

    def dot(self, a, b):
        return self.dt(_flat.dot(a, b))

    def call(self):
        self.evals += 1
        return self.evaluate(self.evals)

    def directional(self, x, t, d):
        """Loss and flat gradient at x + t * d (torch's _directional_evaluate)."""
        _flat.add_(self.params, t, d)
        _, loss, g = self.call()
        for p, v in zip(self.params, x):
            np.copyto(p, v)
        return loss, g

    def cubic_interpolate(self, x1, f1, g1, x2, f2, g2, bounds=None):
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

    def strong_wolfe(self, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                     max_ls=25):
        """torch's _strong_wolfe (g's are fresh arrays, never written: no clones)."""
        d_norm = self.dt(_flat.maxabs(d))
        f_new, g_new = self.directional(x, t, d)
        ls_func_evals = 1
        gtd_new = self.dot(g_new, d)
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
            t = self.cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                       bounds=(min_step, max_step))
            t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
            f_new, g_new = self.directional(x, t, d)
            ls_func_evals += 1
            gtd_new = self.dot(g_new, d)
            ls_iter += 1
        if ls_iter == max_ls:
            bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

        insuf_progress = False
        low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
        while not done and ls_iter < max_ls:
            if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
                break
            t = self.cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
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
            f_new, g_new = self.directional(x, t, d)
            ls_func_evals += 1
            gtd_new = self.dot(g_new, d)
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
                    bracket_g[high_pos] = bracket_g[low_pos]
                    bracket_gtd[high_pos] = bracket_gtd[low_pos]
                bracket[low_pos], bracket_f[low_pos] = t, f_new
                bracket_g[low_pos], bracket_gtd[low_pos] = g_new, gtd_new
        return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals

    def run(self, state, h):
        """torch's LBFGS.step: returns (first loss object, new state)."""
        dt, dot = self.dt, self.dot
        state = {k: (list(v) if isinstance(v, list) else v) for k, v in state.items()}
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        tolerance_grad, tolerance_change = h["tolerance_grad"], h["tolerance_change"]
        max_iter, max_eval, lr = h["max_iter"], h["max_eval"], h["lr"]

        orig_loss, loss, flat_grad = self.call()
        current_evals = 1
        state["func_evals"] += 1
        if dt(_flat.maxabs(flat_grad)) <= tolerance_grad:
            return orig_loss, state

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
                ys = dot(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == h["history_size"]:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / dot(y, y)
                num_old = len(old_dirs)
                al = list(state.get("al") or ())
                al += [None] * (max(h["history_size"], num_old) - len(al))
                state["al"] = al
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = dot(old_stps[i], q) * ro[i]
                    _flat.axpy(q, -al[i], old_dirs[i])
                d = r = q * dt(H_diag)
                for i in range(num_old):
                    be_i = dot(old_dirs[i], r) * ro[i]
                    _flat.axpy(r, al[i] - be_i, old_stps[i])
            prev_flat_grad = flat_grad
            prev_loss = loss
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / dt(_flat.sumabs(flat_grad))) * lr
            else:
                t = lr
            gtd = dot(flat_grad, d)
            if gtd > -tolerance_change:
                break
            ls_func_evals = 0
            if h["line_search_fn"] is not None:
                x_init = [p.copy() for p in self.params]
                loss, flat_grad, t, ls_func_evals = self.strong_wolfe(
                    x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
                _flat.add_(self.params, t, d)
                opt_cond = dt(_flat.maxabs(flat_grad)) <= tolerance_grad
            else:
                _flat.add_(self.params, t, d)
                if n_iter != max_iter:
                    _, loss, flat_grad = self.call()
                    opt_cond = dt(_flat.maxabs(flat_grad)) <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            # max |d * t| as torch's d.mul(t).abs().max(): rounding is monotonic
            if dt(_flat.maxabs(d)) * abs(dt(t)) <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss, state


def step(params, evaluate, state, group):
    """One LBFGS step over params (float32/float64 ndarrays of one dtype,
    updated in place), all or nothing; returns (first loss object, new state)."""
    h = hypers(group)
    before = [p.copy() for p in params]
    try:
        return _Step(params, evaluate).run(state, h)
    except BaseException:
        for p, v in zip(params, before):
            np.copyto(p, v)
        raise

"""What each optimizer is, written once: every layer reads it from here.

One row (``Spec``) per optimizer class: the C algorithm that steps it (a name
in ``FO_ALGOS``, csrc/fastopt.h), its hyperparameters (name, default, range
rule, the ``fo_hyper`` fields the C core reads, a line for the docs), its
state buffers (torch's name, C slot, initial value, when it exists) and its
step-count rules. ``fastopt.Optimizer``, ``fastopt.torch``,
``fastopt.functional``, ``fastopt._core`` and the tests derive what they do
per optimizer from these rows; the thin classes only repeat the signatures
and docstrings users read (a test checks their defaults against these).
"""
import math
from typing import Callable, NamedTuple, Optional, Tuple, Union

__all__ = ["Hyper", "Buffer", "Spec", "SPECS", "FIRST_GRAD", "c_fields"]

# Range rules: (low, high, high_open) for _validate-style number checks;
# FLAG for booleans (not range-checked, as torch does not check them).
NONNEG = (0.0, None, False)
REAL = (-math.inf, math.inf, False)
UNIT = (0.0, 1.0, True)   # [0, 1), per element of a pair such as betas
FLAG = None


class Hyper(NamedTuple):
    name: str                 # the param-group key (torch's name)
    default: object
    rule: Optional[tuple]     # NONNEG, REAL, UNIT (each element of a pair) or FLAG
    c: Tuple[str, ...]        # the fo_hyper field(s) it fills; two for a pair; none if C never reads it
    doc: str


FIRST_GRAD = "the first gradient"  # the initial value of SGD's momentum buffer


class Buffer(NamedTuple):
    name: str                              # torch's state key
    slot: int                              # the C state slot, 0-3
    init: Union[float, str]                # a number, a hyperparameter's name, or FIRST_GRAD
    when: Optional[Callable[[dict], bool]] = None  # exists when when(group); None: always

    def initial(self, group):
        """The value a new buffer holds (FIRST_GRAD buffers are overwritten by the first step)."""
        if self.init == FIRST_GRAD:
            return 0.0
        return group[self.init] if isinstance(self.init, str) else self.init

    def used(self, group):
        return self.when is None or bool(self.when(group))


class Spec(NamedTuple):
    name: str                    # the class name in fastopt, fastopt.torch and torch.optim
    algo: str                    # the C algorithm (FO_ALGOS)
    hypers: Tuple[Hyper, ...]    # in signature order
    state: Tuple[Buffer, ...]    # in C slot order
    step: bool                   # the state has a "step" count (torch's SGD has none)
    eager: bool                  # state exists from construction (torch's Adagrad), else from the first step
    check: Optional[Callable[[dict, str], None]] = None  # a rule across hyperparameters
    reference: str = "torch.optim"  # the implementation whose names, defaults and numbers it has

    @property
    def defaults(self):
        return {h.name: h.default for h in self.hypers}

    @property
    def state_names(self):
        return tuple(b.name for b in self.state)

    def slots(self, group):
        """Which of the four C slots (fo_item.state) the group's hyperparameters use."""
        used = [False] * 4
        for b in self.state:
            used[b.slot] = b.used(group)
        return tuple(used)


def _nesterov(group, where):
    if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
        raise ValueError(f"{where}: Nesterov momentum requires a momentum and zero dampening")


def _adan_clipping(group, where):
    if group["max_grad_norm"] != 0:
        raise ValueError(f"{where}: max_grad_norm > 0 (Adan's global gradient-norm clipping) is "
                         "not supported; clip the gradients first (fastopt.clip_grad_norm_)")


_LR = "learning rate"
_WD = "L2 penalty added to the gradient"
_MAX = "maximize the objective (step along the gradient)"
_DECOUPLED = "decoupled weight decay (param *= 1 - lr * weight_decay)"
_DECOUPLED_ADD = "decoupled weight decay (lr * weight_decay * param joins the update, as optax.adamw)"
_BETAS = "decay rates of the gradient's running average and of its square's"


def _adam(name, weight_decay, decoupled):
    return Spec(name, "adam", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"), _BETAS),
        Hyper("eps", 1e-8, NONNEG, ("eps",), "added to the denominator"),
        Hyper("weight_decay", weight_decay, NONNEG, ("weight_decay",),
              "decoupled weight decay" if decoupled else _WD),
        Hyper("amsgrad", False, FLAG, ("amsgrad",), "use the running maximum of exp_avg_sq"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
        Hyper("decoupled_weight_decay", decoupled, FLAG, ("decoupled_weight_decay",),
              "AdamW's weight decay (param *= 1 - lr * weight_decay)"),
    ), (
        Buffer("exp_avg", 0, 0.0),
        Buffer("exp_avg_sq", 1, 0.0),
        Buffer("max_exp_avg_sq", 2, 0.0, lambda g: g["amsgrad"]),
    ), step=True, eager=False)


_ROWS = [
    Spec("SGD", "sgd", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("momentum", 0, NONNEG, ("momentum",), "momentum factor"),
        Hyper("dampening", 0, REAL, ("dampening",), "dampening of the momentum"),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), _WD),
        Hyper("nesterov", False, FLAG, ("nesterov",), "Nesterov momentum"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("momentum_buffer", 0, FIRST_GRAD, lambda g: g["momentum"] != 0),
    ), step=False, eager=False, check=_nesterov),
    Spec("Adagrad", "adagrad", (
        Hyper("lr", 1e-2, NONNEG, ("lr",), _LR),
        Hyper("lr_decay", 0, NONNEG, ("lr_decay",), "learning-rate decay per step"),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), _WD),
        Hyper("initial_accumulator_value", 0, NONNEG, (), "the initial value of sum"),
        Hyper("eps", 1e-10, NONNEG, ("eps",), "added to the denominator"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("sum", 0, "initial_accumulator_value"),
    ), step=True, eager=True),
    Spec("RMSprop", "rmsprop", (
        Hyper("lr", 1e-2, NONNEG, ("lr",), _LR),
        Hyper("alpha", 0.99, NONNEG, ("alpha",), "smoothing constant"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), "added to the denominator"),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), _WD),
        Hyper("momentum", 0, NONNEG, ("momentum",), "momentum factor"),
        Hyper("centered", False, FLAG, ("centered",), "normalise by the gradient's variance"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("square_avg", 0, 0.0),
        Buffer("momentum_buffer", 1, 0.0, lambda g: g["momentum"] > 0),
        Buffer("grad_avg", 2, 0.0, lambda g: g["centered"]),
    ), step=True, eager=False),
    _adam("Adam", 0, False),
    _adam("AdamW", 1e-2, True),
    Spec("Adamax", "adamax", (
        Hyper("lr", 2e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "decay rates of the gradient's running average and of its infinity norm"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), "added to |g| in the infinity norm"),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), _WD),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0),
        Buffer("exp_inf", 1, 0.0),
    ), step=True, eager=False),
    # Not in torch.optim: the names, defaults and numbers of another reference.
    Spec("Lion", "lion", (
        Hyper("lr", 1e-4, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.99), UNIT, ("beta1", "beta2"),
              "interpolation factor of the update's sign, and decay rate of the momentum"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",), _DECOUPLED),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0),
    ), step=False, eager=False, reference="lion-pytorch"),
    Spec("AdaBelief", "adabelief", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "decay rates of the gradient's running average and of its variance around it"),
        Hyper("eps", 1e-16, NONNEG, ("eps",), "added to the denominator"),
        Hyper("eps_root", 1e-16, NONNEG, ("eps_root",), "added to the variance at each step"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",), _DECOUPLED_ADD),
    ), (
        Buffer("exp_avg", 0, 0.0),
        Buffer("exp_avg_var", 1, 0.0),
    ), step=True, eager=False, reference="optax"),
    Spec("ADOPT", "adopt", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.9999), UNIT, ("beta1", "beta2"), _BETAS),
        Hyper("eps", 1e-6, NONNEG, ("eps",), "the denominator's floor"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",), _DECOUPLED_ADD),
    ), (
        Buffer("exp_avg", 0, 0.0),
        Buffer("exp_avg_sq", 1, 0.0),
    ), step=True, eager=False, reference="optax.contrib"),
    Spec("Adan", "adan", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.98, 0.92, 0.99), UNIT, ("beta1", "beta2", "beta3"),
              "decay rates of the gradient's, the gradient difference's and the second moment's averages"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",),
              "weight decay: param /= 1 + lr * weight_decay after the update"),
        Hyper("weight_decouple", False, FLAG, ("weight_decouple",),
              "decay as param *= 1 - lr * weight_decay before the update instead"),
        Hyper("max_grad_norm", 0.0, NONNEG, (), "global gradient-norm clipping; only 0 (off)"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), "added to the denominator"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0),
        Buffer("exp_avg_sq", 1, 0.0),
        Buffer("exp_avg_diff", 2, 0.0),
        Buffer("previous_grad", 3, 0.0),  # the negated gradient; the first step sets it
    ), step=True, eager=False, check=_adan_clipping, reference="pytorch-optimizer"),
]

SPECS = {spec.name: spec for spec in _ROWS}


def c_fields(algo):
    """Per algorithm, the (group key, index in the value or None, length of the
    value, fo_hyper field, default) of every field the C core reads, besides lr
    (which every group has)."""
    spec = next(s for s in _ROWS if s.algo == algo)
    out = []
    for h in spec.hypers:
        if h.name == "lr":
            continue
        for k, field in enumerate(h.c):
            out.append((h.name, k if len(h.c) > 1 else None, len(h.c), field, h.default))
    return out

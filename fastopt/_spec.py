"""What each optimizer is, written once: every layer reads it from here.

One row (``Spec``) per optimizer class: the C algorithm that steps it (a name
in ``FO_ALGOS``, csrc/fastopt.h), its hyperparameters (name, default, range
rule, the ``fo_hyper`` fields the C core reads, a line for the docs), its
state buffers (torch's name, C slot, initial value, when it exists, a line
for the docs) and its step-count rules. ``fastopt.Optimizer``,
``fastopt.torch``, ``fastopt.functional``, ``fastopt.reference``,
``fastopt._core``, the docs and the tests derive what they do per optimizer,
and which optimizers there are, from these rows; the thin classes and
functions only repeat the signatures users read (a test checks their
defaults against these) and the docstring text particular to them: their
"Parameters" sections are written from the docs lines here (fastopt._docs).

A Hyper's doc is the start of its description, with the symbol the update
rules use (γ for lr, λ for weight_decay, ...); the type, default and range
are added from the signature and the rule ("Learning rate γ" becomes
"lr : float, default 1e-3 / Learning rate γ, >= 0."). A Buffer's doc names
it for fastopt.functional's buffer arguments, and says when it is required.
"""
import math
from typing import Callable, NamedTuple, Optional, Tuple, Union

__all__ = ["Hyper", "Buffer", "Scalar", "Spec", "SPECS", "FIRST_GRAD", "PARAM", "c_fields", "element_rules",
           "range_rules"]

# Range rules: (low, high, high_open) for _validate-style number checks;
# FLAG for booleans (not range-checked, as torch does not check them).
NONNEG = (0.0, None, False)
REAL = (-math.inf, math.inf, False)
UNIT = (0.0, 1.0, True)   # [0, 1), per element of a pair such as betas
CLOSED_UNIT = (0.0, 1.0, False)  # [0, 1]
NONPOS = (-math.inf, 0.0, False)  # <= 0
AT_LEAST_ONE = (1.0, None, False)
# A rule with a fourth element admits None too (Adafactor's eps1: None is the
# dtype's machine epsilon). A pair may have one rule per element (a tuple of rules).
NONNEG_OR_NONE = (0.0, None, False, None)
FLAG = None


def element_rules(hyper):
    """The range rule of each number of a hyperparameter's value (one for a
    single number), each (low, high, high_open) or FLAG, and whether it admits None."""
    rule = hyper.rule
    rules = rule if rule is not None and isinstance(rule[0], tuple) else (rule,) * max(1, len(hyper.c))
    return tuple((r if r is None else r[:3], r is not None and len(r) > 3) for r in rules)


_RANGE_RULES = {}  # spec name: (spec, its range_rules)


def range_rules(spec):
    """The range checks of a spec's hyperparameters, worked out once (every
    step checks every group): per hyperparameter with a rule, (name, count,
    rules), count 0 and its rule for a single number, else the number of
    elements and per element (its name, its rule or FLAG, whether it admits None)."""
    known = _RANGE_RULES.get(spec.name)
    if known is not None and known[0] is spec:  # by name: a tuple's hash is not cached
        return known[1]
    out = []
    for hyper in spec.hypers:
        if hyper.rule is None:
            continue
        if len(hyper.c) > 1:
            out.append((hyper.name, len(hyper.c),
                        tuple((name, rule, none_ok) for name, (rule, none_ok) in zip(hyper.c, element_rules(hyper)))))
        else:
            out.append((hyper.name, 0, hyper.rule))
    rules = tuple(out)
    _RANGE_RULES[spec.name] = (spec, rules)
    return rules


class Hyper(NamedTuple):
    name: str                 # the param-group key (torch's name)
    default: object
    rule: Optional[tuple]     # NONNEG, REAL, UNIT (each element of a pair; or one per element) or FLAG
    c: Tuple[str, ...]        # the fo_hyper field(s) it fills; two for a pair; none if C never reads it
    doc: str


FIRST_GRAD = "the first gradient"  # the initial value of SGD's momentum buffer
PARAM = "the parameter"  # the initial value of Schedule-Free's z: a copy of the parameter


class Buffer(NamedTuple):
    name: str                              # torch's state key
    slot: int                              # the C state slot, 0-3
    init: Union[float, str]                # a number, a hyperparameter's name, FIRST_GRAD or PARAM
    when: Optional[Callable[[dict], bool]] = None  # exists when when(group); None: always
    doc: str = ""                          # what it holds (its symbol), when it is required
    # its shape for a parameter of a shape, or None when that parameter has no
    # such buffer (Adafactor's factors); None: the parameter's shape
    shape: Optional[Callable[[Tuple[int, ...]], Optional[Tuple[int, ...]]]] = None
    nonneg: bool = False                   # never negative: 8-bit state uses the unsigned map

    def shape_for(self, shape):
        """Its shape for a parameter of `shape`, None when that parameter has none."""
        return tuple(shape) if self.shape is None else self.shape(tuple(shape))

    def initial(self, group):
        """The value a new buffer holds (FIRST_GRAD buffers are overwritten by the first step)."""
        if self.init in (FIRST_GRAD, PARAM):  # PARAM buffers are copied from it (optim.py)
            return 0.0
        return group[self.init] if isinstance(self.init, str) else self.init

    def used(self, group, shape=None):
        """Whether it exists under the group's hyperparameters (and, given
        `shape`, for a parameter of that shape)."""
        if shape is not None and self.shape_for(shape) is None:
            return False
        return self.when is None or bool(self.when(group))


class Scalar(NamedTuple):
    """A per-parameter 0-d state entry that the step advances (NAdam's
    ``mu_product``, ASGD's ``eta`` and ``mu``): the C core keeps it per item
    (fo_pscalars, index ``index``), torch as a 0-d tensor (float32 by default)."""
    name: str       # torch's state key
    index: int      # its place in fo_pscalars.v
    doc: str = ""


class Spec(NamedTuple):
    name: str                    # the class name in fastopt, fastopt.torch and torch.optim
    algo: str                    # the C algorithm (FO_ALGOS)
    hypers: Tuple[Hyper, ...]    # in signature order
    state: Tuple[Buffer, ...]    # in C slot order
    step: bool                   # the state has a "step" count (torch's SGD has none)
    eager: bool                  # state exists from construction (torch's Adagrad), else from the first step
    check: Optional[Callable[[dict, str], None]] = None  # a rule across hyperparameters
    reference: str = "torch.optim"  # the implementation whose names, defaults and numbers it has
    scalars: Tuple[Scalar, ...] = ()  # per-parameter 0-d state, in fo_pscalars order
    # Group keys the optimizer keeps and updates at each step, as its reference
    # does (Schedule-Free's k, lr_max, weight_sum, ...): not arguments.
    group_state: Tuple[Hyper, ...] = ()
    # fo_hyper fields the step computes per group before the C core runs and
    # passes under the same key in its copy of the group (Schedule-Free's k, ckp1).
    step_fields: Tuple[str, ...] = ()
    ndim: Optional[int] = None   # the parameters' number of dimensions (Muon: 2); None: any
    # Row-sparse gradients (fastopt.RowSparse, torch's sparse COO): None when it
    # refuses them, else a function of a group that returns None when that
    # group's hyperparameters allow them, else torch's reason why not.
    sparse: Optional[Callable[[dict], Optional[str]]] = None
    # Of a group that takes row-sparse gradients: whether its step changes rows
    # without a gradient too (SGD's momentum buffer decays everywhere), so that
    # such a gradient is stepped as the dense one it stands for, zero elsewhere.
    sparse_dense: Optional[Callable[[dict], bool]] = None
    int_step: bool = False       # torch keeps "step" as a Python int (SparseAdam), not a tensor
    function_name: str = ""      # its fastopt.reference function's name when not name.lower()

    @property
    def function(self):
        """The name of its fastopt.reference function (fastopt.functional's adds a "_")."""
        return self.function_name or self.name.lower()

    @property
    def defaults(self):
        return {h.name: h.default for h in self.hypers}

    @property
    def state_names(self):
        return tuple(b.name for b in self.state)

    @property
    def scalar_names(self):
        return tuple(c.name for c in self.scalars)

    def slots(self, group, shape=None):
        """Which of the four C slots (fo_item.state) the group's hyperparameters
        use (given `shape`, for a parameter of that shape)."""
        used = [False] * 4
        for b in self.state:
            used[b.slot] = b.used(group, shape)
        return tuple(used)

    def buffer_shape(self, slot, shape):
        """The shape of the buffer in C slot `slot` of a parameter of `shape`
        (None when it has none there)."""
        for b in self.state:
            if b.slot == slot:
                return b.shape_for(shape)
        return None


def _nesterov(group, where):
    if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
        raise ValueError(f"{where}: Nesterov momentum requires a momentum and zero dampening")


def _etas(group, where):
    etaminus, etaplus = group["etas"]
    if not 0.0 < etaminus < 1.0 < etaplus:
        raise ValueError(f"{where}: invalid etas: {tuple(group['etas'])} "
                         "(must be 0 < etaminus < 1 < etaplus)")


def _schedule_free(momentum):
    """The rule of a Schedule-Free optimizer whose interpolation factor is
    `momentum` ("betas"'s first or "momentum"): it is > 0 (eval() divides by
    it), and the group state is a count and two numbers."""
    def check(group, where):
        beta = group[momentum][0] if momentum == "betas" else group[momentum]
        if not beta > 0:
            name = "beta1" if momentum == "betas" else "momentum"
            raise ValueError(f"{where}: {name} must be > 0 (eval() divides by it), got {beta!r}")
        k = group["k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"{where}: k (the group's step count) must be an int >= 0, got {k!r}")
        if isinstance(group["warmup_steps"], bool) or group["warmup_steps"] != int(group["warmup_steps"]):
            raise ValueError(f"{where}: warmup_steps must be a whole number, "
                             f"got {group['warmup_steps']!r}")
        for key in ("weight_sum", "lr_max"):
            value = group[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}: {key} must be a finite number, got {value!r}")
        if group["weight_sum"] < 0:
            raise ValueError(f"{where}: weight_sum must be >= 0, got {group['weight_sum']!r}")
    return check


_SF_GROUP = (
    Hyper("k", 0, None, (), "Steps the group has taken"),
    Hyper("train_mode", False, None, (),
          "Whether the parameters hold y (train()) rather than the average x (eval())"),
    Hyper("weight_sum", 0.0, None, (), "The sum of the averaging weights so far"),
    Hyper("lr_max", -1.0, None, (), "The largest warmed-up learning rate so far"),
    Hyper("scheduled_lr", 0.0, None, (), "The warmed-up learning rate of the last step"),
)
_SF_HYPERS = (
    Hyper("weight_decay", 0, NONNEG, ("weight_decay",),
          "L2 penalty λ, taken at y (adds λ·y to the normalised gradient)"),
    Hyper("warmup_steps", 0, NONNEG, (),
          "Steps of linear learning-rate warmup (step k uses γ·min(1, k / warmup_steps))"),
    Hyper("r", 0.0, NONNEG, (), "Power r of the polynomial weighting kʳ in the average"),
    Hyper("weight_lr_power", 2.0, NONNEG, (),
          "Power of the largest learning rate so far in the averaging weight (0: no weighting)"),
)


def _sgd_sparse(group):
    if group["weight_decay"] != 0:  # torch: grad.add(param) of a sparse grad
        return "add(sparse, dense) is not supported. Use add(dense, sparse) instead."
    return None


def _adagrad_sparse(group):
    if group["weight_decay"] != 0:
        return "weight_decay option is not compatible with sparse gradients"
    return None


def _muon(group, where):
    from ._newton_schulz import check  # the Newton-Schulz stage's own rules, in one place
    check(group, where)


def _adan_clipping(group, where):
    if group["max_grad_norm"] != 0:
        raise ValueError(f"{where}: max_grad_norm > 0 (Adan's global gradient-norm clipping) is "
                         "not supported; clip the gradients first (fastopt.clip_grad_norm_)")


_LR = "Learning rate γ"
_WD = "L2 penalty λ (adds λ·θ to the gradient)"
_MAX = "Ascend the gradient (maximise the objective) instead of descending"
_MOMENTUM = "Momentum factor μ (0 keeps no momentum buffer)"
_EPS = "ε added to the denominator"
_M = "The first moment m"
# RAdam's and NAdam's weight decay, L2 or (decoupled_weight_decay) decoupled
_WD_OR_DECOUPLED = Hyper("weight_decay", 0, NONNEG, ("weight_decay",),
                         "Weight decay λ (adds λ·θ to the gradient, or with "
                         "decoupled_weight_decay multiplies θ by (1 − γ·λ))")
_DECOUPLED = "Decoupled weight decay λ (θ is multiplied by (1 − γ·λ) at each step)"
_DECOUPLED_ADD = "Decoupled weight decay λ (γ·λ·θ joins the update, as optax.adamw)"


def _adam(name, weight_decay, decoupled):
    return Spec(name, "adam", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "Decay rates (β₁, β₂) of the first and second moments"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), _EPS),
        Hyper("weight_decay", weight_decay, NONNEG, ("weight_decay",),
              "Decoupled weight decay λ (θ is multiplied by (1 − γ·λ) at each step)" if decoupled
              else "Weight decay λ (adds λ·θ to the gradient, or with decoupled_weight_decay "
                   "multiplies θ by (1 − γ·λ))"),
        Hyper("amsgrad", False, FLAG, ("amsgrad",),
              "Divide by the running maximum v̂ of the second moment v (AMSGrad)"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
        Hyper("decoupled_weight_decay", decoupled, FLAG, ("decoupled_weight_decay",),
              "Multiply θ by (1 − γ·λ) before the update instead of adding λ·θ to the "
              "gradient (AdamW)"),
    ), (
        Buffer("exp_avg", 0, 0.0, doc=_M),
        Buffer("exp_avg_sq", 1, 0.0, doc="The second moment v", nonneg=True),
        Buffer("max_exp_avg_sq", 2, 0.0, lambda g: g["amsgrad"],
               doc="The running maximum v̂ of exp_avg_sq (required when amsgrad)", nonneg=True),
    ), step=True, eager=False)


_ROWS = [
    Spec("SGD", "sgd", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("momentum", 0, NONNEG, ("momentum",), _MOMENTUM),
        Hyper("dampening", 0, REAL, ("dampening",),
              "Dampening τ of the gradient's share in the momentum buffer"),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), _WD),
        Hyper("nesterov", False, FLAG, ("nesterov",),
              "Nesterov momentum (needs momentum > 0 and dampening = 0)"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("momentum_buffer", 0, FIRST_GRAD, lambda g: g["momentum"] != 0,
               doc="The momentum buffer b (required when momentum != 0)"),
    ), step=False, eager=False, check=_nesterov, sparse=_sgd_sparse,
        sparse_dense=lambda group: group["momentum"] != 0),
    Spec("Adagrad", "adagrad", (
        Hyper("lr", 1e-2, NONNEG, ("lr",), _LR),
        Hyper("lr_decay", 0, NONNEG, ("lr_decay",),
              "Learning-rate decay η (step t uses γ / (1 + (t − 1)·η))"),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), _WD),
        Hyper("initial_accumulator_value", 0, NONNEG, (), "Initial value of the sum of squares s"),
        Hyper("eps", 1e-10, NONNEG, ("eps",), _EPS),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("sum", 0, "initial_accumulator_value", doc="The sum of squared gradients s", nonneg=True),
    ), step=True, eager=True, sparse=_adagrad_sparse),
    Spec("RMSprop", "rmsprop", (
        Hyper("lr", 1e-2, NONNEG, ("lr",), _LR),
        Hyper("alpha", 0.99, NONNEG, ("alpha",), "Smoothing constant α of the averages"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), _EPS),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), _WD),
        Hyper("momentum", 0, NONNEG, ("momentum",), _MOMENTUM),
        Hyper("centered", False, FLAG, ("centered",),
              "Normalise by the gradient's estimated variance (keeps the average gradient ḡ)"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("square_avg", 0, 0.0, doc="The average v of squared gradients", nonneg=True),
        Buffer("momentum_buffer", 1, 0.0, lambda g: g["momentum"] > 0,
               doc="The momentum buffer b (required when momentum > 0)"),
        Buffer("grad_avg", 2, 0.0, lambda g: g["centered"],
               doc="The average gradient ḡ (required when centered)"),
    ), step=True, eager=False),
    _adam("Adam", 0, False),
    _adam("AdamW", 1e-2, True),
    Spec("Adamax", "adamax", (
        Hyper("lr", 2e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "Decay rates (β₁, β₂) of the first moment and of the infinity norm"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), "ε added to |g| in the infinity norm"),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), _WD),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0, doc=_M),
        Buffer("exp_inf", 1, 0.0, doc="The infinity norm u"),
    ), step=True, eager=False),
    Spec("Adadelta", "adadelta", (
        Hyper("lr", 1.0, NONNEG, ("lr",), "Scale γ of the update"),
        Hyper("rho", 0.9, CLOSED_UNIT, ("rho",), "Decay rate ρ of the running averages v and a"),
        Hyper("eps", 1e-6, NONNEG, ("eps",), "ε added inside both square roots"),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), _WD),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("square_avg", 0, 0.0, doc="The average v of squared gradients"),
        Buffer("acc_delta", 1, 0.0, doc="The average a of squared updates"),
    ), step=True, eager=False),
    Spec("RAdam", "radam", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "Decay rates (β₁, β₂) of the first and second moments"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), _EPS),
        _WD_OR_DECOUPLED,
        Hyper("decoupled_weight_decay", False, FLAG, ("decoupled_weight_decay",),
              "Multiply θ by (1 − γ·λ) before the update instead of adding λ·θ to the "
              "gradient (as AdamW)"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0, doc=_M),
        Buffer("exp_avg_sq", 1, 0.0, doc="The second moment v"),
    ), step=True, eager=False),
    Spec("Rprop", "rprop", (
        Hyper("lr", 1e-2, NONNEG, ("lr",), "The initial step size s"),
        Hyper("etas", (0.5, 1.2), REAL, ("etaminus", "etaplus"),
              "Factors (η₋, η₊) of the step size when the gradient's sign flips and when "
              "it stays; 0 < η₋ < 1 < η₊"),
        Hyper("step_sizes", (1e-6, 50), REAL, ("step_size_min", "step_size_max"),
              "Bounds (s_min, s_max) of the step size"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("prev", 0, 0.0, doc="The previous gradient g₋ (ignored at step 1)"),
        Buffer("step_size", 1, "lr",  # the group's lr at the first step, as torch
               doc="The step size s per element (ignored at step 1, where it starts as lr)"),
    ), step=True, eager=False, check=_etas),
    Spec("NAdam", "nadam", (
        Hyper("lr", 2e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "Decay rates (β₁, β₂) of the first and second moments"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), _EPS),
        _WD_OR_DECOUPLED,
        Hyper("momentum_decay", 4e-3, NONNEG, ("momentum_decay",),
              "Momentum decay ψ of the schedule μₜ = β₁·(1 − ½·0.96^(t·ψ))"),
        Hyper("decoupled_weight_decay", False, FLAG, ("decoupled_weight_decay",),
              "Multiply θ by (1 − γ·λ) before the update instead of adding λ·θ to the "
              "gradient (NAdamW)"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0, doc=_M),
        Buffer("exp_avg_sq", 1, 0.0, doc="The second moment v"),
    ), step=True, eager=False, scalars=(
        Scalar("mu_product", 0, "The product Πμ of the momentum schedule so far (1 at first)"),
    )),
    Spec("ASGD", "asgd", (
        Hyper("lr", 1e-2, NONNEG, ("lr",), _LR),
        Hyper("lambd", 1e-4, REAL, ("lambd",), "Decay term λ of the step size"),
        Hyper("alpha", 0.75, REAL, ("alpha",), "Power α of the step size's decay"),
        Hyper("t0", 1e6, REAL, ("t0",), "The step t₀ at which averaging starts"),
        Hyper("weight_decay", 0, NONNEG, ("weight_decay",), "L2 penalty ω (adds ω·θ to the gradient)"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("ax", 0, 0.0, doc="The average ā of the parameter"),
    ), step=True, eager=False, scalars=(
        Scalar("eta", 0, "The step size η of the next step (γ at first)"),
        Scalar("mu", 1, "The averaging weight μ of the next step (1 at first)"),
    )),
    # Not in torch.optim: the names, defaults and numbers of another reference.
    Spec("Lion", "lion", (
        Hyper("lr", 1e-4, NONNEG, ("lr",),
              "Learning rate γ (Lion's steps are ±γ: use 3-10x less than for AdamW)"),
        Hyper("betas", (0.9, 0.99), UNIT, ("beta1", "beta2"),
              "β₁, the interpolation factor of the update's sign, and β₂, the decay rate of the "
              "momentum m"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",), _DECOUPLED),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0, doc="The momentum m"),
    ), step=False, eager=False, reference="lion-pytorch"),
    Spec("AdaBelief", "adabelief", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "Decay rates (β₁, β₂) of the first moment and of the variance"),
        Hyper("eps", 1e-16, NONNEG, ("eps",), _EPS),
        Hyper("eps_root", 1e-16, NONNEG, ("eps_root",), "ε_root added to the variance s at every step (it stays in the state)"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",), _DECOUPLED_ADD),
    ), (
        Buffer("exp_avg", 0, 0.0, doc=_M),
        Buffer("exp_avg_var", 1, 0.0, doc="The variance s of the gradient around m"),
    ), step=True, eager=False, reference="optax"),
    Spec("ADOPT", "adopt", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.9999), UNIT, ("beta1", "beta2"),
              "Decay rates (β₁, β₂) of the first and second moments"),
        Hyper("eps", 1e-6, NONNEG, ("eps",), "ε, the floor of the denominator √v"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",), _DECOUPLED_ADD),
    ), (
        Buffer("exp_avg", 0, 0.0, doc=_M),
        Buffer("exp_avg_sq", 1, 0.0, doc="The second moment v"),
    ), step=True, eager=False, reference="optax.contrib"),
    Spec("Adan", "adan", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.98, 0.92, 0.99), UNIT, ("beta1", "beta2", "beta3"),
              "Decay rates (β₁, β₂, β₃) of the averages of the gradient, of the "
              "gradient difference and of the second moment"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",),
              "Weight decay λ (θ is divided by (1 + γ·λ) after the update)"),
        Hyper("weight_decouple", False, FLAG, ("weight_decouple",),
              "Multiply θ by (1 − γ·λ) before the update instead"),
        Hyper("max_grad_norm", 0.0, NONNEG, (), "pytorch-optimizer's global gradient-norm clipping: only 0 (off) is "
              "supported (ValueError otherwise); clip with ``fastopt.clip_grad_norm_``"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), _EPS),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0, doc=_M),
        Buffer("exp_avg_sq", 1, 0.0, doc="The second moment n"),
        Buffer("exp_avg_diff", 2, 0.0, doc="The average v of the gradient difference"),
        Buffer("previous_grad", 3, 0.0,  # the negated gradient; the first step sets it
               doc="The previous gradient, negated (ignored at step 1)"),
    ), step=True, eager=False, check=_adan_clipping, reference="pytorch-optimizer"),
    # Layer-wise trust ratios: per tensor, the norms of θ and of the update (fo_norm_phase).
    Spec("LAMB", "lamb", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "Decay rates (β₁, β₂) of the first and second moments"),
        Hyper("eps", 1e-6, NONNEG, ("eps",), _EPS),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",),
              "Decoupled weight decay λ (λ·θ joins the update before the trust ratio, as "
              "optax.lamb)"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0, doc=_M),
        Buffer("exp_avg_sq", 1, 0.0, doc="The second moment v"),
    ), step=True, eager=False, reference="optax"),
    Spec("LARS", "lars", (
        Hyper("lr", 1.0, NONNEG, ("lr",), _LR),
        Hyper("momentum", 0.9, NONNEG, ("momentum",),
              "Decay rate μ of the momentum buffer b (optax's trace; 0 keeps b = the last update)"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",),
              "Weight decay λ (λ·θ is added to the gradient before the trust ratio)"),
        Hyper("trust_coefficient", 0.001, NONNEG, ("trust_coefficient",),
              "Factor η of the trust ratio η·‖θ‖ / (‖u‖ + ε)"),
        Hyper("eps", 0.0, NONNEG, ("eps",), "ε added to the update's norm in the trust ratio"),
        Hyper("nesterov", False, FLAG, ("nesterov",), "Nesterov momentum"),
    ), (
        Buffer("momentum_buffer", 0, 0.0, doc="The momentum buffer b (optax's trace)"),
    ), step=False, eager=False, reference="optax"),
    Spec("ScheduleFreeAdamW", "sf_adamw", (
        Hyper("lr", 0.0025, NONNEG, ("lr",), _LR),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "β₁, the interpolation between z and the average x (> 0), and β₂, the decay "
              "rate of the second moment"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), _EPS),
    ) + _SF_HYPERS, (
        Buffer("z", 0, PARAM, doc="The base sequence z (starts as the parameter)"),
        Buffer("exp_avg_sq", 1, 0.0, doc="The second moment v"),
    ), step=False, eager=False, check=_schedule_free("betas"), reference="schedulefree",
        group_state=_SF_GROUP, step_fields=("k", "ckp1")),
    Spec("ScheduleFreeSGD", "sf_sgd", (
        Hyper("lr", 1.0, NONNEG, ("lr",), _LR),
        Hyper("momentum", 0.9, UNIT, ("momentum",),
              "Interpolation μ between z and the average x, in (0, 1)"),
    ) + _SF_HYPERS, (
        Buffer("z", 0, PARAM, doc="The base sequence z (starts as the parameter)"),
    ), step=False, eager=False, check=_schedule_free("momentum"), reference="schedulefree",
        group_state=_SF_GROUP, step_fields=("k", "ckp1")),
    # Not element-wise: the Newton-Schulz iteration between two C passes (fastopt/_newton_schulz.py).
    Spec("Muon", "muon", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), _LR),
        Hyper("weight_decay", 0.1, NONNEG, ("weight_decay",), _DECOUPLED),
        Hyper("momentum", 0.95, NONNEG, ("momentum",), "Momentum factor μ of the buffer b"),
        Hyper("nesterov", True, FLAG, ("nesterov",),
              "Orthogonalise the Nesterov update lerp(g, b, μ) instead of b"),
        Hyper("ns_coefficients", (3.4445, -4.775, 2.0315), FLAG, (),
              "Coefficients (a, b, c) of the Newton-Schulz polynomial"),
        Hyper("eps", 1e-7, FLAG, (), "Floor ε of the Frobenius norm the update is divided by"),
        Hyper("ns_steps", 5, FLAG, (), "Newton-Schulz iterations k, in [0, 100)"),
        Hyper("adjust_lr_fn", None, FLAG, (),
              "The learning-rate factor per matrix of shape (A, B): None or \"original\" "
              "√max(1, A/B), \"match_rms_adamw\" 0.2·√max(A, B)"),
    ), (
        Buffer("momentum_buffer", 0, 0.0, doc="The momentum buffer b"),
    ), step=False, eager=False, check=_muon, ndim=2),
    # For row-sparse gradients (embedding tables): the rows present are updated, the others not.
    Spec("SparseAdam", "sparse_adam", (
        Hyper("lr", 1e-3, NONNEG, ("lr",), "Learning rate γ (torch's constructor wants > 0)"),
        Hyper("betas", (0.9, 0.999), UNIT, ("beta1", "beta2"),
              "Decay rates (β₁, β₂) of the first and second moments"),
        Hyper("eps", 1e-8, NONNEG, ("eps",), "ε added to the denominator (torch's constructor wants > 0)"),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("exp_avg", 0, 0.0, doc=_M),
        Buffer("exp_avg_sq", 1, 0.0, doc="The second moment v"),
    ), step=True, eager=False, sparse=lambda group: None, int_step=True,
        function_name="sparse_adam"),
    # Factored second moments: the state is not parameter-shaped (Buffer.shape);
    # three C passes over bands of rows (csrc/fo_adafactor.c).
    Spec("Adafactor", "adafactor", (
        Hyper("lr", 1e-2, NONNEG, ("lr",),
              "Learning rate γ: the largest relative step size ρ, and the factor of the weight decay"),
        Hyper("beta2_decay", -0.8, NONPOS, ("beta2_decay",),
              "Power τ of the step in the averages' weight β̂ = tᵗᵃᵘ"),
        Hyper("eps", (None, 1e-3), (NONNEG_OR_NONE, NONNEG), ("eps", "eps2"),
              "ε₁, the floor of the variance estimate (squared) and of the row factors' mean "
              "(None: the dtype's machine epsilon), and ε₂, the floor of the "
              "parameter's RMS in the step size"),
        Hyper("d", 1.0, AT_LEAST_ONE, ("d",), "Clipping threshold d of the update's RMS"),
        Hyper("weight_decay", 0.0, NONNEG, ("weight_decay",), _DECOUPLED),
        Hyper("maximize", False, FLAG, ("maximize",), _MAX),
    ), (
        Buffer("row_var", 0, 0.0, doc="The row factor R of the second moment (two or more dimensions)",
               shape=lambda s: s[:-1] + (1,) if len(s) >= 2 else None),
        Buffer("col_var", 1, 0.0, doc="The column factor C of the second moment (two or more dimensions)",
               shape=lambda s: s[:-2] + (1, s[-1]) if len(s) >= 2 else None),
        Buffer("variance", 2, 0.0, doc="The second moment V (0-d and 1-d parameters)",
               shape=lambda s: s if len(s) < 2 else None),
    ), step=True, eager=False),
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
    out += [(field, None, 1, field, 0.0) for field in spec.step_fields]
    return out

/*
 * fastopt: in-place optimizer updates over contiguous float32/float64 buffers.
 *
 * This header is the whole C API. A step is described as an array of
 * fo_item records (one per parameter tensor: pointers, length and dtype)
 * and executed by fo_step(), which computes the step's scalars, picks each
 * item's loop, cuts all items into byte ranges, spreads them over a
 * persistent thread pool and advances the step counts. Every kernel is
 * element-wise (or a per-range reduction combined in a fixed order), so
 * results never depend on the thread count or the SIMD path.
 *
 * Typical use for Adam over many tensors, each step:
 *
 *   fo_hyper h = fo_hyper_defaults(FO_ADAM);  h.lr = 1e-3;   (one per group)
 *   items[i] = (fo_item){param, grad, {exp_avg, exp_avg_sq, NULL}, n, FO_F32};
 *   fo_step_args a = {.algo = FO_ADAM, .hypers = &h, .ngroups = 1,
 *                     .items = items, .count = count, .group = group_of,
 *                     .steps = steps, .started = started, .scalars = workspace};
 *   fo_step(&a);   (1: applied; see FO_STEP_* for the rest)
 *
 * The caller guarantees the preconditions (no overlap between written and
 * read buffers, lengths right); the library never checks them in its loops.
 */
#ifndef FASTOPT_H
#define FASTOPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FO_VERSION_MAJOR 0
#define FO_VERSION_MINOR 1

/* The dtype of an item's parameter and gradient. The state has the
 * parameter's dtype, except for the 16-bit ones (bfloat16 and float16,
 * passed as uint16_t bit patterns): their state is float32, the update is
 * computed in float32 and the parameter stored rounded to nearest even.
 * fo_item.state16 can make the state 16-bit too. */
typedef enum fo_dtype { FO_F32 = 0, FO_F64 = 1, FO_BF16 = 2, FO_F16 = 3 } fo_dtype;
#define FO_NUM_DTYPES 4
/* How a 16-bit parameter is stored (fo_item.rounding): rounded to nearest
 * even, or stochastically (fo_vec.h: a random integer below one 16-bit unit
 * in the last place added to the float32 bits, then truncated), the random
 * bits from fo_item.round_key and the element's index. float32 and float64
 * parameters store what they compute whatever it says. */
enum fo_rounding { FO_ROUND_NEAREST = 0, FO_ROUND_STOCHASTIC = 1 };
/* The kernel rows of a table (fo_table.update): one per dtype, then the
 * 16-bit ones (bfloat16, float16) with stochastic rounding or a float32
 * master copy (fo_item.master) or both; then, with 16-bit state
 * (fo_item.state16), float32 and those four; then, with block-wise 8-bit
 * state (fo_item.state8), float32, bfloat16 and float16 (NULL rows for the
 * algorithms without it). */
#define FO_NUM_KINDS 14

/* The algorithms, listed once: X(name, NAME, modes, loop, q8), where `modes`
 * is the number of mode variants (see the mode bits below), `loop` the loop
 * its kernels run their body in: `each` (vector after vector), or `norm` for
 * an algorithm with a norm phase (fo_norm_phase(): per-block norms held in
 * registers), and `q8` whether it steps block-wise 8-bit state
 * (fo_item.state8): `q8` or `no8`. The enum, the kernel wrappers and the
 * kernel tables are generated from this list; an algorithm's loop body is
 * csrc/kernels/<name>.inc. */
#define FO_ALGOS(X)                          \
    X(sgd, SGD, 16, each, q8)                \
    X(adagrad, ADAGRAD, 2, each, q8)         \
    X(rmsprop, RMSPROP, 16, each, q8)        \
    X(adam, ADAM, 16, each, q8)              \
    X(adamax, ADAMAX, 4, each, no8)          \
    X(adadelta, ADADELTA, 2, each, no8)      \
    X(radam, RADAM, 16, each, no8)           \
    X(rprop, RPROP, 2, each, no8)            \
    X(lion, LION, 1, each, q8)               \
    X(adabelief, ADABELIEF, 2, each, no8)    \
    X(adopt, ADOPT, 2, each, no8)            \
    X(adan, ADAN, 8, each, no8)              \
    X(lamb, LAMB, 4, norm, no8)              \
    X(lars, LARS, 8, norm, no8)              \
    X(nadam, NADAM, 8, each, no8)            \
    X(asgd, ASGD, 4, each, no8)              \
    X(sf_adamw, SF_ADAMW, 4, each, no8)      \
    X(sf_sgd, SF_SGD, 4, each, no8)          \
    X(muon, MUON, 4, each, no8)              \
    X(sparse_adam, SPARSE_ADAM, 1, each, no8)\
    X(adafactor, ADAFACTOR, 8, each, no8)

#define FO_ALGO_ENUM_(name, NAME, modes, loop, q8) FO_##NAME,
#define FO_ALGO_COUNT_(name, NAME, modes, loop, q8) +1
typedef enum fo_algo { FO_ALGOS(FO_ALGO_ENUM_) } fo_algo;
enum { FO_NUM_ALGOS = 0 FO_ALGOS(FO_ALGO_COUNT_) };
#undef FO_ALGO_ENUM_
#undef FO_ALGO_COUNT_

/* Block-wise 8-bit state (fo_item.state8; Dettmers et al. 2022, "8-bit
 * Optimizers via Block-wise Quantization"): each state buffer of n values
 * is n one-byte codes, zeros up to a multiple of 64 bytes, then one float32
 * scale per block of FO_Q_BLOCK values (fo_q8_bytes() bytes in all). Value
 * j is code_map[code j] * scale of its block, code_map one of the two
 * dynamic maps of bitsandbytes' create_dynamic_map (fo_q8_code(): signed
 * for buffers of any sign, unsigned for the non-negative ones). A store
 * sets a block's scale to the largest magnitude among its new values (NaN
 * when one is not finite) and each code to the nearest map value to value
 * / scale: the number of the map's midpoints (each rounded to float32)
 * below it. */
#define FO_Q_BLOCK 256
size_t fo_q8_bytes(size_t n);
/* The 256 values of the signed (is_signed 1) or unsigned map, increasing. */
void fo_q8_code(int is_signed, float out[256]);
/* Whether state slot `slot` of `algo` holds values of any sign (its
 * buffer uses the signed map), or only non-negative ones (0). */
int fo_q8_signed(fo_algo algo, int slot);

/* Instruction-set paths. SCALAR is the portable loop with vectorisation
 * disabled; BASE is the architecture's baseline (on x86-64 the same loop
 * auto-vectorised for SSE2, on arm64 explicit NEON); AVX2 and AVX512 are
 * explicit intrinsics (fo_vec.h). All give the bits of SCALAR. */
typedef enum fo_isa {
    FO_ISA_SCALAR = 0,
    FO_ISA_BASE = 1,
    FO_ISA_AVX2 = 2,
    FO_ISA_AVX512 = 3
} fo_isa;
#define FO_NUM_ISAS 4

/* Hyperparameters of one parameter group, with torch.optim's names.
 * Each algorithm reads the fields it has. */
typedef struct fo_hyper {
    double lr;
    double weight_decay;
    double eps;
    double momentum;                 /* SGD, RMSprop */
    double dampening;                /* SGD */
    double alpha;                    /* RMSprop smoothing */
    double beta1, beta2;             /* Adam, Adamax, RAdam, Lion, AdaBelief, ADOPT, Adan */
    double lr_decay;                 /* Adagrad */
    double rho;                      /* Adadelta */
    double etaminus, etaplus;        /* Rprop */
    double step_size_min, step_size_max; /* Rprop */
    int nesterov;                    /* SGD */
    int centered;                    /* RMSprop */
    int amsgrad;                     /* Adam */
    int decoupled_weight_decay;      /* Adam: AdamW; RAdam */
    int maximize;
    double eps_root;                 /* AdaBelief: added to the second moment */
    double beta3;                    /* Adan: decay of the second moment (beta1, beta2 its others) */
    int weight_decouple;             /* Adan: param *= 1 - lr * wd, not param /= 1 + lr * wd */
    double trust_coefficient;        /* LARS: factor of the trust ratio */
    double momentum_decay;           /* NAdam: psi of the momentum schedule mu_t */
    double lambd, t0;                /* ASGD: decay term; the step averaging starts at (alpha: its eta power) */
    double k;                        /* Schedule-Free: the group's step count after this step */
    double ckp1;                     /* Schedule-Free: this step's averaging weight (the caller's) */
    /* Muon: lr, weight_decay, momentum, nesterov (its Newton-Schulz iteration runs outside C) */
    double beta2_decay;              /* Adafactor: the averages' weight is step^beta2_decay */
    double eps2;                     /* Adafactor: floor of the parameter's RMS (eps: eps1, NaN
                                        for the parameter dtype's machine epsilon) */
    double d;                        /* Adafactor: clipping threshold of the update's RMS */
} fo_hyper;

/* The fields of fo_hyper by name, for bindings that fill it from a table of
 * names (fastopt/_spec.py): each field's offset and whether it is an int
 * (else a double). fo_num_hyper_fields entries. */
typedef struct fo_hyper_field {
    const char *name;
    size_t offset;
    int is_int;
} fo_hyper_field;
extern const fo_hyper_field fo_hyper_fields[];
extern const int fo_num_hyper_fields;

/* Per-step scalars, computed in double by fo_prepare() (fo_step() does it
 * once per group and step number). */
typedef struct fo_scalars {
    double grad_sign;     /* -1 when maximizing, else 1 (exact either way) */
    double weight_decay;  /* L2 term: grad + weight_decay * param */
    double param_decay;   /* decoupled: param * (1 - lr * weight_decay) */
    double neg_lr;        /* SGD, RMSprop, Adadelta: -lr; Adagrad, Adamax: -clr; Adam: -step_size */
    double momentum;
    double one_minus_dampening;
    double avg_decay;     /* RMSprop alpha, Adam, Adamax and RAdam beta2, Adadelta rho; average_ema decay */
    double avg_weight;    /* RMSprop 1 - alpha, Adam and RAdam 1 - beta2, Adadelta 1 - rho; average_ema 1 - decay */
    double avg_divisor;   /* average_swa: n_averaged + 1 */
    double lerp_weight;   /* Adam, Adamax and RAdam 1 - beta1, RMSprop 1 - alpha (grad_avg) */
    double denom_scale;   /* Adam and RAdam sqrt(1 - beta2^t) */
    double eps;
    double scale;         /* grad_scale: factor */
    double power;         /* grad_sumpow: p */
    double lr;            /* RAdam: lr; Rprop: the first step's step size */
    double rect;          /* RAdam variance rectification */
    double etaminus, etaplus, step_size_min, step_size_max; /* Rprop */
    double clip_value;    /* grad_clip_value: c; ADOPT: the clip (t - 1)^(1/4) */
    double interp_decay;  /* Lion beta1: the update's sign is of beta1 * m + (1 - beta1) * g */
    double interp_weight; /* Lion 1 - beta1 */
    double bias1, bias2;  /* RAdam, AdaBelief: 1 - beta1^t; AdaBelief: 1 - beta2^t (divisors) */
    double eps_root;      /* AdaBelief */
    double diff_decay;    /* Adan beta2 (the gradient difference's) */
    double diff_weight;   /* Adan 1 - beta2 */
    double neg_lr_diff;   /* Adan -lr * beta2 / (1 - beta2^t) */
    double param_div;     /* Adan 1 + lr * weight_decay (param /= it) */
    unsigned lerp_high;   /* Adan: bit k set when lerp weight k (1 - beta1, 1 - beta2) >= 0.5 */
    double ratio_scale, ratio_eps; /* LAMB, LARS: trust ratio = ratio_scale * |p| / (|u| + ratio_eps) */
    double grad_coef;     /* NAdam -lr * (1 - mu_t) / (1 - mu_product) */
    double avg_coef;      /* NAdam -lr * mu_{t+1} / (1 - mu_product * mu_{t+1}); ASGD: mu, ax's weight */
    double advance[2];    /* what fo_advance() makes of the item's fo_pscalars: NAdam mu_t
                             (the factor of mu_product); ASGD the next eta and mu */
    double ckp1;          /* Schedule-Free: y = lerp(y, z, ckp1) */
    double y_coef;        /* Schedule-Free: lr * (beta1 * (1 - ckp1) - 1) */
} fo_scalars;

/* Per-parameter scalar state: values that depend on a parameter's own history
 * (a hyperparameter edited between steps, rounding), which fo_step() reads to
 * compute the item's scalars and advances after an applied update: NAdam
 * v[0] = mu_product; ASGD v[0] = eta, v[1] = mu. torch keeps each as a 0-d
 * tensor of its own dtype (float32 unless its default dtype is float64):
 * `dtype` is that dtype, and every advance rounds to it as torch does. At an
 * item's first update (started 0) the values are torch's new state instead
 * (NAdam mu_product = 1; ASGD eta = lr, mu = 1), whatever v holds. */
#define FO_NUM_PSCALARS 2
typedef struct fo_pscalars {
    double v[FO_NUM_PSCALARS];
    int dtype;            /* fo_dtype */
} fo_pscalars;

struct fo_item;
#define FO_NUM_SLOTS 4 /* state buffers an item can have (Adan has four) */
/* A kernel updates elements [begin, end) of one item. Reductions add their
 * partial result to *acc (NULL for updates). */
typedef void (*fo_kernel)(const struct fo_item *item, size_t begin, size_t end, double *acc);

typedef struct fo_item {
    void *param;            /* written in place */
    const void *grad;       /* read only */
    void *state[FO_NUM_SLOTS]; /* algorithm state buffers, see fo_prepare() */
    size_t n;               /* elements */
    int dtype;              /* fo_dtype */
    /* filled by fo_step() (or fo_prepare_item()); NULL kernel: left alone: */
    const fo_scalars *scalars;
    fo_kernel kernel;
    /* filled by fo_plan(): */
    size_t vstart;          /* offset of the item in the job's byte space */
    /* algorithms with a norm phase (fo_norm_phase()), filled by fo_step(): */
    double *norms;          /* per block of FO_NORM_BLOCK elements, 2 * FO_NORM_LANES partial
                               sums: of param^2, then of update^2, lane k holding the
                               elements k mod FO_NORM_LANES (the norm phase adds to them) */
    double ratio;           /* the trust ratio the apply phase scales the update by (Muon:
                               the caller's per-tensor learning-rate factor, adjust_lr_fn) */
    /* 0: the state has the dtype computed in (float32; float64 for float64
     * parameters). FO_BF16 (float32 or bfloat16 parameters) or FO_F16
     * (float16 parameters): the state is of that 16-bit type, widened on
     * load and rounded to nearest even on store. Not for the algorithms
     * fo_algo_state16() refuses. */
    int state16;
    /* 1: every state slot is block-wise 8-bit (FO_Q_BLOCK), for the
     * algorithms fo_algo_state8() takes; state16 0, no master copy, rounding
     * to nearest, a dense gradient. */
    int state8;
    /* 16-bit parameters only (else NULL and FO_ROUND_NEAREST): */
    float *master;          /* NULL, or a float32 copy of param (n elements): the kernel
                               updates it and stores its rounding into param */
    int rounding;           /* fo_rounding */
    uint64_t round_key;     /* FO_ROUND_STOCHASTIC: the step's key, set by fo_step() from
                               (seed, step number, item index): fo_round_key() */
    /* A row-sparse gradient (rows not NULL): grad holds n / row_len rows of
     * row_len elements, grad row r being the gradient of row rows[r] of the
     * parameter (and of its state buffers), which is row-major with rows of
     * row_len elements. rows is strictly increasing (coalesced), so every
     * element is updated once and rows[r] >= r. Every update loop steps the
     * rows present only, element by element as for a dense gradient. */
    const int64_t *rows;
    size_t row_len;
    /* Adafactor, set by the caller: the sizes of the last two axes of a parameter of two or
     * more dimensions (its factored second moment: state[0] has n / mat_cols rows, state[1]
     * n / mat_rows columns), 0 for a 0-d or 1-d one. */
    size_t mat_rows, mat_cols;
} fo_item;
/* The kernel row of an item (fo_table.update[algo][fo_item_kind(item)]), or
 * -1 for a master copy on a float32/float64 item or a state16 its dtype
 * cannot have. */
int fo_item_kind(const fo_item *item);
/* Whether an algorithm steps items with 16-bit state (fo_item.state16): not
 * Adafactor (its factors) nor Muon (its update is the caller's float32). */
int fo_algo_state16(fo_algo algo);
/* Whether an algorithm steps items with block-wise 8-bit state (fo_item.state8). */
int fo_algo_state8(fo_algo algo);
/* The stochastic-rounding key of an item for one update: a hash of the seed,
 * the update's number (1 for the first) and the item's index. */
uint64_t fo_round_key(uint64_t seed, int64_t step, size_t index);

/* Per-tensor norms (LAMB, LARS) are sums over blocks of FO_NORM_BLOCK elements
 * from the tensor's start, each over FO_NORM_LANES fixed lanes, combined in
 * order: the same bits for any thread count, SIMD path or neighbour tensors. */
#define FO_NORM_BLOCK 2048
#define FO_NORM_LANES 8

/* Mode bits, per algorithm: the variants compiled as separate loops, which
 * fo_prepare() picks once per call. */
enum fo_sgd_mode {
    FO_SGD_L2 = 1,               /* grad += weight_decay * param            */
    FO_SGD_MOMENTUM = 2,
    FO_SGD_NESTEROV = 4,
    FO_SGD_FIRST = 8             /* the momentum buffer starts as grad      */
};
enum fo_adagrad_mode { FO_ADAGRAD_L2 = 1 };
enum fo_rmsprop_mode {
    FO_RMSPROP_L2 = 1,
    FO_RMSPROP_MOMENTUM = 2,
    FO_RMSPROP_CENTERED = 4,
    FO_RMSPROP_LERP_HIGH = 8     /* lerp weight >= 0.5: torch's other form  */
};
enum fo_adam_mode {
    FO_ADAM_L2 = 1,              /* Adam                                    */
    FO_ADAM_DECOUPLED = 2,       /* AdamW: param *= 1 - lr * weight_decay   */
    FO_ADAM_AMSGRAD = 4,
    FO_ADAM_LERP_HIGH = 8
};
enum fo_adamax_mode { FO_ADAMAX_L2 = 1, FO_ADAMAX_LERP_HIGH = 2 };
enum fo_adadelta_mode { FO_ADADELTA_L2 = 1 };
enum fo_radam_mode {
    FO_RADAM_L2 = 1,
    FO_RADAM_DECOUPLED = 2,      /* param *= 1 - lr * weight_decay          */
    FO_RADAM_RECTIFIED = 4,      /* rho_t > 5: the rectified adaptive step  */
    FO_RADAM_LERP_HIGH = 8
};
enum fo_rprop_mode { FO_RPROP_FIRST = 1 /* prev = 0, step_size = lr (torch's new state) */ };
/* Lion has one loop (its decoupled weight decay multiplies by 1 when 0). */
enum fo_adabelief_mode { FO_ADABELIEF_DECAY = 1 };  /* update += weight_decay * param */
enum fo_adopt_mode { FO_ADOPT_DECAY = 1 };          /* update += weight_decay * param */
enum fo_adan_mode {
    FO_ADAN_DECAY = 1,           /* weight_decay != 0                       */
    FO_ADAN_DECOUPLE = 2,        /* ... as param *= 1 - lr * wd             */
    FO_ADAN_FIRST = 4            /* previous_grad starts as -grad           */
};
/* LAMB and LARS step in two phases (fo_norm_phase()): the mode from
 * fo_prepare() runs the norm phase, mode | *_APPLY the apply phase. */
enum fo_lamb_mode {
    FO_LAMB_DECAY = 1,           /* update += weight_decay * param          */
    FO_LAMB_APPLY = 2
};
enum fo_lars_mode {
    FO_LARS_DECAY = 1,           /* update = grad + weight_decay * param    */
    FO_LARS_NESTEROV = 2,
    FO_LARS_APPLY = 4
};
enum fo_nadam_mode {
    FO_NADAM_L2 = 1,
    FO_NADAM_DECOUPLED = 2,      /* param *= 1 - lr * weight_decay          */
    FO_NADAM_LERP_HIGH = 4
};
enum fo_asgd_mode {
    FO_ASGD_L2 = 1,
    FO_ASGD_AVERAGE = 2          /* mu != 1: ax += (p - ax) * mu, else ax = p */
};
/* Schedule-Free AdamW and SGD */
enum fo_sf_mode {
    FO_SF_DECAY = 1,             /* grad += weight_decay * y                */
    FO_SF_LERP_HIGH = 2          /* ckp1 >= 0.5: torch's other lerp form    */
};
/* Muon steps in two passes with the Newton-Schulz iteration in between, outside
 * C (fo_split_phase()): the first pass (mode from fo_prepare()) updates the
 * momentum buffer and writes the update to orthogonalise into state[1], the
 * second (mode | FO_MUON_APPLY) applies what the caller put there. */
enum fo_muon_mode {
    FO_MUON_NESTEROV = 1,
    FO_MUON_APPLY = 2
};
/* SparseAdam (torch.optim.SparseAdam) has one loop; it is meant for row-sparse
 * items (fo_item.rows), and with a dense gradient updates every row. */
/* Adafactor steps in three passes, each a task per band of whole rows (fo_adafactor.c):
 * the first (mode 0, or FO_ADAFACTOR_FACTORED for an item with mat_cols) reads param and
 * grad and sums param^2 and the rows and columns of grad^2 (a 0-d or 1-d item updates
 * its variance instead), the second (| FO_ADAFACTOR_NORM) sums the update's squares,
 * the third (| FO_ADAFACTOR_APPLY) writes param. */
enum fo_adafactor_mode {
    FO_ADAFACTOR_FACTORED = 1,
    FO_ADAFACTOR_NORM = 2,
    FO_ADAFACTOR_APPLY = 4
};
#define FO_NUM_MODES 16 /* the most any algorithm has */

/* Bandwidth probes: STREAM-style copy and triad, and the in-place
 * read-modify-write an optimizer does. */
enum { FO_PROBE_COPY = 0,   /* a = b           */
       FO_PROBE_TRIAD = 1,  /* a = b + s * c   */
       FO_PROBE_RMW = 2 };  /* a = a + s * b   */
#define FO_NUM_PROBES 3

/* Kernels of one ISA. */
typedef struct fo_table {
    fo_isa isa;
    fo_kernel update[FO_NUM_ALGOS][FO_NUM_KINDS][FO_NUM_MODES]; /* [algo][kind][mode] */
    fo_kernel count_nonfinite[FO_NUM_DTYPES];        /* acc += #non-finite grad */
    /* the gradient utilities below: float32 and float64 only */
    fo_kernel grad_sumsq[2];                         /* acc += sum grad^2       */
    fo_kernel grad_sumabs[2];                        /* acc += sum |grad|       */
    fo_kernel grad_maxabs[2];                        /* acc = max(acc, |grad|)  */
    fo_kernel grad_sumpow[2];                        /* acc += sum |grad|^p, p = scalars->power */
    fo_kernel grad_scale[2];                         /* param *= scalars->scale (the item's
                                                        param is the gradient to scale) */
    fo_kernel grad_clip_value[2];                    /* param = clamp(param, -c, c),
                                                        c = scalars->clip_value */
    /* weight averages (kernels/average.inc): param is the average, grad the
     * model's parameter */
    fo_kernel average_swa[2];                        /* param += (grad - param) / avg_divisor */
    fo_kernel average_ema[2];                        /* param = avg_decay * param
                                                        + avg_weight * grad */
    /* L-BFGS's flat vectors (fastopt._flat; kernels/grad.inc) */
    fo_kernel vec_dot[2];                            /* acc += sum param * grad */
    fo_kernel vec_axpy[2];                           /* param += scalars->scale * grad */
    /* Memory-bandwidth probes over float32 (benchmarks): a = param, b = grad,
     * c = state[0], s = scalars->scale. */
    fo_kernel probe[FO_NUM_PROBES];
} fo_table;

/* ---- dispatch (fo_dispatch.c) ---- */
const char *fo_isa_name(fo_isa isa);
int fo_isa_from_name(const char *name);          /* -1 when unknown */
int fo_isa_compiled(fo_isa isa);                 /* built into this library */
int fo_isa_supported(fo_isa isa);                /* compiled and the CPU has it */
fo_isa fo_isa_best(void);
/* Table of an ISA, NULL when not supported on this CPU. */
const fo_table *fo_table_for(fo_isa isa);
/* The table in use: chosen once by fo_select() (default: best), then read-only. */
const fo_table *fo_table_active(void);
/* Pick the active ISA; returns 0, or -1 when the CPU lacks it. */
int fo_select(fo_isa isa);

/* ---- per-step scalars (fo_scalars.c) ---- */
/* The name of an algorithm in FO_ALGOS ("adam"), NULL when out of range. */
const char *fo_algo_name(int algo);
fo_hyper fo_hyper_defaults(fo_algo algo);
/* Scalars for the step numbered `step` (1 for the first update) and the
 * mode bits that select the loop. `first` marks SGD's first momentum step. */
unsigned fo_prepare(fo_algo algo, const fo_hyper *h, int64_t step, int first, fo_scalars *out);
/* fo_prepare for an item with per-parameter scalar state `ps` (NULL: the
 * state of a first update). fo_prepare(...) is fo_prepare_with(..., NULL, out). */
unsigned fo_prepare_with(fo_algo algo, const fo_hyper *h, int64_t step, int first,
                         const fo_pscalars *ps, fo_scalars *out);
/* How many fo_pscalars values an algorithm keeps (0: none; fo_step needs no pscalars). */
int fo_num_pscalars(fo_algo algo);
/* An item's per-parameter scalar state after the update prepared as `s` (with
 * `first` as given to fo_prepare_with): what torch's step leaves in its 0-d tensors. */
void fo_advance(fo_algo algo, const fo_scalars *s, int first, fo_pscalars *ps);
/* fo_prepare, then set item->scalars and item->kernel from table t. Returns 0,
 * or -1 when a state buffer the chosen loop needs is NULL, fo_item_kind(item)
 * is -1, or the algorithm has a norm phase (fo_norm_phase(): only fo_step() runs those): then
 * item->kernel is NULL and fo_run() leaves the item alone. */
int fo_prepare_item(const fo_table *t, fo_algo algo, const fo_hyper *h, int64_t step,
                    int first, fo_scalars *scalars, fo_item *item);
/* The mode bit of an algorithm's apply phase when it has a norm phase (LAMB,
 * LARS), else 0. fo_step() then runs every item twice: the norm phase (the
 * mode from fo_prepare()) adds to item->norms, fo_step() turns the two norms
 * into item->ratio, and the apply phase (mode | that bit) updates. */
unsigned fo_norm_phase(fo_algo algo);
/* The mode bit of an algorithm's second pass when its step has a stage outside
 * C between two passes (Muon: FO_MUON_APPLY), else 0. The caller runs
 * fo_step() with phase 0 (the first pass: the counts do not advance), does
 * its stage, then runs fo_step() with phase set to that bit. */
unsigned fo_split_phase(fo_algo algo);
/* State buffers an algorithm uses under h, as a bit mask of state[] slots. */
unsigned fo_state_slots(fo_algo algo, const fo_hyper *h);
/* State buffers the loop of `mode` (from fo_prepare) reads and writes. */
unsigned fo_mode_slots(fo_algo algo, unsigned mode);
/* The slots of fo_mode_slots(algo, mode) that are NULL in item (0: none). */
unsigned fo_missing_slots(fo_algo algo, unsigned mode, const fo_item *item);

/* ---- one step (fo_step.c) ---- */
/* Everything one step reads and writes. The per-item arrays (group, steps,
 * started) have `count` entries; fo_step() only reads them, except that an
 * applied step adds 1 to steps[i], sets started[i] and advances pscalars[i]
 * (fo_advance) for each item stepped. */
typedef struct fo_step_args {
    const fo_table *table;   /* kernels; NULL: fo_table_active() */
    fo_algo algo;
    const fo_hyper *hypers;  /* per parameter group */
    size_t ngroups;
    fo_item *items;          /* per parameter; grad NULL: not stepped this time */
    size_t count;
    const int *group;        /* per item: its group, an index into hypers */
    int64_t *steps;          /* per item: updates done (the next is number steps[i] + 1) */
    uint8_t *started;        /* per item: 0 until its first update (SGD's momentum
                                buffer then starts as the gradient) */
    fo_scalars *scalars;     /* workspace of `count` entries */
    fo_pscalars *pscalars;   /* per item, when fo_num_pscalars(algo) > 0 (else unread):
                                read for its scalars, advanced by an applied update */
    int skip_nonfinite;      /* change nothing when a gradient holds NaN or Inf */
    uint64_t seed;           /* stochastic rounding (items with FO_ROUND_STOCHASTIC) */
    unsigned phase;          /* 0, or fo_split_phase(algo) for the second pass of such a step:
                                or'ed into every item's mode; the counts advance then only */
    /* set when fo_step() returns an error: */
    size_t bad;              /* the item at fault */
    unsigned missing;        /* FO_STEP_NO_STATE: the state[] slots (bit mask) its loop needs */
} fo_step_args;

/* fo_step()'s results. On an error nothing has been written but the items'
 * scalars, kernel and vstart fields and the workspace. */
enum {
    FO_STEP_APPLIED = 1,
    FO_STEP_SKIPPED = 0,     /* skip_nonfinite and a gradient holds NaN or Inf */
    FO_STEP_NO_STATE = -1,   /* a state buffer the item's loop needs is NULL */
    FO_STEP_BAD_GROUP = -2,  /* group[bad] is not an index into hypers */
    FO_STEP_BAD_COUNT = -3,  /* steps[bad] is negative, or INT64_MAX (no next number) */
    FO_STEP_BAD_ARGS = -4,   /* algo or an item's dtype or rounding out of range; no pscalars
                                where needed; a master copy on a float32/float64 item */
    FO_STEP_NO_MEMORY = -5
};

/* One update of every item that has a gradient, in one call: the scalars of
 * each (group, step number), the loop for its hyperparameters, the
 * non-finite check when asked, the run on the thread pool, the counts. */
int fo_step(fo_step_args *args);

/* ---- threads (fo_pool.c) ---- */
int fo_set_num_threads(int n);    /* n >= 1; returns 0, or -1 on failure */
int fo_get_num_threads(void);
int fo_default_num_threads(void); /* usable cores */
/* Lay the items out in one byte space (an item without a kernel takes no
 * room) and return the number of pieces the job is cut into (the length
 * `partials` must have for a reduction). */
size_t fo_plan(fo_item *items, size_t count);
/* Run every item's kernel over all its elements, spread over the pool.
 * `partials` (NULL for updates) gets one accumulator per piece, each
 * starting at 0; the caller combines them in order. Call fo_plan() first. */
void fo_run(const fo_item *items, size_t count, size_t pieces, double *partials);

#ifdef __cplusplus
}
#endif
#endif /* FASTOPT_H */

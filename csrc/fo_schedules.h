/*
 * Learning-rate schedules: pure functions of an integer step, in double.
 *
 * Each schedule <name> has a parameter struct fo_sched_<name>_params and
 *
 *   double fo_sched_<name>(const fo_sched_<name>_params *p, int64_t step);
 *   void   fo_sched_<name>_array(const fo_sched_<name>_params *p,
 *                                const int64_t *steps, double *out, size_t n);
 *
 * The array form writes out[i] = fo_sched_<name>(p, steps[i]) and gives the
 * same bits as the scalar form. fo_sched is a tagged union over all of them
 * (join_schedules nests fo_sched values), evaluated by fo_sched_eval*.
 *
 * The functions never allocate, fail or read globals; they only read the
 * memory the params point to. Steps are meant to be >= 0; a negative step is
 * evaluated as step 0 so that no input is undefined behaviour.
 *
 * The formulas (t the step) and where they come from:
 *   constant       v
 *   linear         optax: c = clip(t - B, 0, T); (I - E) * (1 - c / T) + E
 *   polynomial     optax: (I - E) * (1 - c / T)^P + E; T <= 0 gives I
 *   step           torch StepLR / d2l FactorScheduler:
 *                  max(min_lr, base * gamma^(floor(t / step_size) + offset))
 *   multistep      torch MultiStepLR / d2l MultiFactorScheduler:
 *                  base * gamma^k, k = number of milestones <= t
 *   exponential    optax exponential_decay: p = (t - B) / T (floored when
 *                  staircase); I * rate^p for t > B, else I; then clipped
 *                  to end_value from below (clip > 0) or above (clip < 0)
 *   cosine         optax cosine_decay_schedule: c = min(t, T);
 *                  I * ((1 - alpha) * (0.5 * (1 + cos(pi c / T)))^e + alpha)
 *   warmup_cosine  d2l CosineScheduler: linear warmup from warmup_begin_lr
 *                  to base_lr over W steps, then
 *                  final + (base - final) * (1 + cos(pi (t - W) / (M - W))) / 2
 *                  up to max_update M, final after
 *   cosine_restarts torch CosineAnnealingWarmRestarts (SGDR): period T_i
 *                  starts at T_0 and is multiplied by T_mult at each restart;
 *                  eta_min + (base - eta_min) * (1 + cos(pi T_cur / T_i)) / 2
 *   cyclic         torch CyclicLR (triangular, triangular2, exp_range)
 *   onecycle       torch OneCycleLR (two or three phases, cos or linear);
 *                  steps past total_steps - 1 give the final value
 *   piecewise      optax piecewise_constant_schedule: I times the product of
 *                  the scales whose boundary is <= t
 *   inv_sqrt       d2l SquareRootScheduler: lr * (t + 1)^-0.5
 *   join           optax join_schedules: schedule k at t - boundary[k-1],
 *                  k = number of boundaries <= t
 */
#ifndef FO_SCHEDULES_H
#define FO_SCHEDULES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct { double value; } fo_sched_constant_params;

typedef struct {
    double init_value, end_value;
    int64_t transition_steps, transition_begin;
} fo_sched_linear_params;

typedef struct {
    double init_value, end_value, power;
    int64_t transition_steps, transition_begin;
} fo_sched_polynomial_params;

typedef struct {
    double base_lr, gamma, min_lr;
    int64_t step_size, offset;
} fo_sched_step_params;

typedef struct {
    double base_lr, gamma;
    const int64_t *milestones; /* sorted ascending, repeats allowed */
    size_t n;
} fo_sched_multistep_params;

typedef struct {
    double init_value, decay_rate, end_value;
    int64_t transition_steps, transition_begin;
    int staircase;
    int clip; /* 0: none, > 0: max(value, end_value), < 0: min(value, end_value) */
} fo_sched_exponential_params;

typedef struct {
    double init_value, alpha, exponent;
    int64_t decay_steps;
} fo_sched_cosine_params;

typedef struct {
    double warmup_begin_lr, base_lr, final_lr;
    int64_t warmup_steps, max_update;
} fo_sched_warmup_cosine_params;

typedef struct {
    double base_lr, eta_min;
    int64_t T_0, T_mult;
} fo_sched_cosine_restarts_params;

typedef enum {
    FO_CYCLIC_TRIANGULAR,
    FO_CYCLIC_TRIANGULAR2,
    FO_CYCLIC_EXP_RANGE
} fo_cyclic_mode;

typedef struct {
    double base_lr, max_lr, step_size_up, step_size_down, gamma;
    fo_cyclic_mode mode;
} fo_sched_cyclic_params;

typedef struct {
    double initial_lr, max_lr, min_lr, pct_start;
    int64_t total_steps;
    int linear;      /* 0: cosine annealing, 1: linear */
    int three_phase;
} fo_sched_onecycle_params;

typedef struct {
    double init_value;
    const int64_t *boundaries; /* sorted ascending, distinct */
    const double *scales;
    size_t n;
} fo_sched_piecewise_params;

typedef struct { double lr; } fo_sched_inv_sqrt_params;

typedef struct fo_sched fo_sched;

typedef struct {
    const fo_sched *schedules; /* n schedules */
    const int64_t *boundaries; /* n - 1 boundaries, ascending */
    size_t n;
} fo_sched_join_params;

typedef enum {
    FO_SCHED_CONSTANT,
    FO_SCHED_LINEAR,
    FO_SCHED_POLYNOMIAL,
    FO_SCHED_STEP,
    FO_SCHED_MULTISTEP,
    FO_SCHED_EXPONENTIAL,
    FO_SCHED_COSINE,
    FO_SCHED_WARMUP_COSINE,
    FO_SCHED_COSINE_RESTARTS,
    FO_SCHED_CYCLIC,
    FO_SCHED_ONECYCLE,
    FO_SCHED_PIECEWISE,
    FO_SCHED_INV_SQRT,
    FO_SCHED_JOIN
} fo_sched_kind;

typedef union {
    fo_sched_constant_params constant;
    fo_sched_linear_params linear;
    fo_sched_polynomial_params polynomial;
    fo_sched_step_params step;
    fo_sched_multistep_params multistep;
    fo_sched_exponential_params exponential;
    fo_sched_cosine_params cosine;
    fo_sched_warmup_cosine_params warmup_cosine;
    fo_sched_cosine_restarts_params cosine_restarts;
    fo_sched_cyclic_params cyclic;
    fo_sched_onecycle_params onecycle;
    fo_sched_piecewise_params piecewise;
    fo_sched_inv_sqrt_params inv_sqrt;
    fo_sched_join_params join;
} fo_sched_any_params;

struct fo_sched {
    fo_sched_kind kind;
    fo_sched_any_params p; /* the member named like the kind */
};

#define FO_SCHED_DECLARE(name)                                                \
    double fo_sched_##name(const fo_sched_##name##_params *p, int64_t step);   \
    void fo_sched_##name##_array(const fo_sched_##name##_params *p,            \
                                 const int64_t *steps, double *out, size_t n);

FO_SCHED_DECLARE(constant)
FO_SCHED_DECLARE(linear)
FO_SCHED_DECLARE(polynomial)
FO_SCHED_DECLARE(step)
FO_SCHED_DECLARE(multistep)
FO_SCHED_DECLARE(exponential)
FO_SCHED_DECLARE(cosine)
FO_SCHED_DECLARE(warmup_cosine)
FO_SCHED_DECLARE(cosine_restarts)
FO_SCHED_DECLARE(cyclic)
FO_SCHED_DECLARE(onecycle)
FO_SCHED_DECLARE(piecewise)
FO_SCHED_DECLARE(inv_sqrt)
FO_SCHED_DECLARE(join)

/*
 * torch's CyclicLR, OneCycleLR and CosineAnnealingWarmRestarts at one point,
 * in torch's order of operations. The schedules above are built on these,
 * and fastopt.lr_scheduler's classes call them with the state torch keeps
 * (T_cur and T_i, total_size and step_ratio, the phases), which may be
 * fractional, so both give the same bits.
 */
/* SGDR: eta_min + (base_lr - eta_min) * (1 + cos(pi T_cur / T_i)) / 2 */
double fo_sgdr_at(double base_lr, double eta_min, double T_cur, double T_i);
/* CyclicLR's cycle number at step t: floor(1 + t / total) */
double fo_cyclic_cycle(double total, double t);
/* A built-in mode's scale at x (the cycle; the step for exp_range):
 * 1, 1 / 2^(x - 1) or gamma^x */
double fo_cyclic_scale(fo_cyclic_mode mode, double gamma, double x);
/* lo + (hi - lo) * h * scale, h the triangle wave of CyclicLR at step t
 * (ratio = step_size_up / total); hi < lo gives the inverse momentum cycle */
double fo_cyclic_at(double lo, double hi, double total, double ratio, double t, double scale);

/* One phase of OneCycleLR: from `start` at the previous phase's end_step (0
 * for the first) to `end` at end_step. */
typedef struct { double end_step, start, end; } fo_phase;
/* The value at step t: the first phase with t <= end_step, or the last one
 * (which continues past its end); cosine or linear annealing. *empty (unless
 * NULL) is set to whether that phase has no length (torch divides by zero). */
double fo_phases_at(const fo_phase *phases, size_t n, int linear, double t, int *empty);

/* Any schedule, by its tag. */
double fo_sched_eval(const fo_sched *s, int64_t step);
void fo_sched_eval_array(const fo_sched *s, const int64_t *steps, double *out, size_t n);
/* out[i] = value at step start + i. */
void fo_sched_fill(const fo_sched *s, int64_t start, double *out, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* FO_SCHEDULES_H */

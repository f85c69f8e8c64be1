/*
 * Learning-rate schedules (see fo_schedules.h for the formulas).
 *
 * Each formula keeps the order of operations of the definition it follows
 * (torch, optax or the d2l.ai book), so that the values agree with those
 * definitions to the last bit wherever they use the same libm function.
 * Integer parts of the step arithmetic stay in int64 and become double only
 * where the definition divides; parameters that would divide by zero are
 * treated as 1 (fastopt.schedules validates them before they get here).
 */
#include <math.h>
#include "fo_schedules.h"

#define FO_PI 3.14159265358979323846

static int64_t nonneg(int64_t t) { return t < 0 ? 0 : t; }
static int64_t at_least_one(int64_t v) { return v < 1 ? 1 : v; }

/* Python's max(a, b): a unless b > a. */
static double py_max(double a, double b) { return b > a ? b : a; }

double fo_sched_constant(const fo_sched_constant_params *p, int64_t step)
{
    (void)step;
    return p->value;
}

/* optax's clip(t - B, 0, T) / T, for T > 0 and B clamped to >= 0. */
static double transition_frac(int64_t t, int64_t begin, int64_t steps)
{
    int64_t c = nonneg(t) - nonneg(begin);
    c = c < 0 ? 0 : (c > steps ? steps : c);
    return 1.0 - (double)c / (double)steps;
}

double fo_sched_linear(const fo_sched_linear_params *p, int64_t step)
{
    if (p->transition_steps <= 0)
        return p->init_value;
    double frac = transition_frac(step, p->transition_begin, p->transition_steps);
    return (p->init_value - p->end_value) * frac + p->end_value;
}

double fo_sched_polynomial(const fo_sched_polynomial_params *p, int64_t step)
{
    if (p->transition_steps <= 0)
        return p->init_value;
    double frac = transition_frac(step, p->transition_begin, p->transition_steps);
    return (p->init_value - p->end_value) * pow(frac, p->power) + p->end_value;
}

double fo_sched_step(const fo_sched_step_params *p, int64_t step)
{
    int64_t k = nonneg(step) / at_least_one(p->step_size);
    double v = p->base_lr * pow(p->gamma, (double)k + (double)p->offset);
    return py_max(p->min_lr, v);
}

/* Number of sorted values <= t (Python's bisect_right). */
static size_t count_le(const int64_t *sorted, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

double fo_sched_multistep(const fo_sched_multistep_params *p, int64_t step)
{
    size_t k = count_le(p->milestones, p->n, nonneg(step));
    return p->base_lr * pow(p->gamma, (double)k);
}

double fo_sched_exponential(const fo_sched_exponential_params *p, int64_t step)
{
    if (p->transition_steps <= 0 || p->decay_rate == 0.0)
        return p->init_value;
    int64_t dc = nonneg(step) - nonneg(p->transition_begin);
    double v = p->init_value;
    if (dc > 0) {
        double e = (double)dc / (double)p->transition_steps;
        if (p->staircase)
            e = floor(e);
        v = p->init_value * pow(p->decay_rate, e);
    }
    if (p->clip > 0)
        v = v > p->end_value ? v : p->end_value;
    else if (p->clip < 0)
        v = v < p->end_value ? v : p->end_value;
    return v;
}

double fo_sched_cosine(const fo_sched_cosine_params *p, int64_t step)
{
    int64_t T = at_least_one(p->decay_steps);
    int64_t t = nonneg(step);
    double c = (double)(t < T ? t : T);
    double decay = 0.5 * (1.0 + cos(FO_PI * c / (double)T));
    return p->init_value * ((1.0 - p->alpha) * pow(decay, p->exponent) + p->alpha);
}

double fo_sched_warmup_cosine(const fo_sched_warmup_cosine_params *p, int64_t step)
{
    int64_t t = nonneg(step), W = nonneg(p->warmup_steps), M = p->max_update;
    if (t < W)
        return p->warmup_begin_lr
               + (p->base_lr - p->warmup_begin_lr) * (double)t / (double)W;
    if (M <= W) /* no decay phase: the book divides by zero here */
        return p->final_lr;
    if (t > M) /* the book holds its value from step max_update on */
        t = M;
    return p->final_lr
           + (p->base_lr - p->final_lr)
                 * (1.0 + cos(FO_PI * (double)(t - W) / (double)(M - W))) / 2.0;
}

double fo_sgdr_at(double base_lr, double eta_min, double T_cur, double T_i)
{
    return eta_min + (base_lr - eta_min) * (1.0 + cos(FO_PI * T_cur / T_i)) / 2.0;
}

double fo_sched_cosine_restarts(const fo_sched_cosine_restarts_params *p, int64_t step)
{
    int64_t T_i = at_least_one(p->T_0), mult = at_least_one(p->T_mult);
    int64_t T_cur = nonneg(step);
    if (mult == 1) {
        T_cur %= T_i;
    } else {
        /* Periods T_0, T_0 m, T_0 m^2, ...: O(log step) subtractions. Once
         * T_i * m would overflow, T_cur < INT64_MAX < T_i * m ends the loop. */
        while (T_cur >= T_i) {
            T_cur -= T_i;
            if (T_i > INT64_MAX / mult)
                break;
            T_i *= mult;
        }
    }
    return fo_sgdr_at(p->base_lr, p->eta_min, (double)T_cur, (double)T_i);
}

double fo_cyclic_cycle(double total, double t)
{
    return floor(1.0 + t / total);
}

double fo_cyclic_scale(fo_cyclic_mode mode, double gamma, double x)
{
    switch (mode) {
    case FO_CYCLIC_TRIANGULAR2: return 1.0 / pow(2.0, x - 1.0);
    case FO_CYCLIC_EXP_RANGE: return pow(gamma, x);
    default: return 1.0;
    }
}

double fo_cyclic_at(double lo, double hi, double total, double ratio, double t, double scale)
{
    double x = 1.0 + t / total - fo_cyclic_cycle(total, t);
    double h = x <= ratio ? x / ratio : (x - 1.0) / (ratio - 1.0);
    return lo + (hi - lo) * h * scale;
}

double fo_sched_cyclic(const fo_sched_cyclic_params *p, int64_t step)
{
    double t = (double)nonneg(step);
    double total = p->step_size_up + p->step_size_down;
    double x = p->mode == FO_CYCLIC_EXP_RANGE ? t : fo_cyclic_cycle(total, t);
    return fo_cyclic_at(p->base_lr, p->max_lr, total, p->step_size_up / total, t,
                        fo_cyclic_scale(p->mode, p->gamma, x));
}

static double anneal(int linear, double start, double end, double pct)
{
    if (linear)
        return (end - start) * pct + start;
    return end + (start - end) / 2.0 * (cos(FO_PI * pct) + 1.0);
}

double fo_phases_at(const fo_phase *phases, size_t n, int linear, double t, int *empty)
{
    double start_step = 0.0;
    size_t i = 0;
    while (i + 1 < n && !(t <= phases[i].end_step))
        start_step = phases[i++].end_step;
    const fo_phase *ph = &phases[i];
    if (empty)
        *empty = ph->end_step == start_step;
    return anneal(linear, ph->start, ph->end, (t - start_step) / (ph->end_step - start_step));
}

double fo_sched_onecycle(const fo_sched_onecycle_params *p, int64_t step)
{
    int64_t total = at_least_one(p->total_steps);
    int64_t t = nonneg(step);
    if (t > total - 1)
        t = total - 1;
    double end1 = p->pct_start * (double)total - 1.0, last = (double)(total - 1);
    fo_phase two[2] = {{end1, p->initial_lr, p->max_lr}, {last, p->max_lr, p->min_lr}};
    fo_phase three[3] = {{end1, p->initial_lr, p->max_lr},
                         {2.0 * p->pct_start * (double)total - 2.0, p->max_lr, p->initial_lr},
                         {last, p->initial_lr, p->min_lr}};
    if (p->three_phase)
        return fo_phases_at(three, 3, p->linear, (double)t, NULL);
    return fo_phases_at(two, 2, p->linear, (double)t, NULL);
}

double fo_sched_piecewise(const fo_sched_piecewise_params *p, int64_t step)
{
    int64_t t = nonneg(step);
    double v = p->init_value;
    for (size_t i = 0; i < p->n; i++)
        if (t >= p->boundaries[i])
            v = p->scales[i] * v;
    return v;
}

double fo_sched_inv_sqrt(const fo_sched_inv_sqrt_params *p, int64_t step)
{
    return p->lr * pow((double)nonneg(step) + 1.0, -0.5);
}

/* The schedule a join runs at `step`, and (in *step) the step it sees. */
static const fo_sched *join_pick(const fo_sched_join_params *p, int64_t *step)
{
    /* optax applies the boundaries in their order, later ones winning. */
    int64_t t = nonneg(*step), offset = 0;
    size_t k = 0;
    for (size_t i = 0; i + 1 < p->n; i++)
        if (t >= p->boundaries[i])
            k = i + 1, offset = p->boundaries[i];
    *step = (offset < 0 && t > INT64_MAX + offset) ? INT64_MAX : t - offset;
    return &p->schedules[k];
}

double fo_sched_join(const fo_sched_join_params *p, int64_t step)
{
    const fo_sched *s = join_pick(p, &step);
    return fo_sched_eval(s, step);
}

/* Every schedule: its tag and its name (the union member and function). */
#define FO_SCHED_ALL(X)                                                        \
    X(FO_SCHED_CONSTANT, constant)                                             \
    X(FO_SCHED_LINEAR, linear)                                                 \
    X(FO_SCHED_POLYNOMIAL, polynomial)                                         \
    X(FO_SCHED_STEP, step)                                                     \
    X(FO_SCHED_MULTISTEP, multistep)                                           \
    X(FO_SCHED_EXPONENTIAL, exponential)                                       \
    X(FO_SCHED_COSINE, cosine)                                                 \
    X(FO_SCHED_WARMUP_COSINE, warmup_cosine)                                   \
    X(FO_SCHED_COSINE_RESTARTS, cosine_restarts)                               \
    X(FO_SCHED_CYCLIC, cyclic)                                                 \
    X(FO_SCHED_ONECYCLE, onecycle)                                             \
    X(FO_SCHED_PIECEWISE, piecewise)                                           \
    X(FO_SCHED_INV_SQRT, inv_sqrt)                                             \
    X(FO_SCHED_JOIN, join)

/* The array forms call the scalar ones, so both give the same bits. */
#define FO_SCHED_ARRAY(KIND, name)                                             \
    void fo_sched_##name##_array(const fo_sched_##name##_params *p,            \
                                 const int64_t *steps, double *out, size_t n)  \
    {                                                                          \
        for (size_t i = 0; i < n; i++)                                         \
            out[i] = fo_sched_##name(p, steps[i]);                             \
    }
FO_SCHED_ALL(FO_SCHED_ARRAY)

#define FO_SCHED_EVAL_CASE(KIND, name)                                         \
    case KIND: return fo_sched_##name(&s->p.name, step);

double fo_sched_eval(const fo_sched *s, int64_t step)
{
    /* Joins nest (a join of joins ...): walk down in a loop, so that the
     * depth of a nest costs no stack. */
    while (s->kind == FO_SCHED_JOIN)
        s = join_pick(&s->p.join, &step);
    switch (s->kind) {
    FO_SCHED_ALL(FO_SCHED_EVAL_CASE)
    }
    return NAN;
}

/* One switch per call, whatever the number of steps. */
#define FO_SCHED_ARRAY_CASE(KIND, name)                                        \
    case KIND: fo_sched_##name##_array(&s->p.name, steps, out, n); return;

void fo_sched_eval_array(const fo_sched *s, const int64_t *steps, double *out, size_t n)
{
    switch (s->kind) {
    FO_SCHED_ALL(FO_SCHED_ARRAY_CASE)
    }
    for (size_t i = 0; i < n; i++)
        out[i] = NAN;
}

void fo_sched_fill(const fo_sched *s, int64_t start, double *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = fo_sched_eval(s, start + (int64_t)i);
}

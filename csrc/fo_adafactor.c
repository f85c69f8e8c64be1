/*
 * Adafactor's step (torch.optim.Adafactor's single-tensor order of operations),
 * three passes over parameter-sized memory with a small per-item step between
 * the first two (kernels/adafactor.inc has the passes):
 *
 *   1. read p, g: sum p^2; the rows' and the columns' sums of g^2 (a 0-d or
 *      1-d item: its variance lerped to g^2 instead)
 *   (per item: alpha = max(eps2, RMS(p)) * rho, the factors lerped to the
 *    means of g^2, each batch's row mean)
 *   2. read g and the factors: sum u^2 of the update u
 *   (per item: the step -alpha / max(1, RMS(u) / d))
 *   3. read p, g and the factors: write p
 *
 * Each item is cut into bands of whole rows of one matrix (a 0-d or 1-d item:
 * of elements), from its shape only, and each band is one task on the pool,
 * run from its first element to its last on one thread, with accumulators of
 * its own: the column sums per band, the row sums, p^2 and u^2 per band, all
 * in double. The caller combines the bands in order, so the sums never depend
 * on the thread count, and (every sum a scalar loop) not on the SIMD path.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fo_common.h"

/* A band holds at least FO_AF_BAND elements (unless its item or matrix is
 * smaller), and a matrix is cut into at most FO_AF_MAX_BANDS bands, so the
 * column sums take at most FO_AF_MAX_BANDS rows of doubles per matrix. */
#define FO_AF_BAND ((size_t)1 << 16)
#define FO_AF_MAX_BANDS 16

typedef struct fo_af_band {
    fo_item item;          /* the owner's copy: vstart = begin, state[1] at the batch's
                              col_var, norms = this band's accumulators */
    size_t begin, end;     /* elements of the owner */
    size_t rows;           /* rows of the band (factored), else 0 */
} fo_af_band;

typedef struct fo_af_job {
    const fo_table *t;
    fo_af_band *bands;
    unsigned pass;         /* 0, FO_ADAFACTOR_NORM or FO_ADAFACTOR_APPLY */
} fo_af_job;

static void fo_af_task(void *ctx, size_t k)
{
    const fo_af_job *job = (const fo_af_job *)ctx;
    const fo_af_band *b = &job->bands[k];
    const unsigned mode = (b->item.mat_cols ? FO_ADAFACTOR_FACTORED : 0u) | job->pass;
    job->t->update[FO_ADAFACTOR][fo_item_kind(&b->item)][mode](&b->item, b->begin, b->end, NULL);
}

/* torch.finfo(dtype).eps of the computing dtype (a 16-bit parameter's step is
 * the float32 step, rounded once) */
static double fo_machine_eps(int dtype)
{
    return dtype == FO_F64 ? DBL_EPSILON : FLT_EPSILON;
}

/* Rows per band of a matrix of `rows` x `cols`. */
static size_t fo_af_band_rows(size_t rows, size_t cols)
{
    size_t k = (FO_AF_BAND + cols - 1) / cols, least = (rows + FO_AF_MAX_BANDS - 1) / FO_AF_MAX_BANDS;
    if (k < least) k = least;
    return k < rows ? k : rows;
}

/* The bands of item `it` into out (when not NULL) from out[0]; returns how many,
 * and adds the doubles their accumulators take to *doubles. */
static size_t fo_af_plan(const fo_item *it, fo_af_band *out, double **acc, size_t *doubles)
{
    size_t count = 0;
    if (it->mat_cols) {
        const size_t matrix = it->mat_rows * it->mat_cols, k = fo_af_band_rows(it->mat_rows, it->mat_cols);
        for (size_t b = 0; b < it->n / matrix; b++) {
            for (size_t r = 0; r < it->mat_rows; r += k, count++) {
                const size_t rows = r + k < it->mat_rows ? k : it->mat_rows - r;
                const size_t need = FO_AF_HEAD + it->mat_cols + rows;
                if (out) {
                    fo_af_band *band = &out[count];
                    band->item = *it;
                    band->begin = b * matrix + r * it->mat_cols;
                    band->end = band->begin + rows * it->mat_cols;
                    band->rows = rows;
                    band->item.vstart = band->begin;
                    band->item.state[1] = (char *)it->state[1] +
                        b * it->mat_cols * (it->dtype == FO_F64 ? sizeof(double) : sizeof(float));
                    band->item.norms = *acc;
                    *acc += need;
                }
                *doubles += need;
            }
        }
        return count;
    }
    for (size_t i = 0; i < it->n; i += FO_AF_BAND, count++) {
        if (out) {
            fo_af_band *band = &out[count];
            band->item = *it;
            band->begin = i;
            band->end = i + FO_AF_BAND < it->n ? i + FO_AF_BAND : it->n;
            band->rows = 0;
            band->item.vstart = i;
            band->item.norms = *acc;
            *acc += FO_AF_HEAD;
        }
        *doubles += FO_AF_HEAD;
    }
    return count;
}

/* The per-item step between the first two passes, in the state's dtype T:
 * the factors lerped to the means of g^2 (torch's norm(g, dim).square_().div_(size),
 * the norm's sum in double) and each batch's row mean, clamped by eps1, into
 * its bands' acc[3]. */
#define FO_AF_FACTORS(T, sfx)                                                               \
    static T fo_af_lerp_##sfx(T self, T end, const fo_scalars *s)                           \
    {                                                                                       \
        const T w = (T)s->lerp_weight;                                                      \
        return s->lerp_high ? end - (end - self) * ((T)1 - w) : self + w * (end - self);    \
    }                                                                                       \
    static void fo_af_factors_##sfx(fo_af_band *bands, size_t count, double eps1)           \
    {                                                                                       \
        const fo_item *it = &bands[0].item;                                                 \
        const fo_scalars *s = it->scalars;                                                  \
        const size_t cols = it->mat_cols, rows = it->mat_rows;                                      \
        T *row = (T *)it->state[0];                                                         \
        for (size_t j = 0; j < count;) {                                                    \
            /* the bands of one batch: j .. e */                                            \
            size_t e = j, seen = 0;                                                         \
            while (e < count && seen < rows) seen += bands[e++].rows;                       \
            T *col = (T *)bands[j].item.state[1];                                           \
            for (size_t c = 0; c < cols; c++) {                                             \
                double sum = 0;                                                             \
                for (size_t b = j; b < e; b++) sum += bands[b].item.norms[FO_AF_HEAD + c];  \
                const T norm = (T)sqrt(sum);                                                \
                col[c] = fo_af_lerp_##sfx(col[c], norm * norm / (T)rows, s);                \
            }                                                                               \
            double total = 0;                                                               \
            for (size_t b = j; b < e; b++) {                                                \
                const double *rs = bands[b].item.norms + FO_AF_HEAD + cols;                 \
                T *r = row + bands[b].begin / cols;                                         \
                for (size_t k = 0; k < bands[b].rows; k++) {                                \
                    const T norm = (T)sqrt(rs[k]);                                          \
                    r[k] = fo_af_lerp_##sfx(r[k], norm * norm / (T)cols, s);                \
                    total += (double)r[k];                                                  \
                }                                                                           \
            }                                                                               \
            T mean = (T)(total / (double)rows);                                             \
            if (!(mean > (T)eps1 || mean != mean)) mean = (T)eps1;  /* clamp_(min=eps1) */  \
            for (size_t b = j; b < e; b++) bands[b].item.norms[3] = (double)mean;           \
            j = e;                                                                          \
        }                                                                                   \
    }
FO_AF_FACTORS(float, f32)
FO_AF_FACTORS(double, f64)
#undef FO_AF_FACTORS

/* A sum's square root as torch's norm(2).item() gives it: in the computing dtype. */
static double fo_af_norm(double sum, int dtype)
{
    return dtype == FO_F64 ? sqrt(sum) : (double)(float)sqrt(sum);
}

int fo_adafactor_step(const fo_table *t, fo_step_args *a)
{
    size_t count = 0, doubles = 0, bytes = 0;
    for (size_t i = 0; i < a->count; i++) {
        const fo_item *it = &a->items[i];
        if (!it->kernel || !it->n) continue;
        count += fo_af_plan(it, NULL, NULL, &doubles);
        bytes += fo_room(it);
    }
    if (!count) return FO_STEP_APPLIED;
    fo_af_band *bands = (fo_af_band *)malloc(count * sizeof *bands);
    double *acc = (double *)calloc(doubles, sizeof *acc);
    size_t *first = (size_t *)malloc((a->count + 1) * sizeof *first);  /* per item, its first band */
    double *alpha = (double *)calloc(a->count, sizeof *alpha);           /* per item, its step size */
    if (!bands || !acc || !first || !alpha) {
        free(bands);
        free(acc);
        free(first);
        free(alpha);
        return FO_STEP_NO_MEMORY;
    }
    double *at = acc;
    size_t k = 0;
    for (size_t i = 0; i < a->count; i++) {
        first[i] = k;
        const fo_item *it = &a->items[i];
        if (it->kernel && it->n) k += fo_af_plan(it, bands + k, &at, &(size_t){0});
    }
    first[a->count] = k;
    fo_af_job job = { t, bands, 0u };
    fo_run_tasks(count, fo_af_task, &job, bytes);
    for (size_t i = 0; i < a->count; i++) {
        const fo_item *it = &a->items[i];
        if (first[i] == first[i + 1]) continue;
        const fo_scalars *s = it->scalars;
        const double eps1 = s->eps != s->eps ? fo_machine_eps(it->dtype) : s->eps;
        double sum = 0;
        for (size_t b = first[i]; b < first[i + 1]; b++) {
            sum += bands[b].item.norms[0];
            bands[b].item.norms[2] = eps1;
        }
        alpha[i] = fmax(s->eps_root, fo_af_norm(sum, it->dtype) / sqrt((double)it->n)) * s->lr;
        if (it->mat_cols && it->dtype == FO_F64) fo_af_factors_f64(bands + first[i], first[i + 1] - first[i], eps1);
        else if (it->mat_cols) fo_af_factors_f32(bands + first[i], first[i + 1] - first[i], eps1);
    }
    job.pass = FO_ADAFACTOR_NORM;
    fo_run_tasks(count, fo_af_task, &job, bytes);
    for (size_t i = 0; i < a->count; i++) {
        const fo_item *it = &a->items[i];
        if (first[i] == first[i + 1]) continue;
        double sum = 0;
        for (size_t b = first[i]; b < first[i + 1]; b++) sum += bands[b].item.norms[1];
        /* torch: max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * d)) */
        const double denom = fmax(1.0, fo_af_norm(sum, it->dtype) / (sqrt((double)it->n) * it->scalars->clip_value));
        for (size_t b = first[i]; b < first[i + 1]; b++) bands[b].item.norms[4] = -alpha[i] / denom;
    }
    job.pass = FO_ADAFACTOR_APPLY;
    fo_run_tasks(count, fo_af_task, &job, bytes);
    free(alpha);
    free(bands);
    free(acc);
    free(first);
    return FO_STEP_APPLIED;
}

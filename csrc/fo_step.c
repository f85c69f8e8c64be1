/*
 * One optimizer step, the one entry every front-end (Python, C) calls.
 *
 * Everything that can refuse the step is checked before anything is written:
 * each item's group, its step count, its dtype and the state buffers its loop
 * needs. Items in a row with the same (group, step number, started) share one
 * fo_scalars (one fo_prepare(), so the pow() of Adam's bias corrections runs
 * once per group, not once per tensor); for an algorithm with per-parameter
 * scalar state (fo_pscalars) only items whose state is also the same (bit for
 * bit) share. Items without a gradient get no
 * kernel, so fo_plan() gives them no room and fo_run() never reaches them.
 *
 * An algorithm with a norm phase (fo_norm_phase(): LAMB, LARS) runs in two
 * passes over the pool: the norm phase adds each item's two sums of squares
 * into per-block lanes (item->norms), fo_step() combines them in block order
 * into the item's trust ratio, and the apply phase updates. Its items start
 * on block boundaries of the byte space, so no piece cuts a block: the sums
 * never depend on the pieces, the threads or the other items.
 *
 * An algorithm with a stage outside C (fo_split_phase(): Muon's Newton-Schulz
 * iteration) is two calls: the first pass, then the second (args->phase).
 * Adafactor runs its three passes in bands of rows (fo_adafactor.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fo_common.h"

/* How many gradient elements of the planned items are NaN or Inf, or -1
 * when the partials cannot be allocated. The count is a sum of integers
 * below 2^53, so it is exact in any piece order. */
static double fo_count_nonfinite(const fo_table *t, const fo_item *items, size_t count, size_t pieces)
{
    double *partials = (double *)malloc((pieces ? pieces : 1) * sizeof *partials);
    double total = 0;
    if (!partials) return -1;
    fo_run_as(items, count, pieces, partials, t->count_nonfinite);
    for (size_t k = 0; k < pieces; k++) total += partials[k];
    free(partials);
    return total;
}

/* Lay the items out for a step with a norm phase, each from a multiple of
 * its block's bytes (which divide FO_PIECE_BYTES); returns the bytes and sets
 * *sums to the number of doubles the items' norms take. */
typedef char fo_blocks_fit_pieces[FO_PIECE_BYTES % (FO_NORM_BLOCK * sizeof(double)) == 0 ? 1 : -1];
static size_t fo_norm_layout(fo_item *items, size_t count, size_t *sums)
{
    size_t off = 0, blocks = 0;
    for (size_t i = 0; i < count; i++) {
        fo_item *it = &items[i];
        const size_t block = FO_NORM_BLOCK * (it->dtype == FO_F64 ? sizeof(double) : sizeof(float));
        off = (off + block - 1) / block * block;
        it->vstart = off;
        off += fo_room(it);
        if (it->kernel) blocks += (it->n + FO_NORM_BLOCK - 1) / FO_NORM_BLOCK;
    }
    *sums = 2 * FO_NORM_LANES * blocks;
    return off;
}

/* optax's scale_by_trust_ratio: ratio_scale * |p| / (|u| + ratio_eps), 1 when
 * either norm is 0; in the computing dtype, as optax (the sums in double):
 * float64 for float64 parameters, float32 for the others. */
static double fo_trust_ratio(double sum_p, double sum_u, const fo_scalars *s, int dtype)
{
    if (dtype != FO_F64) {
        const float pn = (float)sqrt(sum_p), un = (float)sqrt(sum_u);
        if (pn == 0 || un == 0) return 1.0;
        return (double)((float)s->ratio_scale * pn / (un + (float)s->ratio_eps));
    }
    const double pn = sqrt(sum_p), un = sqrt(sum_u);
    if (pn == 0 || un == 0) return 1.0;
    return s->ratio_scale * pn / (un + s->ratio_eps);
}

/* The two phases of a step with a norm phase over planned items whose norms
 * point at zeroed lanes. */
static void fo_run_norm_phases(const fo_table *t, fo_step_args *a, size_t pieces, unsigned apply)
{
    fo_run(a->items, a->count, pieces, NULL);
    for (size_t i = 0; i < a->count; i++) {
        fo_item *it = &a->items[i];
        if (!it->kernel) continue;
        double sum_p = 0, sum_u = 0;
        const size_t blocks = (it->n + FO_NORM_BLOCK - 1) / FO_NORM_BLOCK;
        for (size_t j = 0; j < blocks; j++) {  /* each block's lanes, then the blocks in order */
            const double *lane = it->norms + 2 * FO_NORM_LANES * j;
            double bp = 0, bu = 0;
            for (int k = 0; k < FO_NORM_LANES; k++) {
                bp += lane[k];
                bu += lane[FO_NORM_LANES + k];
            }
            sum_p += bp;
            sum_u += bu;
        }
        it->ratio = fo_trust_ratio(sum_p, sum_u, it->scalars, it->dtype);
        /* the same loop's apply phase: its mode | apply in the kernel's row */
        const fo_kernel *row = t->update[a->algo][fo_item_kind(it)];
        unsigned m = 0;
        while (row[m] != it->kernel) m++;
        it->kernel = row[m | apply];
    }
    fo_run(a->items, a->count, pieces, NULL);
}

/* Whether two items' per-parameter scalar states are the same, bit for bit. */
static int fo_same_pscalars(const fo_pscalars *x, const fo_pscalars *y, int n)
{
    return x->dtype == y->dtype && memcmp(x->v, y->v, (size_t)n * sizeof x->v[0]) == 0;
}

int fo_item_kind(const fo_item *it)
{
    const int d = it->dtype, s = it->state16;
    if ((unsigned)d >= (unsigned)FO_NUM_DTYPES || (unsigned)it->rounding > FO_ROUND_STOCHASTIC) return -1;
    if (it->state8) {  /* f32_s8, bf16_s8, f16_s8 */
        if (s || it->master || it->rounding != FO_ROUND_NEAREST || it->rows || d == FO_F64) return -1;
        return FO_NUM_KINDS - 3 + (d == FO_F32 ? 0 : 1 + (d - FO_BF16));
    }
    if (d != FO_BF16 && d != FO_F16) {  /* they store what they compute */
        if (it->master) return -1;
        if (s == 0) return d;
        return d == FO_F32 && s == FO_BF16 ? FO_NUM_DTYPES + 2 : -1;
    }
    /* bf16, f16, bf16x, f16x; then f32_sbf16 and the same four with state of their type */
    const int kind = it->master || it->rounding == FO_ROUND_STOCHASTIC ? FO_NUM_DTYPES + (d - FO_BF16) : d;
    if (s == 0) return kind;
    return s == d ? kind + FO_NUM_DTYPES + 1 : -1;
}

int fo_algo_state16(fo_algo algo)
{
    return algo != FO_ADAFACTOR && algo != FO_MUON && (unsigned)algo < (unsigned)FO_NUM_ALGOS;
}

/* splitmix64's finaliser (Steele, Lea and Flood 2014): a bijection of 64 bits. */
static uint64_t fo_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t fo_round_key(uint64_t seed, int64_t step, size_t index)
{
    return fo_mix64(fo_mix64(fo_mix64(seed) ^ (uint64_t)step) ^ (uint64_t)index);
}

int fo_step(fo_step_args *a)
{
    const fo_table *t = a->table ? a->table : fo_table_active();
    size_t nsc = 0, stepped = 0, bytes = 0;
    fo_q8_init();
    int last_group = -1, last_first = -1;
    int64_t last_step = -1;
    unsigned mode = 0, need = 0;
    const fo_pscalars *last_ps = NULL;
    a->bad = 0;
    a->missing = 0;
    if ((unsigned)a->algo >= (unsigned)FO_NUM_ALGOS) return FO_STEP_BAD_ARGS;
    const int nps = fo_num_pscalars(a->algo);
    if (nps && !a->pscalars && a->count) return FO_STEP_BAD_ARGS;
    const unsigned split = fo_split_phase(a->algo);
    if (a->phase & ~split) return FO_STEP_BAD_ARGS;
    for (size_t i = 0; i < a->count; i++) {
        fo_item *it = &a->items[i];
        it->kernel = NULL;
        if (!it->grad) {
            fo_place(it, &bytes);  /* no room: it has no kernel */
            continue;
        }
        const int g = a->group[i];
        if (g < 0 || (size_t)g >= a->ngroups) {
            a->bad = i;
            return FO_STEP_BAD_GROUP;
        }
        if (a->steps[i] < 0 || a->steps[i] == INT64_MAX) {
            a->bad = i;
            return FO_STEP_BAD_COUNT;
        }
        const int kind = fo_item_kind(it);
        if (kind < 0 || (it->state16 && !fo_algo_state16(a->algo)) ||
            (it->state8 && !fo_algo_state8(a->algo))) {
            a->bad = i;
            return FO_STEP_BAD_ARGS;
        }
        const int64_t step = a->steps[i] + 1;
        const int first = !a->started[i];
        const fo_pscalars *ps = nps ? &a->pscalars[i] : NULL;
        if (g != last_group || step != last_step || first != last_first ||
            (ps && !fo_same_pscalars(ps, last_ps, nps))) {
            mode = fo_prepare_with(a->algo, &a->hypers[g], step, first, ps, &a->scalars[nsc++]) | a->phase;
            need = fo_mode_slots(a->algo, mode);
            last_group = g;
            last_step = step;
            last_first = first;
            last_ps = ps;
        }
        /* Adafactor: which state an item has depends on its shape */
        const unsigned item_mode = a->algo == FO_ADAFACTOR && it->mat_cols ? mode | FO_ADAFACTOR_FACTORED : mode;
        const unsigned item_need = item_mode == mode ? need : fo_mode_slots(a->algo, item_mode);
        if (((item_need & 1u) && !it->state[0]) || ((item_need & 2u) && !it->state[1]) ||
            ((item_need & 4u) && !it->state[2]) || ((item_need & 8u) && !it->state[3])) {
            a->bad = i;
            a->missing = fo_missing_slots(a->algo, item_mode, it);
            return FO_STEP_NO_STATE;
        }
        it->scalars = &a->scalars[nsc - 1];
        it->kernel = t->update[a->algo][kind][mode];
        if (it->rounding == FO_ROUND_STOCHASTIC) it->round_key = fo_round_key(a->seed, step, i);
        fo_place(it, &bytes);  /* as fo_plan() lays it out */
        stepped++;
    }
    if (!stepped) return FO_STEP_APPLIED;
    const unsigned apply = fo_norm_phase(a->algo);
    double *norms = NULL;
    if (apply) {
        size_t sums = 0;
        bytes = fo_norm_layout(a->items, a->count, &sums);
        norms = (double *)calloc(sums ? sums : 1, sizeof *norms);
        if (!norms) return FO_STEP_NO_MEMORY;
        for (size_t i = 0, at = 0; i < a->count; i++) {
            fo_item *it = &a->items[i];
            it->norms = it->kernel ? norms + at : NULL;
            if (it->kernel) at += 2 * FO_NORM_LANES * ((it->n + FO_NORM_BLOCK - 1) / FO_NORM_BLOCK);
        }
    }
    const size_t pieces = fo_pieces(bytes);
    if (a->skip_nonfinite) {
        double bad = fo_count_nonfinite(t, a->items, a->count, pieces);
        if (bad != 0) {
            free(norms);
            return bad < 0 ? FO_STEP_NO_MEMORY : FO_STEP_SKIPPED;
        }
    }
    if (a->algo == FO_ADAFACTOR) {
        if (fo_adafactor_step(t, a) != FO_STEP_APPLIED) return FO_STEP_NO_MEMORY;
    } else if (apply) {
        fo_run_norm_phases(t, a, pieces, apply);
        for (size_t i = 0; i < a->count; i++) a->items[i].norms = NULL;
        free(norms);
    } else {
        fo_run(a->items, a->count, pieces, NULL);
    }
    if (split && !a->phase) return FO_STEP_APPLIED;  /* the second pass advances the counts */
    for (size_t i = 0; i < a->count; i++) {
        if (a->items[i].kernel) {
            if (nps) fo_advance(a->algo, a->items[i].scalars, !a->started[i], &a->pscalars[i]);
            a->steps[i]++;
            a->started[i] = 1;
        }
    }
    return FO_STEP_APPLIED;
}

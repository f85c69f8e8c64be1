/*
 * One optimizer step, the one entry every front-end (Python, C) calls.
 *
 * Everything that can refuse the step is checked before anything is written:
 * each item's group, its step count, its dtype and the state buffers its loop
 * needs. Items in a row with the same (group, step number, started) share one
 * fo_scalars (one fo_prepare(), so the pow() of Adam's bias corrections runs
 * once per group, not once per tensor). Items without a gradient get no
 * kernel, so fo_plan() gives them no room and fo_run() never reaches them.
 */
#include <stdlib.h>
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

int fo_step(fo_step_args *a)
{
    const fo_table *t = a->table ? a->table : fo_table_active();
    size_t nsc = 0, stepped = 0, bytes = 0;
    int last_group = -1, last_first = -1;
    int64_t last_step = -1;
    unsigned mode = 0, need = 0;
    a->bad = 0;
    a->missing = 0;
    if ((unsigned)a->algo >= (unsigned)FO_NUM_ALGOS) return FO_STEP_BAD_ARGS;
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
        if ((unsigned)it->dtype >= (unsigned)FO_NUM_DTYPES) {
            a->bad = i;
            return FO_STEP_BAD_ARGS;
        }
        const int64_t step = a->steps[i] + 1;
        const int first = !a->started[i];
        if (g != last_group || step != last_step || first != last_first) {
            mode = fo_prepare(a->algo, &a->hypers[g], step, first, &a->scalars[nsc++]);
            need = fo_mode_slots(a->algo, mode);
            last_group = g;
            last_step = step;
            last_first = first;
        }
        if (((need & 1u) && !it->state[0]) || ((need & 2u) && !it->state[1]) ||
            ((need & 4u) && !it->state[2]) || ((need & 8u) && !it->state[3])) {
            a->bad = i;
            a->missing = fo_missing_slots(a->algo, mode, it);
            return FO_STEP_NO_STATE;
        }
        it->scalars = &a->scalars[nsc - 1];
        it->kernel = t->update[a->algo][it->dtype][mode];
        fo_place(it, &bytes);  /* as fo_plan() lays it out */
        stepped++;
    }
    if (!stepped) return FO_STEP_APPLIED;
    const size_t pieces = fo_pieces(bytes);
    if (a->skip_nonfinite) {
        double bad = fo_count_nonfinite(t, a->items, a->count, pieces);
        if (bad < 0) return FO_STEP_NO_MEMORY;
        if (bad > 0) return FO_STEP_SKIPPED;
    }
    fo_run(a->items, a->count, pieces, NULL);
    for (size_t i = 0; i < a->count; i++) {
        if (a->items[i].kernel) {
            a->steps[i]++;
            a->started[i] = 1;
        }
    }
    return FO_STEP_APPLIED;
}

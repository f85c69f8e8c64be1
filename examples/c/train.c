/*
 * Embedding fastopt's C core: Adam on a quadratic, using only fastopt.h.
 *
 * Two parameter tensors, one float32 and one float64, minimise
 *     L(x) = 1/2 * sum_i a_i (x_i - c_i)^2,   gradient a_i (x_i - c_i),
 * and both are updated by one fo_step() call per step, spread over the
 * library's thread pool: the same call fastopt's Python package makes. It
 * computes the per-step scalars (bias corrections, step size) from each
 * tensor's step count and advances the counts.
 *
 * Build and run from the repository root with any C11 compiler (pthreads on
 * POSIX); the commands are in the comments below.
 *
 * -ffp-contract=off keeps the compiler from fusing a*b+c into one rounding,
 * which is how the library is built, so that the results match fastopt's
 * Python package bit for bit.
 */
// cc -std=c11 -O3 -fno-math-errno -ffp-contract=off -Icsrc examples/c/train.c csrc/*.c -lm -lpthread -o train
// ./train            (200 steps; prints the loss as it goes)
// ./train 500 dump   (500 steps, then every parameter value)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastopt.h"

enum { N32 = 1000, N64 = 37 };

/* Exactly representable problem data, so any language can rebuild it. */
static double coef_a(size_t i) { return 1.0 + 0.5 * (double)(i % 7); }
static double coef_c(size_t i) { return (double)(i % 13) / 4.0 - 1.5; }

int main(int argc, char **argv) {
    long steps = argc > 1 ? strtol(argv[1], NULL, 10) : 200;
    int dump = argc > 2 && strcmp(argv[2], "dump") == 0;
    if (steps < 0) {
        fprintf(stderr, "usage: %s [steps] [dump]\n", argv[0]);
        return 2;
    }

    static float x32[N32], g32[N32], m32[N32], v32[N32], a32[N32], c32[N32];
    static double x64[N64], g64[N64], m64[N64], v64[N64], a64[N64], c64[N64];
    for (size_t i = 0; i < N32; i++) {
        a32[i] = (float)coef_a(i);
        c32[i] = (float)coef_c(i);
    }
    for (size_t i = 0; i < N64; i++) {
        a64[i] = coef_a(i);
        c64[i] = coef_c(i);
    }
    /* Parameters and state start at zero (static storage). */

    fo_hyper h = fo_hyper_defaults(FO_ADAM);
    h.lr = 0.05;
    h.weight_decay = 0.01;
    h.decoupled_weight_decay = 1; /* AdamW */

    fo_item items[2] = {
        {.param = x32, .grad = g32, .state = {m32, v32, NULL}, .n = N32, .dtype = FO_F32},
        {.param = x64, .grad = g64, .state = {m64, v64, NULL}, .n = N64, .dtype = FO_F64},
    };
    int group[2] = {0, 0};          /* both tensors in the one parameter group */
    int64_t counts[2] = {0, 0};     /* updates done, per tensor (fo_step advances them) */
    uint8_t started[2] = {0, 0};
    fo_scalars scalars[2];          /* fo_step's workspace: one per item */
    fo_step_args args = {.algo = FO_ADAM, .hypers = &h, .ngroups = 1, .items = items,
                         .count = 2, .group = group, .steps = counts, .started = started,
                         .scalars = scalars};

    printf("fastopt C core %d.%d: AdamW on a quadratic, %s kernels, %d threads\n",
           FO_VERSION_MAJOR, FO_VERSION_MINOR, fo_isa_name(fo_table_active()->isa), fo_get_num_threads());
    for (long step = 1; step <= steps; step++) {
        double loss = 0.0;
        for (size_t i = 0; i < N32; i++) {
            float d = x32[i] - c32[i];
            g32[i] = a32[i] * d;
            loss += 0.5 * (double)g32[i] * (double)d;
        }
        for (size_t i = 0; i < N64; i++) {
            double d = x64[i] - c64[i];
            g64[i] = a64[i] * d;
            loss += 0.5 * g64[i] * d;
        }
        if (fo_step(&args) != FO_STEP_APPLIED) {
            fprintf(stderr, "step %ld refused (item %zu)\n", step, args.bad);
            return 1;
        }
        if (step == 1 || step % 50 == 0 || step == steps)
            printf("step %4ld  loss %.6f\n", step, loss);
    }
    if (dump) {
        for (size_t i = 0; i < N32; i++)
            printf("x32 %zu %.9g\n", i, (double)x32[i]);
        for (size_t i = 0; i < N64; i++)
            printf("x64 %zu %.17g\n", i, x64[i]);
    }
    return 0;
}

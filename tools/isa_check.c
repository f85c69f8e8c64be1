/*
 * Every update kernel of every SIMD path this CPU runs against the scalar
 * path, bitwise, in C: all algorithms, dtypes and modes, lengths around every
 * vector width, with infinities and NaNs in the gradient. It needs no Python,
 * so a cross-compiled build runs it under an emulator, e.g. for arm64 (NEON):
 *
 *   aarch64-linux-gnu-gcc -O3 -std=c11 -ffp-contract=off -fno-math-errno -static \
 *       -Icsrc tools/isa_check.c csrc/fo_dispatch.c csrc/fo_kernels_*.c -lm -o isa_check
 *   qemu-aarch64 ./isa_check
 *
 * Natively: the same with gcc/clang and ./isa_check. Exit status 0 when all agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "fastopt.h"
#define MODES_(name, NAME, modes) modes,
static const int algo_modes[FO_NUM_ALGOS] = { FO_ALGOS(MODES_) };
static unsigned long long rs = 88172645463325252ULL;
static double rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (double)(rs >> 11) / 9007199254740992.0 * 4 - 2; }
int main(void) {
    size_t sizes[] = {0,1,2,3,4,5,7,8,9,15,16,17,31,33,1000,4099};
    int bad = 0, runs = 0;
    for (int isa = 1; isa < FO_NUM_ISAS; isa++) {
    const fo_table *other = fo_table_for((fo_isa)isa);
    if (!other) continue;
    printf("%s: ", fo_isa_name((fo_isa)isa));
    for (int algo = 0; algo < FO_NUM_ALGOS; algo++) for (int dt = 0; dt < 2; dt++)
    for (int mode = 0; mode < algo_modes[algo]; mode++) for (int si = 0; si < 16; si++) {
        size_t n = sizes[si], es = dt ? 8 : 4;
        void *buf[2][6];
        for (int t = 0; t < 2; t++) for (int k = 0; k < 6; k++) buf[t][k] = malloc(n * es + 8);
        rs = 1234 + n;
        for (size_t i = 0; i < n; i++) for (int k = 0; k < 6; k++) {
            double x = rnd(); if (k >= 2) x = fabs(x);
            if (k == 1 && i == 2) x = INFINITY;
            if (k == 1 && i == 3) x = NAN;
            if (dt) { ((double *)buf[0][k])[i] = x; ((double *)buf[1][k])[i] = x; }
            else { ((float *)buf[0][k])[i] = (float)x; ((float *)buf[1][k])[i] = (float)x; }
        }
        fo_scalars s; memset(&s, 0, sizeof s);
        s.grad_sign = (mode & 1) ? -1 : 1; s.weight_decay = 0.01; s.param_decay = 0.999; s.neg_lr = -0.01;
        s.momentum = 0.9; s.one_minus_dampening = 0.9; s.avg_decay = 0.99; s.avg_weight = 0.01;
        s.lerp_weight = (mode & 8) ? 0.7 : 0.1; s.denom_scale = 0.3; s.eps = 1e-8;
        s.interp_decay = 0.9; s.interp_weight = 0.1; s.bias1 = 0.19; s.bias2 = 0.02; s.eps_root = 1e-12;
        s.clip_value = 1.3; s.diff_decay = 0.92; s.diff_weight = (mode & 8) ? 0.6 : 0.08;
        s.neg_lr_diff = -0.02; s.param_div = 1.001; s.lerp_high = (mode & 8) ? 3u : 0u;
        for (int t = 0; t < 2; t++) {
            const fo_table *tab = t ? other : fo_table_for(FO_ISA_SCALAR);
            fo_item it; memset(&it, 0, sizeof it);
            it.param = buf[t][0]; it.grad = buf[t][1]; it.state[0] = buf[t][2]; it.state[1] = buf[t][3]; it.state[2] = buf[t][4]; it.state[3] = buf[t][5];
            it.n = n; it.dtype = dt; it.scalars = &s; it.kernel = tab->update[algo][dt][mode];
            for (int rep = 0; rep < 3; rep++) it.kernel(&it, 0, n, NULL);
        }
        /* bitwise, NaNs included: kernels store one canonical NaN */
        for (int k = 0; k < 6; k++) if (memcmp(buf[0][k], buf[1][k], n * es)) {
            for (size_t i = 0; i < n; i++) if (memcmp((char *)buf[0][k] + i * es, (char *)buf[1][k] + i * es, es)) {
                double a = dt ? ((double *)buf[0][k])[i] : ((float *)buf[0][k])[i];
                double b = dt ? ((double *)buf[1][k])[i] : ((float *)buf[1][k])[i];
                if (bad < 10) printf("\nMISMATCH algo %d dt %d mode %d n %zu buf %d i %zu: %.17g %.17g\n", algo, dt, mode, n, k, i, a, b);
                bad++; break;
            }
        }
        runs++;
        for (int t = 0; t < 2; t++) for (int k = 0; k < 6; k++) free(buf[t][k]);
    }
    printf("%d cases, %d mismatches so far\n", runs, bad);
    }
    return bad != 0;
}

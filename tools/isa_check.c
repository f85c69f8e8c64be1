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
 * Then the 16-bit conversions (fo_convert.h) the same way: every bfloat16 and
 * float16 pattern widened, float32 values at and around every rounding
 * position of every exponent narrowed, at every tail length, against the
 * scalar path, and a few known roundings on the scalar path itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "fastopt.h"
#include "fo_convert.h"
#define MODES_(name, NAME, modes, loop) modes,
static const int algo_modes[FO_NUM_ALGOS] = { FO_ALGOS(MODES_) };
static unsigned long long rs = 88172645463325252ULL;
static double rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (double)(rs >> 11) / 9007199254740992.0 * 4 - 2; }
static void convert(const fo_convert_table *t, int kind, void *dst, const void *src, size_t n) {
    fo_item it; memset(&it, 0, sizeof it);
    it.param = dst; it.grad = src; it.n = n;
    t->kernel[kind](&it, 0, n, NULL);
}
/* The 16-bit conversions of `other` against the scalar path's, bitwise;
 * destinations have sentinels past n. Returns the number of mismatches. */
static int check_conversions(const fo_convert_table *other) {
    const fo_convert_table *ref = fo_convert_compiled(FO_ISA_SCALAR);
    enum { N16 = 1 << 16, NF = 256 * 23 * 3 * 4 + 4096 };
    static uint16_t h[N16], o16[2][NF + 64];
    static uint32_t x[NF], o32[2][N16 + 64];
    size_t nf = 0;
    int bad = 0;
    for (uint32_t i = 0; i < N16; i++) h[i] = (uint16_t)i;
    for (uint32_t e = 0; e < 256; e++) for (uint32_t k = 0; k < 23; k++) for (int d = -1; d <= 1; d++)
        for (uint32_t up = 0; up < 4; up++) { /* ties at bit k, and one off them; both signs */
            uint32_t m = ((up * 0x155555u) << (k + 1) | 1u << k) + (uint32_t)d;
            x[nf++] = (up & 1u) << 31 | e << 23 | (m & 0x7FFFFFu);
        }
    while (nf < NF) { rnd(); x[nf++] = (uint32_t)rs; }
    size_t lens[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, N16 - 3, N16};
    for (int kind = 0; kind < FO_NUM_CONVERTS; kind++) for (int li = 0; li < 16; li++) {
        int narrow = kind == FO_F32_TO_BF16 || kind == FO_F32_TO_F16;
        size_t n = lens[li] > (narrow ? (size_t)NF : (size_t)N16) ? NF : lens[li], es = narrow ? 2 : 4;
        for (int t = 0; t < 2; t++) {
            void *dst = narrow ? (void *)o16[t] : (void *)o32[t];
            memset(dst, 0xA5, (n + 64) * es);
            convert(t ? other : ref, kind, dst, narrow ? (const void *)x : (const void *)h, n);
        }
        const unsigned char *a = narrow ? (void *)o16[0] : (void *)o32[0], *b = narrow ? (void *)o16[1] : (void *)o32[1];
        for (size_t i = 0; i < (n + 64) * es; i++) if (a[i] != b[i] || (i >= n * es && a[i] != 0xA5)) {
            if (bad < 10) printf("\nMISMATCH conversion %d n %zu byte %zu: %02x %02x\n", kind, n, i, a[i], b[i]);
            bad++; break;
        }
    }
    return bad;
}
/* Known roundings on the scalar path: ties to even, overflow, NaN, subnormals. */
static int check_known_conversions(void) {
    const fo_convert_table *t = fo_convert_compiled(FO_ISA_SCALAR);
    uint32_t x[6] = {0x3F808000, 0x3F818000, 0x3F808001, 0x7F7FFFFF, 0xFF7FFFFF, 0xFFC00001};
    uint16_t want_bf[6] = {0x3F80, 0x3F82, 0x3F81, 0x7F80, 0xFF80, 0x7FC0}, got[6];
    uint32_t y[6] = {0x477FE000, 0x477FEFFF, 0x477FF000, 0x33000000, 0x33000001, 0x80000000};
    uint16_t want_h[6] = {0x7BFF, 0x7BFF, 0x7C00, 0, 1, 0x8000};
    uint16_t h[4] = {0x0001, 0x3C00, 0xFC00, 0x83FF};
    uint32_t want_w[4] = {0x33800000, 0x3F800000, 0xFF800000, 0xB87FC000}, w[4];
    int bad = 0;
    convert(t, FO_F32_TO_BF16, got, x, 6); bad += memcmp(got, want_bf, sizeof got) != 0;
    convert(t, FO_F32_TO_F16, got, y, 6); bad += memcmp(got, want_h, sizeof got) != 0;
    convert(t, FO_F16_TO_F32, w, h, 4); bad += memcmp(w, want_w, sizeof w) != 0;
    if (bad) printf("scalar conversions: %d known roundings wrong\n", bad);
    return bad;
}
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
        static double norms[2][2 * FO_NORM_LANES * (4099 / FO_NORM_BLOCK + 1)];
        fo_scalars s; memset(&s, 0, sizeof s);
        s.grad_sign = (mode & 1) ? -1 : 1; s.weight_decay = 0.01; s.param_decay = 0.999; s.neg_lr = -0.01;
        s.momentum = 0.9; s.one_minus_dampening = 0.9; s.avg_decay = 0.99; s.avg_weight = 0.01;
        s.lerp_weight = (mode & 8) ? 0.7 : 0.1; s.denom_scale = 0.3; s.eps = 1e-8;
        s.lr = 0.01; s.rect = 0.8;
        s.etaminus = 0.5; s.etaplus = 1.2; s.step_size_min = 1e-3; s.step_size_max = 0.05;
        s.interp_decay = 0.9; s.interp_weight = 0.1; s.bias1 = 0.19; s.bias2 = 0.02; s.eps_root = 1e-12;
        s.clip_value = 1.3; s.diff_decay = 0.92; s.diff_weight = (mode & 8) ? 0.6 : 0.08;
        s.neg_lr_diff = -0.02; s.param_div = 1.001; s.lerp_high = (mode & 8) ? 3u : 0u;
        s.grad_coef = -0.02; s.avg_coef = (mode & 2) ? 0.3 : -0.05;
        for (int t = 0; t < 2; t++) {
            const fo_table *tab = t ? other : fo_table_for(FO_ISA_SCALAR);
            fo_item it; memset(&it, 0, sizeof it);
            it.param = buf[t][0]; it.grad = buf[t][1]; it.state[0] = buf[t][2]; it.state[1] = buf[t][3]; it.state[2] = buf[t][4]; it.state[3] = buf[t][5];
            it.n = n; it.dtype = dt; it.scalars = &s; it.kernel = tab->update[algo][dt][mode];
            it.norms = norms[t]; it.ratio = 0.7; /* the norm phase's lanes, the apply phase's ratio */
            memset(norms[t], 0, sizeof norms[t]);
            for (int rep = 0; rep < 3; rep++) it.kernel(&it, 0, n, NULL);
        }
        if (memcmp(norms[0], norms[1], sizeof norms[0])) {
            if (bad < 10) printf("\nMISMATCH algo %d dt %d mode %d n %zu: norms\n", algo, dt, mode, n);
            bad++;
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
    bad += check_known_conversions();
    for (int isa = 1; isa < FO_NUM_ISAS; isa++) {
        if (!fo_table_for((fo_isa)isa)) continue;
        int b = check_conversions(fo_convert_compiled((fo_isa)isa));
        printf("%s: 16-bit conversions, %d mismatches\n", fo_isa_name((fo_isa)isa), b);
        bad += b;
    }
    return bad != 0;
}

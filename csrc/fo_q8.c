/*
 * Block-wise 8-bit state (fastopt.h, FO_Q_BLOCK): the two dynamic maps, the
 * tables that find a value's code, and the loads and stores of one block.
 * One scalar implementation for every SIMD path (the kernels call it once
 * per block around the algorithm's body), so every path gives the same bits.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fo_common.h"

size_t fo_q8_bytes(size_t n)
{
    return fo_q8_codes_bytes(n) + (n + FO_Q_BLOCK - 1) / FO_Q_BLOCK * sizeof(float);
}

/* torch.linspace(0.1, 1, k) in float32, which bitsandbytes' map starts from:
 * each half from its end, as one fused multiply-add. */
static void fo_linspace01(int k, float *out)
{
    const float start = 0.1f, end = 1.0f, step = (end - start) / (float)(k - 1);
    for (int j = 0; j < k; j++)
        out[j] = j < k / 2 ? fmaf(step, (float)j, start) : fmaf(-step, (float)(k - 1 - j), end);
}

static int fo_float_cmp(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* bitsandbytes' create_dynamic_map(signed, max_exponent_bits=7, total_bits=8):
 * for each decade 10^(i-6), i = 0..6, the midpoints of a linspace over
 * [0.1, 1] (2^i + 1 points signed, 2^(i+1) + 1 unsigned) times it (and
 * their negatives, signed), then 0 and 1, sorted. */
void fo_q8_code(int is_signed, float out[256])
{
    float b[130];
    int n = 0;
    for (int i = 0; i < 7; i++) {
        const int k = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
        const float decade = (float)pow(10.0, i - 6), negative = (float)-pow(10.0, i - 6);
        fo_linspace01(k, b);
        for (int j = 0; j + 1 < k; j++) out[n++] = decade * ((b[j] + b[j + 1]) / 2.0f);
        if (is_signed)
            for (int j = 0; j + 1 < k; j++) out[n++] = negative * ((b[j] + b[j + 1]) / 2.0f);
    }
    out[n++] = 0.0f;
    out[n++] = 1.0f;
    qsort(out, 256, sizeof(float), fo_float_cmp);
}

/* A value q in [-1, 1] (value / scale) goes to bucket (sign, its top 16 bits
 * less FO_Q8_LOW), magnitudes under 2^-24 to the lowest: no midpoint lies
 * within 2^-23 of zero in either map. lo[sign][bucket] is the number of
 * midpoints below every value of the bucket, where the search starts. */
#define FO_Q8_LOW (((uint32_t)127 - 24) << 7)
#define FO_Q8_BUCKETS (0x3F80 - FO_Q8_LOW + 1)
typedef struct fo_q8_map {
    float code[256];
    float mid[257];  /* the midpoints; mid[255] = mid[256] = +inf stop the search */
    uint8_t lo[2][FO_Q8_BUCKETS];
    uint8_t zero;    /* the code of 0 */
} fo_q8_map;

static fo_q8_map fo_q8_maps[2];  /* unsigned, signed */
static volatile int fo_q8_ready;

static float fo_bits_float(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void fo_q8_build(fo_q8_map *m, int is_signed)
{
    fo_q8_code(is_signed, m->code);
    for (int k = 0; k < 255; k++) m->mid[k] = (float)(((double)m->code[k] + m->code[k + 1]) / 2);
    m->mid[255] = m->mid[256] = INFINITY;
    for (int k = 0; k < 256; k++)
        if (m->code[k] == 0.0f) m->zero = (uint8_t)k;
    for (uint32_t bucket = 0; bucket < FO_Q8_BUCKETS; bucket++) {
        const uint32_t top = (bucket + FO_Q8_LOW) << 16;
        /* the smallest value of each bucket: its low end (positive), its far end (negative) */
        const float least[2] = {bucket ? fo_bits_float(top) : 0.0f, -fo_bits_float(top | 0xFFFFu)};
        for (int sign = 0; sign < 2; sign++) {
            int below = 0;
            while (below < 255 && m->mid[below] < least[sign]) below++;
            m->lo[sign][bucket] = (uint8_t)below;
        }
    }
}

void fo_q8_init(void)
{
    if (fo_q8_ready) return;
    fo_q8_build(&fo_q8_maps[0], 0);
    fo_q8_build(&fo_q8_maps[1], 1);
    fo_q8_ready = 1;
}

int fo_q8_signed(fo_algo algo, int slot)
{
    switch (algo) {
    case FO_ADAGRAD: return 0;                   /* sum */
    case FO_RMSPROP: return slot != 0;           /* square_avg; momentum_buffer, grad_avg */
    case FO_ADAM: return slot == 0;              /* exp_avg; exp_avg_sq, max_exp_avg_sq */
    default: return 1;                           /* SGD's momentum_buffer, Lion's exp_avg */
    }
}

#define FO_Q8_IS_q8 1
#define FO_Q8_IS_no8 0
#define FO_ALGO_Q8_(name, NAME, modes, loop, q8) FO_Q8_IS_##q8,
static const unsigned char fo_q8_algos[] = { FO_ALGOS(FO_ALGO_Q8_) };
#undef FO_ALGO_Q8_

int fo_algo_state8(fo_algo algo)
{
    return (unsigned)algo < (unsigned)FO_NUM_ALGOS && fo_q8_algos[algo];
}

/* The code of q in [-1, 1]: the number of midpoints below it. */
static inline unsigned fo_q8_index(const fo_q8_map *m, float q)
{
    uint32_t bits;
    memcpy(&bits, &q, sizeof bits);
    uint32_t top = (bits & 0x7FFFFFFFu) >> 16;
    top = top < FO_Q8_LOW ? 0 : top - FO_Q8_LOW;
    unsigned k = m->lo[bits >> 31][top];
    k += m->mid[k] < q;
    k += m->mid[k] < q;
    while (m->mid[k] < q) k++;  /* a bucket with more midpoints, if any */
    return k;
}

void fo_q8_load_block(float *FO_RESTRICT x, const uint8_t *FO_RESTRICT codes, float scale, size_t len,
                      int is_signed)
{
    const float *FO_RESTRICT code = fo_q8_maps[is_signed != 0].code;
    for (size_t k = 0; k < len; k++) x[k] = code[codes[k]] * scale;
}

void fo_q8_store_block(uint8_t *FO_RESTRICT codes, float *FO_RESTRICT scale, const float *FO_RESTRICT x,
                       size_t len, int is_signed)
{
    const fo_q8_map *m = &fo_q8_maps[is_signed != 0];
    float most = 0.0f;
    int finite = 1;
    for (size_t k = 0; k < len; k++) {
        const float a = fabsf(x[k]);
        finite &= a <= FLT_MAX;  /* false for inf and NaN */
        most = a > most ? a : most;
    }
    if (!finite) {
        *scale = NAN;
        memset(codes, m->zero, len);
        return;
    }
    *scale = most;
    for (size_t k = 0; k < len; k++) codes[k] = (uint8_t)fo_q8_index(m, most > 0.0f ? x[k] / most : 0.0f);
}

/*
 * Block-wise 8-bit state (fastopt.h, FO_Q_BLOCK): the two dynamic maps, the
 * tables that find a value's code, and the loads and stores of one block.
 * The block loads and stores are fo_q8_block.h, compiled in every SIMD path's
 * file (fo_kernels.inc) and here, for fastopt._core's q8_encode/q8_decode.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#define FO_LOOP /* (the kernels' loop pragma: none here) */
#include "fo_q8_block.h"

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

fo_q8_map fo_q8_maps[2];  /* unsigned, signed */
static volatile int fo_q8_ready;  /* fastopt._core builds them at import, before any step */

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
    m->mid[255] = INFINITY;
    for (int k = 0; k < 256; k++)
        if (m->code[k] == 0.0f) m->zero = (uint8_t)k;
    for (uint32_t bucket = 0; bucket < FO_Q8_BUCKETS; bucket++) {
        const uint32_t top = (bucket + FO_Q8_LOW) << 16;
        /* the smallest value of each bucket: its low end (positive), its far end (negative) */
        const float least[2] = {bucket ? fo_bits_float(top) : 0.0f, -fo_bits_float(top | 0xFFFFu)};
        for (int sign = 0; sign < 2; sign++) {
            uint32_t below = 0, bits;
            while (below < 255 && m->mid[below] < least[sign]) below++;
            memcpy(&bits, &m->mid[below], sizeof bits);
            const int inside = below < 255 && (bits & 0x7FFFFFFFu) >> 16 == bucket + FO_Q8_LOW &&
                               bits >> 31 == (uint32_t)sign;
            m->bucket[sign][bucket] = below | (inside ? 0x100u | (bits << 16) : 0u);
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

void fo_q8_load_block(float *x, const uint8_t *codes, float scale, size_t len, int is_signed)
{
    fo_q8_load(x, codes, scale, len, &fo_q8_maps[is_signed != 0]);
}

void fo_q8_store_block(uint8_t *codes, float *scale, const float *x, size_t len, int is_signed)
{
    fo_q8_store(codes, scale, x, len, &fo_q8_maps[is_signed != 0]);
}

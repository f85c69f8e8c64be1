/*
 * One block of 8-bit state (fo_common.h, "Block-wise 8-bit state"), loaded
 * and stored; included by fo_kernels.inc (each SIMD path's file: AVX-512 and
 * AVX2 take 16 or 8 values at once, with gathers for the tables) and by
 * fo_q8.c. Integer steps, compares, one division and one product per value:
 * the same bits on every path.
 */
#ifndef FO_Q8_BLOCK_H
#define FO_Q8_BLOCK_H
#include <math.h>
#include <string.h>
#include "fo_common.h"

#if defined(__GNUC__) || defined(__clang__)
#define FO_NOINLINE __attribute__((noinline, unused))  /* once per block: no need to inline */
#else
#define FO_NOINLINE
#endif

/* The vector paths' lanes of the loops below (fo_vec.h's ISA), each the
 * scalar loop's arithmetic on 16 or 8 values at once, gathers for its table
 * reads; the scalar loop does the rest of a block. */
#if defined(FO_VEC_AVX512)
#define FO_Q8_W 16
/* x[k..k+16) = code[codes[k..]] * scale */
#define FO_Q8_LOAD_LANES(x, codes, k, m, scale)                                             \
    _mm512_storeu_ps((x) + (k), _mm512_mul_ps(_mm512_i32gather_ps(                           \
        _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)((codes) + (k)))), (m)->code, 4), \
        _mm512_set1_ps(scale)))
typedef __m512 fo_q8_vf;
#define FO_Q8_ABS(k) _mm512_abs_ps(_mm512_loadu_ps(x + (k)))
#define FO_Q8_MAX(a, b) _mm512_max_ps(a, b)
#define FO_Q8_ZERO() _mm512_setzero_ps()
#define FO_Q8_ALL_FINITE(a) (_mm512_cmp_ps_mask(a, _mm512_set1_ps(INFINITY), _CMP_LT_OQ) == 0xFFFF)
static inline float fo_q8_hmax(__m512 v) { return _mm512_reduce_max_ps(v); }
static inline void fo_q8_code_lanes(uint8_t *codes, const float *x, float most, const fo_q8_map *m)
{
    const __m512 q = _mm512_div_ps(_mm512_loadu_ps(x), _mm512_set1_ps(most));
    const __m512i bits = _mm512_castps_si512(q);
    const __m512i top = _mm512_srli_epi32(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), 16);
    const __m512i bucket = _mm512_add_epi32(
        _mm512_sub_epi32(_mm512_max_epu32(top, _mm512_set1_epi32(FO_Q8_LOW)),
                         _mm512_set1_epi32(FO_Q8_LOW)),
        _mm512_and_si512(_mm512_srai_epi32(bits, 31), _mm512_set1_epi32(FO_Q8_BUCKETS)));
    const __m512i e = _mm512_i32gather_epi32(bucket, (const void *)&m->bucket[0][0], 4);
    const __m512i low = _mm512_and_si512(bits, _mm512_set1_epi32(0xFFFF));
    const __m512i mid = _mm512_srli_epi32(e, 16);
    const __mmask16 negative = _mm512_cmplt_epi32_mask(bits, _mm512_setzero_si512());
    const __mmask16 has = _mm512_test_epi32_mask(e, _mm512_set1_epi32(0x100));
    const __mmask16 up = has & ((negative & _mm512_cmplt_epu32_mask(low, mid)) |
                                (~negative & _mm512_cmpgt_epu32_mask(low, mid)));
    const __m512i below = _mm512_and_si512(e, _mm512_set1_epi32(0xFF));
    const __m512i j = _mm512_mask_add_epi32(below, up, below, _mm512_set1_epi32(1));
    _mm_storeu_si128((__m128i *)codes, _mm512_cvtepi32_epi8(j));
}
#elif defined(FO_VEC_AVX2)
#define FO_Q8_W 8
#define FO_Q8_LOAD_LANES(x, codes, k, m, scale)                                             \
    _mm256_storeu_ps((x) + (k), _mm256_mul_ps(_mm256_i32gather_ps((m)->code,                  \
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)((codes) + (k)))), 4),          \
        _mm256_set1_ps(scale)))
typedef __m256 fo_q8_vf;
#define FO_Q8_ABS(k) \
    _mm256_and_ps(_mm256_loadu_ps(x + (k)), _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)))
#define FO_Q8_MAX(a, b) _mm256_max_ps(a, b)
#define FO_Q8_ZERO() _mm256_setzero_ps()
#define FO_Q8_ALL_FINITE(a) \
    (_mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(INFINITY), _CMP_LT_OQ)) == 0xFF)
static inline float fo_q8_hmax(__m256 v)
{
    float b[8], most = 0.0f;
    _mm256_storeu_ps(b, v);
    for (int k = 0; k < 8; k++) most = b[k] > most ? b[k] : most;
    return most;
}
static inline void fo_q8_code_lanes(uint8_t *codes, const float *x, float most, const fo_q8_map *m)
{
    const __m256 q = _mm256_div_ps(_mm256_loadu_ps(x), _mm256_set1_ps(most));
    const __m256i bits = _mm256_castps_si256(q);
    const __m256i top = _mm256_srli_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF)), 16);
    const __m256i bucket = _mm256_add_epi32(
        _mm256_sub_epi32(_mm256_max_epu32(top, _mm256_set1_epi32(FO_Q8_LOW)),
                         _mm256_set1_epi32(FO_Q8_LOW)),
        _mm256_and_si256(_mm256_srai_epi32(bits, 31), _mm256_set1_epi32(FO_Q8_BUCKETS)));
    const __m256i e = _mm256_i32gather_epi32((const int *)&m->bucket[0][0], bucket, 4);
    const __m256i low = _mm256_and_si256(bits, _mm256_set1_epi32(0xFFFF));
    const __m256i mid = _mm256_srli_epi32(e, 16);
    const __m256i negative = _mm256_srai_epi32(bits, 31);  /* all ones for a negative q */
    const __m256i has = _mm256_cmpeq_epi32(_mm256_and_si256(e, _mm256_set1_epi32(0x100)),
                                           _mm256_set1_epi32(0x100));
    /* 16-bit values: the signed compares are the unsigned ones */
    const __m256i up = _mm256_and_si256(has, _mm256_blendv_epi8(_mm256_cmpgt_epi32(low, mid),
                                                                _mm256_cmpgt_epi32(mid, low), negative));
    const __m256i j = _mm256_sub_epi32(_mm256_and_si256(e, _mm256_set1_epi32(0xFF)), up);  /* true: -1 */
    /* codes 0..255, so the saturating packs keep them: j0..3 and j4..7 as the
     * first 4 bytes of each 128-bit half */
    const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(j, j), _mm256_setzero_si256());
    _mm_storel_epi64((__m128i *)codes, _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes),
                                                         _mm256_extracti128_si256(bytes, 1)));
}
#endif

static FO_NOINLINE void fo_q8_load(float *FO_RESTRICT x, const uint8_t *FO_RESTRICT codes, float scale,
                                   size_t len, const fo_q8_map *FO_RESTRICT m)
{
    size_t k = 0;
#ifdef FO_Q8_W
    for (; k + FO_Q8_W <= len; k += FO_Q8_W) FO_Q8_LOAD_LANES(x, codes, k, m, scale);
#endif
    FO_LOOP
    for (; k < len; k++) x[k] = m->code[codes[k]] * scale;
}

/* The code of q = x[k] / most: its bucket's midpoint count, plus one when
 * the bucket's midpoint is below q (fo_common.h). */
static inline uint8_t fo_q8_code_of(float q, const fo_q8_map *m)
{
    uint32_t bits;
    memcpy(&bits, &q, sizeof bits);
    const uint32_t top = (bits & 0x7FFFFFFFu) >> 16, negative = bits >> 31;
    const uint32_t e = m->bucket[negative][top < FO_Q8_LOW ? 0 : top - FO_Q8_LOW];
    const uint32_t low = bits & 0xFFFFu, mid = e >> 16;
    const uint32_t up = (e >> 8 & 1u) & (negative ? low < mid : low > mid);
    return (uint8_t)((e & 0xFFu) + up);
}

static FO_NOINLINE void fo_q8_store(uint8_t *FO_RESTRICT codes, float *FO_RESTRICT scale,
                                    const float *FO_RESTRICT x, size_t len, const fo_q8_map *FO_RESTRICT m)
{
    float most = 0.0f;
    int finite = 1;
    size_t k = 0;
#ifdef FO_Q8_W  /* max is exact: any grouping gives the same largest magnitude */
    fo_q8_vf wide = FO_Q8_ZERO();
    for (; k + FO_Q8_W <= len; k += FO_Q8_W) {
        const fo_q8_vf a = FO_Q8_ABS(k);
        finite &= FO_Q8_ALL_FINITE(a);
        wide = FO_Q8_MAX(wide, a);
    }
    most = fo_q8_hmax(wide);
#endif
    FO_LOOP
    for (; k < len; k++) {
        const float a = fabsf(x[k]);
        finite &= a < INFINITY;  /* false for inf and NaN */
        most = a > most ? a : most;
    }
    if (!finite || most == 0.0f) {
        *scale = finite ? 0.0f : NAN;
        memset(codes, m->zero, len);
        return;
    }
    *scale = most;
    k = 0;
#ifdef FO_Q8_W
    for (; k + FO_Q8_W <= len; k += FO_Q8_W) fo_q8_code_lanes(codes + k, x + k, most, m);
#endif
    FO_LOOP
    for (; k < len; k++) codes[k] = fo_q8_code_of(x[k] / most, m);
}
#endif /* FO_Q8_BLOCK_H */

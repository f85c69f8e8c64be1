/*
 * The lanes the kernel bodies (kernels/<algo>.inc) are written on. Each body
 * exists once: fo_kernels.inc instantiates it per dtype on this file's
 * vector, which is one lane (plain C) unless the including file defines
 * FO_VEC_AVX512, FO_VEC_AVX2 or FO_VEC_NEON. Names end in the dtype,
 * _f32 or _f64:
 *
 *   fo_vt_f32              the type, FO_W_f32 lanes
 *   fo_set1_f32(x)         broadcast
 *   fo_load_f32(p, n)      n == FO_W: FO_W lanes from p; n < FO_W: the first
 *                           n, the other lanes 0 (memory past n is not read)
 *   fo_store_f32(p, v, n)  the first n lanes to p, every NaN as the
 *                           canonical one; memory past n is not written
 *   fo_add/sub/mul/div/sqrt/abs_f32
 *   fo_maxnan_f32(a, b)    a where a > b or a is NaN, else b
 *   fo_iflt_f32(a, b, x, y)  x where a < b, else y (false for a NaN)
 *   fo_ifeq_f32(a, b, x, y)  x where a == b, else y (false for a NaN)
 *   fo_sign_f32(a)         1 where a > 0, -1 where a < 0, else +0 (for
 *                           zeros of either sign and NaN, as torch.sign)
 *   fo_widen_f32(v, k)     float32 lanes [k * FO_W_f64, (k + 1) * FO_W_f64)
 *                           of v as an fo_vt_f64 (exact), k < FO_W_f32 / FO_W_f64
 *
 * 16-bit storage (bfloat16 and float16 as uint16_t bit patterns), computed
 * in float32 lanes:
 *
 *   fo_load_bf16(p, n), fo_load_f16(p, n)      n values widened to an
 *                           fo_vt_f32 (exact), the other lanes 0; memory
 *                           past n is not read
 *   fo_store_bf16(p, v, n), fo_store_f16(p, v, n)
 *                           the first n lanes rounded to nearest even
 *                           (overflow to +-inf, float16 subnormals exact),
 *                           every NaN as the type's canonical quiet NaN
 *                           (0x7FC0, 0x7E00); memory past n is not written
 *
 *   fo_store_bf16_sr(p, v, n, key, e), fo_store_f16_sr(p, v, n, key, e)
 *                           the same, rounded stochastically: lane k with the
 *                           32 random bits fo_round_bits(key, e + k) (below)
 *
 * bfloat16 converts in integer arithmetic on every ISA (the AVX-512 build
 * targets AVX-512F only, without AVX512_BF16); float16 with F16C (AVX2),
 * AVX-512F or NEON instructions, and in integer arithmetic on one lane, so
 * the portable build needs no 16-bit float type from the compiler. A NaN
 * loads as a NaN (F16C and NEON quiet a signalling one); its payload cannot
 * be seen, as every store writes the canonical NaN.
 *
 * Policies, the same on every ISA (so every path computes the one-lane
 * bits), measured on AMD EPYC Zen 4 and written down in docs/c-api.md:
 *
 * - One correctly rounded IEEE operation per lane operation, in torch's
 *   order of operations: no fused multiply-add, no reciprocal or square-root
 *   approximations, no division turned into a multiplication. An FMA would
 *   have to be fused on every path, and the one-lane paths (scalar, x86-64
 *   SSE2 baseline) have no FMA instruction: with fma() Adam got 2x (scalar)
 *   and 5x (SSE2) slower, while on AVX2 fusing it gained nothing beyond
 *   dropping a division. Dropping Adam's division by sqrt(1 - beta2^t) (a
 *   multiplication by its reciprocal) gained 1.07x (float32) to 1.2x
 *   (float64) in cache, nothing from memory, and moved results off torch's
 *   by a rounding from the first step; kept out. The build keeps
 *   -ffp-contract=off, so the compiler fuses nothing either.
 * - Tails: the last (n mod FO_W) elements of a range run as one partial
 *   vector. AVX-512 masks loads and stores. AVX2 masks the load (fast on
 *   Intel and AMD) but stores through a buffer on the stack and n scalar
 *   stores: vmaskmov stores are microcoded on AMD Zen, which made 1,000
 *   tensors of 10 float32 slower than 1,000 of 16. Staging the loads too
 *   (store-forwarding stalls) and running the tail on one lane (up to 15
 *   scalar divisions) were both slower. NEON has no masks: both through
 *   a buffer. 16-bit loads go through a buffer on AVX2 and AVX-512 too
 *   (neither AVX2 nor AVX-512F masks 16-bit lanes); AVX-512 stores them
 *   with a masked narrowing store (vpmovdw).
 * - NaNs: every store writes a NaN as one canonical quiet NaN, because the
 *   sign and payload a NaN picks up depend on operand order, which compilers
 *   and ISAs choose differently.
 */
#ifndef FO_VEC_H
#define FO_VEC_H

#include <math.h>
#include <string.h>
#include "fo_common.h"

#if defined(FO_VEC_AVX512) || defined(FO_VEC_AVX2)
#include <immintrin.h>
#elif defined(FO_VEC_NEON)
#include <arm_neon.h>
#endif

/* A store of the first n < W lanes through a buffer on the stack (a wide
 * store, then narrow loads, which the CPU forwards). */
#define FO_BUFFERED_STORE(T, W, storeu, p, v, n)                                        \
    do {                                                                                \
        T buf_[W];                                                                      \
        storeu(buf_, v);                                                                \
        for (size_t k_ = 0; k_ < (n); k_++) (p)[k_] = buf_[k_];                         \
    } while (0)

#if defined(FO_VEC_AVX512)
#define FO_VEC 1
#define FO_W_f32 16
#define FO_W_f64 8
#define FO_VEC_OPS(sfx, T, V, W, ps, mask_t)                                            \
    typedef V fo_vt_##sfx;                                                              \
    FO_INLINE V fo_set1_##sfx(T x) { return _mm512_set1_##ps(x); }                      \
    FO_INLINE V fo_load_##sfx(const T *p, size_t n)                                     \
    {                                                                                   \
        if (n == W) return _mm512_loadu_##ps(p);                                        \
        return _mm512_maskz_loadu_##ps((mask_t)((1u << n) - 1u), p);                    \
    }                                                                                   \
    FO_INLINE void fo_store_##sfx(T *p, V v, size_t n)                                  \
    {                                                                                   \
        v = _mm512_mask_blend_##ps(_mm512_cmp_##ps##_mask(v, v, _CMP_UNORD_Q), v,        \
                                   _mm512_set1_##ps(NAN));                              \
        if (n == W) _mm512_storeu_##ps(p, v);                                           \
        else _mm512_mask_storeu_##ps(p, (mask_t)((1u << n) - 1u), v);                   \
    }                                                                                   \
    FO_INLINE V fo_add_##sfx(V a, V b) { return _mm512_add_##ps(a, b); }                \
    FO_INLINE V fo_sub_##sfx(V a, V b) { return _mm512_sub_##ps(a, b); }                \
    FO_INLINE V fo_mul_##sfx(V a, V b) { return _mm512_mul_##ps(a, b); }                \
    FO_INLINE V fo_div_##sfx(V a, V b) { return _mm512_div_##ps(a, b); }                \
    FO_INLINE V fo_sqrt_##sfx(V a) { return _mm512_sqrt_##ps(a); }                      \
    FO_INLINE V fo_abs_##sfx(V a) { return _mm512_abs_##ps(a); }                        \
    FO_INLINE V fo_maxnan_##sfx(V a, V b)                                               \
    {                                                                                   \
        return _mm512_mask_blend_##ps(_mm512_cmp_##ps##_mask(a, b, _CMP_GT_OQ) |        \
                                          _mm512_cmp_##ps##_mask(a, a, _CMP_UNORD_Q),   \
                                      b, a);                                            \
    }                                                                                   \
    FO_INLINE V fo_iflt_##sfx(V a, V b, V x, V y)                                       \
    {                                                                                   \
        return _mm512_mask_blend_##ps(_mm512_cmp_##ps##_mask(a, b, _CMP_LT_OQ), y, x);  \
    }                                                                                   \
    FO_INLINE V fo_ifeq_##sfx(V a, V b, V x, V y)                                       \
    {                                                                                   \
        return _mm512_mask_blend_##ps(_mm512_cmp_##ps##_mask(a, b, _CMP_EQ_OQ), y, x);  \
    }                                                                                   \
    FO_INLINE V fo_sign_##sfx(V a)                                                      \
    {                                                                                   \
        V zero = _mm512_setzero_##ps(), one = _mm512_set1_##ps(1.0);                     \
        return _mm512_sub_##ps(                                                         \
            _mm512_maskz_mov_##ps(_mm512_cmp_##ps##_mask(a, zero, _CMP_GT_OQ), one),    \
            _mm512_maskz_mov_##ps(_mm512_cmp_##ps##_mask(a, zero, _CMP_LT_OQ), one));   \
    }
FO_VEC_OPS(f32, float, __m512, 16, ps, __mmask16)
FO_VEC_OPS(f64, double, __m512d, 8, pd, __mmask8)
#undef FO_VEC_OPS
FO_INLINE __m512d fo_widen_f32(__m512 v, int k)
{
    return _mm512_cvtps_pd(k ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))
                             : _mm512_castps512_ps256(v));
}

/* 16-bit storage: 16 lanes in a 256-bit vector. */
FO_INLINE __m256i fo_load_u16(const uint16_t *p, size_t n)
{
    if (n == 16) return _mm256_loadu_si256((const __m256i *)p);
    uint16_t buf[16] = {0};
    for (size_t k = 0; k < n; k++) buf[k] = p[k];
    return _mm256_loadu_si256((const __m256i *)buf);
}
/* The low 16 bits of each 32-bit lane of w, the first n of them. */
FO_INLINE void fo_store_u16_of_u32(uint16_t *p, __m512i w, size_t n)
{
    if (n == 16) _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(w));
    else _mm512_mask_cvtepi32_storeu_epi16(p, (__mmask16)((1u << n) - 1u), w);
}
/* NaN lanes as the canonical float32 NaN, which converts to the 16-bit one. */
FO_INLINE __m512 fo_canon16_f32(__m512 v)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v,
                                _mm512_castsi512_ps(_mm512_set1_epi32(0x7FC00000)));
}
FO_INLINE __m512 fo_load_bf16(const uint16_t *p, size_t n)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(fo_load_u16(p, n)), 16));
}
FO_INLINE __m512 fo_load_f16(const uint16_t *p, size_t n) { return _mm512_cvtph_ps(fo_load_u16(p, n)); }
FO_INLINE void fo_store_bf16(uint16_t *p, __m512 v, size_t n)
{
    __m512i x = _mm512_castps_si512(fo_canon16_f32(v));
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    fo_store_u16_of_u32(p, _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7FFF)), odd), 16), n);
}
FO_INLINE void fo_store_f16(uint16_t *p, __m512 v, size_t n)
{
    __m256i h = _mm512_cvtps_ph(fo_canon16_f32(v), _MM_FROUND_TO_NEAREST_INT);
    if (n == 16) _mm256_storeu_si256((__m256i *)p, h);
    else fo_store_u16_of_u32(p, _mm512_cvtepu16_epi32(h), n);
}

#elif defined(FO_VEC_AVX2)
#define FO_VEC 1
#define FO_W_f32 8
#define FO_W_f64 4
/* Lane masks for the partial loads: lane k is on when k < n. */
FO_INLINE __m256i fo_mask_f32(size_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
FO_INLINE __m256i fo_mask_f64(size_t n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)n), _mm256_setr_epi64x(0, 1, 2, 3));
}
#define FO_VEC_OPS(sfx, T, V, W, ps)                                                    \
    typedef V fo_vt_##sfx;                                                              \
    FO_INLINE V fo_set1_##sfx(T x) { return _mm256_set1_##ps(x); }                      \
    FO_INLINE V fo_load_##sfx(const T *p, size_t n)                                     \
    {                                                                                   \
        if (n == W) return _mm256_loadu_##ps(p);                                        \
        return _mm256_maskload_##ps(p, fo_mask_##sfx(n));                               \
    }                                                                                   \
    FO_INLINE void fo_store_##sfx(T *p, V v, size_t n)                                  \
    {                                                                                   \
        v = _mm256_blendv_##ps(v, _mm256_set1_##ps(NAN), _mm256_cmp_##ps(v, v, _CMP_UNORD_Q)); \
        if (n == W) _mm256_storeu_##ps(p, v);                                           \
        else FO_BUFFERED_STORE(T, W, _mm256_storeu_##ps, p, v, n);                      \
    }                                                                                   \
    FO_INLINE V fo_add_##sfx(V a, V b) { return _mm256_add_##ps(a, b); }                \
    FO_INLINE V fo_sub_##sfx(V a, V b) { return _mm256_sub_##ps(a, b); }                \
    FO_INLINE V fo_mul_##sfx(V a, V b) { return _mm256_mul_##ps(a, b); }                \
    FO_INLINE V fo_div_##sfx(V a, V b) { return _mm256_div_##ps(a, b); }                \
    FO_INLINE V fo_sqrt_##sfx(V a) { return _mm256_sqrt_##ps(a); }                      \
    FO_INLINE V fo_abs_##sfx(V a) { return _mm256_andnot_##ps(_mm256_set1_##ps(-0.0), a); } \
    FO_INLINE V fo_maxnan_##sfx(V a, V b)                                               \
    {                                                                                   \
        return _mm256_blendv_##ps(b, a, _mm256_or_##ps(_mm256_cmp_##ps(a, b, _CMP_GT_OQ), \
                                                       _mm256_cmp_##ps(a, a, _CMP_UNORD_Q))); \
    }                                                                                   \
    FO_INLINE V fo_iflt_##sfx(V a, V b, V x, V y)                                       \
    {                                                                                   \
        return _mm256_blendv_##ps(y, x, _mm256_cmp_##ps(a, b, _CMP_LT_OQ));             \
    }                                                                                   \
    FO_INLINE V fo_ifeq_##sfx(V a, V b, V x, V y)                                       \
    {                                                                                   \
        return _mm256_blendv_##ps(y, x, _mm256_cmp_##ps(a, b, _CMP_EQ_OQ));             \
    }                                                                                   \
    FO_INLINE V fo_sign_##sfx(V a)                                                      \
    {                                                                                   \
        V zero = _mm256_setzero_##ps(), one = _mm256_set1_##ps(1.0);                     \
        return _mm256_sub_##ps(_mm256_and_##ps(_mm256_cmp_##ps(a, zero, _CMP_GT_OQ), one), \
                               _mm256_and_##ps(_mm256_cmp_##ps(a, zero, _CMP_LT_OQ), one)); \
    }
FO_VEC_OPS(f32, float, __m256, 8, ps)
FO_VEC_OPS(f64, double, __m256d, 4, pd)
#undef FO_VEC_OPS
FO_INLINE __m256d fo_widen_f32(__m256 v, int k)
{
    return _mm256_cvtps_pd(k ? _mm256_extractf128_ps(v, 1) : _mm256_castps256_ps128(v));
}

/* 16-bit storage: 8 lanes in a 128-bit vector; float16 through F16C. */
FO_INLINE __m128i fo_load_u16(const uint16_t *p, size_t n)
{
    if (n == 8) return _mm_loadu_si128((const __m128i *)p);
    uint16_t buf[8] = {0};
    for (size_t k = 0; k < n; k++) buf[k] = p[k];
    return _mm_loadu_si128((const __m128i *)buf);
}
FO_INLINE void fo_storeu_u16(uint16_t *p, __m128i h) { _mm_storeu_si128((__m128i *)p, h); }
FO_INLINE void fo_store_u16(uint16_t *p, __m128i h, size_t n)
{
    if (n == 8) fo_storeu_u16(p, h);
    else FO_BUFFERED_STORE(uint16_t, 8, fo_storeu_u16, p, h, n);
}
/* NaN lanes as the canonical float32 NaN, which converts to the 16-bit one. */
FO_INLINE __m256 fo_canon16_f32(__m256 v)
{
    return _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)),
                            _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}
FO_INLINE __m256 fo_load_bf16(const uint16_t *p, size_t n)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(fo_load_u16(p, n)), 16));
}
FO_INLINE __m256 fo_load_f16(const uint16_t *p, size_t n) { return _mm256_cvtph_ps(fo_load_u16(p, n)); }
FO_INLINE void fo_store_bf16(uint16_t *p, __m256 v, size_t n)
{
    __m256i x = _mm256_castps_si256(fo_canon16_f32(v));
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7FFF)), odd), 16);
    /* each lane is at most 0xFFFF: the unsigned saturating pack is exact */
    fo_store_u16(p, _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)), n);
}
FO_INLINE void fo_store_f16(uint16_t *p, __m256 v, size_t n)
{
    fo_store_u16(p, _mm256_cvtps_ph(fo_canon16_f32(v), _MM_FROUND_TO_NEAREST_INT), n);
}

#elif defined(FO_VEC_NEON)
#define FO_VEC 1
#define FO_W_f32 4
#define FO_W_f64 2
#define FO_VEC_OPS(sfx, T, V, W, q)                                                     \
    typedef V fo_vt_##sfx;                                                              \
    FO_INLINE V fo_set1_##sfx(T x) { return vdupq_n_##q(x); }                           \
    FO_INLINE V fo_load_##sfx(const T *p, size_t n)                                     \
    {                                                                                   \
        if (n == W) return vld1q_##q(p);                                                \
        T buf[W] = {0};                                                                 \
        for (size_t k = 0; k < n; k++) buf[k] = p[k];                                   \
        return vld1q_##q(buf);                                                          \
    }                                                                                   \
    FO_INLINE void fo_store_##sfx(T *p, V v, size_t n)                                  \
    {                                                                                   \
        v = vbslq_##q(vceqq_##q(v, v), v, vdupq_n_##q(NAN));                            \
        if (n == W) vst1q_##q(p, v);                                                    \
        else FO_BUFFERED_STORE(T, W, vst1q_##q, p, v, n);                               \
    }                                                                                   \
    FO_INLINE V fo_add_##sfx(V a, V b) { return vaddq_##q(a, b); }                      \
    FO_INLINE V fo_sub_##sfx(V a, V b) { return vsubq_##q(a, b); }                      \
    FO_INLINE V fo_mul_##sfx(V a, V b) { return vmulq_##q(a, b); }                      \
    FO_INLINE V fo_div_##sfx(V a, V b) { return vdivq_##q(a, b); }                      \
    FO_INLINE V fo_sqrt_##sfx(V a) { return vsqrtq_##q(a); }                          \
    FO_INLINE V fo_abs_##sfx(V a) { return vabsq_##q(a); }                              \
    FO_INLINE V fo_iflt_##sfx(V a, V b, V x, V y) { return vbslq_##q(vcltq_##q(a, b), x, y); } \
    FO_INLINE V fo_ifeq_##sfx(V a, V b, V x, V y) { return vbslq_##q(vceqq_##q(a, b), x, y); }
FO_VEC_OPS(f32, float, float32x4_t, 4, f32)
FO_VEC_OPS(f64, double, float64x2_t, 2, f64)
#undef FO_VEC_OPS
FO_INLINE float64x2_t fo_widen_f32(float32x4_t v, int k)
{
    return k ? vcvt_high_f64_f32(v) : vcvt_f64_f32(vget_low_f32(v));
}
FO_INLINE float32x4_t fo_maxnan_f32(float32x4_t a, float32x4_t b)
{
    uint32x4_t take = vorrq_u32(vcgtq_f32(a, b), vmvnq_u32(vceqq_f32(a, a)));
    return vbslq_f32(take, a, b);
}
FO_INLINE float64x2_t fo_maxnan_f64(float64x2_t a, float64x2_t b)
{
    /* a == a is false only for NaN; there is no 64-bit NOT, so invert as 32-bit */
    uint64x2_t nan = vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(a, a))));
    return vbslq_f64(vorrq_u64(vcgtq_f64(a, b), nan), a, b);
}
/* (a > 0) - (a < 0), each comparison's all-ones lanes masking 1.0 */
FO_INLINE float32x4_t fo_sign_f32(float32x4_t a)
{
    float32x4_t zero = vdupq_n_f32(0.0f);
    uint32x4_t one = vreinterpretq_u32_f32(vdupq_n_f32(1.0f));
    return vsubq_f32(vreinterpretq_f32_u32(vandq_u32(vcgtq_f32(a, zero), one)),
                     vreinterpretq_f32_u32(vandq_u32(vcltq_f32(a, zero), one)));
}
FO_INLINE float64x2_t fo_sign_f64(float64x2_t a)
{
    float64x2_t zero = vdupq_n_f64(0.0);
    uint64x2_t one = vreinterpretq_u64_f64(vdupq_n_f64(1.0));
    return vsubq_f64(vreinterpretq_f64_u64(vandq_u64(vcgtq_f64(a, zero), one)),
                     vreinterpretq_f64_u64(vandq_u64(vcltq_f64(a, zero), one)));
}

/* 16-bit storage: 4 lanes in a 64-bit vector. */
FO_INLINE uint16x4_t fo_load_u16(const uint16_t *p, size_t n)
{
    if (n == 4) return vld1_u16(p);
    uint16_t buf[4] = {0};
    for (size_t k = 0; k < n; k++) buf[k] = p[k];
    return vld1_u16(buf);
}
FO_INLINE void fo_store_u16(uint16_t *p, uint16x4_t h, size_t n)
{
    if (n == 4) vst1_u16(p, h);
    else FO_BUFFERED_STORE(uint16_t, 4, vst1_u16, p, h, n);
}
/* NaN lanes as the canonical float32 NaN, which converts to the 16-bit one. */
FO_INLINE float32x4_t fo_canon16_f32(float32x4_t v)
{
    return vbslq_f32(vceqq_f32(v, v), v, vreinterpretq_f32_u32(vdupq_n_u32(0x7FC00000)));
}
FO_INLINE float32x4_t fo_load_bf16(const uint16_t *p, size_t n)
{
    return vreinterpretq_f32_u32(vshll_n_u16(fo_load_u16(p, n), 16));
}
FO_INLINE float32x4_t fo_load_f16(const uint16_t *p, size_t n)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(fo_load_u16(p, n)));
}
FO_INLINE void fo_store_bf16(uint16_t *p, float32x4_t v, size_t n)
{
    uint32x4_t x = vreinterpretq_u32_f32(fo_canon16_f32(v));
    uint32x4_t odd = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
    fo_store_u16(p, vshrn_n_u32(vaddq_u32(vaddq_u32(x, vdupq_n_u32(0x7FFF)), odd), 16), n);
}
FO_INLINE void fo_store_f16(uint16_t *p, float32x4_t v, size_t n)
{
    /* rounds as FPCR says: to nearest even unless a program changed it */
    fo_store_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(fo_canon16_f32(v))), n);
}

#else
/* No vector ISA: one lane, plain C; the reference every ISA must match. The
 * compiler may still vectorise the loop over it (the x86-64 baseline: SSE2). */
#define FO_W_f32 1
#define FO_W_f64 1
#define FO_ONE_LANE_OPS(sfx, T, sqrt_, abs_)                                            \
    typedef T fo_vt_##sfx;                                                              \
    FO_INLINE T fo_set1_##sfx(T x) { return x; }                                        \
    FO_INLINE T fo_load_##sfx(const T *p, size_t n) { (void)n; return *p; }             \
    FO_INLINE void fo_store_##sfx(T *p, T v, size_t n) { (void)n; *p = v != v ? (T)NAN : v; } \
    FO_INLINE T fo_add_##sfx(T a, T b) { return a + b; }                                \
    FO_INLINE T fo_sub_##sfx(T a, T b) { return a - b; }                                \
    FO_INLINE T fo_mul_##sfx(T a, T b) { return a * b; }                                \
    FO_INLINE T fo_div_##sfx(T a, T b) { return a / b; }                                \
    FO_INLINE T fo_sqrt_##sfx(T a) { return sqrt_(a); }                                 \
    FO_INLINE T fo_abs_##sfx(T a) { return abs_(a); }                                   \
    FO_INLINE T fo_maxnan_##sfx(T a, T b) { return (a > b || a != a) ? a : b; }         \
    FO_INLINE T fo_iflt_##sfx(T a, T b, T x, T y) { return a < b ? x : y; }             \
    FO_INLINE T fo_ifeq_##sfx(T a, T b, T x, T y) { return a == b ? x : y; }             \
    FO_INLINE T fo_sign_##sfx(T a) { return (T)(a > 0) - (T)(a < 0); }
FO_ONE_LANE_OPS(f32, float, sqrtf, fabsf)
FO_ONE_LANE_OPS(f64, double, sqrt, fabs)
#undef FO_ONE_LANE_OPS
FO_INLINE double fo_widen_f32(float v, int k)
{
    (void)k;
    return (double)v;
}

/* 16-bit storage on one lane, in integer arithmetic: the bits the vector
 * ISAs' conversion instructions give. */
FO_INLINE uint32_t fo_bits_of_f32(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}
FO_INLINE float fo_f32_of_bits(uint32_t b)
{
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}
FO_INLINE float fo_load_bf16(const uint16_t *p, size_t n)
{
    (void)n;
    return fo_f32_of_bits((uint32_t)*p << 16);
}
FO_INLINE float fo_load_f16(const uint16_t *p, size_t n)
{
    const uint32_t h = *p, sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    (void)n;
    if (e == 0x1F) /* inf, or NaN made quiet (as F16C and NEON do) */
        return fo_f32_of_bits(sign | 0x7F800000u | (m << 13) | (m ? 0x400000u : 0u));
    if (e != 0) return fo_f32_of_bits(sign | ((e + 112u) << 23) | (m << 13)); /* rebias 15 -> 127 */
    /* zero or subnormal: m * 2^-24, exact in float32 */
    return fo_f32_of_bits(sign | fo_bits_of_f32((float)m * 5.9604644775390625e-8f));
}
FO_INLINE void fo_store_bf16(uint16_t *p, float v, size_t n)
{
    const uint32_t x = fo_bits_of_f32(v);
    (void)n;
    /* round to nearest even: add just under half a unit, plus the last kept bit */
    *p = v != v ? (uint16_t)0x7FC0u : (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}
FO_INLINE void fo_store_f16(uint16_t *p, float v, size_t n)
{
    const uint32_t x = fo_bits_of_f32(v), a = x & 0x7FFFFFFFu;
    uint32_t h;
    (void)n;
    if (a > 0x7F800000u) {
        *p = 0x7E00u;
        return;
    }
    if (a >= 0x477FF000u) /* 65520 and up: ties to even from 65504 give inf */
        h = 0x7C00u;
    else if (a >= 0x38800000u) /* normal: rebias 127 -> 15, round 23 -> 10 bits */
        h = (a - 0x38000000u + 0xFFFu + ((a >> 13) & 1u)) >> 13;
    else if (a > 0x33000000u) { /* subnormal: round the significand times 2^(e - 126) */
        const uint32_t shift = 126u - (a >> 23), m = (a & 0x7FFFFFu) | 0x800000u;
        h = (m + (1u << (shift - 1)) - 1u + ((m >> shift) & 1u)) >> shift;
    } else /* at most 2^-25, half the smallest subnormal: ties to even give 0 */
        h = 0;
    *p = (uint16_t)(((x >> 16) & 0x8000u) | h);
}

#endif

/* ---- stochastic rounding to 16 bits, the same on every ISA ----
 * Each element's random bits are a hash of the item's key (fo_round_key(),
 * from the seed, the update's number and the item's index) and the element's
 * index (mod 2^32): a counter-based generator, so no path, piece or thread
 * count changes them. Each lane is rounded on its own, in integer arithmetic
 * on the float32 bits: a uniform integer below one 16-bit unit in the last
 * place is added, then the bits below it are dropped, so x rounds away from
 * zero with probability (|x| - |lower|) / ulp (unbiased). NaN stores the
 * canonical NaN, infinities stay; a finite value past the largest finite
 * 16-bit number rounds to it or to infinity (as if infinity were the next
 * number); float16 subnormals round the same way on their fixed unit, and
 * magnitudes below 2^-32 (float16) store zero. */
FO_INLINE uint32_t fo_mix32(uint32_t x) /* "lowbias32" (C. Wellons): a 32-bit bijection */
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}
FO_INLINE uint32_t fo_round_bits(uint64_t key, size_t e)
{
    return fo_mix32(fo_mix32((uint32_t)e ^ (uint32_t)key) + (uint32_t)(key >> 32));
}
FO_INLINE uint16_t fo_bf16_sr(float v, uint32_t r)
{
    uint32_t x;
    memcpy(&x, &v, sizeof x);
    if (v != v) return 0x7FC0u;
    return (uint16_t)((x + (r & 0xFFFFu)) >> 16);  /* no carry out: x <= 0xFF800000 */
}
FO_INLINE uint16_t fo_f16_sr(float v, uint32_t r)
{
    uint32_t x, h;
    memcpy(&x, &v, sizeof x);
    const uint32_t a = x & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return 0x7E00u;
    if (a >= 0x47800000u) /* 2^16 and up: past the step from 65504 to infinity */
        h = 0x7C00u;
    else if (a >= 0x38800000u) /* normal: rebias 127 -> 15, 23 -> 10 bits */
        h = (a - 0x38000000u + (r & 0x1FFFu)) >> 13;
    else { /* subnormal: the significand times 2^(e - 126), on 2^-24 */
        const uint32_t shift = 126u - (a >> 23), m = (a & 0x7FFFFFu) | 0x800000u;
        h = shift < 32u ? (m + (r & ((1u << shift) - 1u))) >> shift : 0u;
    }
    return (uint16_t)(((x >> 16) & 0x8000u) | h);
}
#define FO_STORE_SR(dt)                                                                     \
    FO_INLINE void fo_store_##dt##_sr(uint16_t *p, fo_vt_f32 v, size_t n, uint64_t key, size_t e) \
    {                                                                                       \
        float buf[FO_W_f32];                                                                \
        fo_store_f32(buf, v, FO_W_f32);                                                     \
        for (size_t k = 0; k < n; k++) p[k] = fo_##dt##_sr(buf[k], fo_round_bits(key, e + k)); \
    }
FO_STORE_SR(bf16)
FO_STORE_SR(f16)
#undef FO_STORE_SR

#endif /* FO_VEC_H */

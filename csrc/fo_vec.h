/*
 * A small vector abstraction for the explicit SIMD loops (the *_lanes bodies in
 * the kernels/ files). A kernel file selects one vector ISA by defining
 * FO_VEC_AVX512, FO_VEC_AVX2 or FO_VEC_NEON before including fo_kernels.inc;
 * this header then gives, per dtype suffix (_f32, _f64):
 *
 *   fo_v_f32                 the vector type, FO_W_f32 lanes
 *   fo_vset1_f32(x)          broadcast
 *   fo_vload_f32(p, n)       n == FO_W: a full load; n < FO_W: the first n
 *   fo_vstore_f32(p, v, n)   lanes (masked where the ISA has masks), the
 *                            others read as 0 and never written; a store
 *                            writes every NaN as the canonical one (FO_CANON)
 *   fo_vadd/vsub/vmul/vdiv/vsqrt_f32
 *   fo_vmaxnan_f32(a, b)     a where a > b or a is NaN, else b
 *
 * Every operation is one correctly rounded IEEE operation per lane (no fused
 * multiply-add, no reciprocal approximations), so a lane computes exactly the
 * bits the scalar loop computes for its element.
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

#if defined(FO_VEC_AVX512)
#define FO_VEC 1
#define FO_W_f32 16
#define FO_W_f64 8
typedef __m512 fo_v_f32;
typedef __m512d fo_v_f64;
#define FO_VEC_OPS(sfx, T, V, W, ps, mask_t)                                            \
    FO_INLINE V fo_vset1_##sfx(T x) { return _mm512_set1_##ps(x); }                     \
    FO_INLINE V fo_vload_##sfx(const T *p, size_t n)                                    \
    {                                                                                   \
        if (n == W) return _mm512_loadu_##ps(p);                                        \
        return _mm512_maskz_loadu_##ps((mask_t)((1u << n) - 1u), p);                    \
    }                                                                                   \
    FO_INLINE V fo_vcanon_##sfx(V v)                                                    \
    {                                                                                   \
        return _mm512_mask_blend_##ps(_mm512_cmp_##ps##_mask(v, v, _CMP_UNORD_Q), v,     \
                                      _mm512_set1_##ps(NAN));                           \
    }                                                                                   \
    FO_INLINE void fo_vstore_##sfx(T *p, V v, size_t n)                                 \
    {                                                                                   \
        v = fo_vcanon_##sfx(v);                                                         \
        if (n == W) _mm512_storeu_##ps(p, v);                                           \
        else _mm512_mask_storeu_##ps(p, (mask_t)((1u << n) - 1u), v);                  \
    }                                                                                   \
    FO_INLINE V fo_vadd_##sfx(V a, V b) { return _mm512_add_##ps(a, b); }               \
    FO_INLINE V fo_vsub_##sfx(V a, V b) { return _mm512_sub_##ps(a, b); }               \
    FO_INLINE V fo_vmul_##sfx(V a, V b) { return _mm512_mul_##ps(a, b); }               \
    FO_INLINE V fo_vdiv_##sfx(V a, V b) { return _mm512_div_##ps(a, b); }               \
    FO_INLINE V fo_vsqrt_##sfx(V a) { return _mm512_sqrt_##ps(a); }                     \
    FO_INLINE V fo_vmaxnan_##sfx(V a, V b)                                              \
    {                                                                                   \
        mask_t take = (mask_t)(_mm512_cmp_##ps##_mask(a, b, _CMP_GT_OQ) |               \
                               _mm512_cmp_##ps##_mask(a, a, _CMP_UNORD_Q));             \
        return _mm512_mask_blend_##ps(take, b, a);                                      \
    }
FO_VEC_OPS(f32, float, __m512, 16, ps, __mmask16)
FO_VEC_OPS(f64, double, __m512d, 8, pd, __mmask8)
#undef FO_VEC_OPS

#elif defined(FO_VEC_AVX2)
#define FO_VEC 1
#define FO_W_f32 8
#define FO_W_f64 4
typedef __m256 fo_v_f32;
typedef __m256d fo_v_f64;
/* Lane masks for the partial loads and stores: lane k is on when k < n. */
FO_INLINE __m256i fo_vmask32(size_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
FO_INLINE __m256i fo_vmask64(size_t n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)n), _mm256_setr_epi64x(0, 1, 2, 3));
}
#define FO_VEC_OPS(sfx, T, V, W, ps, bits)                                              \
    FO_INLINE V fo_vset1_##sfx(T x) { return _mm256_set1_##ps(x); }                     \
    FO_INLINE V fo_vload_##sfx(const T *p, size_t n)                                    \
    {                                                                                   \
        if (n == W) return _mm256_loadu_##ps(p);                                        \
        return _mm256_maskload_##ps(p, fo_vmask##bits(n));                              \
    }                                                                                   \
    FO_INLINE V fo_vcanon_##sfx(V v)                                                    \
    {                                                                                   \
        return _mm256_blendv_##ps(v, _mm256_set1_##ps(NAN), _mm256_cmp_##ps(v, v, _CMP_UNORD_Q)); \
    }                                                                                   \
    FO_INLINE void fo_vstore_##sfx(T *p, V v, size_t n)                                 \
    {                                                                                   \
        v = fo_vcanon_##sfx(v);                                                         \
        if (n == W) _mm256_storeu_##ps(p, v);                                           \
        else _mm256_maskstore_##ps(p, fo_vmask##bits(n), v);                            \
    }                                                                                   \
    FO_INLINE V fo_vadd_##sfx(V a, V b) { return _mm256_add_##ps(a, b); }               \
    FO_INLINE V fo_vsub_##sfx(V a, V b) { return _mm256_sub_##ps(a, b); }               \
    FO_INLINE V fo_vmul_##sfx(V a, V b) { return _mm256_mul_##ps(a, b); }               \
    FO_INLINE V fo_vdiv_##sfx(V a, V b) { return _mm256_div_##ps(a, b); }               \
    FO_INLINE V fo_vsqrt_##sfx(V a) { return _mm256_sqrt_##ps(a); }                     \
    FO_INLINE V fo_vmaxnan_##sfx(V a, V b)                                              \
    {                                                                                   \
        V take = _mm256_or_##ps(_mm256_cmp_##ps(a, b, _CMP_GT_OQ),                      \
                                _mm256_cmp_##ps(a, a, _CMP_UNORD_Q));                   \
        return _mm256_blendv_##ps(b, a, take);                                          \
    }
FO_VEC_OPS(f32, float, __m256, 8, ps, 32)
FO_VEC_OPS(f64, double, __m256d, 4, pd, 64)
#undef FO_VEC_OPS

#elif defined(FO_VEC_NEON)
#define FO_VEC 1
#define FO_W_f32 4
#define FO_W_f64 2
typedef float32x4_t fo_v_f32;
typedef float64x2_t fo_v_f64;
/* NEON has no masked memory operations: a partial vector goes through a
 * zeroed buffer on the stack. */
#define FO_VEC_OPS(sfx, T, V, W, q)                                                     \
    FO_INLINE V fo_vset1_##sfx(T x) { return vdupq_n_##q(x); }                          \
    FO_INLINE V fo_vload_##sfx(const T *p, size_t n)                                    \
    {                                                                                   \
        if (n == W) return vld1q_##q(p);                                                \
        T buf[W] = {0};                                                                 \
        memcpy(buf, p, n * sizeof(T));                                                  \
        return vld1q_##q(buf);                                                          \
    }                                                                                   \
    FO_INLINE V fo_vcanon_##sfx(V v) { return vbslq_##q(vceqq_##q(v, v), v, vdupq_n_##q(NAN)); } \
    FO_INLINE void fo_vstore_##sfx(T *p, V v, size_t n)                                 \
    {                                                                                   \
        v = fo_vcanon_##sfx(v);                                                         \
        if (n == W) { vst1q_##q(p, v); return; }                                        \
        T buf[W];                                                                       \
        vst1q_##q(buf, v);                                                              \
        memcpy(p, buf, n * sizeof(T));                                                  \
    }                                                                                   \
    FO_INLINE V fo_vadd_##sfx(V a, V b) { return vaddq_##q(a, b); }                     \
    FO_INLINE V fo_vsub_##sfx(V a, V b) { return vsubq_##q(a, b); }                     \
    FO_INLINE V fo_vmul_##sfx(V a, V b) { return vmulq_##q(a, b); }                     \
    FO_INLINE V fo_vdiv_##sfx(V a, V b) { return vdivq_##q(a, b); }                     \
    FO_INLINE V fo_vsqrt_##sfx(V a) { return vsqrtq_##q(a); }
FO_VEC_OPS(f32, float, float32x4_t, 4, f32)
FO_VEC_OPS(f64, double, float64x2_t, 2, f64)
FO_INLINE float32x4_t fo_vmaxnan_f32(float32x4_t a, float32x4_t b)
{
    uint32x4_t take = vorrq_u32(vcgtq_f32(a, b), vmvnq_u32(vceqq_f32(a, a)));
    return vbslq_f32(take, a, b);
}
FO_INLINE float64x2_t fo_vmaxnan_f64(float64x2_t a, float64x2_t b)
{
    /* a == a is false only for NaN; there is no 64-bit NOT, so invert as 32-bit */
    uint64x2_t nan = vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(a, a))));
    return vbslq_f64(vorrq_u64(vcgtq_f64(a, b), nan), a, b);
}
#undef FO_VEC_OPS
#endif

#endif /* FO_VEC_H */

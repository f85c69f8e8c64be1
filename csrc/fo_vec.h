/*
 * The vector layer the kernel bodies (kernels/<algo>.inc) are written in.
 * Every body is written once, on "lanes": one lane is the scalar ISA, which
 * every file has; a file that defines FO_VEC_AVX512, FO_VEC_AVX2 or
 * FO_VEC_NEON before including fo_kernels.inc also gets that ISA's vectors.
 * Names end in the dtype and the width: _f32v / _f64v are the file's vector
 * (the one lane itself where no ISA is selected), _f32s / _f64s one lane.
 *
 *   fo_vt_f32v              the type, FO_W_f32v lanes
 *   fo_set1_f32v(x)         broadcast
 *   fo_load_f32v(p)         FO_W lanes from p (unaligned)
 *   fo_store_f32v(p, v)     FO_W lanes to p, every NaN as the canonical one
 *   fo_add/sub/mul/div/sqrt_f32v
 *   fo_fma_f32v(a, b, c)    a * b + c, rounded once
 *   fo_maxnan_f32v(a, b)    a where a > b or a is NaN, else b
 *
 * Policies (the same for every ISA, so every path gives the scalar bits):
 *
 * - Arithmetic: every operation is one correctly rounded IEEE operation per
 *   lane (no reciprocal or square-root approximations). A fused multiply-add
 *   is used only where a body asks for fo_fma, and is then fused on every
 *   path: a hardware FMA on AVX2 (the avx2 path requires the CPU's FMA bit),
 *   AVX-512 and NEON, C's correctly rounded fma() in the one-lane ISA. The
 *   build keeps -ffp-contract=off so the compiler fuses nothing by itself.
 *   The bodies follow torch's order of operations and do not use fo_fma:
 *   measured on Zen 4, fusing Adam and dropping a division gained at most
 *   ~1.1x in cache (the loop is bound by the divider and square root) while
 *   the SSE2 and scalar paths, which have no FMA instruction, would call a
 *   library fma() per multiply-add (several times slower). See docs/c-api.md.
 *
 * - Tails: a range's last (n mod FO_W) elements run through the same body
 *   on one lane (fo_kernels.inc). Masked loads and stores are avoided: on
 *   AMD Zen, AVX2's vmaskmov stores are microcoded and made many small
 *   tensors slower than larger ones; the one-lane tail is as fast on Intel.
 *
 * - NaNs: every store writes a NaN as one canonical quiet NaN (FO_CANON),
 *   because the sign and payload a NaN picks up depend on operand order,
 *   which compilers and ISAs choose differently.
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

/* ---- one lane: plain C, the reference every ISA must match ---- */
#define FO_ONE_LANE_OPS(sfx, T, sqrtf_, fmaf_)                                          \
    typedef T fo_vt_##sfx;                                                              \
    FO_INLINE T fo_set1_##sfx(T x) { return x; }                                        \
    FO_INLINE T fo_load_##sfx(const T *p) { return *p; }                                \
    FO_INLINE void fo_store_##sfx(T *p, T v) { *p = v != v ? (T)NAN : v; }             \
    FO_INLINE T fo_add_##sfx(T a, T b) { return a + b; }                                \
    FO_INLINE T fo_sub_##sfx(T a, T b) { return a - b; }                                \
    FO_INLINE T fo_mul_##sfx(T a, T b) { return a * b; }                                \
    FO_INLINE T fo_div_##sfx(T a, T b) { return a / b; }                                \
    FO_INLINE T fo_sqrt_##sfx(T a) { return sqrtf_(a); }                                \
    FO_INLINE T fo_fma_##sfx(T a, T b, T c) { return fmaf_(a, b, c); }                  \
    FO_INLINE T fo_maxnan_##sfx(T a, T b) { return (a > b || a != a) ? a : b; }
FO_ONE_LANE_OPS(f32s, float, sqrtf, fmaf)
FO_ONE_LANE_OPS(f64s, double, sqrt, fma)
#define FO_W_f32s 1
#define FO_W_f64s 1

#if defined(FO_VEC_AVX512)
#define FO_VEC 1
#define FO_W_f32v 16
#define FO_W_f64v 8
#define FO_VEC_OPS(sfx, T, V, ps)                                                       \
    typedef V fo_vt_##sfx;                                                              \
    FO_INLINE V fo_set1_##sfx(T x) { return _mm512_set1_##ps(x); }                      \
    FO_INLINE V fo_load_##sfx(const T *p) { return _mm512_loadu_##ps(p); }              \
    FO_INLINE void fo_store_##sfx(T *p, V v)                                            \
    {                                                                                   \
        _mm512_storeu_##ps(p, _mm512_mask_blend_##ps(_mm512_cmp_##ps##_mask(v, v, _CMP_UNORD_Q), \
                                                     v, _mm512_set1_##ps(NAN)));        \
    }                                                                                   \
    FO_INLINE V fo_add_##sfx(V a, V b) { return _mm512_add_##ps(a, b); }                \
    FO_INLINE V fo_sub_##sfx(V a, V b) { return _mm512_sub_##ps(a, b); }                \
    FO_INLINE V fo_mul_##sfx(V a, V b) { return _mm512_mul_##ps(a, b); }                \
    FO_INLINE V fo_div_##sfx(V a, V b) { return _mm512_div_##ps(a, b); }                \
    FO_INLINE V fo_sqrt_##sfx(V a) { return _mm512_sqrt_##ps(a); }                      \
    FO_INLINE V fo_fma_##sfx(V a, V b, V c) { return _mm512_fmadd_##ps(a, b, c); }      \
    FO_INLINE V fo_maxnan_##sfx(V a, V b)                                               \
    {                                                                                   \
        return _mm512_mask_blend_##ps(_mm512_cmp_##ps##_mask(a, b, _CMP_GT_OQ) |        \
                                          _mm512_cmp_##ps##_mask(a, a, _CMP_UNORD_Q),   \
                                      b, a);                                            \
    }
FO_VEC_OPS(f32v, float, __m512, ps)
FO_VEC_OPS(f64v, double, __m512d, pd)
#undef FO_VEC_OPS

#elif defined(FO_VEC_AVX2)
#define FO_VEC 1
#define FO_W_f32v 8
#define FO_W_f64v 4
#define FO_VEC_OPS(sfx, T, V, ps)                                                       \
    typedef V fo_vt_##sfx;                                                              \
    FO_INLINE V fo_set1_##sfx(T x) { return _mm256_set1_##ps(x); }                      \
    FO_INLINE V fo_load_##sfx(const T *p) { return _mm256_loadu_##ps(p); }              \
    FO_INLINE void fo_store_##sfx(T *p, V v)                                            \
    {                                                                                   \
        _mm256_storeu_##ps(p, _mm256_blendv_##ps(v, _mm256_set1_##ps(NAN),              \
                                                 _mm256_cmp_##ps(v, v, _CMP_UNORD_Q))); \
    }                                                                                   \
    FO_INLINE V fo_add_##sfx(V a, V b) { return _mm256_add_##ps(a, b); }                \
    FO_INLINE V fo_sub_##sfx(V a, V b) { return _mm256_sub_##ps(a, b); }                \
    FO_INLINE V fo_mul_##sfx(V a, V b) { return _mm256_mul_##ps(a, b); }                \
    FO_INLINE V fo_div_##sfx(V a, V b) { return _mm256_div_##ps(a, b); }                \
    FO_INLINE V fo_sqrt_##sfx(V a) { return _mm256_sqrt_##ps(a); }                      \
    FO_INLINE V fo_fma_##sfx(V a, V b, V c) { return _mm256_fmadd_##ps(a, b, c); }      \
    FO_INLINE V fo_maxnan_##sfx(V a, V b)                                               \
    {                                                                                   \
        return _mm256_blendv_##ps(b, a, _mm256_or_##ps(_mm256_cmp_##ps(a, b, _CMP_GT_OQ), \
                                                       _mm256_cmp_##ps(a, a, _CMP_UNORD_Q))); \
    }
FO_VEC_OPS(f32v, float, __m256, ps)
FO_VEC_OPS(f64v, double, __m256d, pd)
#undef FO_VEC_OPS

#elif defined(FO_VEC_NEON)
#define FO_VEC 1
#define FO_W_f32v 4
#define FO_W_f64v 2
#define FO_VEC_OPS(sfx, T, V, q)                                                        \
    typedef V fo_vt_##sfx;                                                              \
    FO_INLINE V fo_set1_##sfx(T x) { return vdupq_n_##q(x); }                           \
    FO_INLINE V fo_load_##sfx(const T *p) { return vld1q_##q(p); }                      \
    FO_INLINE void fo_store_##sfx(T *p, V v)                                            \
    {                                                                                   \
        vst1q_##q(p, vbslq_##q(vceqq_##q(v, v), v, vdupq_n_##q(NAN)));                  \
    }                                                                                   \
    FO_INLINE V fo_add_##sfx(V a, V b) { return vaddq_##q(a, b); }                      \
    FO_INLINE V fo_sub_##sfx(V a, V b) { return vsubq_##q(a, b); }                      \
    FO_INLINE V fo_mul_##sfx(V a, V b) { return vmulq_##q(a, b); }                      \
    FO_INLINE V fo_div_##sfx(V a, V b) { return vdivq_##q(a, b); }                      \
    FO_INLINE V fo_sqrt_##sfx(V a) { return vsqrtq_##q(a); }                            \
    FO_INLINE V fo_fma_##sfx(V a, V b, V c) { return vfmaq_##q(c, a, b); }
FO_VEC_OPS(f32v, float, float32x4_t, f32)
FO_VEC_OPS(f64v, double, float64x2_t, f64)
#undef FO_VEC_OPS
FO_INLINE float32x4_t fo_maxnan_f32v(float32x4_t a, float32x4_t b)
{
    uint32x4_t take = vorrq_u32(vcgtq_f32(a, b), vmvnq_u32(vceqq_f32(a, a)));
    return vbslq_f32(take, a, b);
}
FO_INLINE float64x2_t fo_maxnan_f64v(float64x2_t a, float64x2_t b)
{
    /* a == a is false only for NaN; there is no 64-bit NOT, so invert as 32-bit */
    uint64x2_t nan = vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(a, a))));
    return vbslq_f64(vorrq_u64(vcgtq_f64(a, b), nan), a, b);
}

#else
/* No vector ISA: the file's "vector" is the one lane (the compiler may
 * still vectorise the loop over it, as the x86-64 baseline does). */
#define FO_W_f32v 1
#define FO_W_f64v 1
#define FO_ALIAS_OPS(v, s)                                                              \
    typedef fo_vt_##s fo_vt_##v;                                                        \
    FO_INLINE fo_vt_##s fo_set1_##v(fo_vt_##s x) { return x; }                          \
    FO_INLINE fo_vt_##s fo_load_##v(const fo_vt_##s *p) { return fo_load_##s(p); }      \
    FO_INLINE void fo_store_##v(fo_vt_##s *p, fo_vt_##s x) { fo_store_##s(p, x); }      \
    FO_INLINE fo_vt_##s fo_add_##v(fo_vt_##s a, fo_vt_##s b) { return a + b; }          \
    FO_INLINE fo_vt_##s fo_sub_##v(fo_vt_##s a, fo_vt_##s b) { return a - b; }          \
    FO_INLINE fo_vt_##s fo_mul_##v(fo_vt_##s a, fo_vt_##s b) { return a * b; }          \
    FO_INLINE fo_vt_##s fo_div_##v(fo_vt_##s a, fo_vt_##s b) { return a / b; }          \
    FO_INLINE fo_vt_##s fo_sqrt_##v(fo_vt_##s a) { return fo_sqrt_##s(a); }             \
    FO_INLINE fo_vt_##s fo_fma_##v(fo_vt_##s a, fo_vt_##s b, fo_vt_##s c) { return fo_fma_##s(a, b, c); } \
    FO_INLINE fo_vt_##s fo_maxnan_##v(fo_vt_##s a, fo_vt_##s b) { return fo_maxnan_##s(a, b); }
FO_ALIAS_OPS(f32v, f32s)
FO_ALIAS_OPS(f64v, f64s)
#undef FO_ALIAS_OPS
#endif
#undef FO_ONE_LANE_OPS

#endif /* FO_VEC_H */

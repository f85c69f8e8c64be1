/* Internal macros shared by the C sources. */
#ifndef FO_COMMON_H
#define FO_COMMON_H

#include "fastopt.h"

#if defined(_MSC_VER)
#define FO_RESTRICT __restrict
#define FO_INLINE static __forceinline
#else
#define FO_RESTRICT __restrict__
#define FO_INLINE static inline __attribute__((always_inline))
#endif

#define FO_CAT_(a, b) a##b
#define FO_CAT(a, b) FO_CAT_(a, b)

#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#define FO_X86_64 1
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define FO_ARM64 1
#endif

/* fo_run(), but each item that has a kernel runs as[its dtype] instead
 * (fo_step's non-finite check over the items as they are planned). */
void fo_run_as(const fo_item *items, size_t count, size_t pieces, double *partials,
               const fo_kernel as[2]);

#endif /* FO_COMMON_H */

/* The AVX-512F kernels (fo_vec.h; 16 float32 or 8 float64 lanes); see
 * fo_kernels_avx2.c. MSVC gets /arch:AVX512 for this file from setup.py. */
#include "fo_common.h"
#if defined(FO_X86_64)
/* System headers first, outside the target region (fo_vec.h includes them again). */
#include <immintrin.h>
#include <math.h>
#include <string.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx512f")
#endif
#define FO_LOOP
#define FO_VEC_AVX512 1
#define FO_ISA FO_ISA_AVX512
#define FO_TABLE_NAME fo_table_avx512
#include "fo_kernels.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif

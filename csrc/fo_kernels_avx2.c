/* The AVX2 kernels (fo_vec.h; 8 float32 or 4 float64 lanes), with F16C for
 * float16 (fo_dispatch.c checks the CPU for both). The target is
 * set here, for this file only, so the rest of the library stays baseline;
 * MSVC gets /arch:AVX2 for this file from setup.py. The gradient reductions
 * (grad.inc) are plain loops the compiler vectorises. */
#include "fo_common.h"
#if defined(FO_X86_64)
/* System headers first, outside the target region (fo_vec.h includes them again). */
#include <immintrin.h>
#include <math.h>
#include <string.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx2,f16c")
#endif
#define FO_LOOP
#define FO_VEC_AVX2 1
#define FO_ISA FO_ISA_AVX2
#define FO_TABLE_NAME fo_table_avx2
#include "fo_kernels.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif

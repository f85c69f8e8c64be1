/*
 * Bulk 16-bit conversions (bfloat16, float16 <-> float32) of each ISA: the
 * 16-bit loads and stores of fo_vec.h in the loop shape the kernels have.
 * Each kernel reads item->grad and writes item->param, n elements; 16-bit
 * values are uint16_t bit patterns.
 */
#ifndef FO_CONVERT_H
#define FO_CONVERT_H

#include "fo_common.h"

enum { FO_BF16_TO_F32 = 0, FO_F16_TO_F32 = 1, FO_F32_TO_BF16 = 2, FO_F32_TO_F16 = 3 };
#define FO_NUM_CONVERTS 4

typedef struct fo_convert_table {
    fo_isa isa;
    fo_kernel kernel[FO_NUM_CONVERTS];
} fo_convert_table;

/* Defined next to each ISA's fo_table (fo_kernels_<isa>.c, by fo_convert.inc). */
extern const fo_convert_table fo_table_scalar_convert;
extern const fo_convert_table fo_table_base_convert;
#if defined(FO_X86_64)
extern const fo_convert_table fo_table_avx2_convert;
extern const fo_convert_table fo_table_avx512_convert;
#endif

/* The conversions compiled for isa, NULL when not built; whether the CPU
 * runs them is fo_isa_supported()'s answer. */
static inline const fo_convert_table *fo_convert_compiled(fo_isa isa)
{
    switch (isa) {
    case FO_ISA_SCALAR: return &fo_table_scalar_convert;
    case FO_ISA_BASE: return &fo_table_base_convert;
#if defined(FO_X86_64)
    case FO_ISA_AVX2: return &fo_table_avx2_convert;
    case FO_ISA_AVX512: return &fo_table_avx512_convert;
#endif
    default: return NULL;
    }
}

#endif /* FO_CONVERT_H */

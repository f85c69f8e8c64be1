/* The 16-bit conversions of fo_kernels_avx512.c alone, with its target
 * (fastopt._convert, for the tests). */
#define FO_CONVERT_ONLY 1
#include "../fo_kernels_avx512.c"

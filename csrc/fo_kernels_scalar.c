/* The one-lane bodies with vectorisation disabled: the reference path that
 * every other path must match bit for bit. */
#if defined(__clang__)
#define FO_LOOP _Pragma("clang loop vectorize(disable) interleave(disable)")
#elif defined(__GNUC__)
#pragma GCC optimize("no-tree-vectorize")
#define FO_LOOP
#elif defined(_MSC_VER)
#define FO_LOOP __pragma(loop(no_vector))
#else
#define FO_LOOP
#endif
#define FO_ISA FO_ISA_SCALAR
#define FO_TABLE_NAME fo_table_scalar
#include "fo_kernels.inc"

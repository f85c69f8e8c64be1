/* The architecture's baseline with no extra compiler flags: on x86-64 the
 * one-lane bodies (fo_vec.h) in loops the compiler vectorises for SSE2; on
 * arm64 NEON vectors, NEON being part of every arm64 CPU. */
#include "fo_common.h"
#if defined(FO_ARM64)
#define FO_VEC_NEON 1
#endif
#define FO_LOOP
#define FO_ISA FO_ISA_BASE
#define FO_TABLE_NAME fo_table_base
#include "fo_kernels.inc"

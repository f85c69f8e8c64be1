/* The portable loops, auto-vectorised for the architecture's baseline
 * (SSE2 on x86-64, NEON on arm64) with no extra compiler flags. */
#define FO_LOOP
#define FO_ISA FO_ISA_BASE
#define FO_TABLE_NAME fo_table_base
#include "fo_kernels.inc"

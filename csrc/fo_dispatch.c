/*
 * Runtime CPU dispatch. Every ISA's kernels are compiled into the library
 * (fo_kernels_<isa>.c, each with its own target); at first use the best one
 * the CPU supports is picked, unless fo_select() chose one before. After
 * that the active table is only read.
 */
#include <string.h>
#include "fo_common.h"

#if defined(_MSC_VER) && defined(FO_X86_64)
#include <intrin.h>
#include <immintrin.h>
#endif

extern const fo_table fo_table_scalar;
extern const fo_table fo_table_base;
#if defined(FO_X86_64)
extern const fo_table fo_table_avx2;
extern const fo_table fo_table_avx512;
#endif

static const fo_table *fo_compiled(fo_isa isa)
{
    switch (isa) {
    case FO_ISA_SCALAR: return &fo_table_scalar;
    case FO_ISA_BASE: return &fo_table_base;
#if defined(FO_X86_64)
    case FO_ISA_AVX2: return &fo_table_avx2;
    case FO_ISA_AVX512: return &fo_table_avx512;
#endif
    default: return NULL;
    }
}

const char *fo_isa_name(fo_isa isa)
{
    switch (isa) {
    case FO_ISA_SCALAR: return "scalar";
#if defined(FO_X86_64)
    case FO_ISA_BASE: return "sse2";
#elif defined(FO_ARM64)
    case FO_ISA_BASE: return "neon";
#else
    case FO_ISA_BASE: return "base";
#endif
    case FO_ISA_AVX2: return "avx2";
    case FO_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

int fo_isa_from_name(const char *name)
{
    for (int i = 0; i < FO_NUM_ISAS; i++)
        if (strcmp(name, fo_isa_name((fo_isa)i)) == 0) return i;
    return -1;
}

int fo_isa_compiled(fo_isa isa) { return fo_compiled(isa) != NULL; }

#if defined(FO_X86_64)
#if defined(_MSC_VER) && !defined(__clang__)
static int fo_cpu_has(fo_isa isa)
{
    int r[4];
    __cpuid(r, 0);
    if (r[0] < 7) return 0;
    __cpuid(r, 1);
    int osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, f16c = (r[2] >> 29) & 1;
    if (!osxsave || !avx) return 0;
    unsigned long long xcr0 = _xgetbv(0);
    __cpuidex(r, 7, 0);
    /* the AVX2 kernels convert float16 with F16C */
    if (isa == FO_ISA_AVX2) return ((r[1] >> 5) & 1) && f16c && (xcr0 & 0x6) == 0x6;
    if (isa == FO_ISA_AVX512) return ((r[1] >> 16) & 1) && (xcr0 & 0xe6) == 0xe6;
    return 0;
}
#else
static int fo_cpu_has(fo_isa isa)
{
    __builtin_cpu_init();
    /* the AVX2 kernels convert float16 with F16C */
    if (isa == FO_ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    if (isa == FO_ISA_AVX512) return __builtin_cpu_supports("avx512f");
    return 0;
}
#endif
#endif

int fo_isa_supported(fo_isa isa)
{
    if (!fo_isa_compiled(isa)) return 0;
    if (isa == FO_ISA_SCALAR || isa == FO_ISA_BASE) return 1;
#if defined(FO_X86_64)
    return fo_cpu_has(isa);
#else
    return 0;
#endif
}

fo_isa fo_isa_best(void)
{
    for (int i = FO_NUM_ISAS - 1; i > 0; i--)
        if (fo_isa_supported((fo_isa)i)) return (fo_isa)i;
    return FO_ISA_SCALAR;
}

const fo_table *fo_table_for(fo_isa isa)
{
    return fo_isa_supported(isa) ? fo_compiled(isa) : NULL;
}

static const fo_table *fo_active;

int fo_select(fo_isa isa)
{
    const fo_table *t = fo_table_for(isa);
    if (!t) return -1;
    fo_active = t;
    return 0;
}

const fo_table *fo_table_active(void)
{
    if (!fo_active) fo_active = fo_compiled(fo_isa_best());
    return fo_active;
}

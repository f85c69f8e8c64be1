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

/* The job's byte space (fo_plan, and fo_step, which lays its items out as
 * it prepares them): pieces of FO_PIECE_BYTES, each item from a 64-byte
 * boundary. An item without a kernel takes no room (a parameter without a
 * gradient this step, or one fo_prepare_item() refused). */
#define FO_PIECE_BYTES ((size_t)64 * 1024)
#define FO_ALIGN_BYTES ((size_t)64)
/* log2 of the size of an element of the dtype (shifts: no division). */
static inline unsigned fo_dtype_shift(int dtype)
{
    return dtype == FO_F64 ? 3u : dtype == FO_F32 ? 2u : 1u;
}
static inline size_t fo_room(const fo_item *it)
{
    return it->kernel ? it->n << fo_dtype_shift(it->dtype) : 0;
}
/* An item with 8-bit state starts on a block's bytes (a divisor of
 * FO_PIECE_BYTES), so that no block is split between pieces. */
static inline void fo_place(fo_item *it, size_t *off)
{
    const size_t align = it->state8 ? (size_t)FO_Q_BLOCK << fo_dtype_shift(it->dtype) : FO_ALIGN_BYTES;
    *off = (*off + align - 1) / align * align;
    it->vstart = *off;
    *off += fo_room(it);
}
static inline size_t fo_pieces(size_t bytes) { return (bytes + FO_PIECE_BYTES - 1) / FO_PIECE_BYTES; }

/* fo_run(), but each item that has a kernel runs as[its dtype] instead
 * (fo_step's non-finite check over the items as they are planned); `as`
 * has an entry for every dtype among the items. */
void fo_run_as(const fo_item *items, size_t count, size_t pieces, double *partials,
               const fo_kernel *as);

/* Run task(ctx, k) for k in [0, count) on the pool, each task on one thread;
 * `bytes` (the memory the tasks touch) decides whether waking workers pays. */
void fo_run_tasks(size_t count, void (*task)(void *ctx, size_t k), void *ctx, size_t bytes);

/* Adafactor's step over items fo_step() prepared (kernels/adafactor.inc): the
 * first FO_AF_HEAD doubles of a band's accumulators are its scalars. Returns
 * FO_STEP_APPLIED or FO_STEP_NO_MEMORY (nothing written). */
#define FO_AF_HEAD 5
int fo_adafactor_step(const fo_table *t, fo_step_args *a);

/* Block-wise 8-bit state (fo_q8.c, fo_q8_block.h): a buffer of n values is
 * its codes, fo_q8_codes_bytes(n), then the blocks' float32 scales.
 * fo_q8_init() builds the maps' tables (once; fo_step() calls it).
 *
 * A value q in [-1, 1] (value / scale) goes to bucket (sign, its top 16 bits
 * less FO_Q8_LOW), magnitudes under 2^-24 to the lowest: no midpoint lies
 * within 2^-23 of zero in either map. No bucket holds more than one
 * midpoint, so q's code is the number of midpoints below every value of its
 * bucket, plus one when the bucket's midpoint is below q: with the same top
 * bits, when its low 16 bits are above q's (negative) or below (positive).
 * bucket[sign][bucket] packs that count (bits 0-7), whether the bucket has
 * a midpoint (bit 8) and its low 16 bits (16-31): one table read a value. */
static inline size_t fo_q8_codes_bytes(size_t n) { return (n + 63) / 64 * 64; }
static inline float *fo_q8_scales(void *buf, size_t n)
{
    return (float *)((char *)buf + fo_q8_codes_bytes(n));
}
#define FO_Q8_LOW (((uint32_t)127 - 24) << 7)
#define FO_Q8_BUCKETS (0x3F80 - FO_Q8_LOW + 1)
typedef struct fo_q8_map {
    float code[256];
    float mid[256];  /* the midpoints; mid[255] = +inf */
    uint32_t bucket[2][FO_Q8_BUCKETS];  /* 32 bits: a vector gather's element */
    uint8_t zero;    /* the code of 0 */
} fo_q8_map;
extern fo_q8_map fo_q8_maps[2];  /* unsigned, signed */
void fo_q8_init(void);
/* A block's values (len of them) from its codes and scale, and back: the
 * block's scale its largest magnitude (NaN, every code 0's, when one is not
 * finite), each code its value's (fo_q8_block.h). */
void fo_q8_load_block(float *x, const uint8_t *codes, float scale, size_t len, int is_signed);
void fo_q8_store_block(uint8_t *codes, float *scale, const float *x, size_t len, int is_signed);

#endif /* FO_COMMON_H */

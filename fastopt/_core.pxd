# Declarations of the C core (csrc/fastopt.h), and the helpers of _core.pyx
# that fastopt's other compiled modules (_clip, _probe, _average) call: they reach the
# C core through _core, so that every module uses its one thread pool and
# SIMD path.
from libc.stdint cimport int64_t, uint8_t, uint64_t
cimport numpy as cnp

cdef extern from "fastopt.h" nogil:
    ctypedef enum fo_dtype:
        FO_F32
        FO_F64
        FO_BF16
        FO_F16

    ctypedef int fo_algo  # the enum of FO_ALGOS; _core.pyx names them from fo_algo_name()

    ctypedef enum fo_isa:
        FO_ISA_SCALAR
        FO_ISA_BASE
        FO_ISA_AVX2
        FO_ISA_AVX512

    int FO_NUM_ISAS
    int FO_NUM_SLOTS

    enum:
        FO_PROBE_COPY
        FO_PROBE_TRIAD
        FO_PROBE_RMW

    ctypedef struct fo_hyper:
        double lr
        double weight_decay
        double eps
        double momentum
        double dampening
        double alpha
        double beta1
        double beta2
        double lr_decay
        int nesterov
        int centered
        int amsgrad
        int decoupled_weight_decay
        int maximize

    ctypedef struct fo_hyper_field:
        const char *name
        size_t offset
        int is_int

    const fo_hyper_field fo_hyper_fields[]
    const int fo_num_hyper_fields
    int FO_NUM_ALGOS
    const char *fo_algo_name(int algo) noexcept

    ctypedef struct fo_scalars:
        double scale
        double power
        double clip_value
        double avg_decay
        double avg_weight
        double avg_divisor

    int FO_NUM_PSCALARS
    ctypedef struct fo_pscalars:
        double v[2]  # FO_NUM_PSCALARS
        int dtype
    int fo_num_pscalars(fo_algo algo) noexcept

    ctypedef struct fo_item
    ctypedef void (*fo_kernel)(const fo_item *item, size_t begin, size_t end, double *acc) noexcept

    ctypedef struct fo_item:
        void *param
        const void *grad
        void *state[4]  # FO_NUM_SLOTS
        size_t n
        int dtype
        const fo_scalars *scalars
        fo_kernel kernel
        size_t vstart
        double ratio
        int state16
        int state8
        float *master
        int rounding
        uint64_t round_key
        const int64_t *rows
        size_t row_len
        size_t mat_rows, mat_cols

    # (the update kernels are picked in C only, by fo_step)
    ctypedef struct fo_table:
        fo_isa isa
        fo_kernel count_nonfinite[4]  # FO_NUM_DTYPES
        fo_kernel grad_sumsq[2]
        fo_kernel grad_sumabs[2]
        fo_kernel grad_maxabs[2]
        fo_kernel grad_sumpow[2]
        fo_kernel grad_scale[2]
        fo_kernel grad_clip_value[2]
        fo_kernel average_swa[2]
        fo_kernel average_ema[2]
        fo_kernel vec_dot[2]
        fo_kernel vec_axpy[2]
        fo_kernel probe[3]

    const char *fo_isa_name(fo_isa isa) noexcept
    int fo_isa_from_name(const char *name) noexcept
    int fo_isa_compiled(fo_isa isa) noexcept
    int fo_isa_supported(fo_isa isa) noexcept
    fo_isa fo_isa_best() noexcept
    const fo_table *fo_table_for(fo_isa isa) noexcept
    const fo_table *fo_table_active() noexcept
    int fo_select(fo_isa isa) noexcept

    fo_hyper fo_hyper_defaults(fo_algo algo) noexcept
    unsigned fo_state_slots(fo_algo algo, const fo_hyper *h) noexcept
    unsigned fo_split_phase(fo_algo algo) noexcept
    int fo_algo_state16(fo_algo algo) noexcept
    int fo_algo_state8(fo_algo algo) noexcept
    size_t fo_q8_bytes(size_t n) noexcept
    void fo_q8_code(int is_signed, float *out) noexcept
    int fo_q8_signed(fo_algo algo, int slot) noexcept
    int FO_Q_BLOCK


cdef extern from "fo_common.h" nogil:
    void fo_q8_init() noexcept
    float *fo_q8_scales(void *buf, size_t n) noexcept
    void fo_q8_load_block(float *x, const uint8_t *codes, float scale, size_t len, int is_signed) noexcept
    void fo_q8_store_block(uint8_t *codes, float *scale, const float *x, size_t len,
                           int is_signed) noexcept

    ctypedef struct fo_step_args:
        const fo_table *table
        fo_algo algo
        const fo_hyper *hypers
        size_t ngroups
        fo_item *items
        size_t count
        const int *group
        int64_t *steps
        uint8_t *started
        fo_scalars *scalars
        fo_pscalars *pscalars
        int skip_nonfinite
        uint64_t seed
        unsigned phase
        size_t bad
        unsigned missing

    enum:
        FO_STEP_APPLIED
        FO_STEP_SKIPPED
        FO_STEP_NO_STATE
        FO_STEP_BAD_GROUP
        FO_STEP_BAD_COUNT
        FO_STEP_BAD_ARGS
        FO_STEP_NO_MEMORY

    int fo_step(fo_step_args *args) noexcept

    int fo_set_num_threads(int n) noexcept
    int fo_get_num_threads() noexcept
    int fo_default_num_threads() noexcept
    size_t fo_plan(fo_item *items, size_t count) noexcept
    void fo_run(const fo_item *items, size_t count, size_t pieces, double *partials) noexcept


# ---- shared with fastopt's other compiled modules (defined in _core.pyx)
cdef const fo_table *table_by_name(name) except NULL
cdef int dtype_code(cnp.ndarray a) noexcept
cdef cnp.ndarray as_param_array(obj, what, bint half=*, bint raw_bf16=*, bint q8=*)
cdef cnp.ndarray as_grad_array(obj, cnp.ndarray like, what)
cdef size_t plan_items(fo_item *items, size_t count) noexcept nogil
cdef void run_planned(const fo_item *items, size_t count, size_t pieces, double *partials) noexcept nogil

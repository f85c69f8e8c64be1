# Declarations of the C core (csrc/fastopt.h).
from libc.stdint cimport int64_t

cdef extern from "fastopt.h" nogil:
    ctypedef enum fo_dtype:
        FO_F32
        FO_F64

    ctypedef enum fo_algo:
        FO_SGD
        FO_ADAGRAD
        FO_RMSPROP
        FO_ADAM

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

    ctypedef struct fo_table:
        fo_isa isa
        fo_kernel update[4][2][16]
        fo_kernel count_nonfinite[2]
        fo_kernel grad_sumsq[2]
        fo_kernel grad_sumabs[2]
        fo_kernel grad_maxabs[2]
        fo_kernel grad_sumpow[2]
        fo_kernel grad_scale[2]
        fo_kernel grad_clip_value[2]
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
    unsigned fo_prepare(fo_algo algo, const fo_hyper *h, int64_t step, int first, fo_scalars *out) noexcept
    int fo_prepare_item(const fo_table *t, fo_algo algo, const fo_hyper *h, int64_t step,
                        int first, fo_scalars *scalars, fo_item *item) noexcept
    unsigned fo_state_slots(fo_algo algo, const fo_hyper *h) noexcept
    unsigned fo_mode_slots(fo_algo algo, unsigned mode) noexcept
    unsigned fo_missing_slots(fo_algo algo, unsigned mode, const fo_item *item) noexcept

    int fo_set_num_threads(int n) noexcept
    int fo_get_num_threads() noexcept
    int fo_default_num_threads() noexcept
    size_t fo_plan(fo_item *items, size_t count) noexcept
    void fo_run(const fo_item *items, size_t count, size_t pieces, double *partials) noexcept

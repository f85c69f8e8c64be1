/*
 * Per-step scalars, computed once per call in double, with the formulas and
 * the order of operations of torch.optim's single-tensor implementations:
 *
 *   SGD      neg_lr = -lr
 *   Adagrad  clr = lr / (1 + (t - 1) * lr_decay),  neg_lr = -clr
 *   RMSprop  neg_lr = -lr
 *   Adam     step_size = lr / (1 - beta1^t),  neg_lr = -step_size,
 *            denom_scale = (1 - beta2^t)^0.5,  AdamW param_decay = 1 - lr * wd
 *   Adamax   clr = lr / (1 - beta1^t),  neg_lr = -clr
 *   Adadelta neg_lr = -lr
 *   RAdam    bias_correction1 = 1 - beta1^t,  bias_correction2 = 1 - beta2^t,
 *            rho_inf = 2 / (1 - beta2) - 1,
 *            rho_t = rho_inf - 2 * t * beta2^t / bias_correction2;  when rho_t > 5:
 *            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))^0.5,
 *            denom_scale = bias_correction2^0.5;  decoupled param_decay = 1 - lr * wd
 *   Rprop    the etas and step-size bounds; lr, the step size of the first step
 *   NAdam    mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay)),  mu_product *= mu_t (in its
 *            dtype), bias2 = 1 - beta2^t,
 *            grad_coef = -lr * (1 - mu_t) / (1 - mu_product),
 *            avg_coef = -lr * mu_{t+1} / (1 - mu_product * mu_{t+1});  decoupled param_decay
 *   ASGD     eta, mu from the item's state: param_decay = 1 - lambd * eta, neg_lr = -eta,
 *            avg_coef = mu; then eta = lr / (1 + lambd * lr * t)^alpha, mu = 1 / max(1, t - t0),
 *            each rounded to float32 as torch.as_tensor makes them
 *
 * and, for the optimizers torch lacks, their reference implementation's:
 *
 *   Lion       neg_lr = -lr,  param_decay = 1 - lr * wd (lion-pytorch)
 *   AdaBelief  bias1 = 1 - beta1^t,  bias2 = 1 - beta2^t,  neg_lr = -lr (optax; optax
 *              computes the bias corrections in the parameter's dtype, these in double)
 *   ADOPT      clip_value = (t - 1)^0.25; the first step b1 = 1, b2 = 0 (optax)
 *   Adan       neg_lr = -lr / (1 - beta1^t),  neg_lr_diff = -lr * beta2 / (1 - beta2^t),
 *              denom_scale = sqrt(1 - beta3^t)  (pytorch-optimizer)
 *   LAMB       bias1 = 1 - beta1^t,  bias2 = 1 - beta2^t,  neg_lr = -lr; trust ratio
 *              |p| / |u| (optax: scale_by_trust_ratio's defaults)
 *   LARS       neg_lr = -lr; trust ratio trust_coefficient * |p| / (|u| + eps) (optax)
 *   Schedule-Free AdamW / SGD  bias2 = 1 - beta2^k (AdamW), neg_lr = -lr,
 *              y_coef = lr * (beta1 * (1 - ckp1) - 1) (SGD: momentum for beta1), with lr
 *              the warmed-up rate, k the group's step count and ckp1 the averaging weight,
 *              which the caller keeps per group and computes in double (the schedulefree
 *              package's formulas; fastopt/optim.py)
 *
 * and Muon (torch.optim.Muon): lerp weights 1 - momentum (the buffer's) and
 * momentum (Nesterov's), param_decay = 1 - lr * wd, neg_lr = -lr (the apply
 * pass scales it by the item's ratio, adjust_lr_fn's factor: -adjusted_lr)
 */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "fo_common.h"

#define FO_ALGO_NAME_(name, NAME, modes, loop, q8) #name,
static const char *const fo_algo_names[] = { FO_ALGOS(FO_ALGO_NAME_) };
#undef FO_ALGO_NAME_

const char *fo_algo_name(int algo)
{
    return algo >= 0 && algo < FO_NUM_ALGOS ? fo_algo_names[algo] : NULL;
}

#define FO_FIELD_(name, is_int) { #name, offsetof(fo_hyper, name), is_int }
const fo_hyper_field fo_hyper_fields[] = {
    FO_FIELD_(lr, 0), FO_FIELD_(weight_decay, 0), FO_FIELD_(eps, 0), FO_FIELD_(momentum, 0),
    FO_FIELD_(dampening, 0), FO_FIELD_(alpha, 0), FO_FIELD_(beta1, 0), FO_FIELD_(beta2, 0),
    FO_FIELD_(lr_decay, 0), FO_FIELD_(nesterov, 1), FO_FIELD_(centered, 1), FO_FIELD_(amsgrad, 1),
    FO_FIELD_(decoupled_weight_decay, 1), FO_FIELD_(maximize, 1),
    FO_FIELD_(rho, 0), FO_FIELD_(etaminus, 0), FO_FIELD_(etaplus, 0),
    FO_FIELD_(step_size_min, 0), FO_FIELD_(step_size_max, 0),
    FO_FIELD_(decoupled_weight_decay, 1), FO_FIELD_(maximize, 1), FO_FIELD_(eps_root, 0),
    FO_FIELD_(beta3, 0), FO_FIELD_(weight_decouple, 1), FO_FIELD_(trust_coefficient, 0),
    FO_FIELD_(momentum_decay, 0), FO_FIELD_(lambd, 0), FO_FIELD_(t0, 0),
    FO_FIELD_(k, 0), FO_FIELD_(ckp1, 0), FO_FIELD_(beta2_decay, 0), FO_FIELD_(eps2, 0),
    FO_FIELD_(d, 0),
};
#undef FO_FIELD_
const int fo_num_hyper_fields = (int)(sizeof fo_hyper_fields / sizeof fo_hyper_fields[0]);

fo_hyper fo_hyper_defaults(fo_algo algo)
{
    fo_hyper h;
    memset(&h, 0, sizeof h);
    switch (algo) {
    case FO_SGD: h.lr = 1e-3; break;
    case FO_ADAGRAD: h.lr = 1e-2; h.eps = 1e-10; break;
    case FO_RMSPROP: h.lr = 1e-2; h.alpha = 0.99; h.eps = 1e-8; break;
    case FO_ADAM: h.lr = 1e-3; h.beta1 = 0.9; h.beta2 = 0.999; h.eps = 1e-8; break;
    case FO_ADAMAX: h.lr = 2e-3; h.beta1 = 0.9; h.beta2 = 0.999; h.eps = 1e-8; break;
    case FO_ADADELTA: h.lr = 1.0; h.rho = 0.9; h.eps = 1e-6; break;
    case FO_RADAM: h.lr = 1e-3; h.beta1 = 0.9; h.beta2 = 0.999; h.eps = 1e-8; break;
    case FO_RPROP:
        h.lr = 1e-2; h.etaminus = 0.5; h.etaplus = 1.2; h.step_size_min = 1e-6; h.step_size_max = 50;
        break;
    case FO_LION: h.lr = 1e-4; h.beta1 = 0.9; h.beta2 = 0.99; break;
    case FO_ADOPT: h.lr = 1e-3; h.beta1 = 0.9; h.beta2 = 0.9999; h.eps = 1e-6; break;
    case FO_ADAN: h.lr = 1e-3; h.beta1 = 0.98; h.beta2 = 0.92; h.beta3 = 0.99; h.eps = 1e-8; break;
    case FO_SF_ADAMW: h.lr = 0.0025; h.beta1 = 0.9; h.beta2 = 0.999; h.eps = 1e-8; break;
    case FO_SF_SGD: h.lr = 1.0; h.momentum = 0.9; break;
    case FO_ADABELIEF:
        h.lr = 1e-3; h.beta1 = 0.9; h.beta2 = 0.999; h.eps = 1e-16; h.eps_root = 1e-16;
        break;
    case FO_LAMB: h.lr = 1e-3; h.beta1 = 0.9; h.beta2 = 0.999; h.eps = 1e-6; break;
    case FO_LARS: h.lr = 1.0; h.momentum = 0.9; h.trust_coefficient = 0.001; break;
    case FO_NADAM:
        h.lr = 2e-3; h.beta1 = 0.9; h.beta2 = 0.999; h.eps = 1e-8; h.momentum_decay = 4e-3;
        break;
    case FO_ASGD: h.lr = 1e-2; h.lambd = 1e-4; h.alpha = 0.75; h.t0 = 1e6; break;
    case FO_MUON: h.lr = 1e-3; h.weight_decay = 0.1; h.momentum = 0.95; h.nesterov = 1; break;
    case FO_SPARSE_ADAM: h.lr = 1e-3; h.beta1 = 0.9; h.beta2 = 0.999; h.eps = 1e-8; break;
    case FO_ADAFACTOR: h.lr = 1e-2; h.beta2_decay = -0.8; h.eps = NAN; h.eps2 = 1e-3; h.d = 1.0; break;
    }
    return h;
}

/* torch's lerp switches formula at weight 0.5. (torch decides on the weight
 * rounded to the tensor's dtype; the two can disagree only for a float32
 * weight within 2^-25 of 0.5, where both formulas agree to rounding.) */
static int fo_lerp_high(double w) { return !(fabs(w) < 0.5); }

/* x rounded to a 0-d tensor's dtype (fo_pscalars.dtype). */
static double fo_round_to(double x, int dtype) { return dtype == FO_F32 ? (double)(float)x : x; }

int fo_num_pscalars(fo_algo algo)
{
    switch (algo) {
    case FO_NADAM: return 1;
    case FO_ASGD: return 2;
    default: return 0;
    }
}

void fo_advance(fo_algo algo, const fo_scalars *s, int first, fo_pscalars *ps)
{
    (void)first;  /* the advance was computed from the first step's state already */
    for (int k = 0; k < fo_num_pscalars(algo); k++) ps->v[k] = s->advance[k];
}

unsigned fo_prepare(fo_algo algo, const fo_hyper *h, int64_t step, int first, fo_scalars *s)
{
    return fo_prepare_with(algo, h, step, first, NULL, s);
}

/* optax's scale_by_adam (AdaBelief's and LAMB's first moments): m = (1 - b1) g
 * + b1 m, v = (1 - b2) g^2 + b2 v, and both bias corrections of step t. */
static void fo_optax_moments(const fo_hyper *h, int64_t step, fo_scalars *s)
{
    s->lerp_weight = 1 - h->beta1;
    s->momentum = h->beta1;
    s->avg_weight = 1 - h->beta2;
    s->avg_decay = h->beta2;
    s->bias1 = 1 - pow(h->beta1, (double)step);
    s->bias2 = 1 - pow(h->beta2, (double)step);
}

unsigned fo_prepare_with(fo_algo algo, const fo_hyper *h, int64_t step, int first,
                         const fo_pscalars *ps, fo_scalars *s)
{
    unsigned mode = 0;
    const int fresh = first || !ps;       /* torch's new 0-d state, not ps's values */
    const int pdtype = ps ? ps->dtype : FO_F64;
    memset(s, 0, sizeof *s);
    s->grad_sign = h->maximize ? -1.0 : 1.0;
    s->weight_decay = h->weight_decay;
    s->eps = h->eps;
    s->neg_lr = -h->lr;
    s->param_decay = 1.0;
    switch (algo) {
    case FO_SGD:
        if (h->weight_decay != 0) mode |= FO_SGD_L2;
        if (h->momentum != 0) {
            mode |= FO_SGD_MOMENTUM;
            if (h->nesterov) mode |= FO_SGD_NESTEROV;
            if (first) mode |= FO_SGD_FIRST;
        }
        s->momentum = h->momentum;
        s->one_minus_dampening = 1 - h->dampening;
        break;
    case FO_ADAGRAD:
        if (h->weight_decay != 0) mode |= FO_ADAGRAD_L2;
        s->neg_lr = -(h->lr / (1 + (double)(step - 1) * h->lr_decay));
        break;
    case FO_RMSPROP:
        if (h->weight_decay != 0) mode |= FO_RMSPROP_L2;
        if (h->momentum > 0) mode |= FO_RMSPROP_MOMENTUM;
        if (h->centered && fo_lerp_high(1 - h->alpha)) mode |= FO_RMSPROP_LERP_HIGH;
        if (h->centered) mode |= FO_RMSPROP_CENTERED;
        s->momentum = h->momentum;
        s->avg_decay = h->alpha;
        s->avg_weight = 1 - h->alpha;
        s->lerp_weight = 1 - h->alpha;
        break;
    case FO_ADAM: {
        double t = (double)step;
        if (h->weight_decay != 0)
            mode |= h->decoupled_weight_decay ? FO_ADAM_DECOUPLED : FO_ADAM_L2;
        if (h->amsgrad) mode |= FO_ADAM_AMSGRAD;
        if (fo_lerp_high(1 - h->beta1)) mode |= FO_ADAM_LERP_HIGH;
        s->param_decay = 1 - h->lr * h->weight_decay;
        s->lerp_weight = 1 - h->beta1;
        s->avg_decay = h->beta2;
        s->avg_weight = 1 - h->beta2;
        s->neg_lr = -(h->lr / (1 - pow(h->beta1, t)));
        s->denom_scale = pow(1 - pow(h->beta2, t), 0.5);
        break;
    }
    case FO_ADAMAX:
        if (h->weight_decay != 0) mode |= FO_ADAMAX_L2;
        if (fo_lerp_high(1 - h->beta1)) mode |= FO_ADAMAX_LERP_HIGH;
        s->lerp_weight = 1 - h->beta1;
        s->avg_decay = h->beta2;
        s->neg_lr = -(h->lr / (1 - pow(h->beta1, (double)step)));
        break;
    case FO_ADADELTA:
        if (h->weight_decay != 0) mode |= FO_ADADELTA_L2;
        s->avg_decay = h->rho;
        s->avg_weight = 1 - h->rho;
        break;
    case FO_RADAM: {
        double t = (double)step;
        double bias_correction2 = 1 - pow(h->beta2, t);
        double rho_inf = 2 / (1 - h->beta2) - 1;
        double rho_t = rho_inf - 2 * t * pow(h->beta2, t) / bias_correction2;
        if (h->weight_decay != 0)
            mode |= h->decoupled_weight_decay ? FO_RADAM_DECOUPLED : FO_RADAM_L2;
        if (fo_lerp_high(1 - h->beta1)) mode |= FO_RADAM_LERP_HIGH;
        s->param_decay = 1 - h->lr * h->weight_decay;
        s->lerp_weight = 1 - h->beta1;
        s->avg_decay = h->beta2;
        s->avg_weight = 1 - h->beta2;
        s->lr = h->lr;
        s->bias1 = 1 - pow(h->beta1, t);
        if (rho_t > 5.0) {
            mode |= FO_RADAM_RECTIFIED;
            s->rect = pow((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t),
                          0.5);
            s->denom_scale = pow(bias_correction2, 0.5);
        }
        break;
    }
    case FO_RPROP:
        if (first) mode |= FO_RPROP_FIRST;
        s->lr = h->lr;
        s->etaminus = h->etaminus;
        s->etaplus = h->etaplus;
        s->step_size_min = h->step_size_min;
        s->step_size_max = h->step_size_max;
        break;
    case FO_LION:
        s->param_decay = 1 - h->lr * h->weight_decay;
        s->interp_decay = h->beta1;
        s->interp_weight = 1 - h->beta1;
        s->avg_decay = h->beta2;
        s->avg_weight = 1 - h->beta2;
        break;
    case FO_ADABELIEF:
        if (h->weight_decay != 0) mode |= FO_ADABELIEF_DECAY;
        fo_optax_moments(h, step, s);
        s->eps_root = h->eps_root;
        break;
    case FO_ADOPT: {
        /* optax's count before this step is t - 1; at 0 only the second moment moves */
        double b1 = step > 1 ? h->beta1 : 1.0, b2 = step > 1 ? h->beta2 : 0.0;
        if (h->weight_decay != 0) mode |= FO_ADOPT_DECAY;
        s->momentum = b1;      /* the kernel takes 1 - b in the parameter's dtype, as optax */
        s->avg_decay = b2;
        s->clip_value = pow((double)(step - 1), 0.25);
        break;
    }
    case FO_ADAN: {
        double t = (double)step;
        if (h->weight_decay != 0) mode |= FO_ADAN_DECAY;
        if (h->weight_decouple) mode |= FO_ADAN_DECOUPLE;
        if (first) mode |= FO_ADAN_FIRST;
        s->lerp_weight = 1 - h->beta1;
        s->diff_weight = 1 - h->beta2;
        s->lerp_high = (fo_lerp_high(1 - h->beta1) ? 1u : 0u) | (fo_lerp_high(1 - h->beta2) ? 2u : 0u);
        s->diff_decay = h->beta2;
        s->avg_decay = h->beta3;
        s->avg_weight = 1 - h->beta3;
        s->denom_scale = sqrt(1 - pow(h->beta3, t));
        s->neg_lr = -h->lr / (1 - pow(h->beta1, t));
        s->neg_lr_diff = -h->lr * h->beta2 / (1 - pow(h->beta2, t));
        s->param_decay = 1 - h->lr * h->weight_decay;
        s->param_div = 1 + h->lr * h->weight_decay;
        break;
    }
    case FO_LAMB:
        if (h->weight_decay != 0) mode |= FO_LAMB_DECAY;
        fo_optax_moments(h, step, s);
        s->ratio_scale = 1.0;
        s->ratio_eps = 0.0;
        break;
    case FO_LARS:
        if (h->weight_decay != 0) mode |= FO_LARS_DECAY;
        if (h->nesterov) mode |= FO_LARS_NESTEROV;
        s->momentum = h->momentum;
        s->ratio_scale = h->trust_coefficient;
        s->ratio_eps = h->eps;
        break;
    case FO_NADAM: {
        double t = (double)step;
        double mu = h->beta1 * (1.0 - 0.5 * pow(0.96, t * h->momentum_decay));
        double mu_next = h->beta1 * (1.0 - 0.5 * pow(0.96, (t + 1) * h->momentum_decay));
        double product = fresh ? 1.0 : ps->v[0];
        /* torch: mu_product *= mu, in the 0-d tensor's dtype */
        product = pdtype == FO_F32 ? (double)((float)product * (float)mu) : product * mu;
        if (h->weight_decay != 0)
            mode |= h->decoupled_weight_decay ? FO_NADAM_DECOUPLED : FO_NADAM_L2;
        if (fo_lerp_high(1 - h->beta1)) mode |= FO_NADAM_LERP_HIGH;
        s->param_decay = 1 - h->lr * h->weight_decay;
        s->lerp_weight = 1 - h->beta1;
        s->avg_decay = h->beta2;
        s->avg_weight = 1 - h->beta2;
        s->bias2 = 1 - pow(h->beta2, t);
        s->grad_coef = -h->lr * (1.0 - mu) / (1.0 - product);
        s->avg_coef = -h->lr * mu_next / (1.0 - product * mu_next);
        s->advance[0] = product;
        break;
    }
    case FO_ASGD: {
        double t = (double)step;
        double eta = fresh ? fo_round_to(h->lr, pdtype) : ps->v[0];
        double mu = fresh ? 1.0 : ps->v[1];
        double d = t - h->t0;
        if (h->weight_decay != 0) mode |= FO_ASGD_L2;
        if (mu != 1) mode |= FO_ASGD_AVERAGE;
        s->param_decay = 1 - h->lambd * eta;
        s->neg_lr = -eta;
        s->avg_coef = mu;
        /* torch.as_tensor(value) (float32, torch's default dtype), copied into the state */
        s->advance[0] = fo_round_to(fo_round_to(h->lr / pow(1 + h->lambd * h->lr * t, h->alpha), FO_F32), pdtype);
        s->advance[1] = fo_round_to(fo_round_to(1 / (d > 1 ? d : 1), FO_F32), pdtype);
        break;
    }
    case FO_SF_ADAMW:
    case FO_SF_SGD: {
        double beta1 = algo == FO_SF_ADAMW ? h->beta1 : h->momentum;
        if (h->weight_decay != 0) mode |= FO_SF_DECAY;
        if (fo_lerp_high(h->ckp1)) mode |= FO_SF_LERP_HIGH;
        s->ckp1 = h->ckp1;
        s->y_coef = h->lr * (beta1 * (1 - h->ckp1) - 1);
        s->avg_decay = h->beta2;
        s->avg_weight = 1 - h->beta2;
        s->bias2 = 1 - pow(h->beta2, h->k);
        break;
    }
    case FO_MUON:
        if (h->nesterov) mode |= FO_MUON_NESTEROV;
        s->lerp_weight = 1 - h->momentum;  /* buf.lerp_(grad, 1 - momentum) */
        s->momentum = h->momentum;         /* grad.lerp(buf, momentum) */
        s->lerp_high = (fo_lerp_high(1 - h->momentum) ? 1u : 0u) | (fo_lerp_high(h->momentum) ? 2u : 0u);
        s->param_decay = 1 - h->lr * h->weight_decay;
        break;
    case FO_SPARSE_ADAM: {
        double t = (double)step;  /* torch: lr * sqrt(1 - beta2**t) / (1 - beta1**t), in double */
        s->lerp_weight = 1 - h->beta1;
        s->avg_weight = 1 - h->beta2;
        s->neg_lr = -(h->lr * sqrt(1 - pow(h->beta2, t)) / (1 - pow(h->beta1, t)));
        break;
    }
    case FO_ADAFACTOR:  /* the rest is per item, between the passes (fo_adafactor.c) */
        s->lerp_weight = pow((double)step, h->beta2_decay);
        s->lerp_high = fo_lerp_high(s->lerp_weight) ? 1u : 0u;
        s->lr = fmin(h->lr, 1 / sqrt((double)step));  /* the relative step size rho */
        s->param_decay = 1 - h->lr * h->weight_decay;
        s->eps = h->eps;
        s->eps_root = h->eps2;
        s->clip_value = h->d;
        break;
    }
    return mode;
}

int fo_prepare_item(const fo_table *t, fo_algo algo, const fo_hyper *h, int64_t step,
                    int first, fo_scalars *scalars, fo_item *item)
{
    unsigned mode = fo_prepare(algo, h, step, first, scalars);
    item->scalars = scalars;
    const int kind = fo_item_kind(item);
    if (kind < 0 || fo_missing_slots(algo, mode, item) || fo_norm_phase(algo) || fo_split_phase(algo) ||
        algo == FO_ADAFACTOR || (item->state16 && !fo_algo_state16(algo)) ||
        (item->state8 && !fo_algo_state8(algo))) {
        item->kernel = NULL;
        return -1;
    }
    item->kernel = t->update[algo][kind][mode];  /* round_key: the caller's (fo_round_key()) */
    return 0;
}

/* The slots an algorithm always uses; SGD's, RMSprop's and Adam's optional
 * ones are added by the two functions below, from the hyperparameters or the
 * mode. */
static unsigned fo_fixed_slots(fo_algo algo)
{
    switch (algo) {
    case FO_ADAGRAD: case FO_RMSPROP: case FO_LION: case FO_LARS: case FO_ASGD: case FO_SF_SGD:
        return 1u;
    case FO_ADAN: return 15u;
    case FO_MUON: return 3u;  /* the momentum buffer, and the caller's update buffer */
    default: return 3u;
    }
}

unsigned fo_state_slots(fo_algo algo, const fo_hyper *h)
{
    switch (algo) {
    case FO_SGD: return h->momentum != 0 ? 1u : 0u;
    case FO_RMSPROP: return 1u | (h->momentum > 0 ? 2u : 0u) | (h->centered ? 4u : 0u);
    case FO_ADAM: return 3u | (h->amsgrad ? 4u : 0u);
    case FO_MUON: return 1u;  /* state[1] is the caller's scratch, not optimizer state */
    case FO_ADAFACTOR: return 7u;  /* row_var and col_var, or variance: per item (fo_mode_slots) */
    default: return fo_fixed_slots(algo);
    }
}

unsigned fo_split_phase(fo_algo algo)
{
    return algo == FO_MUON ? FO_MUON_APPLY : 0u;
}

unsigned fo_norm_phase(fo_algo algo)
{
    switch (algo) {
    case FO_LAMB: return FO_LAMB_APPLY;
    case FO_LARS: return FO_LARS_APPLY;
    default: return 0;
    }
}

unsigned fo_mode_slots(fo_algo algo, unsigned mode)
{
    switch (algo) {
    case FO_SGD: return (mode & FO_SGD_MOMENTUM) ? 1u : 0u;
    case FO_RMSPROP:
        return 1u | ((mode & FO_RMSPROP_MOMENTUM) ? 2u : 0u) | ((mode & FO_RMSPROP_CENTERED) ? 4u : 0u);
    case FO_ADAM: return 3u | ((mode & FO_ADAM_AMSGRAD) ? 4u : 0u);
    case FO_MUON: return (mode & FO_MUON_APPLY) ? 2u : 3u;
    case FO_ADAFACTOR: return (mode & FO_ADAFACTOR_FACTORED) ? 3u : 4u;
    default: return fo_fixed_slots(algo);
    }
}

unsigned fo_missing_slots(fo_algo algo, unsigned mode, const fo_item *item)
{
    unsigned need = fo_mode_slots(algo, mode), missing = 0;
    for (unsigned k = 0; k < FO_NUM_SLOTS; k++)
        if ((need >> k & 1u) && item->state[k] == NULL) missing |= 1u << k;
    return missing;
}

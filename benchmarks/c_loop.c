/*
 * The plain fused C loop that fastopt's kernels are measured against: one
 * pass over each tensor, as anyone would write it, compiled by
 * benchmarks/c_loop.py with -O3 for the machine it runs on (the compiler
 * vectorises it, and contracts multiply-adds where it likes), OpenMP
 * splitting each tensor evenly between the threads. float32; torch's
 * formulas; the per-step scalars in double, as torch computes them.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>

void c_loop_set_threads(int n) { omp_set_num_threads(n); }

/* Adam, and AdamW (decoupled weight decay) with adamw set. */
void c_loop_adam(int count, float **p, float **g, float **m, float **v, const int64_t *n,
                 double lr, double b1, double b2, double eps, double wd, int adamw, int64_t t)
{
    const float step_size = (float)(lr / (1 - pow(b1, (double)t)));
    const float bc2_sqrt = (float)sqrt(1 - pow(b2, (double)t));
    const float fb1 = (float)b1, fb2 = (float)b2, feps = (float)eps;
    const float decay = (float)(1 - lr * wd), l2 = (float)wd;
#pragma omp parallel
    for (int k = 0; k < count; k++) {
        float *pk = p[k], *mk = m[k], *vk = v[k];
        const float *gk = g[k];
#pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < n[k]; i++) {
            float gi = gk[i], pi = pk[i];
            if (adamw) pi *= decay;
            else gi += l2 * pi;
            const float mi = fb1 * mk[i] + (1 - fb1) * gi;
            const float vi = fb2 * vk[i] + (1 - fb2) * gi * gi;
            mk[i] = mi;
            vk[i] = vi;
            pk[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + feps);
        }
    }
}

void c_loop_adagrad(int count, float **p, float **g, float **sum, const int64_t *n,
                    double lr, double lr_decay, double eps, int64_t t)
{
    const float clr = (float)(lr / (1 + (double)(t - 1) * lr_decay)), feps = (float)eps;
#pragma omp parallel
    for (int k = 0; k < count; k++) {
        float *pk = p[k], *sk = sum[k];
        const float *gk = g[k];
#pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < n[k]; i++) {
            const float gi = gk[i], si = sk[i] + gi * gi;
            sk[i] = si;
            pk[i] -= clr * gi / (sqrtf(si) + feps);
        }
    }
}

void c_loop_rmsprop(int count, float **p, float **g, float **sq, const int64_t *n,
                    double lr, double alpha, double eps)
{
    const float flr = (float)lr, fa = (float)alpha, feps = (float)eps;
#pragma omp parallel
    for (int k = 0; k < count; k++) {
        float *pk = p[k], *qk = sq[k];
        const float *gk = g[k];
#pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < n[k]; i++) {
            const float gi = gk[i], qi = fa * qk[i] + (1 - fa) * gi * gi;
            qk[i] = qi;
            pk[i] -= flr * gi / (sqrtf(qi) + feps);
        }
    }
}

/* SGD with momentum (no dampening): the buffer starts as the first gradient. */
void c_loop_sgd(int count, float **p, float **g, float **buf, const int64_t *n,
                double lr, double momentum, int64_t t)
{
    const float flr = (float)lr, fm = t > 1 ? (float)momentum : 0.0f;
#pragma omp parallel
    for (int k = 0; k < count; k++) {
        float *pk = p[k], *bk = buf[k];
        const float *gk = g[k];
#pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < n[k]; i++) {
            const float bi = fm * bk[i] + gk[i];
            bk[i] = bi;
            pk[i] -= flr * bi;
        }
    }
}

/* float32 rows of convlab._fast.bn_act: activation, its derivative, two sums.
 *
 * These loops are plain C written so that the compiler can vectorise them:
 * expf from libm is an opaque call, so GELU uses our own exp (2^n times a
 * degree-6 polynomial for 2^f, relative error ~2e-7) and erf from the
 * Abramowitz & Stegun 7.1.26 formula (absolute error < 1.5e-7), whose factor
 * exp(-y^2/2) is also the normal density times sqrt(2 pi): one exp gives
 * both Phi(y) and phi(y).
 *
 * The same source is compiled twice: for the baseline of the target (the
 * compiler vectorises it with SSE2 on x86-64, NEON on arm64; this is both
 * the plain and the portable path) and, on x86-64, for AVX2 + FMA (8 floats
 * per vector); CONVLAB_DISPATCH (simd.h) chooses one at run time.
 */
#ifndef CONVLAB_BN_ACT_KERNELS_H
#define CONVLAB_BN_ACT_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"

static inline float convlab_expf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float t = x * 1.4426950408889634f;
    int32_t i = (int32_t)t;
    i -= (t < (float)i);             /* floor */
    float f = t - (float)i;          /* in [0, 1) */
    float p = 1.8775767e-3f;
    p = p * f + 8.9893397e-3f;
    p = p * f + 5.5826318e-2f;
    p = p * f + 2.4015361e-1f;
    p = p * f + 6.9315308e-1f;
    p = p * f + 9.9999994e-1f;
    int32_t bits = (i + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

/* Phi(y) and phi(y) of the standard normal distribution. */
static inline float convlab_phi(float y, float *density)
{
    float z = (y < 0 ? -y : y) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float e = convlab_expf(-0.5f * y * y);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f
                 + t * (-1.453152027f + t * 1.061405429f))));
    float half_erfc = 0.5f * poly * e;
    *density = 0.39894228040143268f * e;
    return y >= 0 ? 1.0f - half_erfc : half_erfc;
}

#define CONVLAB_ACT_ROW_ARGS const float *x, float *out, ptrdiff_t n, float g, float b, int act, float alpha
#define CONVLAB_DACT_ROW_ARGS const float *dout, const float *x, float *dy, ptrdiff_t n, \
                              float g, float b, int act, float alpha
#define CONVLAB_DOT_ROW_ARGS const float *dy, const float *x, ptrdiff_t n, float m, double *sdy, double *sdyx

/* out[p] = act(g * x[p] + b); act: 0 identity, 1 ReLU, 2 leaky, 3 GELU */
#define CONVLAB_ACT_ROW_BODY \
    ptrdiff_t p; \
    if (act == 1) { \
        for (p = 0; p < n; p++) { float y = g * x[p] + b; out[p] = y > 0 ? y : 0.0f; } \
    } else if (act == 2) { \
        for (p = 0; p < n; p++) { float y = g * x[p] + b; out[p] = y > 0 ? y : alpha * y; } \
    } else if (act == 3) { \
        for (p = 0; p < n; p++) { float y = g * x[p] + b, d; out[p] = y * convlab_phi(y, &d); } \
    } else { \
        for (p = 0; p < n; p++) out[p] = g * x[p] + b; \
    }

/* dy[p] = dout[p] * act'(g * x[p] + b); dy may alias dout */
#define CONVLAB_DACT_ROW_BODY \
    ptrdiff_t p; \
    if (act == 1) { \
        for (p = 0; p < n; p++) { float y = g * x[p] + b; dy[p] = y > 0 ? dout[p] : 0.0f; } \
    } else if (act == 2) { \
        for (p = 0; p < n; p++) { float y = g * x[p] + b; dy[p] = dout[p] * (y > 0 ? 1.0f : alpha); } \
    } else if (act == 3) { \
        for (p = 0; p < n; p++) { \
            float y = g * x[p] + b, d; \
            float cdf = convlab_phi(y, &d); \
            dy[p] = dout[p] * (cdf + y * d); \
        } \
    } else { \
        for (p = 0; p < n; p++) dy[p] = dout[p]; \
    }

/* sums of dy and of dy * (x - m) over one row (float partial sums, reassociated
 * by the compiler into vector lanes; the caller accumulates rows in double) */
#define CONVLAB_DOT_ROW_BODY \
    float s = 0.0f, c = 0.0f; \
    for (ptrdiff_t p = 0; p < n; p++) { s += dy[p]; c += dy[p] * (x[p] - m); } \
    *sdy += s; \
    *sdyx += c;

static void convlab_act_row_plain(CONVLAB_ACT_ROW_ARGS) { CONVLAB_ACT_ROW_BODY }
static void convlab_dact_row_plain(CONVLAB_DACT_ROW_ARGS) { CONVLAB_DACT_ROW_BODY }
static void convlab_dot_row_plain(CONVLAB_DOT_ROW_ARGS) { CONVLAB_DOT_ROW_BODY }

/* the portable path: the same plain code, which the compiler vectorises for the baseline */
#define convlab_act_row_portable convlab_act_row_plain
#define convlab_dact_row_portable convlab_dact_row_plain
#define convlab_dot_row_portable convlab_dot_row_plain

#ifdef CONVLAB_HAVE_AVX2
CONVLAB_TARGET_AVX2 static void convlab_act_row_avx2(CONVLAB_ACT_ROW_ARGS) { CONVLAB_ACT_ROW_BODY }
CONVLAB_TARGET_AVX2 static void convlab_dact_row_avx2(CONVLAB_DACT_ROW_ARGS) { CONVLAB_DACT_ROW_BODY }
CONVLAB_TARGET_AVX2 static void convlab_dot_row_avx2(CONVLAB_DOT_ROW_ARGS) { CONVLAB_DOT_ROW_BODY }
#endif

CONVLAB_DISPATCHER void convlab_act_row(CONVLAB_ACT_ROW_ARGS)
{
    CONVLAB_DISPATCH(convlab_act_row, (x, out, n, g, b, act, alpha))
}
CONVLAB_DISPATCHER void convlab_dact_row(CONVLAB_DACT_ROW_ARGS)
{
    CONVLAB_DISPATCH(convlab_dact_row, (dout, x, dy, n, g, b, act, alpha))
}
CONVLAB_DISPATCHER void convlab_dot_row(CONVLAB_DOT_ROW_ARGS)
{
    CONVLAB_DISPATCH(convlab_dot_row, (dy, x, n, m, sdy, sdyx))
}

#endif /* CONVLAB_BN_ACT_KERNELS_H */

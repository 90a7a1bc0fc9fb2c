/* One output row of 2x2 stride-2 max pooling, for convlab._fast.pool.
 *
 * Rows r0 and r1 of the input give o[w] = the maximum of r0[2w], r0[2w+1],
 * r1[2w], r1[2w+1] and a[w] its position 0..3 (row-major), for w < n.  A
 * later element wins only if it is strictly larger, or if it is NaN and the
 * best so far is not (first maximum / first NaN, as numpy.argmax).
 *
 * Plain C first; then G windows at a time with vectors (G = 4 floats or 2
 * doubles portably, 8 floats or 4 doubles with AVX2): the even and odd
 * columns are separated with shuffles, and the three comparisons become
 * vector compares and blends.  A row's last m < G windows go through the
 * same vector step on zero-padded copies, so every window follows the same
 * code.  CONVLAB_DISPATCH (simd.h) chooses the version at run time.
 */
#ifndef CONVLAB_POOL_KERNELS_H
#define CONVLAB_POOL_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"

#define CONVLAB_POOL_ARGS(T) const T *r0, const T *r1, T *o, unsigned char *a, ptrdiff_t n

/* ---- 1. plain C ---- */
#define CONVLAB_WINS(v, best) (((v) > (best)) | (((v) != (v)) & ((best) == (best))))
#define CONVLAB_POOL_ROW_PLAIN(T) \
    for (ptrdiff_t w = 0; w < n; ++w) { \
        T best = r0[2 * w], v; unsigned char k = 0; \
        v = r0[2 * w + 1]; if (CONVLAB_WINS(v, best)) { best = v; k = 1; } \
        v = r1[2 * w];     if (CONVLAB_WINS(v, best)) { best = v; k = 2; } \
        v = r1[2 * w + 1]; if (CONVLAB_WINS(v, best)) { best = v; k = 3; } \
        o[w] = best; a[w] = k; \
    }

static void convlab_pool2x2_row_s_plain(CONVLAB_POOL_ARGS(float)) { CONVLAB_POOL_ROW_PLAIN(float) }
static void convlab_pool2x2_row_d_plain(CONVLAB_POOL_ARGS(double)) { CONVLAB_POOL_ROW_PLAIN(double) }

/* A row of G-window steps, whole steps in place, the rest through zero-padded copies. */
#define CONVLAB_POOL_ROW_STEPS(T, G, STEP) \
    ptrdiff_t w = 0, m; \
    for (; w + G <= n; w += G) \
        STEP(r0 + 2 * w, r1 + 2 * w, o + w, a + w); \
    m = n - w; \
    if (m > 0) { \
        T t0[2 * G] = {0}, t1[2 * G] = {0}, to[G]; unsigned char ta[G]; \
        memcpy(t0, r0 + 2 * w, 2 * m * sizeof(T)); \
        memcpy(t1, r1 + 2 * w, 2 * m * sizeof(T)); \
        STEP(t0, t1, to, ta); \
        memcpy(o + w, to, m * sizeof(T)); \
        memcpy(a + w, ta, m); \
    }

/* ---- 2. portable: GCC/Clang vector extensions ---- */
#ifdef CONVLAB_HAVE_VECTOR_EXT
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define CONVLAB_SHUFFLE4(x, y, i, j, k, l) __builtin_shufflevector(x, y, i, j, k, l)
#define CONVLAB_SHUFFLE2(x, y, i, j) __builtin_shufflevector(x, y, i, j)
#endif
#endif
#if !defined(CONVLAB_SHUFFLE4) && defined(__GNUC__) && !defined(__clang__)
#define CONVLAB_SHUFFLE4(x, y, i, j, k, l) __builtin_shuffle(x, y, (convlab_pool_v4sf_mask){i, j, k, l})
#define CONVLAB_SHUFFLE2(x, y, i, j) __builtin_shuffle(x, y, (convlab_pool_v2df_mask){i, j})
#endif
#endif

#if defined(CONVLAB_HAVE_VECTOR_EXT) && defined(CONVLAB_SHUFFLE4)
typedef float convlab_pool_v4sf __attribute__((vector_size(16)));
typedef double convlab_pool_v2df __attribute__((vector_size(16)));
/* masks: lanes of all ones or zeros, as a comparison gives (cast to these types) */
typedef int32_t convlab_pool_v4sf_mask __attribute__((vector_size(16)));
typedef int64_t convlab_pool_v2df_mask __attribute__((vector_size(16)));

/* best, k := v, kval where v wins (vector form of CONVLAB_WINS) */
#define CONVLAB_POOL_VEC_STEP(V, M, v, kval) { \
        M win = (M)((v) > best) | ((M)((v) != (v)) & (M)(best == best)); \
        best = (V)(((M)(v) & win) | ((M)best & ~win)); \
        k = (k & ~win) | (win & (kval)); }

/* 4 windows: r0[0:8] and r1[0:8] -> o[0:4], a[0:4] */
static inline void convlab_pool2x2_4_s_portable(const float *r0, const float *r1, float *o, unsigned char *a)
{
    typedef convlab_pool_v4sf V;
    typedef convlab_pool_v4sf_mask M;
    V a0, a1, b0, b1;
    memcpy(&a0, r0, 16); memcpy(&a1, r0 + 4, 16);
    memcpy(&b0, r1, 16); memcpy(&b1, r1 + 4, 16);
    V best = CONVLAB_SHUFFLE4(a0, a1, 0, 2, 4, 6), tr = CONVLAB_SHUFFLE4(a0, a1, 1, 3, 5, 7);
    V bl = CONVLAB_SHUFFLE4(b0, b1, 0, 2, 4, 6), br = CONVLAB_SHUFFLE4(b0, b1, 1, 3, 5, 7);
    M k = {0, 0, 0, 0};
    CONVLAB_POOL_VEC_STEP(V, M, tr, ((M){1, 1, 1, 1}))
    CONVLAB_POOL_VEC_STEP(V, M, bl, ((M){2, 2, 2, 2}))
    CONVLAB_POOL_VEC_STEP(V, M, br, ((M){3, 3, 3, 3}))
    memcpy(o, &best, 16);
    for (int l = 0; l < 4; ++l)
        a[l] = (unsigned char)k[l];
}

/* 2 windows: r0[0:4] and r1[0:4] -> o[0:2], a[0:2] */
static inline void convlab_pool2x2_2_d_portable(const double *r0, const double *r1, double *o, unsigned char *a)
{
    typedef convlab_pool_v2df V;
    typedef convlab_pool_v2df_mask M;
    V a0, a1, b0, b1;
    memcpy(&a0, r0, 16); memcpy(&a1, r0 + 2, 16);
    memcpy(&b0, r1, 16); memcpy(&b1, r1 + 2, 16);
    V best = CONVLAB_SHUFFLE2(a0, a1, 0, 2), tr = CONVLAB_SHUFFLE2(a0, a1, 1, 3);
    V bl = CONVLAB_SHUFFLE2(b0, b1, 0, 2), br = CONVLAB_SHUFFLE2(b0, b1, 1, 3);
    M k = {0, 0};
    CONVLAB_POOL_VEC_STEP(V, M, tr, ((M){1, 1}))
    CONVLAB_POOL_VEC_STEP(V, M, bl, ((M){2, 2}))
    CONVLAB_POOL_VEC_STEP(V, M, br, ((M){3, 3}))
    memcpy(o, &best, 16);
    a[0] = (unsigned char)k[0];
    a[1] = (unsigned char)k[1];
}

static void convlab_pool2x2_row_s_portable(CONVLAB_POOL_ARGS(float))
{
    CONVLAB_POOL_ROW_STEPS(float, 4, convlab_pool2x2_4_s_portable)
}
static void convlab_pool2x2_row_d_portable(CONVLAB_POOL_ARGS(double))
{
    CONVLAB_POOL_ROW_STEPS(double, 2, convlab_pool2x2_2_d_portable)
}
#else /* no vector shuffles: the portable path takes the plain loop */
#define convlab_pool2x2_row_s_portable convlab_pool2x2_row_s_plain
#define convlab_pool2x2_row_d_portable convlab_pool2x2_row_d_plain
#endif /* portable */

/* ---- 3. AVX2 ---- */
#ifdef CONVLAB_HAVE_AVX2
#define CONVLAB_POOL_AVX_STEP_S(v, kval) { \
        __m256 win = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), \
            _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(best, best, _CMP_ORD_Q))); \
        best = _mm256_blendv_ps(best, v, win); k = _mm256_blendv_ps(k, _mm256_set1_ps(kval), win); }

/* 8 windows: r0[0:16] and r1[0:16] -> o[0:8], a[0:8] */
CONVLAB_TARGET_AVX2 static inline void convlab_pool2x2_8_s_avx2(const float *r0, const float *r1,
                                                                float *o, unsigned char *a)
{
    __m256 a0 = _mm256_loadu_ps(r0), a1 = _mm256_loadu_ps(r0 + 8);
    __m256 b0 = _mm256_loadu_ps(r1), b1 = _mm256_loadu_ps(r1 + 8);
    /* lanes hold windows 0 1 4 5 2 3 6 7 */
    __m256 best = _mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 tr = _mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
    __m256 bl = _mm256_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 br = _mm256_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
    __m256 k = _mm256_setzero_ps();
    CONVLAB_POOL_AVX_STEP_S(tr, 1.0f) CONVLAB_POOL_AVX_STEP_S(bl, 2.0f) CONVLAB_POOL_AVX_STEP_S(br, 3.0f)
    best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), _MM_SHUFFLE(3, 1, 2, 0)));
    k = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(k), _MM_SHUFFLE(3, 1, 2, 0)));
    _mm256_storeu_ps(o, best);
    __m256i ki = _mm256_cvtps_epi32(k);
    __m128i k16 = _mm_packs_epi32(_mm256_castsi256_si128(ki), _mm256_extracti128_si256(ki, 1));
    _mm_storel_epi64((__m128i *)a, _mm_packus_epi16(k16, k16));
}

#define CONVLAB_POOL_AVX_STEP_D(v, kval) { \
        __m256d win = _mm256_or_pd(_mm256_cmp_pd(v, best, _CMP_GT_OQ), \
            _mm256_and_pd(_mm256_cmp_pd(v, v, _CMP_UNORD_Q), _mm256_cmp_pd(best, best, _CMP_ORD_Q))); \
        best = _mm256_blendv_pd(best, v, win); k = _mm256_blendv_pd(k, _mm256_set1_pd(kval), win); }

/* 4 windows: r0[0:8] and r1[0:8] -> o[0:4], a[0:4] */
CONVLAB_TARGET_AVX2 static inline void convlab_pool2x2_4_d_avx2(const double *r0, const double *r1,
                                                                double *o, unsigned char *a)
{
    __m256d a0 = _mm256_loadu_pd(r0), a1 = _mm256_loadu_pd(r0 + 4);
    __m256d b0 = _mm256_loadu_pd(r1), b1 = _mm256_loadu_pd(r1 + 4);
    /* lanes hold windows 0 2 1 3 */
    __m256d best = _mm256_unpacklo_pd(a0, a1), tr = _mm256_unpackhi_pd(a0, a1);
    __m256d bl = _mm256_unpacklo_pd(b0, b1), br = _mm256_unpackhi_pd(b0, b1);
    __m256d k = _mm256_setzero_pd();
    CONVLAB_POOL_AVX_STEP_D(tr, 1.0) CONVLAB_POOL_AVX_STEP_D(bl, 2.0) CONVLAB_POOL_AVX_STEP_D(br, 3.0)
    best = _mm256_permute4x64_pd(best, _MM_SHUFFLE(3, 1, 2, 0));
    k = _mm256_permute4x64_pd(k, _MM_SHUFFLE(3, 1, 2, 0));
    _mm256_storeu_pd(o, best);
    __m128i ki = _mm256_cvtpd_epi32(k);
    __m128i k8 = _mm_packus_epi16(_mm_packs_epi32(ki, ki), _mm_setzero_si128());
    int packed = _mm_cvtsi128_si32(k8);
    memcpy(a, &packed, 4);
}

CONVLAB_TARGET_AVX2 static void convlab_pool2x2_row_s_avx2(CONVLAB_POOL_ARGS(float))
{
    CONVLAB_POOL_ROW_STEPS(float, 8, convlab_pool2x2_8_s_avx2)
}
CONVLAB_TARGET_AVX2 static void convlab_pool2x2_row_d_avx2(CONVLAB_POOL_ARGS(double))
{
    CONVLAB_POOL_ROW_STEPS(double, 4, convlab_pool2x2_4_d_avx2)
}
#endif /* CONVLAB_HAVE_AVX2 */

/* ---- dispatch ---- */
CONVLAB_DISPATCHER void convlab_pool2x2_row_s(CONVLAB_POOL_ARGS(float))
{
    CONVLAB_DISPATCH(convlab_pool2x2_row_s, (r0, r1, o, a, n))
}

CONVLAB_DISPATCHER void convlab_pool2x2_row_d(CONVLAB_POOL_ARGS(double))
{
    CONVLAB_DISPATCH(convlab_pool2x2_row_d, (r0, r1, o, a, n))
}

#endif /* CONVLAB_POOL_KERNELS_H */

/* The micro-kernels of convlab._fast.conv: plain C first, then the SIMD versions.
 *
 * Every product of the blocked convolution ends in one of three small
 * kernels, each updating a tile of MR = 6 rows by NR columns, NR = 16 floats
 * or 8 doubles -- twice that on the AVX-512 path, whose vectors are twice as
 * wide (see conv.pyx for the packing around them):
 *
 *   gemm      C[i*ldc + j] (+)= sum_k A[6k + i] * Brow(k)[j]
 *             A is a packed panel of 6 rows; Brow(k) points at the NR values
 *             of tap k: B + NR k for a packed panel, or base + off[k] for a
 *             row read in place from the padded image (the "implicit GEMM",
 *             the _rows variants);
 *   gemm_dw   C[i*ldc + j] (+)= sum over rows r, pixels q of
 *                 base[off[i] + r*ld + q] * B[(r*ncols + q)*NR + j]
 *             the implicit weight gradient: tap i's pixels read in place,
 *             B holds dout transposed, NR filters per pixel;
 *   transpose G x G values from G tap rows into G pixel rows of a cols.T
 *             panel (G = 8 floats or 4 doubles).
 *
 * Each comes in the versions of simd.h, named for their path (convlab_sgemm_plain,
 * convlab_sgemm_portable, convlab_sgemm_avx2, convlab_sgemm_avx512, ...),
 * which the dispatching functions at the end choose between at run time
 * (CONVLAB_DISPATCH).  Within one version the
 * results do not depend on how a product is split into tiles or threads;
 * between versions they differ by rounding only (the AVX2 kernels fuse each
 * multiply-add into one rounding, the others may not).
 */
#ifndef CONVLAB_CONV_KERNELS_H
#define CONVLAB_CONV_KERNELS_H

#include <stddef.h>
#include <string.h>

#include "simd.h"

/* The tile, defined here once (conv_kernels.pxd gives them to Cython): MR
 * rows (filters) by NR columns, 16 floats or 8 doubles, twice as many on the
 * AVX-512 path. */
#define CONVLAB_MR 6
#define CONVLAB_S_NR 16
#define CONVLAB_D_NR 8
#define CONVLAB_WIDE_S_NR (2 * CONVLAB_S_NR)
#define CONVLAB_WIDE_D_NR (2 * CONVLAB_D_NR)
#define CONVLAB_MAX_NR CONVLAB_WIDE_S_NR

/* ====================================================================
 * 1. Plain C: the definition.
 * ==================================================================== */

#define CONVLAB_GEMM_PLAIN(T, NR, BROW) \
    T acc[CONVLAB_MR][NR] = {{0}}; \
    for (ptrdiff_t k = 0; k < kc; ++k) { \
        const T *Bk = (BROW); \
        for (int i = 0; i < CONVLAB_MR; ++i) \
            for (int j = 0; j < NR; ++j) \
                acc[i][j] += A[k * CONVLAB_MR + i] * Bk[j]; \
    } \
    for (int i = 0; i < CONVLAB_MR; ++i) \
        for (int j = 0; j < NR; ++j) \
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc[i][j] : acc[i][j];

#define CONVLAB_GEMM_DW_PLAIN(T, NR) \
    T acc[CONVLAB_MR][NR] = {{0}}; \
    for (ptrdiff_t r = 0; r < nrows; ++r) \
        for (ptrdiff_t q = 0; q < ncols; ++q, B += NR) \
            for (int i = 0; i < CONVLAB_MR; ++i) \
                for (int j = 0; j < NR; ++j) \
                    acc[i][j] += base[off[i] + r * ld + q] * B[j]; \
    for (int i = 0; i < CONVLAB_MR; ++i) \
        for (int j = 0; j < NR; ++j) \
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc[i][j] : acc[i][j];

#define CONVLAB_TRANSPOSE_PLAIN(G) \
    for (int r = 0; r < G; ++r) \
        for (int l = 0; l < G; ++l) \
            dst[r * ldd + l] = base[off[l] + r];

/* The argument lists, written once. */
#define CONVLAB_GEMM_ARGS(T) ptrdiff_t kc, const T *A, const T *B, T *C, ptrdiff_t ldc, int accumulate
#define CONVLAB_GEMM_ROWS_ARGS(T) ptrdiff_t kc, const T *A, const T *base, const ptrdiff_t *off, \
                                  T *C, ptrdiff_t ldc, int accumulate
#define CONVLAB_GEMM_DW_ARGS(T) ptrdiff_t nrows, ptrdiff_t ncols, const T *base, const ptrdiff_t *off, \
                                ptrdiff_t ld, const T *B, T *C, ptrdiff_t ldc, int accumulate
#define CONVLAB_TRANSPOSE_ARGS(T) const T *base, const ptrdiff_t *off, T *dst, ptrdiff_t ldd

static void convlab_sgemm_plain(CONVLAB_GEMM_ARGS(float)) { CONVLAB_GEMM_PLAIN(float, CONVLAB_S_NR, B + CONVLAB_S_NR * k) }
static void convlab_dgemm_plain(CONVLAB_GEMM_ARGS(double)) { CONVLAB_GEMM_PLAIN(double, CONVLAB_D_NR, B + CONVLAB_D_NR * k) }
static void convlab_sgemm_rows_plain(CONVLAB_GEMM_ROWS_ARGS(float)) { CONVLAB_GEMM_PLAIN(float, CONVLAB_S_NR, base + off[k]) }
static void convlab_dgemm_rows_plain(CONVLAB_GEMM_ROWS_ARGS(double)) { CONVLAB_GEMM_PLAIN(double, CONVLAB_D_NR, base + off[k]) }
static void convlab_sgemm_dw_plain(CONVLAB_GEMM_DW_ARGS(float)) { CONVLAB_GEMM_DW_PLAIN(float, CONVLAB_S_NR) }
static void convlab_dgemm_dw_plain(CONVLAB_GEMM_DW_ARGS(double)) { CONVLAB_GEMM_DW_PLAIN(double, CONVLAB_D_NR) }
static void convlab_transpose_8x8_ps_plain(CONVLAB_TRANSPOSE_ARGS(float)) { CONVLAB_TRANSPOSE_PLAIN(8) }
static void convlab_transpose_4x4_pd_plain(CONVLAB_TRANSPOSE_ARGS(double)) { CONVLAB_TRANSPOSE_PLAIN(4) }

/* ====================================================================
 * 2. Register-tiled vector kernels, written once for any vector type.
 *
 * A set of vector operations OPS is a family of macros CONVLAB_<OPS>_x:
 * T (the scalar), V (the vector type), W (lanes), LOAD/STORE (unaligned),
 * BCAST (one value into every lane), FMA(a, b, c) = c + a*b, ADD, ZERO.
 * A kernel body covers the columns J0 .. J0 + 2W - 1 of the tile with
 * 6 x 2 accumulator vectors; with 2W < NR it is run again for the next
 * columns.  Per tap, two vectors of B are loaded once and reused by the six
 * rows, each of whose A values is broadcast: 12 accumulators, 2 B vectors
 * and a broadcast fit in 16 vector registers (SSE2, AVX2; NEON has 32).
 * ==================================================================== */

#define CONVLAB_OP(OPS, x) CONVLAB_##OPS##_##x

#define CONVLAB_VEC_ROW(OPS, i, AP) \
    a = CONVLAB_OP(OPS, BCAST)(AP); \
    c##i##0 = CONVLAB_OP(OPS, FMA)(a, b0, c##i##0); \
    c##i##1 = CONVLAB_OP(OPS, FMA)(a, b1, c##i##1);

#define CONVLAB_VEC_STORE(OPS, i, J0) { \
        T_ *ci = C + i * ldc + (J0); \
        if (accumulate) { \
            c##i##0 = CONVLAB_OP(OPS, ADD)(c##i##0, CONVLAB_OP(OPS, LOAD)(ci)); \
            c##i##1 = CONVLAB_OP(OPS, ADD)(c##i##1, CONVLAB_OP(OPS, LOAD)(ci + W_)); \
        } \
        CONVLAB_OP(OPS, STORE)(ci, c##i##0); \
        CONVLAB_OP(OPS, STORE)(ci + W_, c##i##1); }

#define CONVLAB_VEC_ZERO_ACC(OPS) \
    typedef CONVLAB_OP(OPS, T) T_; \
    typedef CONVLAB_OP(OPS, V) V_; \
    enum { W_ = CONVLAB_OP(OPS, W) }; \
    V_ c00 = CONVLAB_OP(OPS, ZERO), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00; \
    V_ c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, a, b0, b1;

#define CONVLAB_VEC_STORE_ALL(OPS, J0) \
    CONVLAB_VEC_STORE(OPS, 0, J0) CONVLAB_VEC_STORE(OPS, 1, J0) CONVLAB_VEC_STORE(OPS, 2, J0) \
    CONVLAB_VEC_STORE(OPS, 3, J0) CONVLAB_VEC_STORE(OPS, 4, J0) CONVLAB_VEC_STORE(OPS, 5, J0)

/* gemm: columns J0 .. J0 + 2W - 1 */
#define CONVLAB_GEMM_VEC(OPS, BROW, J0) { \
    CONVLAB_VEC_ZERO_ACC(OPS) \
    for (ptrdiff_t k = 0; k < kc; ++k) { \
        const T_ *Bk = (BROW) + (J0), *Ak = A + CONVLAB_MR * k; \
        b0 = CONVLAB_OP(OPS, LOAD)(Bk); \
        b1 = CONVLAB_OP(OPS, LOAD)(Bk + W_); \
        CONVLAB_VEC_ROW(OPS, 0, Ak + 0) CONVLAB_VEC_ROW(OPS, 1, Ak + 1) CONVLAB_VEC_ROW(OPS, 2, Ak + 2) \
        CONVLAB_VEC_ROW(OPS, 3, Ak + 3) CONVLAB_VEC_ROW(OPS, 4, Ak + 4) CONVLAB_VEC_ROW(OPS, 5, Ak + 5) \
    } \
    CONVLAB_VEC_STORE_ALL(OPS, J0) }

/* gemm_dw: filters J0 .. J0 + 2W - 1 of a tile NR filters wide */
#define CONVLAB_GEMM_DW_VEC(OPS, NR, J0) { \
    CONVLAB_VEC_ZERO_ACC(OPS) \
    const T_ *Bq = B + (J0); \
    for (ptrdiff_t r = 0; r < nrows; ++r) { \
        const T_ *a0 = base + off[0] + r * ld, *a1 = base + off[1] + r * ld; \
        const T_ *a2 = base + off[2] + r * ld, *a3 = base + off[3] + r * ld; \
        const T_ *a4 = base + off[4] + r * ld, *a5 = base + off[5] + r * ld; \
        for (ptrdiff_t q = 0; q < ncols; ++q, Bq += (NR)) { \
            b0 = CONVLAB_OP(OPS, LOAD)(Bq); \
            b1 = CONVLAB_OP(OPS, LOAD)(Bq + W_); \
            CONVLAB_VEC_ROW(OPS, 0, a0 + q) CONVLAB_VEC_ROW(OPS, 1, a1 + q) CONVLAB_VEC_ROW(OPS, 2, a2 + q) \
            CONVLAB_VEC_ROW(OPS, 3, a3 + q) CONVLAB_VEC_ROW(OPS, 4, a4 + q) CONVLAB_VEC_ROW(OPS, 5, a5 + q) \
        } \
    } \
    CONVLAB_VEC_STORE_ALL(OPS, J0) }

/* ---- 2a. portable: GCC/Clang vector extensions, 16-byte vectors ---- */
#ifdef CONVLAB_HAVE_VECTOR_EXT
typedef float convlab_v4sf __attribute__((vector_size(16)));
typedef double convlab_v2df __attribute__((vector_size(16)));

/* memcpy into a vector is how to say "unaligned load" portably; it compiles to one move */
static inline convlab_v4sf convlab_v4sf_load(const float *p) { convlab_v4sf v; memcpy(&v, p, sizeof v); return v; }
static inline void convlab_v4sf_store(float *p, convlab_v4sf v) { memcpy(p, &v, sizeof v); }
static inline convlab_v4sf convlab_v4sf_bcast(const float *p) { float x = *p; convlab_v4sf v = {x, x, x, x}; return v; }
static inline convlab_v2df convlab_v2df_load(const double *p) { convlab_v2df v; memcpy(&v, p, sizeof v); return v; }
static inline void convlab_v2df_store(double *p, convlab_v2df v) { memcpy(p, &v, sizeof v); }
static inline convlab_v2df convlab_v2df_bcast(const double *p) { double x = *p; convlab_v2df v = {x, x}; return v; }

#define CONVLAB_VEC_S_T float
#define CONVLAB_VEC_S_V convlab_v4sf
#define CONVLAB_VEC_S_W 4
#define CONVLAB_VEC_S_LOAD convlab_v4sf_load
#define CONVLAB_VEC_S_STORE convlab_v4sf_store
#define CONVLAB_VEC_S_BCAST convlab_v4sf_bcast
#define CONVLAB_VEC_S_FMA(a, b, c) ((c) + (a) * (b))
#define CONVLAB_VEC_S_ADD(x, y) ((x) + (y))
#define CONVLAB_VEC_S_ZERO ((convlab_v4sf){0, 0, 0, 0})
#define CONVLAB_VEC_D_T double
#define CONVLAB_VEC_D_V convlab_v2df
#define CONVLAB_VEC_D_W 2
#define CONVLAB_VEC_D_LOAD convlab_v2df_load
#define CONVLAB_VEC_D_STORE convlab_v2df_store
#define CONVLAB_VEC_D_BCAST convlab_v2df_bcast
#define CONVLAB_VEC_D_FMA(a, b, c) ((c) + (a) * (b))
#define CONVLAB_VEC_D_ADD(x, y) ((x) + (y))
#define CONVLAB_VEC_D_ZERO ((convlab_v2df){0, 0})

/* 16 floats (8 doubles) are covered 8 (4) columns at a time */
static void convlab_sgemm_portable(CONVLAB_GEMM_ARGS(float))
{
    CONVLAB_GEMM_VEC(VEC_S, B + CONVLAB_S_NR * k, 0)
    CONVLAB_GEMM_VEC(VEC_S, B + CONVLAB_S_NR * k, 8)
}
static void convlab_dgemm_portable(CONVLAB_GEMM_ARGS(double))
{
    CONVLAB_GEMM_VEC(VEC_D, B + CONVLAB_D_NR * k, 0)
    CONVLAB_GEMM_VEC(VEC_D, B + CONVLAB_D_NR * k, 4)
}
static void convlab_sgemm_rows_portable(CONVLAB_GEMM_ROWS_ARGS(float))
{
    CONVLAB_GEMM_VEC(VEC_S, base + off[k], 0)
    CONVLAB_GEMM_VEC(VEC_S, base + off[k], 8)
}
static void convlab_dgemm_rows_portable(CONVLAB_GEMM_ROWS_ARGS(double))
{
    CONVLAB_GEMM_VEC(VEC_D, base + off[k], 0)
    CONVLAB_GEMM_VEC(VEC_D, base + off[k], 4)
}
static void convlab_sgemm_dw_portable(CONVLAB_GEMM_DW_ARGS(float))
{
    CONVLAB_GEMM_DW_VEC(VEC_S, CONVLAB_S_NR, 0)
    CONVLAB_GEMM_DW_VEC(VEC_S, CONVLAB_S_NR, 8)
}
static void convlab_dgemm_dw_portable(CONVLAB_GEMM_DW_ARGS(double))
{
    CONVLAB_GEMM_DW_VEC(VEC_D, CONVLAB_D_NR, 0)
    CONVLAB_GEMM_DW_VEC(VEC_D, CONVLAB_D_NR, 4)
}
#endif /* CONVLAB_HAVE_VECTOR_EXT */

/* ---- 2b. AVX2 + FMA: 256-bit vectors, the whole tile in one pass ---- */
#ifdef CONVLAB_HAVE_AVX2
#define CONVLAB_AVX_S_T float
#define CONVLAB_AVX_S_V __m256
#define CONVLAB_AVX_S_W 8
#define CONVLAB_AVX_S_LOAD _mm256_loadu_ps
#define CONVLAB_AVX_S_STORE _mm256_storeu_ps
#define CONVLAB_AVX_S_BCAST _mm256_broadcast_ss
#define CONVLAB_AVX_S_FMA _mm256_fmadd_ps
#define CONVLAB_AVX_S_ADD _mm256_add_ps
#define CONVLAB_AVX_S_ZERO _mm256_setzero_ps()
#define CONVLAB_AVX_D_T double
#define CONVLAB_AVX_D_V __m256d
#define CONVLAB_AVX_D_W 4
#define CONVLAB_AVX_D_LOAD _mm256_loadu_pd
#define CONVLAB_AVX_D_STORE _mm256_storeu_pd
#define CONVLAB_AVX_D_BCAST _mm256_broadcast_sd
#define CONVLAB_AVX_D_FMA _mm256_fmadd_pd
#define CONVLAB_AVX_D_ADD _mm256_add_pd
#define CONVLAB_AVX_D_ZERO _mm256_setzero_pd()

CONVLAB_TARGET_AVX2 static void convlab_sgemm_avx2(CONVLAB_GEMM_ARGS(float))
{
    CONVLAB_GEMM_VEC(AVX_S, B + CONVLAB_S_NR * k, 0)
}
CONVLAB_TARGET_AVX2 static void convlab_dgemm_avx2(CONVLAB_GEMM_ARGS(double))
{
    CONVLAB_GEMM_VEC(AVX_D, B + CONVLAB_D_NR * k, 0)
}
CONVLAB_TARGET_AVX2 static void convlab_sgemm_rows_avx2(CONVLAB_GEMM_ROWS_ARGS(float))
{
    CONVLAB_GEMM_VEC(AVX_S, base + off[k], 0)
}
CONVLAB_TARGET_AVX2 static void convlab_dgemm_rows_avx2(CONVLAB_GEMM_ROWS_ARGS(double))
{
    CONVLAB_GEMM_VEC(AVX_D, base + off[k], 0)
}
CONVLAB_TARGET_AVX2 static void convlab_sgemm_dw_avx2(CONVLAB_GEMM_DW_ARGS(float))
{
    CONVLAB_GEMM_DW_VEC(AVX_S, CONVLAB_S_NR, 0)
}
CONVLAB_TARGET_AVX2 static void convlab_dgemm_dw_avx2(CONVLAB_GEMM_DW_ARGS(double))
{
    CONVLAB_GEMM_DW_VEC(AVX_D, CONVLAB_D_NR, 0)
}

/* 8 x 8 floats: unpack pairs of rows, shuffle pairs of pairs, swap 128-bit halves */
CONVLAB_TARGET_AVX2 static void convlab_transpose_8x8_ps_avx2(CONVLAB_TRANSPOSE_ARGS(float))
{
    __m256 r0 = _mm256_loadu_ps(base + off[0]), r1 = _mm256_loadu_ps(base + off[1]);
    __m256 r2 = _mm256_loadu_ps(base + off[2]), r3 = _mm256_loadu_ps(base + off[3]);
    __m256 r4 = _mm256_loadu_ps(base + off[4]), r5 = _mm256_loadu_ps(base + off[5]);
    __m256 r6 = _mm256_loadu_ps(base + off[6]), r7 = _mm256_loadu_ps(base + off[7]);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}

/* 4 x 4 doubles: unpack pairs of rows, swap 128-bit halves */
CONVLAB_TARGET_AVX2 static void convlab_transpose_4x4_pd_avx2(CONVLAB_TRANSPOSE_ARGS(double))
{
    __m256d r0 = _mm256_loadu_pd(base + off[0]), r1 = _mm256_loadu_pd(base + off[1]);
    __m256d r2 = _mm256_loadu_pd(base + off[2]), r3 = _mm256_loadu_pd(base + off[3]);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst + 0 * ldd, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + 1 * ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
}
#endif /* CONVLAB_HAVE_AVX2 */

/* ---- 2c. AVX-512: 64-byte vectors on tiles twice as wide ----
 *
 * The same register tiling with W = 16 floats (8 doubles) per vector covers
 * 2W = 32 columns (16 doubles): a 6 x 32 tile.  Its 12 accumulators, 2 B
 * vectors and a broadcast use 15 of the 32 zmm registers, and each tap costs
 * 12 fused multiply-adds for 8 loads, so the two FMA units of a server core
 * stay busy.  (A 6 x 16 tile would have one vector per row: 6 accumulators,
 * too few to hide the 4-cycle FMA latency, and a broadcast load per FMA.)
 *
 * Written with vector extensions rather than intrinsics, so that the test
 * build of simd.h can compile exactly these functions for AVX2.  c + a * b
 * is contracted into one FMA (GCC's and Clang's default for GNU C), so each
 * output sums the same fused products in the same order as on the AVX2 path:
 * the two paths agree bit for bit, which tests/test_simd.py checks. */
#ifdef CONVLAB_HAVE_AVX512
typedef float convlab_v16sf __attribute__((vector_size(64)));
typedef double convlab_v8df __attribute__((vector_size(64)));
/* the same, aligned only like their elements: for unaligned loads and stores */
typedef float convlab_v16sf_u __attribute__((vector_size(64), aligned(4)));
typedef double convlab_v8df_u __attribute__((vector_size(64), aligned(8)));

#define CONVLAB_Z_S_T float
#define CONVLAB_Z_S_V convlab_v16sf
#define CONVLAB_Z_S_W 16
#define CONVLAB_Z_S_LOAD(p) (*(const convlab_v16sf_u *)(p))
#define CONVLAB_Z_S_STORE(p, v) (*(convlab_v16sf_u *)(p) = (v))
#define CONVLAB_Z_S_BCAST(p) ({ float x_ = *(p); \
    (convlab_v16sf){x_, x_, x_, x_, x_, x_, x_, x_, x_, x_, x_, x_, x_, x_, x_, x_}; })
#define CONVLAB_Z_S_FMA(a, b, c) ((c) + (a) * (b))
#define CONVLAB_Z_S_ADD(x, y) ((x) + (y))
#define CONVLAB_Z_S_ZERO ((convlab_v16sf){0})
#define CONVLAB_Z_D_T double
#define CONVLAB_Z_D_V convlab_v8df
#define CONVLAB_Z_D_W 8
#define CONVLAB_Z_D_LOAD(p) (*(const convlab_v8df_u *)(p))
#define CONVLAB_Z_D_STORE(p, v) (*(convlab_v8df_u *)(p) = (v))
#define CONVLAB_Z_D_BCAST(p) ({ double x_ = *(p); (convlab_v8df){x_, x_, x_, x_, x_, x_, x_, x_}; })
#define CONVLAB_Z_D_FMA(a, b, c) ((c) + (a) * (b))
#define CONVLAB_Z_D_ADD(x, y) ((x) + (y))
#define CONVLAB_Z_D_ZERO ((convlab_v8df){0})

CONVLAB_TARGET_AVX512 static void convlab_sgemm_avx512(CONVLAB_GEMM_ARGS(float))
{
    CONVLAB_GEMM_VEC(Z_S, B + CONVLAB_WIDE_S_NR * k, 0)
}
CONVLAB_TARGET_AVX512 static void convlab_dgemm_avx512(CONVLAB_GEMM_ARGS(double))
{
    CONVLAB_GEMM_VEC(Z_D, B + CONVLAB_WIDE_D_NR * k, 0)
}
CONVLAB_TARGET_AVX512 static void convlab_sgemm_rows_avx512(CONVLAB_GEMM_ROWS_ARGS(float))
{
    CONVLAB_GEMM_VEC(Z_S, base + off[k], 0)
}
CONVLAB_TARGET_AVX512 static void convlab_dgemm_rows_avx512(CONVLAB_GEMM_ROWS_ARGS(double))
{
    CONVLAB_GEMM_VEC(Z_D, base + off[k], 0)
}
CONVLAB_TARGET_AVX512 static void convlab_sgemm_dw_avx512(CONVLAB_GEMM_DW_ARGS(float))
{
    CONVLAB_GEMM_DW_VEC(Z_S, CONVLAB_WIDE_S_NR, 0)
}
CONVLAB_TARGET_AVX512 static void convlab_dgemm_dw_avx512(CONVLAB_GEMM_DW_ARGS(double))
{
    CONVLAB_GEMM_DW_VEC(Z_D, CONVLAB_WIDE_D_NR, 0)
}
#endif /* CONVLAB_HAVE_AVX512 */

/* ====================================================================
 * 3. Dispatch: the functions conv.pyx and winograd.pyx call.
 * ==================================================================== */

/* the transposes are copies: the portable path takes the plain loops */
#define convlab_transpose_8x8_ps_portable convlab_transpose_8x8_ps_plain
#define convlab_transpose_4x4_pd_portable convlab_transpose_4x4_pd_plain

CONVLAB_DISPATCHER void convlab_transpose_8x8_ps(CONVLAB_TRANSPOSE_ARGS(float))
{
    CONVLAB_DISPATCH(convlab_transpose_8x8_ps, (base, off, dst, ldd))
}
CONVLAB_DISPATCHER void convlab_transpose_4x4_pd(CONVLAB_TRANSPOSE_ARGS(double))
{
    CONVLAB_DISPATCH(convlab_transpose_4x4_pd, (base, off, dst, ldd))
}

/* The tile the direct convolution uses on the current path: NR columns,
 * 6 x NR products per call (6 x 32 floats or 6 x 16 doubles on the AVX-512
 * path, 6 x 16 and 6 x 8 on every other). */
#ifdef CONVLAB_HAVE_AVX512
#define CONVLAB_WIDE (CONVLAB_SIMD_PATH == CONVLAB_PATH_AVX512)
#else
#define CONVLAB_WIDE 0
#endif
CONVLAB_DISPATCHER ptrdiff_t convlab_s_nr(void) { return CONVLAB_WIDE ? CONVLAB_WIDE_S_NR : CONVLAB_S_NR; }
CONVLAB_DISPATCHER ptrdiff_t convlab_d_nr(void) { return CONVLAB_WIDE ? CONVLAB_WIDE_D_NR : CONVLAB_D_NR; }

CONVLAB_DISPATCHER void convlab_sgemm_tile(CONVLAB_GEMM_ARGS(float))
{
    CONVLAB_DISPATCH_AVX512(convlab_sgemm, (kc, A, B, C, ldc, accumulate))
}
CONVLAB_DISPATCHER void convlab_dgemm_tile(CONVLAB_GEMM_ARGS(double))
{
    CONVLAB_DISPATCH_AVX512(convlab_dgemm, (kc, A, B, C, ldc, accumulate))
}
CONVLAB_DISPATCHER void convlab_sgemm_tile_rows(CONVLAB_GEMM_ROWS_ARGS(float))
{
    CONVLAB_DISPATCH_AVX512(convlab_sgemm_rows, (kc, A, base, off, C, ldc, accumulate))
}
CONVLAB_DISPATCHER void convlab_dgemm_tile_rows(CONVLAB_GEMM_ROWS_ARGS(double))
{
    CONVLAB_DISPATCH_AVX512(convlab_dgemm_rows, (kc, A, base, off, C, ldc, accumulate))
}
CONVLAB_DISPATCHER void convlab_sgemm_dw_tile(CONVLAB_GEMM_DW_ARGS(float))
{
    CONVLAB_DISPATCH_AVX512(convlab_sgemm_dw, (nrows, ncols, base, off, ld, B, C, ldc, accumulate))
}
CONVLAB_DISPATCHER void convlab_dgemm_dw_tile(CONVLAB_GEMM_DW_ARGS(double))
{
    CONVLAB_DISPATCH_AVX512(convlab_dgemm_dw, (nrows, ncols, base, off, ld, B, C, ldc, accumulate))
}

/* The implicit weight gradient with the narrow tile on every path: for few
 * filters (16 floats or fewer, say), where a wide tile would mostly multiply
 * padding. */
CONVLAB_DISPATCHER void convlab_sgemm_dw_6x16(CONVLAB_GEMM_DW_ARGS(float))
{
    CONVLAB_DISPATCH(convlab_sgemm_dw, (nrows, ncols, base, off, ld, B, C, ldc, accumulate))
}
CONVLAB_DISPATCHER void convlab_dgemm_dw_6x8(CONVLAB_GEMM_DW_ARGS(double))
{
    CONVLAB_DISPATCH(convlab_dgemm_dw, (nrows, ncols, base, off, ld, B, C, ldc, accumulate))
}

/* The Winograd kernels' products keep the narrow tile, 6 x 16 floats or
 * 6 x 8 doubles, on every path. */
CONVLAB_DISPATCHER void convlab_sgemm_6x16(CONVLAB_GEMM_ARGS(float))
{
    CONVLAB_DISPATCH(convlab_sgemm, (kc, A, B, C, ldc, accumulate))
}
CONVLAB_DISPATCHER void convlab_dgemm_6x8(CONVLAB_GEMM_ARGS(double))
{
    CONVLAB_DISPATCH(convlab_dgemm, (kc, A, B, C, ldc, accumulate))
}

#endif /* CONVLAB_CONV_KERNELS_H */

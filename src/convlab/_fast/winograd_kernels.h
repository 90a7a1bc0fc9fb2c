/* The transforms of Winograd's minimal filtering F(2x2, 3x3), for convlab._fast.winograd.
 *
 * Winograd's convolution of a 3x3 filter g with a 4 x 4 tile d of input
 * pixels gives the 2 x 2 tile of outputs
 *
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A          (.* elementwise)
 *
 * with 16 products instead of the 36 of the direct sum.  Over C input
 * channels and K filters the elementwise products become, for each of the 16
 * positions xi of a transformed tile, one matrix product
 * M[xi] (K x tiles) = U[xi] (K x C) @ V[xi] (C x tiles): the winograd.pyx
 * driver runs those on the GEMM micro-kernels of conv_kernels.h.  This file
 * holds the two other steps, written for NR tiles at once ("lanes"):
 *
 *   input   V[xi] = (B^T d B)[xi]   for the NR patches d[r][s][lane];
 *   output  Y = A^T M A (+ bias)    for the NR tiles m[xi][lane].
 *
 * The lane is the innermost index everywhere, so every line below is an
 * elementwise operation on NR-long rows that the compiler turns into vector
 * instructions (4 floats per SSE2 instruction at the baseline, 8 with AVX2).
 * Each transform is a macro body, instantiated as a plain function and, on
 * x86-64, as a copy compiled for AVX2: the same additions in the same order
 * (there are no products to fuse), so both give the same bits.
 *
 * The filter transform G g G^T is done once per call, in NumPy (float64).
 */
#ifndef CONVLAB_WINOGRAD_KERNELS_H
#define CONVLAB_WINOGRAD_KERNELS_H

#include <stddef.h>

#include "simd.h"

/* ====================================================================
 * F(2x2, 3x3): interpolation points 0, 1, -1 (and infinity)
 *
 *   B^T = [1  0 -1  0]    A^T = [1 1  1  0]
 *         [0  1  1  0]          [0 1 -1 -1]
 *         [0 -1  1  0]
 *         [0  1  0 -1]
 * ==================================================================== */

/* d: 16 rows of NR lanes, row r * 4 + s holding patch pixel (r, s);
 * v: row xi = i * 4 + j at v + xi * vstride. */
#define CONVLAB_WINO2_INPUT(T, NR) \
    T t[4][4][NR]; \
    for (int s = 0; s < 4; ++s) \
        for (int l = 0; l < NR; ++l) { \
            T d0 = d[(0 * 4 + s) * NR + l], d1 = d[(1 * 4 + s) * NR + l]; \
            T d2 = d[(2 * 4 + s) * NR + l], d3 = d[(3 * 4 + s) * NR + l]; \
            t[0][s][l] = d0 - d2; \
            t[1][s][l] = d1 + d2; \
            t[2][s][l] = d2 - d1; \
            t[3][s][l] = d1 - d3; \
        } \
    for (int i = 0; i < 4; ++i) \
        for (int l = 0; l < NR; ++l) { \
            T t0 = t[i][0][l], t1 = t[i][1][l], t2 = t[i][2][l], t3 = t[i][3][l]; \
            v[(i * 4 + 0) * vstride + l] = t0 - t2; \
            v[(i * 4 + 1) * vstride + l] = t1 + t2; \
            v[(i * 4 + 2) * vstride + l] = t2 - t1; \
            v[(i * 4 + 3) * vstride + l] = t1 - t3; \
        }

/* m: row xi at m + xi * mstride; y: 4 rows of NR lanes, row a * 2 + b
 * holding output pixel (a, b) of each tile, plus `bias`.  `finite`
 * accumulates y * 0 per lane: it stays 0 unless some output is an
 * infinity or a NaN. */
#define CONVLAB_WINO2_OUTPUT(T, NR) \
    T s[2][4][NR]; \
    for (int j = 0; j < 4; ++j) \
        for (int l = 0; l < NR; ++l) { \
            T m0 = m[(0 * 4 + j) * mstride + l], m1 = m[(1 * 4 + j) * mstride + l]; \
            T m2 = m[(2 * 4 + j) * mstride + l], m3 = m[(3 * 4 + j) * mstride + l]; \
            s[0][j][l] = m0 + m1 + m2; \
            s[1][j][l] = m1 - m2 - m3; \
        } \
    for (int a = 0; a < 2; ++a) \
        for (int l = 0; l < NR; ++l) { \
            T s0 = s[a][0][l], s1 = s[a][1][l], s2 = s[a][2][l], s3 = s[a][3][l]; \
            T y0 = s0 + s1 + s2 + bias, y1 = s1 - s2 - s3 + bias; \
            y[(a * 2 + 0) * NR + l] = y0; \
            y[(a * 2 + 1) * NR + l] = y1; \
            finite[l] += y0 * 0 + y1 * 0; \
        }

/* ====================================================================
 * Moving tiles in and out: the common case of NR whole tiles side by side
 * in one row of tiles, so that lane l's patch starts 2 l pixels to the
 * right of lane 0's (reads and writes with a stride of 2, which the
 * compiler vectorizes with shuffles).
 * ==================================================================== */

/* d[(r * 4 + s) * NR + l] = src[r * ld + 2 l + s] */
#define CONVLAB_WINO2_GATHER_ROW(T, NR) \
    for (int r = 0; r < 4; ++r) \
        for (int s = 0; s < 4; ++s) \
            for (int l = 0; l < NR; ++l) \
                d[(r * 4 + s) * NR + l] = src[r * ld + 2 * l + s];

/* dst[a * ld + 2 l + b] = y[(a * 2 + b) * NR + l] */
#define CONVLAB_WINO2_SCATTER_ROW(T, NR) \
    for (int a = 0; a < 2; ++a) \
        for (int l = 0; l < NR; ++l) { \
            dst[a * ld + 2 * l] = y[(a * 2) * NR + l]; \
            dst[a * ld + 2 * l + 1] = y[(a * 2 + 1) * NR + l]; \
        }

/* ====================================================================
 * The functions: plain, AVX2 copies, and the dispatchers.
 * ==================================================================== */

#define CONVLAB_WINO_IN_ARGS(T) const T *d, T *v, ptrdiff_t vstride
#define CONVLAB_WINO_OUT_ARGS(T) const T *m, ptrdiff_t mstride, T bias, T *y, T *finite
#define CONVLAB_WINO_GATHER_ARGS(T) const T *src, ptrdiff_t ld, T *d
#define CONVLAB_WINO_SCATTER_ARGS(T) const T *y, T *dst, ptrdiff_t ld

#define CONVLAB_WINO_DEFINE(SUFFIX, ATTR) \
    ATTR static void convlab_wino2_input_s_##SUFFIX(CONVLAB_WINO_IN_ARGS(float)) { CONVLAB_WINO2_INPUT(float, 16) } \
    ATTR static void convlab_wino2_input_d_##SUFFIX(CONVLAB_WINO_IN_ARGS(double)) { CONVLAB_WINO2_INPUT(double, 8) } \
    ATTR static void convlab_wino2_output_s_##SUFFIX(CONVLAB_WINO_OUT_ARGS(float)) { CONVLAB_WINO2_OUTPUT(float, 16) } \
    ATTR static void convlab_wino2_output_d_##SUFFIX(CONVLAB_WINO_OUT_ARGS(double)) { CONVLAB_WINO2_OUTPUT(double, 8) } \
    ATTR static void convlab_wino2_gather_row_s_##SUFFIX(CONVLAB_WINO_GATHER_ARGS(float)) { CONVLAB_WINO2_GATHER_ROW(float, 16) } \
    ATTR static void convlab_wino2_gather_row_d_##SUFFIX(CONVLAB_WINO_GATHER_ARGS(double)) { CONVLAB_WINO2_GATHER_ROW(double, 8) } \
    ATTR static void convlab_wino2_scatter_row_s_##SUFFIX(CONVLAB_WINO_SCATTER_ARGS(float)) { CONVLAB_WINO2_SCATTER_ROW(float, 16) } \
    ATTR static void convlab_wino2_scatter_row_d_##SUFFIX(CONVLAB_WINO_SCATTER_ARGS(double)) { CONVLAB_WINO2_SCATTER_ROW(double, 8) }

CONVLAB_WINO_DEFINE(plain, )
#ifdef CONVLAB_HAVE_AVX2
CONVLAB_WINO_DEFINE(avx2, CONVLAB_TARGET_AVX2)
#define CONVLAB_WINO_CALL(NAME, ARGS) \
    if (convlab_simd_path == CONVLAB_PATH_AVX2) NAME##_avx2 ARGS; else NAME##_plain ARGS;
#else
#define CONVLAB_WINO_CALL(NAME, ARGS) NAME##_plain ARGS;
#endif

static void convlab_wino_input_s(CONVLAB_WINO_IN_ARGS(float))
{
    CONVLAB_WINO_CALL(convlab_wino2_input_s, (d, v, vstride))
}
static void convlab_wino_input_d(CONVLAB_WINO_IN_ARGS(double))
{
    CONVLAB_WINO_CALL(convlab_wino2_input_d, (d, v, vstride))
}
static void convlab_wino_output_s(CONVLAB_WINO_OUT_ARGS(float))
{
    CONVLAB_WINO_CALL(convlab_wino2_output_s, (m, mstride, bias, y, finite))
}
static void convlab_wino_output_d(CONVLAB_WINO_OUT_ARGS(double))
{
    CONVLAB_WINO_CALL(convlab_wino2_output_d, (m, mstride, bias, y, finite))
}
static void convlab_wino_gather_row_s(CONVLAB_WINO_GATHER_ARGS(float))
{
    CONVLAB_WINO_CALL(convlab_wino2_gather_row_s, (src, ld, d))
}
static void convlab_wino_gather_row_d(CONVLAB_WINO_GATHER_ARGS(double))
{
    CONVLAB_WINO_CALL(convlab_wino2_gather_row_d, (src, ld, d))
}
static void convlab_wino_scatter_row_s(CONVLAB_WINO_SCATTER_ARGS(float))
{
    CONVLAB_WINO_CALL(convlab_wino2_scatter_row_s, (y, dst, ld))
}
static void convlab_wino_scatter_row_d(CONVLAB_WINO_SCATTER_ARGS(double))
{
    CONVLAB_WINO_CALL(convlab_wino2_scatter_row_d, (y, dst, ld))
}

#endif /* CONVLAB_WINOGRAD_KERNELS_H */

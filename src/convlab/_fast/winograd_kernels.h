/* The transforms of Winograd's minimal filtering F(2x2, 3x3) and F(4x4, 3x3),
 * for convlab._fast.winograd.
 *
 * Winograd's convolution of a 3x3 filter g with an (m + 2) x (m + 2) tile d
 * of input pixels gives the m x m tile of outputs
 *
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A          (.* elementwise)
 *
 * with (m + 2)^2 products instead of the 9 m^2 of the direct sums: 16
 * instead of 36 for m = 2, 36 instead of 144 for m = 4.  Over C input
 * channels and K filters the elementwise products become, for each position
 * xi of a transformed tile, one matrix product
 * M[xi] (K x tiles) = U[xi] (K x C) @ V[xi] (C x tiles): the winograd.pyx
 * driver runs those on the GEMM micro-kernels of conv_kernels.h.  This file
 * holds the other steps, written for NR tiles at once ("lanes"):
 *
 *   input   V[xi] = (B^T d B)[xi]   for the NR patches d[r][s][lane];
 *   output  Y = A^T M A (+ bias)    for the NR tiles m[xi][lane];
 *   and the copies of NR patches (tiles) side by side in a row of the image.
 *
 * The lane is the innermost index everywhere, so every line below is an
 * elementwise operation on NR-long rows that the compiler turns into vector
 * instructions (4 floats per SSE2 instruction at the baseline, 8 with AVX2).
 * Each function is a macro body, instantiated as a plain function and, on
 * x86-64, as a copy compiled for AVX2 and FMA.  F(2x2)'s transforms only add
 * and subtract, so both copies give the same bits; F(4x4)'s multiply by
 * constants, which the AVX2 copy may fuse with the additions (rounding
 * differences only).
 *
 * The filter transform G g G^T is done once per call, in NumPy (float64).
 */
#ifndef CONVLAB_WINOGRAD_KERNELS_H
#define CONVLAB_WINOGRAD_KERNELS_H

#include <stddef.h>

#include "conv_kernels.h" /* the tile: NR = CONVLAB_S_NR floats or CONVLAB_D_NR doubles */
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
 * F(4x4, 3x3): 6 x 6 input tiles, 4 x 4 output tiles, 36 products instead
 * of 144.  Interpolation points 0, -1, 1, 1/2, -2 (and infinity), which
 * round less in float32 than the more common 0, -1, 1, 2, -2; the matrices
 * (G is in winograd.pyx) are exact in binary floating point:
 *
 *   B^T = [1 -3/2   -2  3/2    1  0]   A^T = [1  1  1    1   1  0]
 *         [0    1 -5/2  1/2    1  0]         [0 -1  1  1/2  -2  0]
 *         [0   -1  1/2  5/2    1  0]         [0  1  1  1/4   4  0]
 *         [0   -2   -1    2    1  0]         [0 -1  1  1/8  -8  1]
 *         [0  1/2   -1 -1/2    1  0]
 *         [0    1 -3/2   -2  3/2  1]
 *
 * Applied as small dense matrix products (their zeros cost a few useless
 * multiplications, which the compiler may not drop: 0 * inf is NaN).
 * ==================================================================== */

static const double convlab_wino4_bt[6][6] = {
    {1, -1.5, -2, 1.5, 1, 0}, {0, 1, -2.5, 0.5, 1, 0}, {0, -1, 0.5, 2.5, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 0.5, -1, -0.5, 1, 0}, {0, 1, -1.5, -2, 1.5, 1}};
static const double convlab_wino4_at[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, -1, 1, 0.5, -2, 0}, {0, 1, 1, 0.25, 4, 0}, {0, -1, 1, 0.125, -8, 1}};

/* sum over q < 6 of (T) MAT[i][q] * X(q) */
#define CONVLAB_DOT6(T, MAT, i, X) \
    ((T)MAT[i][0] * X(0) + (T)MAT[i][1] * X(1) + (T)MAT[i][2] * X(2) + \
     (T)MAT[i][3] * X(3) + (T)MAT[i][4] * X(4) + (T)MAT[i][5] * X(5))

#define CONVLAB_WINO4_INPUT(T, NR) \
    enum { LANES = NR }; \
    T t[6][6][NR]; \
    for (int i = 0; i < 6; ++i) \
        for (int s = 0; s < 6; ++s) \
            for (int l = 0; l < NR; ++l) { \
                t[i][s][l] = CONVLAB_DOT6(T, convlab_wino4_bt, i, CONVLAB_WINO4_D); \
            } \
    for (int i = 0; i < 6; ++i) \
        for (int j = 0; j < 6; ++j) \
            for (int l = 0; l < NR; ++l) \
                v[(i * 6 + j) * vstride + l] = CONVLAB_DOT6(T, convlab_wino4_bt, j, CONVLAB_WINO4_T);
#define CONVLAB_WINO4_D(q) d[((q) * 6 + s) * LANES + l]
#define CONVLAB_WINO4_T(q) t[i][q][l]

#define CONVLAB_WINO4_OUTPUT(T, NR) \
    enum { LANES = NR }; \
    T u[4][6][NR]; \
    for (int a = 0; a < 4; ++a) \
        for (int j = 0; j < 6; ++j) \
            for (int l = 0; l < NR; ++l) \
                u[a][j][l] = CONVLAB_DOT6(T, convlab_wino4_at, a, CONVLAB_WINO4_M); \
    for (int a = 0; a < 4; ++a) \
        for (int b = 0; b < 4; ++b) \
            for (int l = 0; l < NR; ++l) { \
                T yv = CONVLAB_DOT6(T, convlab_wino4_at, b, CONVLAB_WINO4_U) + bias; \
                y[(a * 4 + b) * NR + l] = yv; \
                finite[l] += yv * 0; \
            }
#define CONVLAB_WINO4_M(q) m[((q) * 6 + j) * mstride + l]
#define CONVLAB_WINO4_U(q) u[a][q][l]

/* ====================================================================
 * Moving tiles in and out: the common case of NR whole tiles side by side
 * in one row of tiles, so that lane l's patch starts 2 l pixels to the
 * right of lane 0's (reads and writes with a stride of 2, which the
 * compiler vectorizes with shuffles).
 * ==================================================================== */

/* d[(r * A + s) * NR + l] = src[r * ld + S l + s] for A x A patches S apart */
#define CONVLAB_WINO_GATHER_ROW(T, NR, A, S) \
    for (int r = 0; r < A; ++r) \
        for (int s = 0; s < A; ++s) \
            for (int l = 0; l < NR; ++l) \
                d[(r * A + s) * NR + l] = src[r * ld + S * l + s];

/* dst[a * ld + S l + b] = y[(a * S + b) * NR + l] for S x S output tiles */
#define CONVLAB_WINO_SCATTER_ROW(T, NR, S) \
    for (int a = 0; a < S; ++a) \
        for (int l = 0; l < NR; ++l) \
            for (int b = 0; b < S; ++b) \
                dst[a * ld + S * l + b] = y[(a * S + b) * NR + l];

/* ====================================================================
 * The functions: plain, AVX2 copies, and the dispatchers (simd.h).
 * ==================================================================== */

#define CONVLAB_WINO_IN_ARGS(T) const T *d, T *v, ptrdiff_t vstride
#define CONVLAB_WINO_OUT_ARGS(T) const T *m, ptrdiff_t mstride, T bias, T *y, T *finite
#define CONVLAB_WINO_GATHER_ARGS(T) const T *src, ptrdiff_t ld, T *d
#define CONVLAB_WINO_SCATTER_ARGS(T) const T *y, T *dst, ptrdiff_t ld

#define CONVLAB_WINO_DEFINE(SUFFIX, ATTR) \
    ATTR static void convlab_wino2_input_s_##SUFFIX(CONVLAB_WINO_IN_ARGS(float)) { CONVLAB_WINO2_INPUT(float, CONVLAB_S_NR) } \
    ATTR static void convlab_wino2_input_d_##SUFFIX(CONVLAB_WINO_IN_ARGS(double)) { CONVLAB_WINO2_INPUT(double, CONVLAB_D_NR) } \
    ATTR static void convlab_wino2_output_s_##SUFFIX(CONVLAB_WINO_OUT_ARGS(float)) { CONVLAB_WINO2_OUTPUT(float, CONVLAB_S_NR) } \
    ATTR static void convlab_wino2_output_d_##SUFFIX(CONVLAB_WINO_OUT_ARGS(double)) { CONVLAB_WINO2_OUTPUT(double, CONVLAB_D_NR) } \
    ATTR static void convlab_wino2_gather_row_s_##SUFFIX(CONVLAB_WINO_GATHER_ARGS(float)) { CONVLAB_WINO_GATHER_ROW(float, CONVLAB_S_NR, 4, 2) } \
    ATTR static void convlab_wino2_gather_row_d_##SUFFIX(CONVLAB_WINO_GATHER_ARGS(double)) { CONVLAB_WINO_GATHER_ROW(double, CONVLAB_D_NR, 4, 2) } \
    ATTR static void convlab_wino2_scatter_row_s_##SUFFIX(CONVLAB_WINO_SCATTER_ARGS(float)) { CONVLAB_WINO_SCATTER_ROW(float, CONVLAB_S_NR, 2) } \
    ATTR static void convlab_wino2_scatter_row_d_##SUFFIX(CONVLAB_WINO_SCATTER_ARGS(double)) { CONVLAB_WINO_SCATTER_ROW(double, CONVLAB_D_NR, 2) } \
    ATTR static void convlab_wino4_input_s_##SUFFIX(CONVLAB_WINO_IN_ARGS(float)) { CONVLAB_WINO4_INPUT(float, CONVLAB_S_NR) } \
    ATTR static void convlab_wino4_input_d_##SUFFIX(CONVLAB_WINO_IN_ARGS(double)) { CONVLAB_WINO4_INPUT(double, CONVLAB_D_NR) } \
    ATTR static void convlab_wino4_output_s_##SUFFIX(CONVLAB_WINO_OUT_ARGS(float)) { CONVLAB_WINO4_OUTPUT(float, CONVLAB_S_NR) } \
    ATTR static void convlab_wino4_output_d_##SUFFIX(CONVLAB_WINO_OUT_ARGS(double)) { CONVLAB_WINO4_OUTPUT(double, CONVLAB_D_NR) } \
    ATTR static void convlab_wino4_gather_row_s_##SUFFIX(CONVLAB_WINO_GATHER_ARGS(float)) { CONVLAB_WINO_GATHER_ROW(float, CONVLAB_S_NR, 6, 4) } \
    ATTR static void convlab_wino4_gather_row_d_##SUFFIX(CONVLAB_WINO_GATHER_ARGS(double)) { CONVLAB_WINO_GATHER_ROW(double, CONVLAB_D_NR, 6, 4) } \
    ATTR static void convlab_wino4_scatter_row_s_##SUFFIX(CONVLAB_WINO_SCATTER_ARGS(float)) { CONVLAB_WINO_SCATTER_ROW(float, CONVLAB_S_NR, 4) } \
    ATTR static void convlab_wino4_scatter_row_d_##SUFFIX(CONVLAB_WINO_SCATTER_ARGS(double)) { CONVLAB_WINO_SCATTER_ROW(double, CONVLAB_D_NR, 4) }

CONVLAB_WINO_DEFINE(plain, )
#ifdef CONVLAB_HAVE_AVX2
CONVLAB_WINO_DEFINE(avx2, CONVLAB_TARGET_AVX2)
#endif

/* the portable path: the plain functions, whose lane loops the compiler vectorises for the baseline */
#define convlab_wino2_input_s_portable convlab_wino2_input_s_plain
#define convlab_wino2_input_d_portable convlab_wino2_input_d_plain
#define convlab_wino2_output_s_portable convlab_wino2_output_s_plain
#define convlab_wino2_output_d_portable convlab_wino2_output_d_plain
#define convlab_wino2_gather_row_s_portable convlab_wino2_gather_row_s_plain
#define convlab_wino2_gather_row_d_portable convlab_wino2_gather_row_d_plain
#define convlab_wino2_scatter_row_s_portable convlab_wino2_scatter_row_s_plain
#define convlab_wino2_scatter_row_d_portable convlab_wino2_scatter_row_d_plain
#define convlab_wino4_input_s_portable convlab_wino4_input_s_plain
#define convlab_wino4_input_d_portable convlab_wino4_input_d_plain
#define convlab_wino4_output_s_portable convlab_wino4_output_s_plain
#define convlab_wino4_output_d_portable convlab_wino4_output_d_plain
#define convlab_wino4_gather_row_s_portable convlab_wino4_gather_row_s_plain
#define convlab_wino4_gather_row_d_portable convlab_wino4_gather_row_d_plain
#define convlab_wino4_scatter_row_s_portable convlab_wino4_scatter_row_s_plain
#define convlab_wino4_scatter_row_d_portable convlab_wino4_scatter_row_d_plain

/* tile: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3) */
#define CONVLAB_WINO_PICK(tile, NAME2, NAME4, ARGS) \
    if (tile == 2) { CONVLAB_DISPATCH(NAME2, ARGS) } else { CONVLAB_DISPATCH(NAME4, ARGS) }

CONVLAB_DISPATCHER void convlab_wino_input_s(int tile, CONVLAB_WINO_IN_ARGS(float))
{
    CONVLAB_WINO_PICK(tile, convlab_wino2_input_s, convlab_wino4_input_s, (d, v, vstride))
}
CONVLAB_DISPATCHER void convlab_wino_input_d(int tile, CONVLAB_WINO_IN_ARGS(double))
{
    CONVLAB_WINO_PICK(tile, convlab_wino2_input_d, convlab_wino4_input_d, (d, v, vstride))
}
CONVLAB_DISPATCHER void convlab_wino_output_s(int tile, CONVLAB_WINO_OUT_ARGS(float))
{
    CONVLAB_WINO_PICK(tile, convlab_wino2_output_s, convlab_wino4_output_s, (m, mstride, bias, y, finite))
}
CONVLAB_DISPATCHER void convlab_wino_output_d(int tile, CONVLAB_WINO_OUT_ARGS(double))
{
    CONVLAB_WINO_PICK(tile, convlab_wino2_output_d, convlab_wino4_output_d, (m, mstride, bias, y, finite))
}
CONVLAB_DISPATCHER void convlab_wino_gather_row_s(int tile, CONVLAB_WINO_GATHER_ARGS(float))
{
    CONVLAB_WINO_PICK(tile, convlab_wino2_gather_row_s, convlab_wino4_gather_row_s, (src, ld, d))
}
CONVLAB_DISPATCHER void convlab_wino_gather_row_d(int tile, CONVLAB_WINO_GATHER_ARGS(double))
{
    CONVLAB_WINO_PICK(tile, convlab_wino2_gather_row_d, convlab_wino4_gather_row_d, (src, ld, d))
}
CONVLAB_DISPATCHER void convlab_wino_scatter_row_s(int tile, CONVLAB_WINO_SCATTER_ARGS(float))
{
    CONVLAB_WINO_PICK(tile, convlab_wino2_scatter_row_s, convlab_wino4_scatter_row_s, (y, dst, ld))
}
CONVLAB_DISPATCHER void convlab_wino_scatter_row_d(int tile, CONVLAB_WINO_SCATTER_ARGS(double))
{
    CONVLAB_WINO_PICK(tile, convlab_wino2_scatter_row_d, convlab_wino4_scatter_row_d, (y, dst, ld))
}

#endif /* CONVLAB_WINOGRAD_KERNELS_H */

# cython: language_level=3
"""Winograd convolution F(2x2, 3x3) (and F(4x4, 3x3)): stride-1 3x3 convolutions with fewer products.

**The 1-D algorithm.**  Two outputs of a 3-tap correlation,
``y0 = d0 g0 + d1 g1 + d2 g2`` and ``y1 = d1 g0 + d2 g1 + d3 g2``, cost six
products directly.  Winograd's F(2, 3) needs four::

    m1 = (d0 - d2) g0             m2 = (d1 + d2) (g0 + g1 + g2) / 2
    m4 = (d1 - d3) g2             m3 = (d2 - d1) (g0 - g1 + g2) / 2
    y0 = m1 + m2 + m3             y1 = m2 - m3 - m4

that is ``y = A^T [(G g) .* (B^T d)]`` with the matrices of
``winograd_kernels.h`` and ``G`` below.  (They come from evaluating the
polynomials ``d(t)`` and ``g(t)`` at the points 0, 1, -1 and infinity,
multiplying the values, and interpolating back.)

**2-D.**  Nesting F(2, 3) in both directions gives F(2x2, 3x3): a 2 x 2
tile of outputs from a 4 x 4 tile ``d`` of the (padded) input,
``Y = A^T [(G g G^T) .* (B^T d B)] A``: 16 products instead of 36.  The
output map is cut into 2 x 2 tiles (the last row and column of tiles may
stick out of an odd-sized map; their extra outputs are computed from zero
padding and dropped), and neighbouring input tiles overlap by two pixels.

**Many channels.**  Summing over the ``C`` input channels commutes with
``A^T (.) A``, so for each of the 16 positions ``xi`` of a transformed tile
the products over all channels, filters and tiles form one matrix product::

    M[xi] (K x T) = U[xi] (K x C) @ V[xi] (C x T)

with ``U[xi] = (G g G^T)[xi]`` for every filter and channel (computed once,
in float64, then rounded to the input's dtype) and ``V[xi] = (B^T d B)[xi]``
for every channel and tile.  Those 16 products run on the packed GEMM
micro-kernels of ``conv_kernels.h`` (the 6 x 16 float / 6 x 8 double
register tiles of the direct convolution, with their plain, portable and
AVX2 versions; the narrow tiles on the avx512 path too); the transforms are
in ``winograd_kernels.h``.

**Blocks and threads.**  The tiles of all images are numbered one after
the other and processed in blocks of ``NB`` tiles (a multiple of the
micro-kernel's ``NR``), so that the block's ``V`` and ``M`` stay in the L2
cache and small maps still fill whole panels; each block goes through the
three steps above (:func:`_transform_inputs`, :func:`_multiply`,
:func:`_transform_outputs`).  OpenMP threads take whole blocks; every output is computed by one thread from its own block in a
fixed order, so the result does not depend on the number of threads.

**F(4x4, 3x3).**  ``tile=4`` nests F(4, 3) instead: 6 x 6 input tiles,
4 x 4 outputs, 36 products instead of 144 (4 times fewer), at the points
0, -1, 1, 1/2, -2 (matrices in ``winograd_kernels.h`` and
:data:`WINOGRAD_G`).  Its larger constants cost accuracy: about four times
the float32 rounding error of the direct sum, against about the same for
F(2x2, 3x3).

**Rounding.**  The transforms add and subtract inputs before multiplying,
so results round differently from the direct sum: in float32 about as much
for F(2x2, 3x3), about four times as much for F(4x4, 3x3);
``tests/test_winograd.py`` measures it and states the bounds.  An infinity or
NaN in a tile spreads to the whole tile (``inf - inf``): the output
transform notices any non-finite output and :func:`conv_forward` reports it,
so that the caller can fall back to the direct convolution.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from convlab._fast._runtime cimport share_runtime_state
from convlab._fast._threads cimport pick_threads
from convlab._fast.conv_kernels cimport CONVLAB_D_NR as D_NR
from convlab._fast.conv_kernels cimport CONVLAB_MR as MR
from convlab._fast.conv_kernels cimport CONVLAB_S_NR as S_NR
from convlab._fast.conv_kernels cimport convlab_dgemm_6x8, convlab_sgemm_6x16
from convlab._fast.winograd_kernels cimport (convlab_wino_gather_row_d, convlab_wino_gather_row_s,
                                             convlab_wino_input_d, convlab_wino_input_s,
                                             convlab_wino_output_d, convlab_wino_output_s,
                                             convlab_wino_scatter_row_d, convlab_wino_scatter_row_s)

import numpy as np


share_runtime_state()  # the SIMD path and fork flag of convlab._fast._runtime


# MR x NR (S_NR floats, D_NR doubles): the micro-kernel's register tile
# (rows = filters, columns = tiles), the narrow one on every SIMD path.
# BLOCK_BYTES: the V and M buffers of one block of tiles fit in about this
# much memory (half of a 512 KiB L2 cache).
# A tile of m x m outputs (m = `tile`, 2 or 4) needs an alpha x alpha input
# patch, alpha = m + 2, and has npos = alpha**2 transformed positions.
cdef enum:
    BLOCK_BYTES = 256 * 1024
cdef double FLOP_PER_THREAD = 1e7

# The filter transforms G ((m + 2) x 3): F(2, 3) at the points 0, 1, -1, and
# F(4, 3) at 0, -1, 1, 1/2, -2 (row j: the powers of point j divided by the
# product of its differences to the other points -- for F(2, 3) the sign of
# row 0 is moved into B^T -- and the last row for the point at infinity).
WINOGRAD_G = {
    2: np.array([[1.0, 0.0, 0.0],
                 [0.5, 0.5, 0.5],
                 [0.5, -0.5, 0.5],
                 [0.0, 0.0, 1.0]]),
    4: np.array([[1.0, 0.0, 0.0],
                 [-1.0, 1.0, -1.0],
                 [1.0, 1.0, 1.0],
                 [-16.0, -8.0, -4.0],
                 [1.0, -2.0, 4.0],
                 [0.0, 0.0, 15.0]]) / np.array([[1.0], [3.0], [3.0], [15.0], [15.0], [15.0]]),
}


cdef inline Py_ssize_t _round_up(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b * b


cdef inline Py_ssize_t _nr(floating *dummy) noexcept nogil:
    if floating is float:
        return S_NR
    else:
        return D_NR


def tiles_per_block(Py_ssize_t C, Py_ssize_t K, Py_ssize_t itemsize, int tile=2):
    """Tiles per block: a multiple of NR with ``npos * (C + K) * NB`` values in ``BLOCK_BYTES``.

    At least one panel of NR tiles, at most 16 panels.
    """
    nr = S_NR if itemsize == 4 else D_NR
    fit = BLOCK_BYTES // ((tile + 2) ** 2 * (C + K) * itemsize)
    return int(min(max(fit // nr, 1), 16) * nr)


def transformed_filters(w, int tile=2):
    """``U = G g G^T`` for every filter ``g``, packed for the micro-kernel.

    Parameters
    ----------
    w : ndarray of shape (K, C, 3, 3), float32 or float64
    tile : int
        2 for F(2x2, 3x3), 4 for F(4x4, 3x3).

    Returns
    -------
    ndarray of shape (npos, ceil(K / MR) * C * MR), same dtype
        ``npos = (tile + 2)**2``.  For each position ``xi = alpha i + j`` of
        a transformed tile, the
        (K, C) matrix ``U[xi]`` as ``ceil(K / MR)`` panels of shape (C, MR)
        (row ``c`` of a panel holds MR filters; zero past K).  Computed in
        float64, rounded once to the dtype of ``w``.
    """
    K, C = w.shape[:2]
    G = WINOGRAD_G[tile]
    npos = G.shape[0] ** 2
    U = G @ w.astype(np.float64) @ G.T  # (K, C, alpha, alpha)
    Kp = _round_up(K, MR)
    packed = np.zeros((npos, Kp, C), dtype=np.float64)
    packed[:, :K, :] = U.reshape(K, C, npos).transpose(2, 0, 1)
    # (npos, Kp, C) -> (npos, Kp / MR, MR, C) -> (npos, Kp / MR, C, MR)
    packed = packed.reshape(npos, Kp // MR, MR, C).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(packed.reshape(npos, Kp * C), dtype=w.dtype)


cdef inline void _gather_row(int tile, const floating *src, Py_ssize_t ld, floating *d) noexcept nogil:
    """``d[(r * alpha + s) * NR + l] = src[r * ld + tile * l + s]``: the patches of NR
    tiles side by side."""
    if floating is float:
        convlab_wino_gather_row_s(tile, src, ld, d)
    else:
        convlab_wino_gather_row_d(tile, src, ld, d)


cdef inline void _scatter_row(int tile, const floating *y, floating *dst, Py_ssize_t ld) noexcept nogil:
    """``dst[a * ld + tile * l + b] = y[(a * tile + b) * NR + l]``: NR output tiles side by side."""
    if floating is float:
        convlab_wino_scatter_row_s(tile, y, dst, ld)
    else:
        convlab_wino_scatter_row_d(tile, y, dst, ld)


cdef void _copy_rows_padded(const floating *plane, floating *rowbuf, Py_ssize_t h0, Py_ssize_t w0,
                            Py_ssize_t H, Py_ssize_t W, Py_ssize_t width, Py_ssize_t alpha) noexcept nogil:
    """Copy rows ``h0 .. h0 + alpha - 1``, columns ``w0 .. w0 + width - 1`` of an (H, W)
    ``plane`` into ``rowbuf`` (alpha x width), zeros outside the plane."""
    cdef Py_ssize_t r, h, s, s0 = max(0, -w0), s1 = min(width, W - w0)
    cdef const floating *src
    cdef floating *dst
    for r in range(alpha):
        h = h0 + r
        dst = rowbuf + r * width
        if h < 0 or h >= H or s1 <= s0:
            for s in range(width):
                dst[s] = 0
            continue
        src = plane + h * W + w0
        for s in range(s0):
            dst[s] = 0
        for s in range(s0, s1):
            dst[s] = src[s]
        for s in range(s1, width):
            dst[s] = 0


cdef void _gather_patches(const floating *plane, floating *d, const Py_ssize_t *lane_in,
                          const Py_ssize_t *lane_clip, Py_ssize_t W, Py_ssize_t nr,
                          Py_ssize_t alpha) noexcept nogil:
    """Copy the part inside the image of the alpha x alpha input patch of each of ``nr``
    tiles (one channel) into ``d[alpha * alpha][nr]``.

    Lane ``l``'s patch starts at ``plane + lane_in[l]`` (its image's channel
    plus its origin, which may lie in the zero padding), and only its rows
    ``r0 <= r < r1`` and columns ``s0 <= s < s1`` lie inside the image, with
    ``(r0, r1, s0, s1) = lane_clip[4 l : 4 l + 4]`` (an empty range for a
    lane past the last tile).  The other entries of ``d`` are not touched:
    the caller zeroes ``d`` once per panel, and they stay zero for every
    channel.
    """
    cdef Py_ssize_t l, r, s
    cdef const floating *src
    for l in range(nr):
        src = plane + lane_in[l]
        for r in range(lane_clip[4 * l], lane_clip[4 * l + 1]):
            for s in range(lane_clip[4 * l + 2], lane_clip[4 * l + 3]):
                d[(r * alpha + s) * nr + l] = src[r * W + s]


cdef struct _Shape:
    # The sizes of one convolution, the same for all its blocks of tiles.
    Py_ssize_t C, H, W  # input channels, rows and columns
    Py_ssize_t K, Kp  # filters, and K rounded up to whole panels of MR
    Py_ssize_t pad_h, pad_w
    Py_ssize_t H_out, W_out
    Py_ssize_t tiles_h, tiles_w  # m x m output tiles down and across a map
    Py_ssize_t NBp  # tiles per block, a multiple of NR
    int tile  # m: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3)
    Py_ssize_t alpha, npos  # input patches are alpha = m + 2 wide, with npos = alpha**2 positions


# One block of tiles ``t0 .. t0 + nb - 1`` (numbered over all images, row by
# row of tiles, image by image) is convolved in three steps, each on this
# thread's work buffers: ``V`` (npos x NBp x C), ``M`` (npos x Kp x NBp),
# ``d`` (npos x NR), ``y`` (m * m x NR), ``rowbuf`` (alpha x (m NR + 2)) and
# ``lanes`` (7 x NR).  A panel of NR tiles side by side in one row of tiles
# (the common case on large maps) is read and written with strided vector
# copies; other panels tile by tile.

cdef void _transform_inputs(const _Shape *sh, const floating *x, floating *V, floating *d,
                            floating *rowbuf, Py_ssize_t *lanes, Py_ssize_t t0,
                            Py_ssize_t nb) noexcept nogil:
    """Step 1: ``V[xi][panel][c][lane] = (B^T d B)[xi]`` for the patch ``d`` of every tile
    and channel, written straight into the micro-kernel's packed B layout (panels of NR tiles)."""
    cdef Py_ssize_t C = sh.C, H = sh.H, W = sh.W, alpha = sh.alpha, npos = sh.npos
    cdef Py_ssize_t tiles_w = sh.tiles_w, per_image = sh.tiles_h * sh.tiles_w
    cdef Py_ssize_t vstride = sh.NBp * C
    cdef int tile = sh.tile
    cdef Py_ssize_t nr = _nr(V), npanels = (nb + nr - 1) // nr
    cdef Py_ssize_t jp, l, t, n, ti, tj, c
    # per lane of a panel: input offset of its image (-1: no tile), patch
    # origin, and the rows and columns of the patch inside the image
    cdef Py_ssize_t *lane_in = lanes
    cdef Py_ssize_t *lane_h0 = lanes + nr
    cdef Py_ssize_t *lane_w0 = lanes + 2 * nr
    cdef Py_ssize_t *lane_clip = lanes + 3 * nr  # 4 per lane
    cdef bint in_row, inside
    for jp in range(npanels):
        for l in range(nr):
            t = jp * nr + l
            if t < nb:
                t = t0 + t
                n = t // per_image
                ti = (t % per_image) // tiles_w
                tj = t % tiles_w
                lane_in[l] = n * C * H * W
                lane_h0[l] = tile * ti - sh.pad_h
                lane_w0[l] = tile * tj - sh.pad_w
                lane_clip[4 * l] = max(0, -lane_h0[l])
                lane_clip[4 * l + 1] = min(alpha, H - lane_h0[l])
                lane_clip[4 * l + 2] = max(0, -lane_w0[l])
                lane_clip[4 * l + 3] = min(alpha, W - lane_w0[l])
            else:
                lane_in[l] = -1
                lane_h0[l] = 0
                lane_w0[l] = 0
                lane_clip[4 * l] = lane_clip[4 * l + 1] = 0
                lane_clip[4 * l + 2] = lane_clip[4 * l + 3] = 0
        # whole panel in one row of tiles (then lane l's patch and tile
        # start m l pixels right of lane 0's)?  With every patch inside the
        # image it is read in place, else from a zero-padded copy of its rows.
        in_row = (jp + 1) * nr <= nb \
            and (t0 + jp * nr) // tiles_w == (t0 + jp * nr + nr - 1) // tiles_w
        inside = in_row and lane_h0[0] >= 0 and lane_w0[0] >= 0 and lane_h0[0] + alpha <= H \
            and lane_w0[nr - 1] + alpha <= W
        if not in_row:
            # patch origins relative to their channel; zeros outside the image
            for l in range(nr):
                lane_in[l] = lane_in[l] + lane_h0[l] * W + lane_w0[l] if lane_in[l] >= 0 else 0
            memset(d, 0, npos * nr * sizeof(floating))
        for c in range(C):
            if inside:
                _gather_row(tile, x + lane_in[0] + (c * H + lane_h0[0]) * W + lane_w0[0], W, d)
            elif in_row:
                _copy_rows_padded(x + lane_in[0] + c * H * W, rowbuf, lane_h0[0], lane_w0[0],
                                  H, W, tile * nr + 2, alpha)
                _gather_row(tile, rowbuf, tile * nr + 2, d)
            else:
                _gather_patches(x + c * H * W, d, lane_in, lane_clip, W, nr, alpha)
            if floating is float:
                convlab_wino_input_s(tile, d, V + (jp * C + c) * nr, vstride)
            else:
                convlab_wino_input_d(tile, d, V + (jp * C + c) * nr, vstride)


cdef void _multiply(const _Shape *sh, const floating *Up, const floating *V, floating *M,
                    Py_ssize_t nb) noexcept nogil:
    """Step 2: for each position ``xi``, ``M[xi] (Kp x NBp) = U[xi] @ V[xi]``, one
    micro-kernel call per MR x NR tile, the whole channel sum at once."""
    cdef Py_ssize_t C = sh.C, Kp = sh.Kp, NBp = sh.NBp, vstride = sh.NBp * sh.C
    cdef Py_ssize_t nr = _nr(M), npanels = (nb + nr - 1) // nr
    cdef Py_ssize_t xi, jp, ip
    for xi in range(sh.npos):
        for jp in range(npanels):
            for ip in range(Kp // MR):
                if floating is float:
                    convlab_sgemm_6x16(C, Up + (xi * Kp + ip * MR) * C, V + xi * vstride + jp * C * nr,
                                       M + (xi * Kp + ip * MR) * NBp + jp * nr, NBp, 0)
                else:
                    convlab_dgemm_6x8(C, Up + (xi * Kp + ip * MR) * C, V + xi * vstride + jp * C * nr,
                                      M + (xi * Kp + ip * MR) * NBp + jp * nr, NBp, 0)


cdef int _transform_outputs(const _Shape *sh, const floating *M, const floating *bias, floating *out,
                            floating *y, floating *rowbuf, Py_ssize_t *lanes, Py_ssize_t t0,
                            Py_ssize_t nb) noexcept nogil:
    """Step 3: ``Y = A^T M A + bias`` per filter and tile, and the valid pixels of each
    m x m tile written to ``out``.  Returns 1 if an output is not finite, else 0."""
    cdef Py_ssize_t K = sh.K, Kp = sh.Kp, NBp = sh.NBp, H_out = sh.H_out, W_out = sh.W_out
    cdef Py_ssize_t tiles_w = sh.tiles_w, per_image = sh.tiles_h * sh.tiles_w, P = H_out * W_out
    cdef int tile = sh.tile
    cdef Py_ssize_t nr = _nr(y), npanels = (nb + nr - 1) // nr
    cdef Py_ssize_t jp, l, t, n, ti, tj, k, a, b, width
    # per lane of a panel: output offset of its tile (-1: no tile), valid
    # output rows and columns
    cdef Py_ssize_t *lane_out = lanes
    cdef Py_ssize_t *lane_rows = lanes + nr
    cdef Py_ssize_t *lane_cols = lanes + 2 * nr
    cdef bint out_row, whole
    cdef floating finite[S_NR]
    cdef floating *dst
    for l in range(nr):
        finite[l] = 0
    for jp in range(npanels):
        for l in range(nr):
            t = jp * nr + l
            if t < nb:
                t = t0 + t
                n = t // per_image
                ti = (t % per_image) // tiles_w
                tj = t % tiles_w
                lane_out[l] = n * K * P + tile * ti * W_out + tile * tj
                lane_rows[l] = min(tile, H_out - tile * ti)
                lane_cols[l] = min(tile, W_out - tile * tj)
            else:
                lane_out[l] = -1
                lane_rows[l] = 0
                lane_cols[l] = 0
        # whole panel in one row of tiles?  Then written with a strided
        # vector copy, in place if all its tiles are whole, else through a
        # buffer of two output rows (the valid part copied out).
        # (tiles t are numbered row by row, image by image: t // tiles_w
        # names the image and the row of tiles)
        out_row = (jp + 1) * nr <= nb \
            and (t0 + jp * nr) // tiles_w == (t0 + jp * nr + nr - 1) // tiles_w
        # (only the last row and the last column of tiles can be partial)
        whole = out_row and lane_rows[0] == tile and lane_cols[nr - 1] == tile
        for k in range(K):
            if floating is float:
                convlab_wino_output_s(tile, M + k * NBp + jp * nr, Kp * NBp,
                                      bias[k] if bias != NULL else 0, y, finite)
            else:
                convlab_wino_output_d(tile, M + k * NBp + jp * nr, Kp * NBp,
                                      bias[k] if bias != NULL else 0, y, finite)
            if whole:
                _scatter_row(tile, y, out + lane_out[0] + k * P, W_out)
            elif out_row:
                _scatter_row(tile, y, rowbuf, tile * nr)
                width = min(tile * nr, W_out - (lane_out[0] % W_out))
                for a in range(lane_rows[0]):
                    dst = out + lane_out[0] + k * P + a * W_out
                    for b in range(width):
                        dst[b] = rowbuf[a * tile * nr + b]
            else:
                for l in range(nr):
                    dst = out + lane_out[l] + k * P
                    for a in range(lane_rows[l]):
                        for b in range(lane_cols[l]):
                            dst[a * W_out + b] = y[(a * tile + b) * nr + l]
    for l in range(nr):
        if finite[l] != 0:  # NaN: some output was an infinity or a NaN
            return 1
    return 0


def conv_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w, const floating[::1] b,
                 floating[:, :, :, ::1] out, int pad_h, int pad_w, int num_threads=0,
                 block_tiles=None, int tile=2):
    """Stride-1 3x3 convolution by Winograd's F(m x m, 3x3), writing ``out`` in place.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), C-contiguous, float32 or float64
    w : ndarray of shape (K, C, 3, 3), C-contiguous, same dtype
    b : ndarray of shape (K,) or of shape (0,) for no bias, same dtype
    out : ndarray of shape (N, K, H + 2 pad_h - 2, W + 2 pad_w - 2), C-contiguous, same dtype
        Overwritten with the convolution.
    pad_h, pad_w : int
        Zero padding of the rows and of the columns (non-negative).
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.
    block_tiles : int or None, optional
        Tiles per block (rounded up to a multiple of NR); None (default)
        picks :func:`tiles_per_block`.  The result does not depend on it.
    tile : int, optional
        m, the output tile: 2 (default) for F(2x2, 3x3), 16 products per
        2 x 2 outputs; 4 for F(4x4, 3x3), 36 products per 4 x 4 outputs,
        with about four times the float32 rounding error of the direct sum
        (see ``tests/test_winograd.py``).

    Returns
    -------
    bool
        True if some output is an infinity or a NaN (the input, the filters
        or the bias held one, or a sum overflowed).  Winograd's transforms
        spread such a value over its whole tile where the direct sum would
        not: recompute with the direct convolution to get its answer.

    Raises
    ------
    ValueError
        If ``w`` is not 3 x 3, the channels of ``x`` and ``w`` differ, a
        pad is negative, ``b`` or ``out`` has the wrong shape, or ``tile``
        is not 2 or 4.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = w.shape[0]
    if tile != 2 and tile != 4:
        raise ValueError(f"conv_forward: tile must be 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)); got {tile}")
    if w.shape[2] != 3 or w.shape[3] != 3:
        raise ValueError(f"conv_forward: w must hold 3 x 3 filters (Winograd F(2x2, 3x3)); "
                         f"got w of shape {tuple(w.shape)[:4]}")
    if w.shape[1] != C:
        raise ValueError(f"conv_forward: w has {w.shape[1]} input channels, x has {C}")
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"conv_forward: pad_h and pad_w must be >= 0; got {pad_h}, {pad_w}")
    cdef Py_ssize_t H_out = H + 2 * <Py_ssize_t>pad_h - 2, W_out = W + 2 * <Py_ssize_t>pad_w - 2
    if H_out < 1 or W_out < 1:
        raise ValueError(f"conv_forward: a 3 x 3 filter does not fit x of shape "
                         f"{tuple(x.shape)[:4]} with pads {pad_h}, {pad_w}")
    if tuple(out.shape)[:4] != (N, K, H_out, W_out):
        raise ValueError(f"conv_forward: out must have shape {(N, K, H_out, W_out)}; "
                         f"got {tuple(out.shape)[:4]}")
    if b.shape[0] not in (0, K):
        raise ValueError(f"conv_forward: b must have shape ({K},) or (0,); got ({b.shape[0]},)")
    if N == 0 or K == 0:
        return False
    if C == 0:  # no input channels: the output is the bias
        np.asarray(out)[...] = np.asarray(b)[:, None, None] if b.shape[0] > 0 else 0
        return False
    cdef Py_ssize_t nr = _nr(&out[0, 0, 0, 0])
    cdef Py_ssize_t alpha = tile + 2, npos = alpha * alpha
    cdef Py_ssize_t tiles_h = (H_out + tile - 1) // tile, tiles_w = (W_out + tile - 1) // tile
    cdef Py_ssize_t T = N * tiles_h * tiles_w
    cdef Py_ssize_t NBp = tiles_per_block(C, K, sizeof(floating), tile) if block_tiles is None else \
        _round_up(max(int(block_tiles), 1), nr)
    cdef Py_ssize_t nblocks = (T + NBp - 1) // NBp, Kp = _round_up(K, MR), blk, t0, nb
    cdef _Shape shape = _Shape(C=C, H=H, W=W, K=K, Kp=Kp, pad_h=pad_h, pad_w=pad_w, H_out=H_out,
                               W_out=W_out, tiles_h=tiles_h, tiles_w=tiles_w, NBp=NBp, tile=tile,
                               alpha=alpha, npos=npos)
    Up_arr = transformed_filters(np.asarray(w), tile)
    cdef const floating[:, ::1] Up = Up_arr
    cdef const floating *bias = &b[0] if b.shape[0] > 0 else NULL
    cdef floating *V
    cdef floating *M
    cdef floating *d
    cdef floating *y
    cdef floating *rowbuf
    cdef Py_ssize_t *lanes
    cdef int[::1] failed = np.zeros(1, dtype=np.intc)
    cdef int[::1] nonfinite = np.zeros(nblocks, dtype=np.intc)
    num_threads = pick_threads(18.0 * N * K * C * H_out * W_out, FLOP_PER_THREAD, num_threads)
    with nogil, parallel(num_threads=num_threads):
        V = <floating *>malloc(npos * NBp * C * sizeof(floating))
        M = <floating *>malloc(npos * Kp * NBp * sizeof(floating))
        d = <floating *>malloc(npos * nr * sizeof(floating))
        y = <floating *>malloc(tile * tile * nr * sizeof(floating))
        rowbuf = <floating *>malloc(alpha * (tile * nr + 2) * sizeof(floating))
        lanes = <Py_ssize_t *>malloc(7 * nr * sizeof(Py_ssize_t))
        if V == NULL or M == NULL or d == NULL or y == NULL or rowbuf == NULL or lanes == NULL:
            failed[0] = 1
        else:
            for blk in prange(nblocks, schedule="dynamic"):
                t0 = blk * NBp
                nb = T - t0
                if nb > NBp:
                    nb = NBp
                _transform_inputs(&shape, &x[0, 0, 0, 0], V, d, rowbuf, lanes, t0, nb)
                _multiply(&shape, &Up[0, 0], V, M, nb)
                nonfinite[blk] = _transform_outputs(&shape, M, bias, &out[0, 0, 0, 0], y, rowbuf,
                                                    lanes, t0, nb)
        free(V)
        free(M)
        free(d)
        free(y)
        free(rowbuf)
        free(lanes)
    if failed[0]:
        raise MemoryError("conv_forward: could not allocate the per-thread work buffers")
    return bool(np.asarray(nonfinite).any())

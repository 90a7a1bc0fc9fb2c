# cython: language_level=3
"""Convolution kernels: im2col fused into a hand-blocked matrix product.

The im2col view of a convolution (see :mod:`convlab._fast.im2col`) turns
each image's forward pass into one matrix product ``out[n] = Wm @ cols[n]``
with ``Wm = w.reshape(F, K)``, ``K = C * HH * WW`` and ``cols[n]`` of shape
``(K, P)``, ``P = H_out * W_out``.  Building all of ``cols`` is wasteful: it
is ``HH * WW`` times larger than the input, so it lives in main memory and
has to be written and read back.  These kernels never build it.  Instead they
follow the classic blocked layout of fast matrix products:

1. **Packing.**  ``Wm`` is copied once into *row panels* of ``MR`` filters
   (``A`` below); for each block of ``NC`` output pixels and ``KC`` taps, the
   needed piece of ``cols`` is generated straight from the (zero-padded) image
   into *column panels* of ``NR`` pixels (``B``).  A panel is small enough to
   stay in the L1 cache, a block in L2.
2. **Micro-kernel.**  An ``MR x NR`` tile of the output is accumulated in
   CPU registers over the ``KC`` taps of a block: per tap, ``NR`` pixels are
   loaded as vectors, each of the ``MR`` weights is broadcast, and ``MR * NR``
   fused multiply-adds are issued.  This is where the time goes: with data
   in L1, it runs close to the CPU's peak of vector multiply-adds.  It is
   written in C (``conv_kernels.h``) in four versions: plain loops,
   portable vectors (SSE2 on x86-64, NEON on arm64) and AVX2 + FMA, all with
   a 6 x 16 float (6 x 8 double) tile, and AVX-512, whose vectors are twice
   as wide, with a 6 x 32 (6 x 16) tile; the fastest one this CPU runs is
   chosen at import.

3. **Implicit GEMM (stride 1).**  With stride 1, the NR consecutive
   pixels of a B panel row are consecutive in the padded image too, if the
   output is computed on a grid as wide as the padded image; the
   micro-kernel then reads each tap's row in place (``base + off[k]``) and
   no columns are packed at all.  This is what small layers need: with
   16-64 channels, packing costs about as much as the product.  The wasted
   outputs at the end of each row are not copied out.  Which form is used is
   decided per shape (:func:`implicit_gemm_pays`); both sum the same
   products in the same order.

The backward pass reuses the same machinery:

* ``dw = sum_n dout[n] @ cols[n].T`` uses the same micro-kernel, with
  ``dout`` packed into row panels and ``cols.T`` generated panel by panel;
  for stride 1 it is instead computed transposed, ``dw.T = cols @ dout.T``,
  with the taps broadcast straight from the padded image and only ``dout``
  packed (:func:`_dw_chunk_implicit`);
* ``dx`` computes column gradients ``Wm.T @ dout[n]`` block by block with the
  same micro-kernel and scatters them onto a padded image (col2im), never
  materialising more than one block.  (For stride 1, ``dx`` is also the
  convolution of the padded ``dout`` with the flipped, channel-transposed
  filters; :mod:`convlab.fast_layers` uses that when it is cheaper.)

Parallelism: OpenMP threads take whole images (or fixed chunks of images for
``dw``), with the GIL released.  Each output element is computed by exactly
one thread in a fixed order, and the ``dw`` chunk partial sums are added in
chunk order, so results are bitwise identical for any thread count.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from convlab._fast._runtime cimport share_runtime_state
from convlab._fast._threads cimport pick_threads
# the micro-kernels (plain, portable, AVX2, AVX-512) and their MR x NR tile: conv_kernels.h
from convlab._fast.conv_kernels cimport CONVLAB_MAX_NR as MAX_NR
from convlab._fast.conv_kernels cimport CONVLAB_MR as MR
from convlab._fast.conv_kernels cimport CONVLAB_S_NR as S_NR
from convlab._fast.conv_kernels cimport CONVLAB_D_NR as D_NR
from convlab._fast.conv_kernels cimport (convlab_d_nr, convlab_dgemm_dw_tile, convlab_dgemm_tile,
                                         convlab_dgemm_dw_6x8, convlab_dgemm_tile_rows, convlab_s_nr,
                                         convlab_sgemm_dw_6x16, convlab_sgemm_dw_tile,
                                         convlab_sgemm_tile, convlab_sgemm_tile_rows,
                                         convlab_transpose_4x4_pd, convlab_transpose_8x8_ps)

import numpy as np


share_runtime_state()  # the SIMD path and fork flag of convlab._fast._runtime


# Blocking parameters (elements): KC taps per block keeps a B panel (KC x NR)
# in L1; NC pixels per block keeps a packed B block (KC x NC) in L2.
# DW_CHUNK: images per deterministic partial sum of dw.
# CONV_FLOP_PER_THREAD: a second thread is woken only for this much work each
# (well under a millisecond on one core).  On an idle machine two threads
# already win on the course's small stride-2 layer; on a machine whose other
# core is busy, a second thread can make a small problem slower, since it
# waits to be scheduled: set OMP_NUM_THREADS=1 there.
cdef enum:
    KC = 256
    S_NC = 384
    D_NC = 192
    DW_CHUNK = 8
cdef double CONV_FLOP_PER_THREAD = 1e7


cdef inline Py_ssize_t _round_up(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b * b


cdef inline Py_ssize_t _nr(const floating *dummy) noexcept nogil:
    """NR, the width of a tile on the current SIMD path (at most MAX_NR; NC is a multiple)."""
    if floating is float:
        return convlab_s_nr()
    else:
        return convlab_d_nr()


cdef inline Py_ssize_t _nc(floating *dummy) noexcept nogil:
    if floating is float:
        return S_NC
    else:
        return D_NC


cdef inline void _gemm_tile(Py_ssize_t kc, const floating *A, const floating *B, floating *C,
                            Py_ssize_t ldc, int accumulate) noexcept nogil:
    if floating is float:
        convlab_sgemm_tile(kc, A, B, C, ldc, accumulate)
    else:
        convlab_dgemm_tile(kc, A, B, C, ldc, accumulate)


cdef inline void _gemm_tile_rows(Py_ssize_t kc, const floating *A, const floating *base,
                                 const Py_ssize_t *off, floating *C, Py_ssize_t ldc,
                                 int accumulate) noexcept nogil:
    if floating is float:
        convlab_sgemm_tile_rows(kc, A, base, off, C, ldc, accumulate)
    else:
        convlab_dgemm_tile_rows(kc, A, base, off, C, ldc, accumulate)


cdef inline void _gemm_dw_tile(Py_ssize_t nrows, Py_ssize_t ncols, const floating *base,
                               const Py_ssize_t *off, Py_ssize_t ld, const floating *B, floating *C,
                               Py_ssize_t ldc, bint narrow) noexcept nogil:
    """The implicit weight gradient's tile: the path's own, or the narrow one if ``narrow``."""
    if floating is float:
        if narrow:
            convlab_sgemm_dw_6x16(nrows, ncols, base, off, ld, B, C, ldc, 1)
        else:
            convlab_sgemm_dw_tile(nrows, ncols, base, off, ld, B, C, ldc, 1)
    else:
        if narrow:
            convlab_dgemm_dw_6x8(nrows, ncols, base, off, ld, B, C, ldc, 1)
        else:
            convlab_dgemm_dw_tile(nrows, ncols, base, off, ld, B, C, ldc, 1)


cdef inline Py_ssize_t _narrow_nr(const floating *dummy) noexcept nogil:
    """NR of the narrow tile, which every path has: 16 floats or 8 doubles."""
    if floating is float:
        return S_NR
    else:
        return D_NR


cdef void _pad_image(const floating *x, floating *xpad, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                     Py_ssize_t pad_h, Py_ssize_t pad_w) noexcept nogil:
    """Copy one (C, H, W) image into a zeroed (C, H + 2 pad_h, W + 2 pad_w) buffer."""
    cdef Py_ssize_t Hp = H + 2 * pad_h, Wp = W + 2 * pad_w, c, h
    memset(xpad, 0, C * Hp * Wp * sizeof(floating))
    for c in range(C):
        for h in range(H):
            memcpy(xpad + (c * Hp + h + pad_h) * Wp + pad_w, x + (c * H + h) * W, W * sizeof(floating))


cdef inline void _copy_panel_row(floating *dst, const floating *src, Py_ssize_t nr) noexcept nogil:
    """Copy ``nr`` (8, 16 or 32) contiguous values.

    One loop of fixed length per tile width, which the compiler turns into a
    few vector moves instead of a call to memcpy.
    """
    cdef int t
    if nr == 32:
        for t in range(32):
            dst[t] = src[t]
    elif nr == 16:
        for t in range(16):
            dst[t] = src[t]
    else:
        for t in range(8):
            dst[t] = src[t]


cdef void _pack_cols(const floating *xpad, floating *Bp, Py_ssize_t nr, Py_ssize_t Hp, Py_ssize_t Wp,
                     Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t stride, Py_ssize_t W_out,
                     Py_ssize_t k0, Py_ssize_t kb, Py_ssize_t p0, Py_ssize_t nb) noexcept nogil:
    """Write rows ``k0:k0+kb``, columns ``p0:p0+nb`` of im2col(xpad) as NR-wide panels.

    ``Bp[panel][kk][l] = cols[k0 + kk, p0 + panel * nr + l]`` (zero past ``nb``),
    where ``cols[k, p]`` reads the padded image at tap ``k = (c, i, j)`` of
    output pixel ``p = (ho, wo)``.  Runs of pixels in one output row are
    contiguous in the image when the stride is 1, and are copied as such.
    """
    cdef Py_ssize_t npanels = (nb + nr - 1) // nr
    cdef Py_ssize_t kk, k, c, i, j, jp, q, qend, l, run, t, p, ho, wo
    cdef const floating *tap
    cdef const floating *src
    cdef floating *dst
    for kk in range(kb):
        k = k0 + kk
        c = k // (HH * WW)
        i = (k // WW) % HH
        j = k % WW
        tap = xpad + (c * Hp + i) * Wp + j
        for jp in range(npanels):
            dst = Bp + (jp * kb + kk) * nr
            q = jp * nr
            qend = q + nr
            if qend > nb:
                qend = nb
            p = p0 + q
            ho = p // W_out
            wo = p % W_out
            if stride == 1 and qend - q == nr and W_out - wo >= nr:
                _copy_panel_row(dst, tap + ho * Wp + wo, nr)  # the common case: one full run
                continue
            l = 0
            while q < qend:
                run = W_out - wo
                if run > qend - q:
                    run = qend - q
                src = tap + ho * stride * Wp + wo * stride
                if stride == 1:
                    for t in range(run):
                        dst[l + t] = src[t]
                else:
                    for t in range(run):
                        dst[l + t] = src[t * stride]
                l = l + run
                q = q + run
                wo = 0
                ho = ho + 1
            while l < nr:
                dst[l] = 0
                l = l + 1


cdef void _conv_image(const floating *x, const floating *Ap, const floating *bias, floating *out,
                      floating *xpad, floating *Bp, floating *Cbuf, const Py_ssize_t *off,
                      Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F,
                      Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t stride,
                      Py_ssize_t pad_h, Py_ssize_t pad_w) noexcept nogil:
    """Convolve one image: ``out (F, P) = Wm (F, K) @ cols (K, P) + bias``.

    ``Ap`` holds ``Wm`` packed as ``ceil(F / MR)`` panels of shape ``(K, MR)``;
    ``xpad``, ``Bp`` and ``Cbuf`` are this thread's work buffers.

    With ``off == NULL`` the B operand is packed: for each block of pixels
    and taps, :func:`_pack_cols` writes the block of ``cols`` into ``Bp``.

    With tap offsets ``off`` (stride 1 only) it is an *implicit* GEMM and
    nothing is packed.  The im2col entry of output pixel ``(ho, wo)`` at tap
    ``k = (c, i, j)`` is ``xpad[c, ho + i, wo + j]``, which in the flat padded
    image is ``xpad_flat[off[k] + ho * Wp + wo]`` with
    ``off[k] = (c * Hp + i) * Wp + j``.  If the outputs are computed on a grid
    as wide as the padded image, ``q = ho * Wp + wo`` with ``0 <= wo < Wp``,
    then the B row of tap ``k`` for pixels ``q0 .. q0 + NR - 1`` is the
    contiguous slice ``xpad_flat[off[k] + q0:][:NR]``, which the micro-kernel
    reads in place.  The price is ``Wp - W_out`` wasted columns per output row
    (they wrap into the next row and are not copied out); ``xpad`` ends with
    a zeroed tail so that the last tile stays inside the buffer.  Each valid
    output sums the same products in the same order either way, so the two
    forms agree bit for bit.
    """
    cdef Py_ssize_t nr = _nr(xpad), nc = _nc(xpad)
    cdef Py_ssize_t Hp = H + 2 * pad_h, Wp = W + 2 * pad_w
    cdef Py_ssize_t H_out = (Hp - HH) // stride + 1, W_out = (Wp - WW) // stride + 1
    cdef Py_ssize_t P = H_out * W_out, K = C * HH * WW
    cdef Py_ssize_t Fp = _round_up(F, MR)
    # the output grid: H_out rows of `ld` pixels (as wide as the padded image
    # for the implicit GEMM), Q pixels in all
    cdef Py_ssize_t ld = Wp if off != NULL else W_out
    cdef Py_ssize_t Q = H_out * ld
    # taps in blocks of at most KC, all of (nearly) equal size: no short last block
    cdef Py_ssize_t nkb = (K + KC - 1) // KC
    cdef Py_ssize_t kc = (K + nkb - 1) // nkb
    cdef Py_ssize_t q0, nb, npanels, k0, kb, jp, ip, f, q, qend, ho, wo, q0_blk, k0_blk
    cdef floating bf
    cdef floating *dst
    cdef const floating *src
    _pad_image(x, xpad, C, H, W, pad_h, pad_w)
    for q0_blk in range((Q + nc - 1) // nc):
        q0 = q0_blk * nc
        nb = Q - q0
        if nb > nc:
            nb = nc
        npanels = (nb + nr - 1) // nr
        for k0_blk in range(nkb):
            k0 = k0_blk * kc
            kb = K - k0
            if kb > kc:
                kb = kc
            if off == NULL:
                _pack_cols(xpad, Bp, nr, Hp, Wp, HH, WW, stride, W_out, k0, kb, q0, nb)
            for jp in range(npanels):
                for ip in range(Fp // MR):
                    if off == NULL:
                        _gemm_tile(kb, Ap + (ip * K + k0) * MR, Bp + jp * kb * nr,
                                   Cbuf + ip * MR * nc + jp * nr, nc, k0 > 0)
                    else:
                        _gemm_tile_rows(kb, Ap + (ip * K + k0) * MR, xpad + q0 + jp * nr, off + k0,
                                        Cbuf + ip * MR * nc + jp * nr, nc, k0 > 0)
        # copy the valid part of each grid row in this block (plus bias)
        for f in range(F):
            bf = bias[f] if bias != NULL else 0
            q = q0
            while q < q0 + nb:
                ho = q // ld
                wo = q % ld
                qend = ho * ld + W_out  # end of this row's valid pixels
                if qend > q0 + nb:
                    qend = q0 + nb
                if wo < W_out:
                    src = Cbuf + f * nc + (q - q0)
                    dst = out + f * P + ho * W_out + wo
                    for wo in range(qend - q):
                        dst[wo] = src[wo] + bf
                q = (ho + 1) * ld


def tile_columns(Py_ssize_t itemsize):
    """NR, the columns of a micro-kernel tile on the current SIMD path.

    16 floats (``itemsize`` 4) or 8 doubles (8); on the "avx512" path
    32 and 16.
    """
    if itemsize not in (4, 8):
        raise ValueError(f"tile_columns: itemsize must be 4 or 8, got {itemsize}")
    return convlab_s_nr() if itemsize == 4 else convlab_d_nr()


def implicit_gemm_pays(Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t stride,
                       Py_ssize_t itemsize):
    """Whether :func:`conv_forward` convolves this shape as an implicit GEMM.

    Only stride 1 qualifies.  The implicit form saves packing the columns, at
    the price of ``Wp - W_out`` wasted outputs per row and of B rows read
    from all over the padded image instead of from a compact panel.  That
    pays while the padded image (``C * Hp * Wp`` values) stays within a
    quarter of an L2 cache (256 KiB), where the scattered reads still hit
    the cache: timed, the layers of the airbench-style nets (16-64 channels
    on maps of 31x31 down to 3x3) were faster implicit, and the 64-channel
    32x32 layer of ``benchmarks/bench_layers.py`` (296 KiB) was slower.  The
    same rule picks the implicit weight gradient of
    :func:`conv_backward_weights`.  (Chapter 3 of the book explains the
    trade-off.)
    """
    return stride == 1 and C * Hp * Wp * itemsize <= 256 * 1024


def _choose_implicit(implicit, name, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                     Py_ssize_t stride, Py_ssize_t itemsize):
    """Resolve a kernel's ``implicit`` argument: None picks by :func:`implicit_gemm_pays`."""
    if implicit is None:
        return implicit_gemm_pays(C, Hp, Wp, stride, itemsize)
    if implicit and stride != 1:
        raise ValueError(f"{name}: the implicit GEMM needs stride 1, got stride {stride}")
    return bool(implicit)


def _tap_offsets(Py_ssize_t K, Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t Hp, Py_ssize_t Wp,
                 Py_ssize_t count):
    """Offsets ``off[k] = (c * Hp + i) * Wp + j`` of taps ``k = (c, i, j)`` in a flat padded image.

    ``count >= K`` entries; those past ``K`` repeat the last tap (padding
    for whole micro-kernel panels, whose results are dropped).
    """
    taps = np.minimum(np.arange(count), K - 1)
    return np.ascontiguousarray(((taps // (HH * WW)) * Hp + (taps // WW) % HH) * Wp + taps % WW,
                                dtype=np.intp)


def _pack_filters(const floating[:, ::1] wm):
    """Pack a (M, K) matrix into ceil(M / MR) panels of shape (K, MR), zero-padded."""
    cdef Py_ssize_t M = wm.shape[0], K = wm.shape[1], m, k
    Ap = np.zeros(_round_up(M, MR) * K, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] ap = Ap
    for m in range(M):
        for k in range(K):
            ap[((m // MR) * K + k) * MR + m % MR] = wm[m, k]
    return Ap


def conv_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w, const floating[::1] b,
                 floating[:, :, :, ::1] out, int stride, int pad_h, int pad_w, int num_threads=0,
                 implicit=None):
    """Convolution forward pass, writing ``out`` in place.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), C-contiguous, float32 or float64
    w : ndarray of shape (F, C, HH, WW), C-contiguous, same dtype
    b : ndarray of shape (F,) or of shape (0,) for no bias, same dtype
    out : ndarray of shape (N, F, H_out, W_out), C-contiguous, same dtype
        Overwritten with the convolution (shapes validated by the caller).
    stride, pad_h, pad_w : int
        Stride and zero padding of the rows and of the columns.
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.
    implicit : bool or None, optional
        Convolve as an implicit GEMM (stride 1 only, see
        :func:`_conv_image`) or with packed column panels; None
        (default) picks by :func:`implicit_gemm_pays`.  Both give the same bits.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = w.shape[0], HH = w.shape[2], WW = w.shape[3]
    cdef Py_ssize_t K = C * HH * WW, Hp = H + 2 * <Py_ssize_t>pad_h, Wp = W + 2 * <Py_ssize_t>pad_w
    cdef Py_ssize_t nr = _nr(&out[0, 0, 0, 0]), nc = _nc(&out[0, 0, 0, 0])
    cdef Py_ssize_t P = out.shape[2] * out.shape[3], n
    if N == 0 or F == 0 or P == 0:
        return
    if K == 0:  # no input channels: the output is the bias
        np.asarray(out)[...] = np.asarray(b)[:, None, None] if b.shape[0] > 0 else 0
        return
    cdef bint use_implicit = _choose_implicit(implicit, "conv_forward", C, Hp, Wp, stride,
                                              sizeof(floating))
    Ap_arr = _pack_filters(np.asarray(w).reshape(F, K))
    cdef const floating[::1] Ap = Ap_arr
    cdef const floating *bias = &b[0] if b.shape[0] > 0 else NULL
    cdef Py_ssize_t[::1] off = _tap_offsets(K, HH, WW, Hp, Wp, K)  # for the implicit GEMM
    # the implicit GEMM's last tile reads up to WW + NR values past the image
    cdef Py_ssize_t xpad_size = C * Hp * Wp + (WW + nr if use_implicit else 0)
    cdef floating *xpad
    cdef floating *Bp
    cdef floating *Cbuf
    cdef int[::1] failed = np.zeros(1, dtype=np.intc)
    num_threads = pick_threads(2.0 * N * F * K * P, CONV_FLOP_PER_THREAD, num_threads)
    with nogil, parallel(num_threads=num_threads):
        xpad = <floating *>malloc(xpad_size * sizeof(floating))
        Bp = NULL if use_implicit else <floating *>malloc(KC * nc * sizeof(floating))  # packed columns
        Cbuf = <floating *>malloc(_round_up(F, MR) * nc * sizeof(floating))
        if xpad == NULL or (Bp == NULL and not use_implicit) or Cbuf == NULL:
            failed[0] = 1
        else:
            memset(xpad, 0, xpad_size * sizeof(floating))
            for n in prange(N, schedule="dynamic"):
                _conv_image(&x[n, 0, 0, 0], &Ap[0], bias, &out[n, 0, 0, 0], xpad, Bp, Cbuf,
                            &off[0] if use_implicit else NULL,
                            C, H, W, F, HH, WW, stride, pad_h, pad_w)
        free(xpad)
        free(Bp)
        free(Cbuf)
    if failed[0]:
        raise MemoryError("conv_forward: could not allocate the per-thread work buffers")


cdef void _pack_cols_transposed(const floating *xpad, floating *Bp, Py_ssize_t nr, Py_ssize_t Hp,
                                Py_ssize_t Wp, Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t stride,
                                Py_ssize_t W_out, Py_ssize_t K, Py_ssize_t k0, Py_ssize_t p0,
                                Py_ssize_t nb) noexcept nogil:
    """Write one NR-wide panel of ``cols.T``: ``Bp[q][l] = cols[k0 + l, p0 + q]``.

    Rows ``q < nb`` of the panel are pixels, its ``nr`` columns are taps
    (zero past ``K``).  This is the B operand of ``dw = dout @ cols.T``.
    With stride 1, groups of G pixels in one output row are contiguous for
    every tap, and G x G blocks are transposed in registers (G = 8 floats or
    4 doubles); other pixels are gathered one at a time.
    """
    cdef Py_ssize_t toff[MAX_NR]  # offset of each tap in the padded image
    cdef Py_ssize_t g = 8 if floating is float else 4
    cdef Py_ssize_t l, l0, k, c, i, j, q, ho, wo
    cdef bint full = k0 + nr <= K
    cdef const floating *base
    for l in range(nr):
        k = k0 + l
        if k >= K:
            k = K - 1  # never read: the column is zeroed below
        c = k // (HH * WW)
        i = (k // WW) % HH
        j = k % WW
        toff[l] = (c * Hp + i) * Wp + j
    q = 0
    ho = p0 // W_out
    wo = p0 % W_out
    while q < nb:
        base = xpad + ho * stride * Wp + wo * stride
        if stride == 1 and full and nb - q >= g and W_out - wo >= g:
            l0 = 0
            while l0 < nr:
                if floating is float:
                    convlab_transpose_8x8_ps(base, &toff[l0], Bp + q * nr + l0, nr)
                else:
                    convlab_transpose_4x4_pd(base, &toff[l0], Bp + q * nr + l0, nr)
                l0 = l0 + g
            q = q + g
            wo = wo + g
        else:
            for l in range(nr):
                Bp[q * nr + l] = base[toff[l]] if k0 + l < K else 0
            q = q + 1
            wo = wo + 1
        if wo == W_out:
            wo = 0
            ho = ho + 1


cdef void _dw_chunk(const floating *x, const floating *dout, floating *dw, floating *db, floating *xpad,
                    floating *Ap, floating *Bp,
                    Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                    Py_ssize_t F, Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t stride,
                    Py_ssize_t pad) noexcept nogil:
    """Add ``sum over images n0:n1 of dout[n] (F, P) @ cols[n].T (P, K)`` to ``dw``,
    and the sums of the rows of ``dout[n]`` to ``db (F,)``.

    ``dw`` is padded to ``(round_up(F, MR), round_up(K, NR))``.  The summed
    index is the pixel, taken in blocks of ``KC``: per block, ``dout`` is
    packed into MR-row panels (``Ap``) and each NR-column panel of ``cols.T``
    (``Bp``) is generated from the image just before the micro-kernel uses it.
    """
    cdef Py_ssize_t nr = _nr(xpad)
    cdef Py_ssize_t Hp = H + 2 * pad, Wp = W + 2 * pad
    cdef Py_ssize_t H_out = (Hp - HH) // stride + 1, W_out = (Wp - WW) // stride + 1
    cdef Py_ssize_t P = H_out * W_out, K = C * HH * WW
    cdef Py_ssize_t Fp = _round_up(F, MR), Kp = _round_up(K, nr)
    cdef Py_ssize_t n, p0, p0_blk, nb, ip, jp, q, i, f
    cdef floating row_sum
    cdef const floating *d
    cdef floating *dst
    for n in range(n0, n1):
        _pad_image(x + n * C * H * W, xpad, C, H, W, pad, pad)
        d = dout + n * F * P
        for p0_blk in range((P + KC - 1) // KC):
            p0 = p0_blk * KC
            nb = P - p0
            if nb > KC:
                nb = KC
            for ip in range(Fp // MR):
                dst = Ap + ip * nb * MR
                for i in range(MR):
                    f = ip * MR + i
                    if f < F:
                        row_sum = 0
                        for q in range(nb):
                            dst[q * MR + i] = d[f * P + p0 + q]
                            row_sum = row_sum + d[f * P + p0 + q]
                        db[f] += row_sum
                    else:
                        for q in range(nb):
                            dst[q * MR + i] = 0
            for jp in range(Kp // nr):
                _pack_cols_transposed(xpad, Bp, nr, Hp, Wp, HH, WW, stride, W_out, K, jp * nr, p0, nb)
                for ip in range(Fp // MR):
                    _gemm_tile(nb, Ap + ip * nb * MR, Bp, dw + ip * MR * Kp + jp * nr, Kp, 1)


cdef void _dw_chunk_implicit(const floating *x, const floating *dout, floating *dwt, floating *db,
                             floating *xpad, floating *doutt, const Py_ssize_t *off,
                             Py_ssize_t n0, Py_ssize_t n1,
                             Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F,
                             Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t pad, Py_ssize_t nr) noexcept nogil:
    """Stride 1: add ``sum over images n0:n1 of cols[n] (K, P) @ dout[n].T (P, F)`` to ``dwt``.

    The transposed product ``dw.T`` is computed so that the *taps* take the
    broadcast side of the micro-kernel: the value of tap ``k`` at output
    pixel ``(ho, wo)`` is ``xpad_flat[off[k] + ho * Wp + wo]``, read in place,
    and only ``dout`` is packed (transposed into ``doutt``: for each panel of
    NR filters, NR values per pixel), which is ``F`` values per pixel instead
    of the ``K = C * HH * WW`` of ``cols``.  Pixels are summed in blocks of
    whole output rows (about ``KC`` pixels).  ``dwt`` is padded to
    ``(round_up(K, MR), round_up(F, NR))``; ``off`` to ``round_up(K, MR)``
    entries (the extra taps repeat a real one; their rows are dropped).
    Row sums of ``dout`` are added to ``db``.  ``nr`` is the tile's width:
    the path's (:func:`_nr`), or the narrow one (:func:`_narrow_nr`) where
    that needs fewer padding filters.
    """
    cdef bint narrow = nr != _nr(xpad)
    cdef Py_ssize_t Hp = H + 2 * pad, Wp = W + 2 * pad
    cdef Py_ssize_t H_out = Hp - HH + 1, W_out = Wp - WW + 1
    cdef Py_ssize_t P = H_out * W_out, K = C * HH * WW
    cdef Py_ssize_t Kp = _round_up(K, MR), Fq = _round_up(F, nr)
    cdef Py_ssize_t rows_per_block = KC // W_out if W_out < KC else 1
    cdef Py_ssize_t n, f, p, l, jf, ip, r0, r_blk, nrows
    cdef floating row_sum
    cdef const floating *d
    for n in range(n0, n1):
        _pad_image(x + n * C * H * W, xpad, C, H, W, pad, pad)
        d = dout + n * F * P
        # doutt[jf][p][l] = dout[jf * nr + l, p], zero for filters past F
        for f in range(Fq):
            jf = f // nr
            l = f % nr
            if f < F:
                row_sum = 0
                for p in range(P):
                    doutt[(jf * P + p) * nr + l] = d[f * P + p]
                    row_sum = row_sum + d[f * P + p]
                db[f] += row_sum
            else:
                for p in range(P):
                    doutt[(jf * P + p) * nr + l] = 0
        for r_blk in range((H_out + rows_per_block - 1) // rows_per_block):
            r0 = r_blk * rows_per_block
            nrows = H_out - r0
            if nrows > rows_per_block:
                nrows = rows_per_block
            for ip in range(Kp // MR):
                for jf in range(Fq // nr):
                    _gemm_dw_tile(nrows, W_out, xpad + r0 * Wp, off + ip * MR, Wp,
                                  doutt + (jf * P + r0 * W_out) * nr,
                                  dwt + ip * MR * Fq + jf * nr, Fq, narrow)


def conv_backward_weights(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dout,
                          int HH, int WW, int stride, int pad, int num_threads=0, implicit=None):
    """Gradients of the filters and biases: ``dw = sum_n dout[n] @ cols[n].T``, ``db``.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), C-contiguous
        The forward input.
    dout : ndarray of shape (N, F, H_out, W_out), C-contiguous, same dtype
        Upstream gradient.
    HH, WW, stride, pad : int
        Filter size, stride and padding of the forward pass.
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.
    implicit : bool or None, optional
        For stride 1, compute ``dw.T = cols @ dout.T`` reading the taps in
        place (:func:`_dw_chunk_implicit`) instead of packing ``cols.T``
        (:func:`_dw_chunk`); None (default) picks by :func:`implicit_gemm_pays`.

    Returns
    -------
    dw : ndarray of shape (F, C * HH * WW)
    db : ndarray of shape (F,)
        ``dout`` summed over images and pixels (it is read anyway).

    Notes
    -----
    Images are summed in fixed chunks of ``DW_CHUNK``, one partial sum per
    chunk, and the partial sums are added in chunk order: the result is the
    same for every thread count.  The two strategies add the same products
    in different orders, so they agree to rounding, not bit for bit.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = dout.shape[1], K = C * HH * WW, P = dout.shape[2] * dout.shape[3]
    cdef Py_ssize_t nchunks = (N + DW_CHUNK - 1) // DW_CHUNK, ch, n1
    cdef Py_ssize_t Hp = H + 2 * <Py_ssize_t>pad, Wp = W + 2 * <Py_ssize_t>pad
    cdef Py_ssize_t nr = _nr(&x[0, 0, 0, 0])
    cdef Py_ssize_t rows, cols  # of each chunk's padded partial sum
    dtype = np.float32 if floating is float else np.float64
    if nchunks == 0 or F == 0 or K == 0:
        return np.zeros((F, K), dtype=dtype), np.asarray(dout).sum(axis=(0, 2, 3))
    cdef bint use_implicit = _choose_implicit(implicit, "conv_backward_weights", C, Hp, Wp, stride,
                                              sizeof(floating))
    if use_implicit:  # dw.T: taps x filters
        if _round_up(F, _narrow_nr(&x[0, 0, 0, 0])) < _round_up(F, nr):
            nr = _narrow_nr(&x[0, 0, 0, 0])  # few filters: the wide tile would compute padding
        rows, cols = _round_up(K, MR), _round_up(F, nr)
    else:  # dw: filters x taps
        rows, cols = _round_up(F, MR), _round_up(K, nr)
    cdef Py_ssize_t[::1] off = _tap_offsets(K, HH, WW, Hp, Wp, _round_up(K, MR))  # whole MR panels
    partial_arr = np.zeros((nchunks, rows, cols), dtype=dtype)
    partial_db_arr = np.zeros((nchunks, F), dtype=dtype)
    cdef floating[:, :, ::1] partial = partial_arr
    cdef floating[:, ::1] partial_db = partial_db_arr
    cdef floating *xpad
    cdef floating *Ap
    cdef floating *Bp
    # work buffers: packed dout rows and a cols.T panel, or the transposed dout
    cdef Py_ssize_t ap_size = cols * P if use_implicit else rows * KC
    cdef int[::1] failed = np.zeros(1, dtype=np.intc)
    num_threads = pick_threads(2.0 * N * F * K * P, CONV_FLOP_PER_THREAD, num_threads)
    with nogil, parallel(num_threads=num_threads):
        xpad = <floating *>malloc(C * Hp * Wp * sizeof(floating))
        Ap = <floating *>malloc(ap_size * sizeof(floating))
        Bp = NULL if use_implicit else <floating *>malloc(KC * nr * sizeof(floating))
        if xpad == NULL or Ap == NULL or (Bp == NULL and not use_implicit):
            failed[0] = 1
        else:
            for ch in prange(nchunks, schedule="dynamic"):
                n1 = (ch + 1) * DW_CHUNK
                if n1 > N:
                    n1 = N
                if use_implicit:
                    _dw_chunk_implicit(&x[0, 0, 0, 0], &dout[0, 0, 0, 0], &partial[ch, 0, 0],
                                       &partial_db[ch, 0], xpad, Ap, &off[0],
                                       ch * DW_CHUNK, n1, C, H, W, F, HH, WW, pad, nr)
                else:
                    _dw_chunk(&x[0, 0, 0, 0], &dout[0, 0, 0, 0], &partial[ch, 0, 0],
                              &partial_db[ch, 0], xpad, Ap, Bp,
                              ch * DW_CHUNK, n1, C, H, W, F, HH, WW, stride, pad)
        free(xpad)
        free(Ap)
        free(Bp)
    if failed[0]:
        raise MemoryError("conv_backward_weights: could not allocate the per-thread work buffers")
    dw = partial_arr[0]
    db = partial_db_arr[0]
    for ch in range(1, nchunks):
        dw += partial_arr[ch]
        db += partial_db_arr[ch]
    if use_implicit:
        return np.ascontiguousarray(dw[:K, :F].T), db
    return np.ascontiguousarray(dw[:F, :K]), db


cdef void _dx_image(const floating *dout, const floating *Atp, floating *dx, floating *dxpad, floating *Bp,
                    floating *dcols,
                    Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F,
                    Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t stride, Py_ssize_t pad) noexcept nogil:
    """One image's input gradient by col2im: ``dx = col2im(Wm.T @ dout)``, block by block."""
    cdef Py_ssize_t nr = _nr(dxpad), nc = _nc(dxpad)
    cdef Py_ssize_t Hp = H + 2 * pad, Wp = W + 2 * pad
    cdef Py_ssize_t H_out = (Hp - HH) // stride + 1, W_out = (Wp - WW) // stride + 1
    cdef Py_ssize_t P = H_out * W_out, K = C * HH * WW, Kp = _round_up(K, MR)
    cdef Py_ssize_t p0, nb, npanels, f0, fb, f, jp, ip, l, q, k, c, i, j, ho, wo, h, p0_blk, f0_blk, run, t
    cdef floating *dst
    cdef floating *plane
    cdef const floating *src
    memset(dxpad, 0, C * Hp * Wp * sizeof(floating))
    for p0_blk in range((P + nc - 1) // nc):
        p0 = p0_blk * nc
        nb = P - p0
        if nb > nc:
            nb = nc
        npanels = (nb + nr - 1) // nr
        for f0_blk in range((F + KC - 1) // KC):
            f0 = f0_blk * KC
            fb = F - f0
            if fb > KC:
                fb = KC
            # pack dout rows f0:f0+fb, columns p0:p0+nb into NR-wide panels
            for jp in range(npanels):
                for f in range(fb):
                    dst = Bp + (jp * fb + f) * nr
                    src = dout + (f0 + f) * P + p0 + jp * nr
                    if (jp + 1) * nr <= nb:
                        _copy_panel_row(dst, src, nr)
                    else:
                        for l in range(nr):
                            dst[l] = src[l] if jp * nr + l < nb else 0
            for jp in range(npanels):
                for ip in range(Kp // MR):
                    _gemm_tile(fb, Atp + (ip * F + f0) * MR, Bp + jp * fb * nr,
                               dcols + ip * MR * nc + jp * nr, nc, f0 > 0)
        # col2im: scatter-add the column gradients onto the padded image,
        # one run of pixels of an output row at a time
        for k in range(K):
            c = k // (HH * WW)
            i = (k // WW) % HH
            j = k % WW
            plane = dxpad + (c * Hp + i) * Wp + j
            src = dcols + k * nc
            q = 0
            ho = p0 // W_out
            wo = p0 % W_out
            while q < nb:
                run = W_out - wo
                if run > nb - q:
                    run = nb - q
                dst = plane + ho * stride * Wp + wo * stride
                if stride == 1:
                    for t in range(run):
                        dst[t] += src[q + t]
                else:
                    for t in range(run):
                        dst[t * stride] += src[q + t]
                q = q + run
                wo = 0
                ho = ho + 1
    for c in range(C):
        for h in range(H):
            memcpy(dx + (c * H + h) * W, dxpad + (c * Hp + h + pad) * Wp + pad, W * sizeof(floating))


def conv_backward_input_col2im(const floating[:, :, :, ::1] dout, const floating[:, :, :, ::1] w,
                               floating[:, :, :, ::1] dx, int stride, int pad, int num_threads=0):
    """Gradient of the input for any stride: col2im of ``Wm.T @ dout[n]``, in blocks.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out), C-contiguous
    w : ndarray of shape (F, C, HH, WW), C-contiguous, same dtype
    dx : ndarray of shape (N, C, H, W), C-contiguous, same dtype
        Overwritten with the gradient with respect to the input.
    stride, pad : int
        Stride and padding of the forward pass.
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t F = w.shape[0], HH = w.shape[2], WW = w.shape[3], K = C * HH * WW
    cdef Py_ssize_t Hp = H + 2 * <Py_ssize_t>pad, Wp = W + 2 * <Py_ssize_t>pad
    cdef Py_ssize_t n, P = dout.shape[2] * dout.shape[3]
    cdef Py_ssize_t nr = _nr(&dx[0, 0, 0, 0]), nc = _nc(&dx[0, 0, 0, 0])
    if N == 0 or K == 0:
        return
    if F == 0:
        np.asarray(dx)[...] = 0
        return
    Atp_arr = _pack_filters(np.ascontiguousarray(np.asarray(w).reshape(F, K).T))
    cdef const floating[::1] Atp = Atp_arr
    cdef floating *dxpad
    cdef floating *Bp
    cdef floating *dcols
    cdef int[::1] failed = np.zeros(1, dtype=np.intc)
    num_threads = pick_threads(2.0 * N * F * K * P, CONV_FLOP_PER_THREAD, num_threads)
    with nogil, parallel(num_threads=num_threads):
        dxpad = <floating *>malloc(C * Hp * Wp * sizeof(floating))
        Bp = <floating *>malloc(KC * nc * sizeof(floating))
        dcols = <floating *>malloc(_round_up(K, MR) * nc * sizeof(floating))
        if dxpad == NULL or Bp == NULL or dcols == NULL:
            failed[0] = 1
        else:
            for n in prange(N, schedule="dynamic"):
                _dx_image(&dout[n, 0, 0, 0], &Atp[0], &dx[n, 0, 0, 0], dxpad, Bp, dcols,
                          C, H, W, F, HH, WW, stride, pad)
        free(dxpad)
        free(Bp)
        free(dcols)
    if failed[0]:
        raise MemoryError("conv_backward_input_col2im: could not allocate the per-thread work buffers")

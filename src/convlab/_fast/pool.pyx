# cython: language_level=3
"""Max pooling kernels: forward with argmax bookkeeping, backward by scatter.

The forward pass slides a ``pool_height x pool_width`` window over every
``(H, W)`` plane with the given stride and keeps the largest value.  It also
records *where* that value was (the flat index ``h * W + w`` inside the plane),
so that the backward pass is a plain scatter: each upstream gradient is added
to the one input pixel that won its window.

Ties go to the first maximum in row-major window order (a later element wins
only if it is strictly larger), and a NaN wins over any number, as
``numpy.argmax`` does; this matches the naive layer.

Every ``(image, channel)`` plane is independent, so the loops run in parallel
over planes with OpenMP; overlapping windows add into the same plane, which
one thread handles in a fixed order, so results do not depend on the thread
count.

The common 2x2 window with stride 2 has its own pair of kernels
(:func:`max_pool_forward_2x2`, :func:`max_pool_backward_2x2`): the winner is
stored as a one-byte position inside its window (0 to 3, row-major), and
since windows do not overlap the backward pass writes every input gradient
exactly once, zeros included, with no separate clearing pass.  The forward
row loop (``pool_kernels.h``) has a plain C version and vector versions
that take several windows per step with the same tie and NaN rules: as a
plain loop the compiler cannot vectorise its strided reads.  The fastest
version this CPU runs is chosen at import (see ``simd.h``).  The backward
pass stays a plain loop (clear two rows, store each winner): an AVX2
version was no faster on wide maps and slower on the narrow maps of the
airbench-style nets.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.limits cimport INT_MAX
from libc.string cimport memset

from convlab._fast._runtime cimport share_runtime_state
from convlab._fast._threads cimport pick_threads
# the row kernel, in plain C, portable vector and AVX2 versions
from convlab._fast.pool_kernels cimport convlab_pool2x2_row_d, convlab_pool2x2_row_s

share_runtime_state()  # the SIMD path and fork flag of convlab._fast._runtime


# A thread is woken only for at least this many input elements (~1-2 ms of work).
cdef double ELEMENTS_PER_THREAD = 1 << 20


def max_pool_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                     int[:, :, :, ::1] argmax, int pool_height, int pool_width,
                     int stride, int num_threads=0):
    """Max pooling forward pass for any window and stride.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), C-contiguous, float32 or float64
        Input.
    out : ndarray of shape (N, C, H_out, W_out), C-contiguous, same dtype
        Output buffer; overwritten with the window maxima.
    argmax : ndarray of shape (N, C, H_out, W_out), int32, C-contiguous
        Output buffer; overwritten with the flat index ``h * W + w`` of each
        window's maximum inside its plane.
    pool_height, pool_width, stride : int
        Window size and stride (validated by the caller).
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.

    Raises
    ------
    ValueError
        If a plane has more than 2**31 - 1 pixels, which ``argmax`` cannot
        index.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t H_out = out.shape[2], W_out = out.shape[3]
    cdef Py_ssize_t nc, n, c, ho, wo, i, j, h0, w0
    cdef int best_idx
    cdef floating best, v
    if H * W > INT_MAX:  # the caller refuses such planes; an int32 index would wrap
        raise ValueError(f"max_pool_forward: planes of {H} x {W} pixels are more than an int32 "
                         f"argmax can index")
    num_threads = pick_threads(<double>N * C * H * W, ELEMENTS_PER_THREAD, num_threads)
    with nogil:
        for nc in prange(N * C, num_threads=num_threads, schedule="dynamic", chunksize=4):
            n = nc // C
            c = nc % C
            for ho in range(H_out):
                h0 = ho * stride
                for wo in range(W_out):
                    w0 = wo * stride
                    best = x[n, c, h0, w0]
                    best_idx = <int>(h0 * W + w0)
                    for i in range(pool_height):
                        for j in range(pool_width):
                            v = x[n, c, h0 + i, w0 + j]
                            # strictly larger wins; the first NaN wins for good
                            if v > best or (v != v and best == best):
                                best = v
                                best_idx = <int>((h0 + i) * W + w0 + j)
                    out[n, c, ho, wo] = best
                    argmax[n, c, ho, wo] = best_idx


def max_pool_backward(const floating[:, :, :, ::1] dout, const int[:, :, :, ::1] argmax,
                      floating[:, :, :, ::1] dx, int num_threads=0):
    """Max pooling backward pass: route each gradient to its window's winner.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H_out, W_out), C-contiguous
        Upstream gradient.
    argmax : ndarray of shape (N, C, H_out, W_out), int32, C-contiguous
        Flat in-plane indices recorded by :func:`max_pool_forward`.
    dx : ndarray of shape (N, C, H, W), C-contiguous, same dtype as ``dout``
        Output; overwritten with the gradient with respect to the input.
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t H_out = dout.shape[2], W_out = dout.shape[3]
    cdef Py_ssize_t nc, n, c, ho, wo, h, w, idx
    num_threads = pick_threads(<double>N * C * H * W, ELEMENTS_PER_THREAD, num_threads)
    with nogil:
        for nc in prange(N * C, num_threads=num_threads, schedule="dynamic", chunksize=4):
            n = nc // C
            c = nc % C
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = 0
            for ho in range(H_out):
                for wo in range(W_out):
                    idx = argmax[n, c, ho, wo]
                    dx[n, c, idx // W, idx % W] += dout[n, c, ho, wo]


def _check_2x2_shapes(big, small, argmax, name):
    """Raise ValueError unless ``small`` is the floor-halved ``big`` and ``argmax`` matches it."""
    big, small, argmax = tuple(big[:4]), tuple(small[:4]), tuple(argmax[:4])
    want = (big[0], big[1], big[2] // 2, big[3] // 2)
    if small != want or argmax != want:
        raise ValueError(f"2x2 pooling: {name} of shape {big} needs pooled arrays of shape {want}; "
                         f"got {small} and argmax {argmax}")


def max_pool_forward_2x2(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                         unsigned char[:, :, :, ::1] argmax, int num_threads=0):
    """2x2 max pooling with stride 2.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), C-contiguous
        Input. For odd H (or W) the last row (column) belongs to no window
        and is ignored ("floor" pooling, as in PyTorch's default).
    out : ndarray of shape (N, C, H // 2, W // 2), C-contiguous, same dtype
        Output buffer; overwritten with the window maxima.
    argmax : ndarray of shape (N, C, H // 2, W // 2), uint8, C-contiguous
        Output buffer; overwritten with the winner's position in its window:
        0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t H_out = out.shape[2], W_out = out.shape[3]
    cdef Py_ssize_t nc, n, c, ho, wo
    _check_2x2_shapes(x.shape, out.shape, argmax.shape, "x")
    cdef const floating *r0
    num_threads = pick_threads(<double>N * C * H * W, ELEMENTS_PER_THREAD, num_threads)
    with nogil:
        for nc in prange(N * C, num_threads=num_threads, schedule="dynamic", chunksize=4):
            n = nc // C
            c = nc % C
            for ho in range(H_out):
                r0 = &x[n, c, 2 * ho, 0]
                if floating is float:
                    convlab_pool2x2_row_s(r0, r0 + W, &out[n, c, ho, 0], &argmax[n, c, ho, 0], W_out)
                else:
                    convlab_pool2x2_row_d(r0, r0 + W, &out[n, c, ho, 0], &argmax[n, c, ho, 0], W_out)


def max_pool_backward_2x2(const floating[:, :, :, ::1] dout, const unsigned char[:, :, :, ::1] argmax,
                          floating[:, :, :, ::1] dx, int num_threads=0):
    """Backward pass of 2x2 stride-2 max pooling.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H_out, W_out), C-contiguous
        Upstream gradient.
    argmax : ndarray of shape (N, C, H_out, W_out), uint8
        Winner positions from :func:`max_pool_forward_2x2`.
    dx : ndarray of shape (N, C, H, W), C-contiguous, with H // 2 == H_out
        and W // 2 == W_out
        Output; every element is overwritten (the winner gets ``dout``, the
        other three get zero, and so does an odd last row or column).
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t H_out = dout.shape[2], W_out = dout.shape[3]
    cdef Py_ssize_t nc, n, c, ho, wo
    cdef floating *r0
    cdef unsigned char k
    _check_2x2_shapes(dx.shape, dout.shape, argmax.shape, "dx")
    num_threads = pick_threads(<double>N * C * H * W, ELEMENTS_PER_THREAD, num_threads)
    with nogil:
        for nc in prange(N * C, num_threads=num_threads, schedule="dynamic", chunksize=4):
            n = nc // C
            c = nc % C
            for ho in range(H_out):
                r0 = &dx[n, c, 2 * ho, 0]
                memset(r0, 0, 2 * W * sizeof(floating))
                for wo in range(W_out):
                    k = argmax[n, c, ho, wo]
                    r0[(k >> 1) * W + 2 * wo + (k & 1)] = dout[n, c, ho, wo]
            if H > 2 * H_out:  # the odd last row was in no window
                memset(&dx[n, c, 2 * H_out, 0], 0, W * sizeof(floating))



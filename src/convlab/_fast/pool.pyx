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
"""

from cython.parallel cimport prange

ctypedef fused real:
    float
    double


cdef extern from "omp.h":
    int omp_get_max_threads() nogil


def max_pool_forward(const real[:, :, :, ::1] x, real[:, :, :, ::1] out,
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
        OpenMP threads; 0 (default) uses the OpenMP default.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t H_out = out.shape[2], W_out = out.shape[3]
    cdef Py_ssize_t nc, n, c, ho, wo, i, j, h0, w0
    cdef int best_idx
    cdef real best, v
    if num_threads <= 0:
        num_threads = omp_get_max_threads()
    with nogil:
        for nc in prange(N * C, num_threads=num_threads, schedule="static"):
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


def max_pool_backward(const real[:, :, :, ::1] dout, const int[:, :, :, ::1] argmax,
                      real[:, :, :, ::1] dx, int num_threads=0):
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
        OpenMP threads; 0 (default) uses the OpenMP default.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t H_out = dout.shape[2], W_out = dout.shape[3]
    cdef Py_ssize_t nc, n, c, ho, wo, h, w, idx
    if num_threads <= 0:
        num_threads = omp_get_max_threads()
    with nogil:
        for nc in prange(N * C, num_threads=num_threads, schedule="static"):
            n = nc // C
            c = nc % C
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = 0
            for ho in range(H_out):
                for wo in range(W_out):
                    idx = argmax[n, c, ho, wo]
                    dx[n, c, idx // W, idx % W] += dout[n, c, ho, wo]

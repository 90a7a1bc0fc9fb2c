# cython: language_level=3
"""im2col and col2im: turn a convolution into a matrix product, and back.

A convolution of one image ``x[n]`` of shape ``(C, H, W)`` with filters of
shape ``(F, C, HH, WW)`` is a matrix product once every receptive field of
the padded image is unrolled into a column::

    cols[n, k, p] = x_padded[n, c, ho * stride + i, wo * stride + j]

    with  k = (c * HH + i) * WW + j      (the filter tap, K = C * HH * WW)
    and   p = ho * W_out + wo            (the output pixel, P = H_out * W_out)

so that ``out[n] = w.reshape(F, K) @ cols[n]``, already in ``(F, H_out, W_out)``
order.  :func:`im2col` builds ``cols``; :func:`col2im` is its adjoint: it adds
every entry of a ``cols``-shaped gradient back onto the input pixel it came
from, which is exactly the gradient of :func:`im2col`.

Padding is never materialised: taps that fall outside the image read as zero
in :func:`im2col` and are dropped by :func:`col2im`.

Both functions work on a block of images at once, release the GIL and run
their loops over images (and channels) in parallel with OpenMP.  Every output
element is written by exactly one thread, so the result does not depend on
the number of threads.
"""

from cython cimport floating
from cython.parallel cimport prange

from convlab._fast._runtime cimport share_runtime_state
from convlab._fast._threads cimport pick_threads

# A thread is woken only for at least this many input elements (~1-2 ms of work).
cdef double ELEMENTS_PER_THREAD = 1 << 20

share_runtime_state()  # the fork flag of convlab._fast._runtime


def im2col(const floating[:, :, :, ::1] x, floating[:, :, ::1] cols,
           int HH, int WW, int stride, int pad, int num_threads=0):
    """Unroll the receptive fields of a block of images into columns.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), C-contiguous, float32 or float64
        Unpadded input images.
    cols : ndarray of shape (N, C * HH * WW, H_out * W_out), C-contiguous
        Output buffer, same dtype as ``x``; every entry is overwritten.
    HH, WW : int
        Filter height and width.
    stride, pad : int
        Convolution stride and zero padding (validated by the caller).
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t H_out = (H + 2 * <Py_ssize_t>pad - HH) // stride + 1
    cdef Py_ssize_t W_out = (W + 2 * <Py_ssize_t>pad - WW) // stride + 1
    cdef Py_ssize_t nc, n, c, i, j, k, ho, wo, h_in, w_in, p
    num_threads = pick_threads(<double>N * C * H * W, ELEMENTS_PER_THREAD, num_threads)
    with nogil:
        for nc in prange(N * C, num_threads=num_threads, schedule="static"):
            n = nc // C
            c = nc % C
            for i in range(HH):
                for j in range(WW):
                    k = (c * HH + i) * WW + j
                    p = 0
                    for ho in range(H_out):
                        h_in = ho * stride - pad + i
                        if h_in < 0 or h_in >= H:
                            for wo in range(W_out):
                                cols[n, k, p + wo] = 0
                        else:
                            for wo in range(W_out):
                                w_in = wo * stride - pad + j
                                if w_in < 0 or w_in >= W:
                                    cols[n, k, p + wo] = 0
                                else:
                                    cols[n, k, p + wo] = x[n, c, h_in, w_in]
                        p = p + W_out


def col2im(const floating[:, :, ::1] dcols, floating[:, :, :, ::1] dx,
           int HH, int WW, int stride, int pad, int num_threads=0):
    """Scatter-add column gradients back onto the images (adjoint of im2col).

    Parameters
    ----------
    dcols : ndarray of shape (N, C * HH * WW, H_out * W_out), C-contiguous
        Gradient with respect to the columns built by :func:`im2col`.
    dx : ndarray of shape (N, C, H, W), C-contiguous, same dtype
        Output: overwritten with the gradient with respect to the images.
    HH, WW, stride, pad : int
        The convolution's filter size, stride and padding.
    num_threads : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or the number of cores), fewer for small problems.

    Notes
    -----
    Overlapping receptive fields add into the same pixel, so the loop is
    parallel over (image, channel) planes only: each plane is summed by a
    single thread, in a fixed order.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t H_out = (H + 2 * <Py_ssize_t>pad - HH) // stride + 1
    cdef Py_ssize_t W_out = (W + 2 * <Py_ssize_t>pad - WW) // stride + 1
    cdef Py_ssize_t nc, n, c, i, j, k, ho, wo, h_in, w_in, p, h, w
    num_threads = pick_threads(<double>N * C * H * W, ELEMENTS_PER_THREAD, num_threads)
    with nogil:
        for nc in prange(N * C, num_threads=num_threads, schedule="static"):
            n = nc // C
            c = nc % C
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = 0
            for i in range(HH):
                for j in range(WW):
                    k = (c * HH + i) * WW + j
                    for ho in range(H_out):
                        h_in = ho * stride - pad + i
                        if h_in < 0 or h_in >= H:
                            continue
                        p = ho * W_out
                        for wo in range(W_out):
                            w_in = wo * stride - pad + j
                            if w_in >= 0 and w_in < W:
                                dx[n, c, h_in, w_in] += dcols[n, k, p + wo]



# cython: language_level=3
"""Fused spatial batch norm + activation, forward and backward.

In a ConvNet every convolution is followed by batch norm and a nonlinearity.
Done as separate NumPy expressions, these elementwise steps read and write
the whole activation tensor a dozen times (subtract the mean, square, divide,
scale, shift, activate, and as many passes again backward) and allocate as
many temporaries. Here each direction is a few sweeps over one channel's
values, which stay in cache between sweeps:

forward (training mode), per channel ``c`` over its ``M = N*H*W`` values::

    sweep 1, 2:  mean_c, then var_c            (accumulated in double)
    sweep 3:     out = act(g_c * x + b_c)      g_c = gamma_c * invstd_c,
                                               b_c = beta_c - g_c * mean_c

backward, with ``dy = dout * act'(y)`` and ``y`` recomputed from ``x``::

    sweep 1:  dy (kept in the dx buffer);  dbeta_c = sum dy ;  dgamma_c = sum dy * xhat
    sweep 2:  dx = gamma_c * invstd_c * (dy - dbeta_c / M - xhat * dgamma_c / M)

Channels are independent, so the loops run in parallel over channels with
OpenMP and every output element is written by one thread: the result does
not depend on the thread count. The innermost loops run over one contiguous
``H*W`` row with the activation chosen outside the loop, so the compiler can
vectorise them.

Activation codes: 0 identity, 1 ReLU, 2 leaky ReLU (slope ``alpha``),
3 GELU ``y * Phi(y)`` (float64: libm ``erf``; float32: a one-``expf``
rational approximation of ``erf`` accurate to 1.5e-7, i.e. to float32
rounding).
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport erf, exp, sqrt

from convlab._fast._runtime cimport share_runtime_state
from convlab._fast._threads cimport pick_threads
from convlab._fast.bn_act_kernels cimport convlab_act_row, convlab_dact_row, convlab_dot_row
from convlab._fast.omp_compat cimport omp_get_max_threads

# A second thread is woken only for this many elements each: on a busy
# computer waking one can cost a scheduler time slice (milliseconds), far more
# than a pass over a small batch. Every channel (or row) is computed by one
# thread whatever their number, so the result does not depend on it.
cdef double ELEMENTS_PER_THREAD = 1 << 18

share_runtime_state()  # the SIMD path and fork flag of convlab._fast._runtime

cdef double INV_SQRT2 = 0.7071067811865476
cdef double INV_SQRT2PI = 0.3989422804014327


def num_threads():
    """Number of OpenMP threads the kernels use by default."""
    return omp_get_max_threads()


# ---------------------------------------------------------------- GELU pieces

# The float32 rows are C, written so that the compiler vectorises them (with
# our own exp and erf: libm's are opaque calls), compiled for the baseline and
# for AVX2 and chosen at run time: bn_act_kernels.h.


cdef inline double _gelu(double y) noexcept nogil:
    return 0.5 * y * (1.0 + erf(y * INV_SQRT2))


cdef inline double _dgelu(double y) noexcept nogil:
    return 0.5 * (1.0 + erf(y * INV_SQRT2)) + y * INV_SQRT2PI * exp(-0.5 * y * y)


# ---------------------------------------------------------- row primitives

cdef inline void _row_act(const floating* x, floating* out, Py_ssize_t P, floating g, floating b,
                          int act, floating alpha) noexcept nogil:
    """out[p] = act(g * x[p] + b) for one contiguous row."""
    cdef Py_ssize_t p
    cdef floating y
    if floating is float:
        convlab_act_row(x, out, P, g, b, act, alpha)
    elif act == 1:
        for p in range(P):
            y = g * x[p] + b
            out[p] = y if y > 0 else 0
    elif act == 2:
        for p in range(P):
            y = g * x[p] + b
            out[p] = y if y > 0 else alpha * y
    elif act == 3:
        for p in range(P):
            out[p] = _gelu(g * x[p] + b)
    else:
        for p in range(P):
            out[p] = g * x[p] + b


cdef inline void _row_dact(const floating* dout, const floating* x, floating* dy, Py_ssize_t P,
                           floating g, floating b, int act, floating alpha) noexcept nogil:
    """dy[p] = dout[p] * act'(g * x[p] + b); dy may alias dout."""
    cdef Py_ssize_t p
    cdef floating y
    if floating is float:
        convlab_dact_row(dout, x, dy, P, g, b, act, alpha)
    elif act == 1:
        for p in range(P):
            y = g * x[p] + b
            dy[p] = dout[p] if y > 0 else 0
    elif act == 2:
        for p in range(P):
            y = g * x[p] + b
            dy[p] = dout[p] if y > 0 else alpha * dout[p]
    elif act == 3:
        for p in range(P):
            dy[p] = dout[p] * _dgelu(g * x[p] + b)
    else:
        for p in range(P):
            dy[p] = dout[p]


# ------------------------------------------------------------------ kernels

def bn_act_forward_train(const floating[:, :, ::1] x, const floating[::1] gamma,
                         const floating[::1] beta, double eps, int act, double alpha,
                         floating[:, :, ::1] out, double[::1] mean, double[::1] invstd):
    """Batch norm with batch statistics, then an activation.

    Parameters
    ----------
    x : ndarray of shape (N, C, P), C-contiguous (``P = H * W``)
    gamma, beta : ndarray of shape (C,), same dtype as ``x``
    eps : float
    act : int
        Activation code (see the module docstring); ``alpha`` its slope.
    out : ndarray of shape (N, C, P)
        Output buffer, fully overwritten.
    mean, invstd : ndarray of shape (C,), float64
        Output: the batch mean and ``1 / sqrt(var + eps)`` (biased variance)
        per channel.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2]
    cdef Py_ssize_t n, c, p
    cdef double s, ss, m, inv, M = N * P
    cdef floating mr, d, g, b
    cdef const floating* xr
    with nogil:
        for c in prange(C, schedule="static", num_threads=pick_threads(<double>N * C * P, ELEMENTS_PER_THREAD, 0)):
            s = 0.0
            for n in range(N):
                xr = &x[n, c, 0]
                for p in range(P):
                    s = s + xr[p]
            m = s / M
            mr = <floating>m
            ss = 0.0
            for n in range(N):
                xr = &x[n, c, 0]
                for p in range(P):
                    d = xr[p] - mr
                    ss = ss + d * d
            inv = 1.0 / sqrt(ss / M + eps)
            mean[c] = m
            invstd[c] = inv
            g = <floating>(gamma[c] * inv)
            b = <floating>(beta[c] - gamma[c] * inv * m)
            for n in range(N):
                _row_act(&x[n, c, 0], &out[n, c, 0], P, g, b, act, <floating>alpha)


def scale_shift_act(const floating[:, :, ::1] x, const floating[::1] scale,
                    const floating[::1] shift, int act, double alpha, floating[:, :, ::1] out):
    """``out = act(scale[c] * x + shift[c])``: batch norm in test mode.

    Parameters
    ----------
    x, out : ndarray of shape (N, C, P), same dtype
    scale, shift : ndarray of shape (C,), same dtype
    act, alpha : activation code and slope
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef Py_ssize_t P = x.shape[2], nc, n, c
    with nogil:
        for nc in prange(N * C, schedule="static", num_threads=pick_threads(<double>N * C * P, ELEMENTS_PER_THREAD, 0)):
            n = nc // C
            c = nc % C
            _row_act(&x[n, c, 0], &out[n, c, 0], P, scale[c], shift[c], act, <floating>alpha)


def act_backward(const floating[:, :, ::1] dout, const floating[:, :, ::1] x,
                 const floating[::1] scale, const floating[::1] shift, int act, double alpha,
                 floating[:, :, ::1] dy):
    """Backward of :func:`scale_shift_act` through the activation only.

    ``dy = dout * act'(scale[c] * x + shift[c])``; ``dy`` may alias ``dout``.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef Py_ssize_t P = x.shape[2], nc, n, c
    with nogil:
        for nc in prange(N * C, schedule="static", num_threads=pick_threads(<double>N * C * P, ELEMENTS_PER_THREAD, 0)):
            n = nc // C
            c = nc % C
            _row_dact(&dout[n, c, 0], &x[n, c, 0], &dy[n, c, 0], P,
                      scale[c], shift[c], act, <floating>alpha)


def bn_act_backward(const floating[:, :, ::1] dout, const floating[:, :, ::1] x,
                    const double[::1] mean, const double[::1] invstd,
                    const floating[::1] gamma, const floating[::1] beta, int act, double alpha,
                    floating[:, :, ::1] dx, double[::1] dgamma, double[::1] dbeta):
    """Backward pass of :func:`bn_act_forward_train`.

    Parameters
    ----------
    dout : ndarray of shape (N, C, P)
        Upstream gradient of the activation output.
    x : ndarray of shape (N, C, P)
        The forward input.
    mean, invstd : ndarray of shape (C,), float64
        As returned by the forward pass.
    gamma, beta : ndarray of shape (C,)
    act, alpha : activation code and slope
    dx : ndarray of shape (N, C, P)
        Output buffer; may be the same array as ``dout`` (every element is
        read before it is overwritten, by the same thread).
    dgamma, dbeta : ndarray of shape (C,), float64
        Output gradients of the scale and shift.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2]
    cdef Py_ssize_t n, c, p
    cdef double sdy, sdyx, M = N * P
    cdef floating g, b, mr, ir, k0, k1, k2
    cdef const floating* xr
    cdef floating* dr
    with nogil:
        for c in prange(C, schedule="static", num_threads=pick_threads(<double>N * C * P, ELEMENTS_PER_THREAD, 0)):
            mr = <floating>mean[c]
            ir = <floating>invstd[c]
            g = <floating>(gamma[c] * invstd[c])
            b = <floating>(beta[c] - gamma[c] * invstd[c] * mean[c])
            sdy = 0.0
            sdyx = 0.0
            for n in range(N):
                xr = &x[n, c, 0]
                dr = &dx[n, c, 0]
                _row_dact(&dout[n, c, 0], xr, dr, P, g, b, act, <floating>alpha)
                if floating is float:
                    convlab_dot_row(dr, xr, P, mr, &sdy, &sdyx)
                else:
                    for p in range(P):
                        sdy = sdy + dr[p]
                        sdyx = sdyx + dr[p] * (xr[p] - mr)
            sdyx = sdyx * invstd[c]
            dbeta[c] = sdy
            dgamma[c] = sdyx
            # dx = gamma*inv * (dy - sdy/M - (x - mean)*inv * sdyx/M)
            k0 = <floating>(gamma[c] * invstd[c])
            k1 = <floating>(sdy / M)
            k2 = <floating>(invstd[c] * sdyx / M)
            for n in range(N):
                xr = &x[n, c, 0]
                dr = &dx[n, c, 0]
                for p in range(P):
                    dr[p] = k0 * (dr[p] - k1 - (xr[p] - mr) * k2)

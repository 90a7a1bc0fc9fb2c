"""The fast layers agree with the naive oracle in :mod:`convlab.layers`.

Property tests draw random shapes, strides, pads, filter and window sizes and
compare every output and gradient of :mod:`convlab.fast_layers` with the
naive loops, on each SIMD path of the kernels this CPU can run.  float64 must agree to a few ulps of the result's norm; float32
is compared normwise (``||fast - naive|| / ||naive||``), because an
elementwise relative error is meaningless for entries that are near zero.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from convlab import fast_layers, layers, modern_layers
from convlab._fast import conv as conv_kernels
from convlab._fast import im2col as im2col_kernels
from convlab._fast import pool as pool_kernels
from convlab.fast_layers import (
    activation_backward_fast,
    activation_forward_fast,
    conv_backward_fast,
    conv_backward_im2col,
    conv_backward_input_fast,
    conv_backward_weights_fast,
    conv_forward_fast,
    conv_forward_im2col,
    max_pool_backward_fast,
    max_pool_floor_backward_fast,
    max_pool_floor_forward_fast,
    max_pool_forward_fast,
    spatial_batchnorm_act_backward_fast,
    spatial_batchnorm_act_forward_fast,
)

# Every test runs once per SIMD path of the kernels (plain C, portable vectors, AVX2).
pytestmark = pytest.mark.usefixtures("simd_path")

# Normwise relative tolerance per dtype: float32 has eps ~ 6e-8, float64 ~ 1e-16.
TOL = {np.float32: 1e-5, np.float64: 1e-12}

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_close_normwise(actual, expected, dtype, what, magnitude=None):
    """Check ``||actual - expected|| <= tol * ||magnitude||`` and the dtype of ``actual``.

    ``magnitude`` defaults to ``expected``.  For sums that may cancel, pass
    the same sums of *absolute values* (see :func:`conv_magnitudes`): rounding
    a sum of ``n`` terms can err by up to about ``n * eps * sum |term|``, which
    is far more than ``eps * |sum|`` when the terms cancel -- a bias gradient
    summed from a dozen standard-normal numbers can come out near zero.
    """
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    if magnitude is None:
        magnitude = expected
    diff = np.linalg.norm((actual.astype(np.float64) - expected.astype(np.float64)).ravel())
    scale = np.linalg.norm(magnitude.astype(np.float64).ravel())
    assert diff <= TOL[dtype] * max(scale, np.finfo(dtype).tiny), (
        f"{what}: ||fast - naive|| = {diff:.3e}, scale ||sum of |terms| || = {scale:.3e}"
    )


def conv_magnitudes(x, w, b, conv_param, dout):
    """The naive convolution's ``out, dx, dw, db`` computed from absolute values.

    Every output of a convolution and of its gradients is a sum of products;
    these are the sums of the products' absolute values, the scale against
    which rounding errors are measured (float64, so they are exact enough).
    """
    f64 = [np.abs(a).astype(np.float64) for a in (x, w, b, dout)]
    out, cache = layers.conv_forward_naive(f64[0], f64[1], f64[2], conv_param)
    return (out, *layers.conv_backward_naive(f64[3], cache))


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------


@st.composite
def conv_problems(draw, strides=st.integers(1, 3)):
    """A random valid convolution: shapes, stride (drawn from ``strides``), pad, dtype and a seed."""
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 4))
    F = draw(st.integers(1, 4))
    HH = draw(st.integers(1, 5))
    WW = draw(st.integers(1, 5))
    stride = draw(strides)
    pad = draw(st.integers(0, 3))
    H_out = draw(st.integers(1, 6))
    W_out = draw(st.integers(1, 6))
    # Choose the output size, then the input size that the filter tiles exactly.
    H = (H_out - 1) * stride + HH - 2 * pad
    W = (W_out - 1) * stride + WW - 2 * pad
    assume(H >= 1 and W >= 1)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    return (N, C, H, W), (F, C, HH, WW), {"stride": stride, "pad": pad}, dtype, seed


@st.composite
def pool_problems(draw):
    """A random valid max pooling (windows may overlap or be non-square)."""
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 3))
    ph = draw(st.integers(1, 4))
    pw = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    H_out = draw(st.integers(1, 6))
    W_out = draw(st.integers(1, 6))
    H = (H_out - 1) * stride + ph
    W = (W_out - 1) * stride + pw
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    ties = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return (N, C, H, W), {"pool_height": ph, "pool_width": pw, "stride": stride}, dtype, ties, seed


def random_conv_arrays(x_shape, w_shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return rng, x, w, b


def random_pool_input(x_shape, dtype, ties, seed):
    """Random input; with ``ties`` a handful of integer values, so windows tie often."""
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(-2, 3, size=x_shape).astype(dtype)
    else:
        x = rng.standard_normal(x_shape).astype(dtype)
    return rng, x


def check_conv(x, w, b, conv_param, dout, dtype, forward=conv_forward_fast, backward=conv_backward_fast,
               inputs=None):
    """Compare a convolution layer pair with the naive one: output and all three gradients.

    ``inputs`` (default ``(x, w, b)``) are what the layer under test is
    given, e.g. non-contiguous views of the same values.
    """
    out_naive, cache_naive = layers.conv_forward_naive(x, w, b, conv_param)
    out, cache = forward(*(inputs or (x, w, b)), conv_param)
    magnitudes = conv_magnitudes(x, w, b, conv_param, dout)
    assert_close_normwise(out, out_naive, dtype, "out", magnitudes[0])
    grads_naive = layers.conv_backward_naive(dout, cache_naive)
    for name, g, g_naive, mag in zip(("dx", "dw", "db"), backward(dout, cache), grads_naive, magnitudes[1:]):
        assert_close_normwise(g, g_naive, dtype, name, mag)


def check_pool(x, pool_param, dout):
    """Compare fast and naive max pooling; both passes must agree exactly."""
    out_naive, cache_naive = layers.max_pool_forward_naive(x, pool_param)
    out_fast, cache_fast = max_pool_forward_fast(x, pool_param)
    assert out_fast.dtype == x.dtype
    np.testing.assert_array_equal(out_fast, out_naive)
    dx_naive = layers.max_pool_backward_naive(dout, cache_naive)
    dx_fast = max_pool_backward_fast(dout, cache_fast)
    assert dx_fast.dtype == x.dtype
    # Same winners, same summation order for overlapping windows: bitwise equal.
    np.testing.assert_array_equal(dx_fast, dx_naive)


# --------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------


@SETTINGS
@given(conv_problems())
def test_conv_matches_naive(problem):
    x_shape, w_shape, conv_param, dtype, seed = problem
    rng, x, w, b = random_conv_arrays(x_shape, w_shape, dtype, seed)
    out_shape = layers.conv_forward_naive(x, w, b, conv_param)[0].shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    check_conv(x, w, b, conv_param, dout, dtype)


@settings(max_examples=30, deadline=None)
@given(conv_problems())
def test_conv_im2col_layers_match_naive(problem):
    """The textbook full-im2col + BLAS layers (kept for comparison) are correct too."""
    x_shape, w_shape, conv_param, dtype, seed = problem
    rng, x, w, b = random_conv_arrays(x_shape, w_shape, dtype, seed)
    out_shape = layers.conv_forward_naive(x, w, b, conv_param)[0].shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    check_conv(x, w, b, conv_param, dout, dtype, conv_forward_im2col, conv_backward_im2col)


@settings(max_examples=25, deadline=None)
@given(conv_problems())
def test_conv_non_contiguous_inputs(problem):
    """Strided views and Fortran-ordered arrays give the same answer as copies."""
    x_shape, w_shape, conv_param, dtype, seed = problem
    rng, x, w, b = random_conv_arrays(x_shape, w_shape, dtype, seed)
    # Every second column of a wider array, a Fortran-ordered w, a strided b.
    x_wide = np.repeat(x, 2, axis=3)
    x_wide[..., 1::2] = np.nan  # would poison the result if read
    x_view = x_wide[..., ::2]
    w_f = np.asfortranarray(w)
    b_view = np.repeat(b, 3)[::3]
    out_shape = layers.conv_forward_naive(x, w, b, conv_param)[0].shape
    dout = np.swapaxes(rng.standard_normal(out_shape[:2] + out_shape[:1:-1]).astype(dtype), 2, 3)
    check_conv(x, w, b, conv_param, dout, dtype, inputs=(x_view, w_f, b_view))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, w_shape, stride, pad",
    [
        ((2, 3, 4, 4), (2, 3, 1, 1), 1, 3),  # 1x1 filter, wide pad: the border is bias only
        ((2, 2, 3, 3), (3, 2, 7, 7), 1, 2),  # filter exactly covers the padded input
        ((1, 1, 1, 1), (1, 1, 3, 3), 1, 1),  # a single pixel, all neighbours padding
        ((2, 2, 5, 5), (2, 2, 3, 3), 4, 1),  # stride larger than the filter: pixels skipped
        ((1, 3, 2, 6), (2, 3, 2, 4), 2, 0),  # non-square input and filter
        ((2, 2, 6, 6), (3, 2, 6, 6), 1, 0),  # filter as large as the input, no pad
        ((1, 2, 4, 4), (1, 2, 5, 5), 3, 2),  # stride 3 with pad 2
    ],
)
def test_conv_padding_edge_cases(x_shape, w_shape, stride, pad, dtype):
    rng, x, w, b = random_conv_arrays(x_shape, w_shape, dtype, seed=7)
    conv_param = {"stride": stride, "pad": pad}
    out_shape = layers.conv_forward_naive(x, w, b, conv_param)[0].shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    check_conv(x, w, b, conv_param, dout, dtype)


def test_conv_wide_pad_border_is_bias():
    """With a 1x1 filter and pad 2, the outer two rings of the output are the bias."""
    rng, x, w, b = random_conv_arrays((2, 3, 4, 4), (5, 3, 1, 1), np.float64, seed=3)
    out, _ = conv_forward_fast(x, w, b, {"stride": 1, "pad": 2})
    border = np.ones((8, 8), dtype=bool)
    border[2:6, 2:6] = False
    np.testing.assert_array_equal(out[:, :, border], np.broadcast_to(b[None, :, None], (2, 5, border.sum())))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, w_shape, stride, pad",
    [
        ((4, 16, 9, 9), (8, 16, 3, 3), 1, 1),  # more channels than filters: flipped-conv dx
        ((2, 5, 19, 21), (7, 5, 3, 3), 1, 1),  # rows of 21 pixels: vector blocks plus tails
        ((2, 3, 12, 12), (10, 3, 7, 7), 1, 3),  # the 7x7 stem shape, smaller
        ((3, 6, 17, 17), (13, 6, 3, 3), 2, 1),  # stride 2, 13 filters (partial panels)
        ((9, 20, 8, 8), (3, 20, 1, 1), 1, 0),  # 1x1 filters; 9 images span two dw chunks
        # as many filters as channels, K = 288 > KC and 440 padded-grid pixels > NC:
        # implicit GEMM with several tap and pixel blocks, flipped-conv dx
        ((2, 32, 20, 20), (32, 32, 3, 3), 1, 1),
    ],
)
def test_conv_larger_problems_match_naive(x_shape, w_shape, stride, pad, dtype):
    """Bigger cases than hypothesis draws, reaching the kernels' vector and blocking paths."""
    rng, x, w, b = random_conv_arrays(x_shape, w_shape, dtype, seed=11)
    conv_param = {"stride": stride, "pad": pad}
    out_shape = layers.conv_forward_naive(x, w, b, conv_param)[0].shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    check_conv(x, w, b, conv_param, dout, dtype)


@settings(max_examples=40, deadline=None)
@given(conv_problems(strides=st.just(1)), st.integers(1, 40))
def test_conv_forward_implicit_gemm_equals_packed_columns(problem, channels):
    """For stride 1 both forward strategies of the kernel give the same bits.

    They sum the same products in the same order, so any difference is an
    indexing bug: a wrong tap offset, a lost row tail or a bias not added.
    Up to 40 channels of 3x3 and larger filters reach K > KC (several tap
    blocks); the naive layer checks that the shared answer is right.
    """
    (N, _, H, W), (F, _, HH, WW), conv_param, dtype, seed = problem
    rng, x, w, b = random_conv_arrays((N, channels, H, W), (F, channels, HH, WW), dtype, seed)
    pad = conv_param["pad"]
    out_shape = (N, F, H + 2 * pad - HH + 1, W + 2 * pad - WW + 1)
    outs = {}
    for implicit in (False, True):
        outs[implicit] = np.full(out_shape, np.nan, dtype=dtype)  # every element must be written
        conv_kernels.conv_forward(x, w, b, outs[implicit], 1, pad, pad, implicit=implicit)
    np.testing.assert_array_equal(outs[True], outs[False])
    magnitude = conv_magnitudes(x, w, b, conv_param, np.zeros(out_shape))[0]
    assert_close_normwise(outs[True], layers.conv_forward_naive(x, w, b, conv_param)[0], dtype, "out",
                          magnitude)


@settings(max_examples=40, deadline=None)
@given(conv_problems(strides=st.just(1)), st.integers(1, 40), st.integers(1, 20))
def test_conv_weight_gradient_implicit_gemm_matches_packed_and_naive(problem, channels, images):
    """Both stride-1 strategies of the dw kernel agree with the naive layer.

    Up to 20 images span several fixed chunks; up to 40 channels reach
    several MR-tap panels with a partial last one.
    """
    (_, _, H, W), (F, _, HH, WW), conv_param, dtype, seed = problem
    rng, x, w, b = random_conv_arrays((images, channels, H, W), (F, channels, HH, WW), dtype, seed)
    out, cache = layers.conv_forward_naive(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    _, dw_naive, db_naive = layers.conv_backward_naive(dout, cache)
    _, _, dw_mag, db_mag = conv_magnitudes(x, w, b, conv_param, dout)
    for implicit in (False, True):
        dw, db = conv_kernels.conv_backward_weights(x, dout, HH, WW, 1, conv_param["pad"],
                                                    implicit=implicit)
        assert_close_normwise(dw.reshape(w.shape), dw_naive, dtype, f"dw (implicit={implicit})", dw_mag)
        assert_close_normwise(db, db_naive, dtype, f"db (implicit={implicit})", db_mag)


def test_implicit_gemm_needs_stride_one():
    x = np.zeros((1, 2, 7, 7))
    w = np.zeros((3, 2, 3, 3))
    out = np.empty((1, 3, 3, 3))
    with pytest.raises(ValueError, match="implicit GEMM needs stride 1, got stride 2"):
        conv_kernels.conv_forward(x, w, np.zeros(3), out, 2, 0, 0, implicit=True)
    with pytest.raises(ValueError, match="implicit GEMM needs stride 1, got stride 2"):
        conv_kernels.conv_backward_weights(x, np.zeros((1, 3, 3, 3)), 3, 3, 2, 0, implicit=True)


# --------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------


@SETTINGS
@given(pool_problems())
def test_max_pool_matches_naive(problem):
    x_shape, pool_param, dtype, ties, seed = problem
    rng, x = random_pool_input(x_shape, dtype, ties, seed)
    out_shape = layers.max_pool_forward_naive(x, pool_param)[0].shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    check_pool(x, pool_param, dout)


@settings(max_examples=30, deadline=None)
@given(
    N=st.integers(1, 3), C=st.integers(1, 3), H_out=st.integers(1, 9), W_out=st.integers(1, 9),
    dtype=st.sampled_from([np.float32, np.float64]), ties=st.booleans(), seed=st.integers(0, 2**32 - 1),
)
def test_max_pool_2x2_fast_path_matches_naive(N, C, H_out, W_out, dtype, ties, seed):
    """The 2x2 stride-2 kernels (their own code path) agree with the oracle, ties included."""
    rng, x = random_pool_input((N, C, 2 * H_out, 2 * W_out), dtype, ties, seed)
    dout = rng.standard_normal((N, C, H_out, W_out)).astype(dtype)
    check_pool(x, {"pool_height": 2, "pool_width": 2, "stride": 2}, dout)


@settings(max_examples=25, deadline=None)
@given(pool_problems())
def test_max_pool_non_contiguous_inputs(problem):
    x_shape, pool_param, dtype, ties, seed = problem
    rng, x = random_pool_input(x_shape, dtype, ties, seed)
    x_t = np.ascontiguousarray(np.swapaxes(x, 0, 1))
    x_view = np.swapaxes(x_t, 0, 1)  # same values, channel-major memory
    out_shape = layers.max_pool_forward_naive(x, pool_param)[0].shape
    dout_wide = rng.standard_normal(out_shape[:3] + (2 * out_shape[3],)).astype(dtype)
    dout_view = dout_wide[..., ::2]
    out_fast, cache = max_pool_forward_fast(x_view, pool_param)
    out_naive, cache_naive = layers.max_pool_forward_naive(x, pool_param)
    np.testing.assert_array_equal(out_fast, out_naive)
    np.testing.assert_array_equal(
        max_pool_backward_fast(dout_view, cache),
        layers.max_pool_backward_naive(np.ascontiguousarray(dout_view), cache_naive),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_ties_go_to_first_maximum(dtype):
    """A constant window sends all of its gradient to its top-left element."""
    x = np.zeros((1, 1, 4, 4), dtype=dtype)
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = max_pool_forward_fast(x, pool_param)
    dx = max_pool_backward_fast(np.ones_like(out), cache)
    expected = np.zeros((4, 4), dtype=dtype)
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_max_pool_overlapping_windows_accumulate():
    """One maximum shared by four overlapping 2x2 windows gets all four gradients."""
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0
    out, cache = max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 1})
    np.testing.assert_array_equal(out[0, 0], np.full((2, 2), 5.0))
    dout = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    dx = max_pool_backward_fast(dout, cache)
    assert dx[0, 0, 1, 1] == 10.0 and np.count_nonzero(dx) == 1


@pytest.mark.parametrize("pool_param", [
    {"pool_height": 2, "pool_width": 2, "stride": 2},  # the 2x2 fast path
    {"pool_height": 2, "pool_width": 3, "stride": 1},  # the general path
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_nan_matches_naive(pool_param, dtype):
    """NaNs win their windows, the first NaN taking the gradient, in both code paths.

    Rows of 20 columns give the 2x2 kernel 10 windows per row: full vectors
    (8 floats or 4 doubles) and a scalar tail.
    """
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 6, 20)).astype(dtype)
    x[rng.random(x.shape) < 0.15] = np.nan
    out_shape = layers.max_pool_forward_naive(x, pool_param)[0].shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    out_naive, cache_naive = layers.max_pool_forward_naive(x, pool_param)
    out_fast, cache_fast = max_pool_forward_fast(x, pool_param)
    np.testing.assert_array_equal(out_fast, out_naive)  # NaNs compare equal here
    np.testing.assert_array_equal(
        max_pool_backward_fast(dout, cache_fast), layers.max_pool_backward_naive(dout, cache_naive)
    )


def test_max_pool_negative_infinity_and_nan():
    """-inf can be a window's maximum; a NaN wins its window as with np.max."""
    x = np.full((1, 1, 2, 4), -np.inf)
    x[0, 0, 1, 3] = np.nan
    out, cache = max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    assert out[0, 0, 0, 0] == -np.inf and np.isnan(out[0, 0, 0, 1])
    dx = max_pool_backward_fast(np.array([[[[1.0, 2.0]]]]), cache)
    assert dx[0, 0, 0, 0] == 1.0 and dx[0, 0, 1, 3] == 2.0 and np.count_nonzero(dx) == 2


# --------------------------------------------------------------------------
# Thread-count independence
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_do_not_depend_on_thread_count(dtype):
    """The Cython kernels give bitwise-identical results on 1 and 2 threads.

    The dw call sums 21 images, i.e. several fixed chunks of partial sums.
    """
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 11, 9)).astype(dtype)
    HH, WW, stride, pad = 3, 3, 2, 1
    K, P = 4 * HH * WW, 6 * 5
    w = rng.standard_normal((5, 4, HH, WW)).astype(dtype)
    results = {}
    for threads in (1, 2):
        cols = np.empty((3, K, P), dtype=dtype)
        im2col_kernels.im2col(x, cols, HH, WW, stride, pad, num_threads=threads)
        dx = np.empty_like(x)
        im2col_kernels.col2im(cols, dx, HH, WW, stride, pad, num_threads=threads)
        out = np.empty((3, 4, 9, 7), dtype=dtype)
        argmax = np.empty(out.shape, dtype=np.int32)
        pool_kernels.max_pool_forward(x, out, argmax, 3, 3, 1, num_threads=threads)
        dpool = np.empty_like(x)
        pool_kernels.max_pool_backward(out, argmax, dpool, num_threads=threads)
        y = np.empty((3, 5, 6, 5), dtype=dtype)
        conv_kernels.conv_forward(x, w, w[:, 0, 0, 0].copy(), y, stride, pad, pad, num_threads=threads)
        dw, db = conv_kernels.conv_backward_weights(np.repeat(x, 7, axis=0), np.repeat(y, 7, axis=0),
                                                HH, WW, stride, pad, num_threads=threads)
        dx_conv = np.empty_like(x)
        conv_kernels.conv_backward_input_col2im(y, w, dx_conv, stride, pad, num_threads=threads)
        y_implicit = np.empty((3, 5, 11, 9), dtype=dtype)  # stride 1, pad 1: the implicit GEMM
        conv_kernels.conv_forward(x, w, w[:, 0, 0, 0].copy(), y_implicit, 1, 1, 1,
                                  num_threads=threads, implicit=True)
        results[threads] = (cols, dx, out, argmax, dpool, y, dw, db, dx_conv, y_implicit)
    for a, b in zip(results[1], results[2]):
        np.testing.assert_array_equal(a, b)


@st.composite
def conv_with_one_special_value(draw):
    """A convolution problem and one infinity or NaN placed at random in ``x``, ``w`` or ``dout``.

    Strides 1 and 2, and as many problems with fewer filters than channels as
    with more (the stride-1 ``dx`` takes the flipped convolution for those).
    """
    problem = draw(conv_problems(strides=st.integers(1, 2)))
    x_shape, w_shape, conv_param, dtype, seed = problem
    if draw(st.booleans()):  # fewer filters than channels
        C = draw(st.integers(2, 5))
        F = draw(st.integers(1, C - 1))
        x_shape, w_shape = x_shape[:1] + (C,) + x_shape[2:], (F, C) + w_shape[2:]
    where = draw(st.sampled_from(["x", "w", "dout"]))
    value = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
    position = draw(st.integers(0, 2**31))  # taken modulo the array's size
    return x_shape, w_shape, conv_param, dtype, seed, where, value, position


def _special_values(a):
    """Where ``a`` is NaN, +inf and -inf."""
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


@SETTINGS
@given(conv_with_one_special_value())
def test_conv_nan_and_inf_land_where_the_naive_layer_puts_them(problem):
    """One inf or NaN in ``x``, ``w`` or ``dout`` makes the same outputs NaN or infinite as in the naive layer.

    (A sum with an infinite term is infinite, or NaN if terms of both signs
    meet; 0 times an infinity is NaN.  The naive layer multiplies exactly the
    pairs the definition names, so a kernel that multiplies an infinity by
    a padding zero of its own shows up here.)
    """
    x_shape, w_shape, conv_param, dtype, seed, where, value, position = problem
    rng, x, w, b = random_conv_arrays(x_shape, w_shape, dtype, seed)
    out_naive, cache_naive = layers.conv_forward_naive(x, w, b, conv_param)
    dout = rng.standard_normal(out_naive.shape).astype(dtype)
    arrays = {"x": x, "w": w, "dout": dout}
    arrays[where].flat[position % arrays[where].size] = value
    with np.errstate(invalid="ignore"):
        out_naive, cache_naive = layers.conv_forward_naive(x, w, b, conv_param)
        naive = (out_naive, *layers.conv_backward_naive(dout, cache_naive))
        out, cache = conv_forward_fast(x, w, b, conv_param)
        fast = (out, *conv_backward_fast(dout, cache))
    for name, got, want in zip(("out", "dx", "dw", "db"), fast, naive):
        for kind, got_mask, want_mask in zip(("NaN", "+inf", "-inf"), _special_values(got), _special_values(want)):
            np.testing.assert_array_equal(got_mask, want_mask,
                                          err_msg=f"{kind} positions of {name} ({value} in {where})")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_infinite_weight_leaves_the_rest_of_dx_finite(dtype):
    """The issue's case: stride 1, fewer filters than channels, one inf weight.

    The naive ``dx`` is infinite where that weight reaches and finite
    elsewhere: the outer ring of the channel, which the tap at a corner of
    the filter never reaches, stays finite.
    """
    rng, x, w, b = random_conv_arrays((2, 8, 10, 10), (4, 8, 3, 3), dtype, seed=5)
    w[1, 2, 0, 0] = np.inf
    out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    with np.errstate(invalid="ignore"):
        dx, _, _ = conv_backward_fast(rng.standard_normal(out.shape).astype(dtype), cache)
    assert np.isfinite(np.delete(dx, 2, axis=1)).all()
    assert np.isfinite(dx[:, 2, -1, :]).all() and np.isfinite(dx[:, 2, :, -1]).all()
    assert np.isinf(dx[:, 2, :-1, :-1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_agree_on_one_and_two_threads(dtype):
    """The layers agree on 1 and 2 threads (OpenMP limited with threadpoolctl).

    The problems are large enough (over 2 x 1e7 flop for the convolution,
    2**21 elements for the pooling) that the kernels really use 2 threads
    when allowed to.
    """
    rng, x, w, b = random_conv_arrays((32, 32, 16, 16), (48, 32, 3, 3), dtype, seed=9)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    dout = rng.standard_normal((32, 48, 16, 16)).astype(dtype)
    pool_x = rng.standard_normal((64, 32, 32, 32)).astype(dtype)
    dpool = rng.standard_normal((64, 32, 16, 16)).astype(dtype)
    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            out, cache = conv_forward_fast(x, w, b, conv_param)
            grads = conv_backward_fast(dout, cache)
            pooled, pcache = max_pool_forward_fast(pool_x, pool_param)
            dpooled = max_pool_backward_fast(dpool, pcache)
        results.append((out, *grads, pooled, dpooled))
    # Every output element is computed by one thread in a fixed order: bitwise equal.
    for name, one, two in zip(("out", "dx", "dw", "db", "pooled", "dpooled"), *results):
        np.testing.assert_array_equal(one, two, err_msg=name)


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    rng, x, w, b = random_conv_arrays((2, 3, 8, 8), (4, 3, 3, 3), dtype, seed=1)
    out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    dx, dw, db = conv_backward_fast(out, cache)
    pooled, pcache = max_pool_forward_fast(out, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dpool = max_pool_backward_fast(pooled, pcache)
    for arr in (out, dx, dw, db, pooled, dpool):
        assert arr.dtype == np.dtype(dtype)


def test_mixed_dtypes_promote_to_float64():
    """float32 images with float64 filters compute in float64, like NumPy would."""
    rng, x, w, b = random_conv_arrays((1, 2, 5, 5), (3, 2, 3, 3), np.float64, seed=2)
    out, _ = conv_forward_fast(x.astype(np.float32), w, b, {"stride": 1, "pad": 1})
    assert out.dtype == np.float64


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------

GOOD_X = np.zeros((2, 3, 8, 8))
GOOD_W = np.zeros((4, 3, 3, 3))
GOOD_B = np.zeros(4)
GOOD_CONV = {"stride": 1, "pad": 1}
GOOD_POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


@pytest.mark.parametrize(
    "x, w, b, conv_param, match",
    [
        (np.zeros((3, 8, 8)), GOOD_W, GOOD_B, GOOD_CONV, "x must have shape"),
        (GOOD_X, np.zeros((4, 3, 3)), GOOD_B, GOOD_CONV, "w must have shape"),
        (GOOD_X, np.zeros((4, 2, 3, 3)), GOOD_B, GOOD_CONV, "same number of channels"),
        (GOOD_X, GOOD_W, np.zeros(5), GOOD_CONV, "b must have shape"),
        (GOOD_X, GOOD_W, np.zeros((4, 1)), GOOD_CONV, "b must have shape"),
        (GOOD_X, GOOD_W, GOOD_B, {"stride": 0, "pad": 1}, "stride"),
        (GOOD_X, GOOD_W, GOOD_B, {"stride": -1, "pad": 1}, "stride"),
        (GOOD_X, GOOD_W, GOOD_B, {"stride": 1, "pad": -1}, "pad"),
        (GOOD_X, GOOD_W, GOOD_B, {"stride": 1.5, "pad": 1}, "integer"),
        (GOOD_X, GOOD_W, GOOD_B, {"pad": 1}, "stride"),
        (GOOD_X, GOOD_W, GOOD_B, {"stride": 1}, "pad"),
        (GOOD_X, np.zeros((4, 3, 11, 11)), GOOD_B, GOOD_CONV, "larger than the padded input"),
        (GOOD_X, GOOD_W, GOOD_B, {"stride": 2, "pad": 0}, "does not tile"),
    ],
)
def test_conv_forward_rejects_bad_input(x, w, b, conv_param, match):
    with pytest.raises(ValueError, match=match):
        conv_forward_fast(x, w, b, conv_param)


@pytest.mark.parametrize("forward", [conv_forward_fast, conv_forward_im2col])
@pytest.mark.parametrize("name", ["x", "w", "b"])
def test_conv_forward_rejects_complex_input_naming_it(forward, name):
    inputs = {"x": GOOD_X, "w": GOOD_W, "b": GOOD_B}
    inputs[name] = inputs[name] + 1j
    with pytest.raises(TypeError, match=f"^{name} must be real-valued"):
        forward(**inputs, conv_param=GOOD_CONV)


def _forward_and_dout(layer):
    """``(backward, cache, dout)`` of one fast layer run on small zero input."""
    x, p = np.zeros((2, 3, 8, 8)), np.ones(3)
    forwards = {
        "conv": (lambda: conv_forward_fast(x, GOOD_W, GOOD_B, GOOD_CONV), conv_backward_fast),
        "conv_weights": (lambda: conv_forward_fast(x, GOOD_W, GOOD_B, GOOD_CONV), conv_backward_weights_fast),
        "conv_im2col": (lambda: conv_forward_im2col(x, GOOD_W, GOOD_B, GOOD_CONV), conv_backward_im2col),
        "pool": (lambda: max_pool_forward_fast(x, GOOD_POOL), max_pool_backward_fast),
        "pool_floor": (lambda: max_pool_floor_forward_fast(x), max_pool_floor_backward_fast),
        "activation": (lambda: activation_forward_fast(x, "gelu"), activation_backward_fast),
        "batchnorm": (lambda: spatial_batchnorm_act_forward_fast(x, p, p, {"mode": "train"}),
                      spatial_batchnorm_act_backward_fast),
    }
    forward, backward = forwards[layer]
    out, cache = forward()
    return backward, cache, np.ones_like(out)


@pytest.mark.parametrize("layer", ["conv", "conv_weights", "conv_im2col", "pool", "pool_floor", "activation",
                                   "batchnorm"])
def test_backward_rejects_complex_dout(layer):
    """A complex ``dout`` is an error, not silently cut to its real part."""
    backward, cache, dout = _forward_and_dout(layer)
    with pytest.raises(TypeError, match="^dout must be real-valued"):
        backward(dout + 0.5j, cache)


def test_other_fast_layers_reject_complex_input_naming_it():
    x, p = np.zeros((2, 3, 4, 4)), np.ones(3)
    with pytest.raises(TypeError, match="^x must be real-valued"):
        max_pool_forward_fast(x + 1j, GOOD_POOL)
    with pytest.raises(TypeError, match="^x must be real-valued"):
        max_pool_floor_forward_fast(x + 1j)
    with pytest.raises(TypeError, match="^x must be real-valued"):
        activation_forward_fast(x + 1j)
    with pytest.raises(TypeError, match="^x must be real-valued"):
        spatial_batchnorm_act_forward_fast(x + 1j, p, p, {"mode": "train"})
    for name in ("gamma", "beta"):
        args = {"gamma": p, "beta": p}
        args[name] = p + 1j
        with pytest.raises(TypeError, match=f"^{name} must be real-valued"):
            spatial_batchnorm_act_forward_fast(x, bn_param={"mode": "train"}, **args)


def test_conv_im2col_forward_rejects_bad_input():
    with pytest.raises(ValueError, match="same number of channels"):
        conv_forward_im2col(GOOD_X, np.zeros((4, 2, 3, 3)), GOOD_B, GOOD_CONV)


@pytest.mark.parametrize("forward, backward", [
    (conv_forward_fast, conv_backward_fast),
    (conv_forward_fast, conv_backward_weights_fast),
    (conv_forward_im2col, conv_backward_im2col),
])
def test_conv_backward_rejects_wrong_dout_shape(forward, backward):
    out, cache = forward(GOOD_X, GOOD_W, GOOD_B, GOOD_CONV)
    with pytest.raises(ValueError, match="dout must have the shape"):
        backward(out[:, :, :-1], cache)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, pad", [(1, 1), (2, 0), (2, 3)])
def test_conv_backward_weights_fast_matches_the_naive_dw_db(dtype, stride, pad):
    rng = np.random.default_rng(stride * 10 + pad)
    x = rng.standard_normal((3, 4, 9, 11)).astype(dtype)
    w = rng.standard_normal((5, 4, 3, 3)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    conv_param = {"stride": stride, "pad": pad}
    out, cache = conv_forward_fast(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dw, db = conv_backward_weights_fast(dout, cache)
    _, naive_cache = layers.conv_forward_naive(x, w, b, conv_param)
    _, dw_naive, db_naive = layers.conv_backward_naive(dout, naive_cache)
    assert dw.shape == w.shape and db.shape == b.shape
    assert np.linalg.norm(dw - dw_naive) <= TOL[dtype] * np.linalg.norm(dw_naive)
    assert np.linalg.norm(db - db_naive) <= TOL[dtype] * np.linalg.norm(db_naive)


@pytest.mark.parametrize(
    "x, pool_param, match",
    [
        (np.zeros((3, 8, 8)), GOOD_POOL, "x must have shape"),
        (GOOD_X, {"pool_height": 0, "pool_width": 2, "stride": 2}, "pool_height"),
        (GOOD_X, {"pool_height": 2, "pool_width": -2, "stride": 2}, "pool_width"),
        (GOOD_X, {"pool_height": 2, "pool_width": 2, "stride": 0}, "stride"),
        (GOOD_X, {"pool_height": 2, "pool_width": 2}, "stride"),
        (GOOD_X, {"pool_height": 9, "pool_width": 2, "stride": 1}, "larger than the input"),
        (GOOD_X, {"pool_height": 3, "pool_width": 3, "stride": 2}, "does not tile"),
    ],
)
def test_max_pool_forward_rejects_bad_input(x, pool_param, match):
    with pytest.raises(ValueError, match=match):
        max_pool_forward_fast(x, pool_param)


def test_max_pool_backward_rejects_wrong_dout_shape():
    out, cache = max_pool_forward_fast(GOOD_X, GOOD_POOL)
    with pytest.raises(ValueError, match="dout must have the shape"):
        max_pool_backward_fast(np.zeros((2, 3, 4, 5)), cache)


# --------------------------------------------------------------------------
# Absurd sizes and parameters: a ValueError naming the argument before any
# kernel runs
# --------------------------------------------------------------------------
#
# The kernels take strides and pads as C ints.  ``H + 2 * pad`` once
# overflowed a C int in the kernels: a crash in conv_forward_fast and
# conv_backward_fast, garbage from conv_forward_im2col.


@pytest.mark.parametrize("algorithm", ["direct", "winograd"])
@pytest.mark.parametrize("forward", [conv_forward_fast, conv_forward_im2col, layers.conv_forward_naive])
@pytest.mark.parametrize("w_shape, stride, pad", [((1, 1, 1, 1), 2**30, 2**31 - 1), ((1, 1, 3, 3), 1, 2**30)])
def test_conv_refuses_a_pad_that_overflows_the_padded_size(algorithm, forward, w_shape, stride, pad):
    x, w, b = np.ones((1, 1, 3, 3), np.float32), np.ones(w_shape, np.float32), np.zeros(1, np.float32)
    before = fast_layers.conv_algorithm()
    fast_layers.set_conv_algorithm(algorithm)
    try:
        with pytest.raises(ValueError, match=rf"conv_param\['pad'\] = {pad} pads x"):
            forward(x, w, b, {"stride": stride, "pad": pad})
    finally:
        fast_layers.set_conv_algorithm(before)


@pytest.mark.parametrize("forward", [conv_forward_fast, conv_forward_im2col, layers.conv_forward_naive])
@pytest.mark.parametrize("stride", [2**31, 2**40])
def test_conv_refuses_a_stride_beyond_a_C_int(forward, stride):
    """A 3x3 filter on a 3x3 input tiles it with any stride; one past 2**31 - 1 is refused, not an OverflowError."""
    x, w, b = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), np.zeros(1)
    with pytest.raises(ValueError, match=r"conv_param\['stride'\] must be at most 2\*\*31 - 1"):
        forward(x, w, b, {"stride": stride, "pad": 0})


@pytest.mark.parametrize("forward", [max_pool_forward_fast, layers.max_pool_forward_naive])
@pytest.mark.parametrize("stride", [2**31, 2**40, float("inf")])
def test_max_pool_refuses_a_stride_beyond_a_C_int(forward, stride):
    with pytest.raises(ValueError, match=r"pool_param\['stride'\] must be"):
        forward(np.ones((1, 1, 3, 3)), {"pool_height": 3, "pool_width": 3, "stride": stride})


def test_conv_refuses_a_padded_image_too_large_for_a_work_buffer():
    """Each padded plane fits (46337**2 < 2**31 pixels), but 2**30 + 1 of them in float64 wrap a Py_ssize_t.

    The inputs are broadcast views (nothing is allocated): the check comes
    before the contiguous copies.
    """
    C = 2**30 + 1
    x = np.broadcast_to(np.float64(0), (1, C, 1, 1))
    w = np.broadcast_to(np.float64(0), (1, C, 1, 1))
    with pytest.raises(ValueError, match=r"conv_param\['pad'\] = 23168 pads each image of x .* 1073741825 x 46337 "
                                         r"x 46337 values"):
        conv_forward_fast(x, w, np.zeros(1), {"stride": 1, "pad": 23168})


def test_max_pool_refuses_planes_an_int32_argmax_cannot_index():
    """A plane of 2**31 + 2**16 pixels, as a broadcast view (nothing is allocated)."""
    x = np.broadcast_to(np.float32(0), (1, 1, 2**16, 2**15 + 1))
    with pytest.raises(ValueError, match=r"x of shape \(1, 1, 65536, 32769\) has planes of 65536 x 32769 = "
                                         r"2147549184 pixels; max pooling records each winner as an int32 index"):
        max_pool_forward_fast(x, {"pool_height": 3, "pool_width": 3, "stride": 1})


def test_the_int32_argmax_limit_is_2_to_the_31_minus_1_pixels():
    fast_layers.inputs._check_pool_plane((1, 1, 1, 2**31 - 1), "x")
    fast_layers.inputs._check_pool_plane((1, 1, 46340, 46340), "x")
    with pytest.raises(ValueError, match="int32"):
        fast_layers.inputs._check_pool_plane((1, 1, 1, 2**31), "x")
    with pytest.raises(ValueError, match="int32"):
        fast_layers.inputs._check_pool_plane((1, 1, 46341, 46341), "x")


@pytest.mark.parametrize("eps", [float("nan"), float("inf"), 0.0, -1e-5, "tiny"])
@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("forward", [spatial_batchnorm_act_forward_fast,
                                     modern_layers.spatial_batchnorm_act_forward])
def test_batchnorm_refuses_an_eps_that_is_not_positive_and_finite(forward, mode, eps):
    x, p = np.ones((2, 3, 4, 4)), np.ones(3)
    with pytest.raises(ValueError, match=r"bn_param\['eps'\] must be"):
        forward(x, p, p, {"mode": mode, "eps": eps})


# --------------------------------------------------------------------------
# Empty batches (N = 0), no channels, empty maps: as the naive layers do
# --------------------------------------------------------------------------


def _empty_layer_pairs(C):
    """name -> ((naive forward, naive backward), (fast forward, fast backward)), forwards taking x only."""
    w, b = np.linspace(-1, 1, 2 * C * 9).reshape(2, C, 3, 3), np.array([0.5, -0.5])
    conv = {"stride": 1, "pad": 1}
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    pool3 = {"pool_height": 3, "pool_width": 3, "stride": 1}
    gamma, beta = np.linspace(1, 2, C), np.linspace(-1, 1, C)
    pairs = {
        "conv": ((lambda x: layers.conv_forward_naive(x, w, b, conv), layers.conv_backward_naive),
                 (lambda x: conv_forward_fast(x, w, b, conv), conv_backward_fast)),
        "conv_dx": ((lambda x: layers.conv_forward_naive(x, w, b, conv), lambda d, c: layers.conv_backward_naive(d, c)[0]),
                    (lambda x: conv_forward_fast(x, w, b, conv), conv_backward_input_fast)),
        "conv_dw": ((lambda x: layers.conv_forward_naive(x, w, b, conv), lambda d, c: layers.conv_backward_naive(d, c)[1:]),
                    (lambda x: conv_forward_fast(x, w, b, conv), conv_backward_weights_fast)),
        "conv_im2col": ((lambda x: layers.conv_forward_naive(x, w, b, conv), layers.conv_backward_naive),
                        (lambda x: conv_forward_im2col(x, w, b, conv), conv_backward_im2col)),
        "pool_2x2": ((lambda x: layers.max_pool_forward_naive(x, pool), layers.max_pool_backward_naive),
                     (lambda x: max_pool_forward_fast(x, pool), max_pool_backward_fast)),
        "pool_3x3": ((lambda x: layers.max_pool_forward_naive(x, pool3), layers.max_pool_backward_naive),
                     (lambda x: max_pool_forward_fast(x, pool3), max_pool_backward_fast)),
        "pool_floor": ((modern_layers.max_pool_floor_forward_naive, modern_layers.max_pool_floor_backward_naive),
                       (max_pool_floor_forward_fast, max_pool_floor_backward_fast)),
        "activation": ((lambda x: modern_layers.activation_forward(x, "gelu"), modern_layers.activation_backward),
                       (lambda x: activation_forward_fast(x, "gelu"), activation_backward_fast)),
    }
    for mode in ("train", "test"):
        def bn(forward, mode=mode):
            stats = {"running_mean": np.linspace(-1, 1, C), "running_var": np.linspace(1, 2, C)}
            return lambda x: forward(x, gamma, beta, {"mode": mode, **stats}, "leaky_relu")
        pairs[f"bn_{mode}"] = ((bn(modern_layers.spatial_batchnorm_act_forward),
                                modern_layers.spatial_batchnorm_act_backward),
                               (bn(spatial_batchnorm_act_forward_fast), spatial_batchnorm_act_backward_fast))
    return pairs


EMPTY_SHAPES = [(0, 3, 4, 4), (2, 0, 4, 4), (0, 0, 4, 4), (2, 3, 0, 0)]
EMPTY_LAYERS = sorted(_empty_layer_pairs(1))


@pytest.mark.parametrize("layer", EMPTY_LAYERS)
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
def test_empty_input_behaves_as_in_the_naive_layer(layer, shape):
    """The same outputs and gradients (shapes, dtypes and values), or a ValueError where the naive layer raises one."""
    (naive_forward, naive_backward), (fast_forward, fast_backward) = _empty_layer_pairs(shape[1])[layer]
    x = np.zeros(shape)
    try:
        expected_out, naive_cache = naive_forward(x)
    except ValueError as error:
        # a window larger than an empty map is worded differently; no example in train mode is not
        match = "x must hold at least one example in train mode" if "at least one example" in str(error) else None
        with pytest.raises(ValueError, match=match):
            fast_forward(x)
        return
    out, cache = fast_forward(x)
    dout = np.ones(out.shape)
    got, expected = fast_backward(dout, cache), naive_backward(dout, naive_cache)
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for g, e in zip((out, *got), (expected_out, *expected), strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype, (g.shape, g.dtype, e.shape, e.dtype)
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H, W", [(7, 7), (6, 9), (31, 31), (1, 4)])
def test_max_pool_2x2_kernel_floors_odd_maps(dtype, H, W):
    # The 2x2 kernel ignores an odd last row/column ("floor" pooling, as the
    # ConvNet uses it): the same as pooling the cropped map, with zero
    # gradient for the row/column no window covers.
    rng = np.random.default_rng(H * 100 + W)
    x = rng.standard_normal((2, 3, H, W)).astype(dtype)
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out_shape = (2, 3, H // 2, W // 2)
    out, argmax = np.empty(out_shape, dtype), np.empty(out_shape, np.uint8)
    pool_kernels.max_pool_forward_2x2(x, out, argmax)
    Hc, Wc = 2 * (H // 2), 2 * (W // 2)
    if Hc == 0 or Wc == 0:
        assert out.size == 0
        return
    cropped = np.ascontiguousarray(x[:, :, :Hc, :Wc])
    out_naive, cache = layers.max_pool_forward_naive(cropped, pool_param)
    np.testing.assert_array_equal(out, out_naive)
    dout = rng.standard_normal(out_shape).astype(dtype)
    dx = np.full(x.shape, np.nan, dtype)  # every element must be written
    pool_kernels.max_pool_backward_2x2(dout, argmax, dx)
    expected = np.zeros_like(x)
    expected[:, :, :Hc, :Wc] = layers.max_pool_backward_naive(dout, cache)
    np.testing.assert_array_equal(dx, expected)


def test_max_pool_2x2_kernel_rejects_mismatched_buffers():
    x = np.zeros((2, 3, 7, 8))
    with pytest.raises(ValueError, match=r"needs pooled arrays of shape \(2, 3, 3, 4\)"):
        pool_kernels.max_pool_forward_2x2(x, np.empty((2, 3, 4, 4)), np.empty((2, 3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="needs pooled arrays"):
        pool_kernels.max_pool_backward_2x2(np.zeros((2, 3, 3, 4)), np.zeros((2, 3, 3, 4), np.uint8),
                                           np.empty((2, 3, 8, 8)))


# --------------------------------------------------------------------------
# The network's special layers: floor pooling, activations, batch norm +
# activation
# --------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(2, 13), W=st.integers(2, 13),
       dtype=st.sampled_from([np.float32, np.float64]), ties=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_max_pool_floor_matches_naive(N, C, H, W, dtype, ties, seed):
    """Maps of any size, odd ones included: the same maxima and the same routed gradient."""
    rng, x = random_pool_input((N, C, H, W), dtype, ties, seed)
    out_naive, cache_naive = modern_layers.max_pool_floor_forward_naive(x)
    out, cache = max_pool_floor_forward_fast(x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, out_naive)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = max_pool_floor_backward_fast(dout, cache)
    assert dx.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dx, modern_layers.max_pool_floor_backward_naive(dout, cache_naive))


def test_max_pool_floor_rejects_bad_input():
    with pytest.raises(ValueError, match="x must have shape"):
        max_pool_floor_forward_fast(np.zeros((2, 3, 1, 4)))
    with pytest.raises(ValueError, match="x must have shape"):
        max_pool_floor_forward_fast(np.zeros((3, 5, 5)))
    _, cache = max_pool_floor_forward_fast(np.zeros((2, 3, 5, 5)))
    with pytest.raises(ValueError, match="dout must have the shape"):
        max_pool_floor_backward_fast(np.zeros((2, 3, 3, 3)), cache)


@st.composite
def bn_act_problems(draw):
    """Images of a well-spread scale and offset, the layer's parameters and a seed."""
    N = draw(st.integers(1, 4))
    C = draw(st.integers(1, 4))
    H = draw(st.integers(1, 5))
    W = draw(st.integers(1, 5))
    assume(N * H * W >= 2)
    activation = draw(st.sampled_from(modern_layers.ACTIVATIONS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    return (N, C, H, W), activation, dtype, seed


def bn_act_arrays(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 3, (1, C, 1, 1))
         + rng.uniform(-2, 2, (1, C, 1, 1))).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    return rng, x, gamma, beta, dout


def bn_act_magnitudes(dout, xhat, gamma, inv_std):
    """Scales for ``dx, dgamma, dbeta`` of batch norm in train mode: its sums with absolute values.

    ``dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat))`` and the
    parameter gradients are sums over ``(N, H, W)``; ``|dy| <= 1.2 |dout|``
    for every activation here (GELU's slope peaks at about 1.13).
    """
    ady, axhat = 1.2 * np.abs(dout.astype(np.float64)), np.abs(xhat)
    k = (np.abs(gamma) * inv_std)[None, :, None, None]
    dx = k * (ady + ady.mean(axis=(0, 2, 3), keepdims=True)
              + axhat * (ady * axhat).mean(axis=(0, 2, 3), keepdims=True))
    return dx, (ady * axhat).sum(axis=(0, 2, 3)), ady.sum(axis=(0, 2, 3))


@SETTINGS
@given(bn_act_problems())
def test_spatial_batchnorm_act_train_mode_matches_naive(problem):
    shape, activation, dtype, seed = problem
    rng, x, gamma, beta, dout = bn_act_arrays(shape, dtype, seed)
    C = shape[1]
    alpha = 0.1
    start = {"running_mean": rng.standard_normal(C), "running_var": rng.uniform(0.5, 2, C)}
    bn_naive = {"mode": "train", "momentum": 0.6, **{k: v.copy() for k, v in start.items()}}
    bn_fast = {"mode": "train", "momentum": 0.6, **{k: v.copy() for k, v in start.items()}}
    f64 = [a.astype(np.float64) for a in (x, gamma, beta, dout)]
    out_naive, cache_naive = modern_layers.spatial_batchnorm_act_forward(*f64[:3], bn_naive, activation, alpha)
    dx_naive, dgamma_naive, dbeta_naive = modern_layers.spatial_batchnorm_act_backward(f64[3], cache_naive)

    out, cache = spatial_batchnorm_act_forward_fast(x, gamma, beta, bn_fast, activation, alpha)
    dx, dgamma, dbeta = spatial_batchnorm_act_backward_fast(dout, cache)

    inv_std = 1.0 / np.sqrt(f64[0].var(axis=(0, 2, 3)) + 1e-5)
    xhat = (f64[0] - f64[0].mean(axis=(0, 2, 3), keepdims=True)) * inv_std[None, :, None, None]
    magnitudes = bn_act_magnitudes(dout, xhat, f64[1], inv_std)
    # out = act(gamma * xhat + beta): |act(y)| <= 1.2 |y| bounds its rounding.
    out_scale = 1.2 * (np.abs(f64[1])[None, :, None, None] * np.abs(xhat)
                       + np.abs(f64[2])[None, :, None, None])
    assert_close_normwise(out, out_naive, dtype, "out", out_scale)
    assert_close_normwise(dx, dx_naive, dtype, "dx", magnitudes[0])
    assert_close_normwise(dgamma, dgamma_naive, dtype, "dgamma", magnitudes[1])
    assert_close_normwise(dbeta, dbeta_naive, dtype, "dbeta", magnitudes[2])
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(bn_fast[key], bn_naive[key], rtol=rtol, atol=rtol, err_msg=key)


@SETTINGS
@given(bn_act_problems())
def test_spatial_batchnorm_act_test_mode_matches_naive(problem):
    shape, activation, dtype, seed = problem
    rng, x, gamma, beta, dout = bn_act_arrays(shape, dtype, seed)
    C = shape[1]
    alpha = 0.1
    bn_param = {"mode": "test", "running_mean": rng.standard_normal(C),
                "running_var": rng.uniform(0.5, 2, C)}
    f64 = [a.astype(np.float64) for a in (x, gamma, beta, dout)]
    out_naive, cache_naive = modern_layers.spatial_batchnorm_act_forward(*f64[:3], dict(bn_param),
                                                                  activation, alpha)
    dx_naive, dgamma_naive, dbeta_naive = modern_layers.spatial_batchnorm_act_backward(f64[3], cache_naive)

    out, cache = spatial_batchnorm_act_forward_fast(x, gamma, beta, dict(bn_param), activation, alpha)
    dx, dgamma, dbeta = spatial_batchnorm_act_backward_fast(dout, cache)

    inv_std = 1.0 / np.sqrt(bn_param["running_var"] + 1e-5)
    xhat = (f64[0] - bn_param["running_mean"][None, :, None, None]) * inv_std[None, :, None, None]
    adout = 1.2 * np.abs(f64[3])
    # Test mode is act(scale * x + shift) per channel: its terms bound the rounding.
    scale = f64[1] / np.sqrt(bn_param["running_var"] + 1e-5)
    shift = f64[2] - bn_param["running_mean"] * scale
    scale, shift = scale[None, :, None, None], shift[None, :, None, None]
    assert_close_normwise(out, out_naive, dtype, "out", 1.2 * (np.abs(scale * f64[0]) + np.abs(shift)))
    assert_close_normwise(dx, dx_naive, dtype, "dx", adout * np.abs(scale))
    assert_close_normwise(dgamma, dgamma_naive, dtype, "dgamma", (adout * np.abs(xhat)).sum(axis=(0, 2, 3)))
    assert_close_normwise(dbeta, dbeta_naive, dtype, "dbeta", adout.sum(axis=(0, 2, 3)))


@SETTINGS
@given(bn_act_problems())
def test_activation_matches_naive(problem):
    shape, activation, dtype, seed = problem
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    out_naive, cache_naive = modern_layers.activation_forward(x.astype(np.float64), activation, 0.1)
    dx_naive = modern_layers.activation_backward(dout.astype(np.float64), cache_naive)
    out, cache = activation_forward_fast(x, activation, 0.1)
    dx = activation_backward_fast(dout, cache)
    assert_close_normwise(out, out_naive, dtype, "out", 1.2 * np.abs(x))
    assert_close_normwise(dx, dx_naive, dtype, "dx", 1.2 * np.abs(dout))


def test_special_layers_reject_bad_input():
    x, p = np.zeros((2, 3, 4, 4)), np.zeros(3)
    with pytest.raises(ValueError, match="activation must be one of"):
        activation_forward_fast(x, "tanh")
    with pytest.raises(ValueError, match="activation must be one of"):
        spatial_batchnorm_act_forward_fast(x, p, p, {"mode": "train"}, "swish")
    with pytest.raises(ValueError, match="x must have shape"):
        activation_forward_fast(np.zeros((2, 3)), "relu")
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        spatial_batchnorm_act_forward_fast(x, np.zeros(2), p, {"mode": "train"})
    with pytest.raises(ValueError, match="mode"):
        spatial_batchnorm_act_forward_fast(x, p, p, {})
    _, cache = spatial_batchnorm_act_forward_fast(x, p, p, {"mode": "train"})
    with pytest.raises(ValueError, match="dout must have the shape"):
        spatial_batchnorm_act_backward_fast(np.zeros((2, 3, 4, 5)), cache)
    _, cache = activation_forward_fast(x, "gelu")
    with pytest.raises(ValueError, match="dout must have the shape"):
        activation_backward_fast(np.zeros((2, 3, 4, 5)), cache)

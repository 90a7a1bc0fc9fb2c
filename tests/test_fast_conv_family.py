"""The convolution family's fast layers agree with the naive oracle in :mod:`convlab.conv_family`.

Property tests draw random shapes, strides, pads, dilations, groups and
output paddings and compare every output and gradient of
:mod:`convlab.fast_layers.conv_family` with the naive loops, on each SIMD
path of the kernels this CPU can run (the family runs on the course
convolution's kernels). As in ``tests/test_fast_layers.py``, errors are
measured normwise against the same sums taken over absolute values.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convlab import conv_family, fast_layers, layers

pytestmark = pytest.mark.usefixtures("simd_path")

TOL = {np.float32: 1e-5, np.float64: 1e-12}

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_close_normwise(actual, expected, dtype, what, magnitude):
    """``||actual - expected|| <= tol * ||magnitude||``, and ``actual`` has ``dtype``."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    diff = np.linalg.norm((actual.astype(np.float64) - expected.astype(np.float64)).ravel())
    scale = np.linalg.norm(magnitude.astype(np.float64).ravel())
    assert diff <= TOL[dtype] * max(scale, np.finfo(dtype).tiny), (
        f"{what}: ||fast - naive|| = {diff:.3e}, scale {scale:.3e}")


def check_pair(naive, fast, arrays, param, dout_seed, dtype, inputs=None):
    """Compare a fast (forward, backward) pair with the naive one on ``arrays`` (x, w, b).

    The magnitudes are the naive layer's outputs and gradients computed from
    the absolute values of every input (sums of the absolute products).
    ``inputs`` are what the fast layer is given (default ``arrays``).
    """
    out_naive, cache_naive = naive[0](*arrays, param)
    out, cache = fast[0](*(inputs or arrays), param)
    dout = np.random.default_rng(dout_seed).standard_normal(out_naive.shape).astype(dtype)
    grads_naive = naive[1](dout, cache_naive)
    grads = fast[1](dout, cache)
    absolute = [np.abs(a).astype(np.float64) for a in arrays]
    out_abs, cache_abs = naive[0](*absolute, param)
    grads_abs = naive[1](np.abs(dout).astype(np.float64), cache_abs)
    assert_close_normwise(out, out_naive, dtype, "out", out_abs)
    for name, got, want, magnitude in zip(("dx", "dw", "db"), grads, grads_naive, grads_abs):
        assert_close_normwise(got, want, dtype, name, magnitude)


def non_contiguous(a):
    """The same values in a Fortran-ordered copy: not C-contiguous."""
    return np.asfortranarray(a)


# --------------------------------------------------------------------------
# The general convolution
# --------------------------------------------------------------------------


@st.composite
def general_conv_problems(draw):
    """A random valid convolution with dilation and groups."""
    groups = draw(st.integers(1, 3))
    C, F = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    HH, WW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, pad, dilation = draw(st.integers(1, 3)), draw(st.integers(0, 3)), draw(st.integers(1, 4))
    H_out, W_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    # Choose the output size, then the input size that the dilated filter tiles exactly.
    H = (H_out - 1) * stride + (HH - 1) * dilation + 1 - 2 * pad
    W = (W_out - 1) * stride + (WW - 1) * dilation + 1 - 2 * pad
    assume(H >= 1 and W >= 1)
    N = draw(st.integers(1, 2))
    param = {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups}
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (N, C, H, W), (F, C // groups, HH, WW), param, dtype, draw(st.integers(0, 2**32 - 1)), draw(st.booleans())


def random_arrays(x_shape, w_shape, b_size, dtype, seed):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(shape).astype(dtype) for shape in (x_shape, w_shape, (b_size,)))


GENERAL_NAIVE = (conv_family.conv_general_forward_naive, conv_family.conv_general_backward_naive)
GENERAL_FAST = (fast_layers.conv_general_forward_fast, fast_layers.conv_general_backward_fast)


@SETTINGS
@given(general_conv_problems())
def test_the_general_convolution_matches_the_naive_one(problem):
    x_shape, w_shape, param, dtype, seed, strided = problem
    arrays = random_arrays(x_shape, w_shape, w_shape[0], dtype, seed)
    inputs = tuple(non_contiguous(a) for a in arrays) if strided else None
    check_pair(GENERAL_NAIVE, GENERAL_FAST, arrays, param, seed + 1, dtype, inputs)


@pytest.mark.parametrize("algorithm", ["direct", "winograd"])
def test_a_dilated_3x3_convolution_runs_on_either_algorithm_of_the_ordinary_one(algorithm):
    """Space-to-batch turns a stride-1 dilated 3x3 convolution into ordinary 3x3 ones, which
    Winograd's kernel computes as well as the direct one."""
    arrays = random_arrays((2, 16, 12, 12), (16, 16, 3, 3), 16, np.float64, 7)
    param = {"stride": 1, "pad": 2, "dilation": 2}
    before = fast_layers.conv_algorithm()
    fast_layers.set_conv_algorithm(algorithm)
    try:
        check_pair(GENERAL_NAIVE, GENERAL_FAST, arrays, param, 8, np.float64)
    finally:
        fast_layers.set_conv_algorithm(before)


def test_without_dilation_or_groups_the_fast_path_is_the_course_kernel(rng):
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    out, cache = fast_layers.conv_general_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    expected, expected_cache = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    np.testing.assert_array_equal(out, expected)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(fast_layers.conv_general_backward_fast(dout, cache),
                         fast_layers.conv_backward_fast(dout, expected_cache)):
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------
# Transposed convolution
# --------------------------------------------------------------------------


@st.composite
def transposed_conv_problems(draw):
    """A random valid transposed convolution."""
    N, C, F = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    HH, WW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    output_padding = draw(st.integers(0, stride - 1))
    assume((H - 1) * stride + HH - 2 * pad + output_padding >= 1)
    assume((W - 1) * stride + WW - 2 * pad + output_padding >= 1)
    param = {"stride": stride, "pad": pad, "output_padding": output_padding}
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (N, C, H, W), (C, F, HH, WW), param, dtype, draw(st.integers(0, 2**32 - 1)), draw(st.booleans())


@SETTINGS
@given(transposed_conv_problems())
def test_the_transposed_convolution_matches_the_naive_one(problem):
    x_shape, w_shape, param, dtype, seed, strided = problem
    arrays = random_arrays(x_shape, w_shape, w_shape[1], dtype, seed)
    inputs = tuple(non_contiguous(a) for a in arrays) if strided else None
    check_pair((conv_family.conv_transpose_forward_naive, conv_family.conv_transpose_backward_naive),
               (fast_layers.conv_transpose_forward_fast, fast_layers.conv_transpose_backward_fast),
               arrays, param, seed + 1, dtype, inputs)


def test_the_fast_transposed_convolution_is_the_fast_convolution_backward_pass(rng):
    """Bit for bit: its forward pass is the input gradient, its backward pass the forward pass and
    the filter gradient, of the convolution with the same filters."""
    x, w = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    param = {"stride": 2, "pad": 0}
    out, cache = fast_layers.conv_transpose_forward_fast(x, w, np.zeros(3), param)
    _, conv_cache = fast_layers.conv_forward_fast(np.zeros(out.shape), w, np.zeros(4), param)
    np.testing.assert_array_equal(out, fast_layers.conv_backward_input_fast(x, conv_cache))
    dout = rng.standard_normal(out.shape)
    dx, dw, _ = fast_layers.conv_transpose_backward_fast(dout, cache)
    conv_out, conv_cache = fast_layers.conv_forward_fast(dout, w, np.zeros(4), param)
    np.testing.assert_array_equal(dx, conv_out)
    np.testing.assert_array_equal(dw, fast_layers.conv_backward_weights_fast(x, conv_cache)[0])


# --------------------------------------------------------------------------
# Average pooling and global average pooling
# --------------------------------------------------------------------------


@st.composite
def avg_pool_problems(draw):
    """A random valid average pooling (windows may overlap or be non-square)."""
    ph, pw, stride = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H_out, W_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    x_shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), (H_out - 1) * stride + ph, (W_out - 1) * stride + pw)
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return x_shape, param, dtype, draw(st.integers(0, 2**32 - 1))


@SETTINGS
@given(avg_pool_problems())
def test_average_pooling_matches_the_naive_one(problem):
    x_shape, param, dtype, seed = problem
    x = np.random.default_rng(seed).standard_normal(x_shape).astype(dtype)
    out_naive, cache_naive = conv_family.avg_pool_forward_naive(x, param)
    out, cache = fast_layers.avg_pool_forward_fast(x[:, :, ::-1][:, :, ::-1], param)   # a strided view
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    assert_close_normwise(out, out_naive, dtype, "out", conv_family.avg_pool_forward_naive(np.abs(x), param)[0])
    assert_close_normwise(fast_layers.avg_pool_backward_fast(dout, cache),
                          conv_family.avg_pool_backward_naive(dout, cache_naive), dtype, "dx",
                          conv_family.avg_pool_backward_naive(np.abs(dout), cache_naive))


@SETTINGS
@given(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 6), st.integers(1, 6)),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))
def test_global_average_pooling_matches_the_naive_one(x_shape, dtype, seed):
    x = np.random.default_rng(seed).standard_normal(x_shape).astype(dtype)
    out_naive, cache_naive = conv_family.global_avg_pool_forward_naive(x)
    out, cache = fast_layers.global_avg_pool_forward_fast(x)
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    assert_close_normwise(out, out_naive, dtype, "out", conv_family.global_avg_pool_forward_naive(np.abs(x))[0])
    assert_close_normwise(fast_layers.global_avg_pool_backward_fast(dout, cache),
                          conv_family.global_avg_pool_backward_naive(dout, cache_naive), dtype, "dx",
                          conv_family.global_avg_pool_backward_naive(np.abs(dout), cache_naive))


def test_integer_input_is_averaged_in_float64():
    x = np.arange(16).reshape(1, 1, 4, 4)
    out, _ = fast_layers.avg_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    assert out.dtype == np.float64 and out.tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
    out, _ = fast_layers.global_avg_pool_forward_fast(x)
    assert out.dtype == np.float64 and out.tolist() == [[7.5]]


# --------------------------------------------------------------------------
# Bad caches and upstream gradients
# --------------------------------------------------------------------------


def _general(rng, param):
    x, w, b = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((4, 4 // param.get("groups", 1), 3, 3)), \
        rng.standard_normal(4)
    return fast_layers.conv_general_forward_fast(x, w, b, param)


@pytest.mark.parametrize("param", [{"stride": 1, "pad": 1}, {"stride": 1, "pad": 1, "groups": 2},
                                   {"stride": 1, "pad": 2, "dilation": 2, "groups": 2}])
def test_the_general_convolution_refuses_a_dout_of_the_wrong_shape(rng, param):
    out, cache = _general(rng, param)
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward output \(2, 4, 6, 6\)"):
        fast_layers.conv_general_backward_fast(np.zeros((2, 4, 6, 5)), cache)


def test_the_general_convolution_refuses_a_cache_that_is_not_its_own(rng):
    out, cache = _general(rng, {"stride": 1, "pad": 1, "groups": 2})
    dout = np.zeros(out.shape)
    _, other = fast_layers.conv_forward_fast(np.zeros((2, 4, 6, 6)), np.zeros((4, 4, 3, 3)), np.zeros(4),
                                             {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"cache must be the 5-tuple returned by conv_general_forward_fast"):
        fast_layers.conv_general_backward_fast(dout, other)
    # the settings say "no groups", the inner cache is a grouped convolution's
    inner, x_shape, w_shape, dtype, (stride, pad, dilation, groups) = cache
    with pytest.raises(ValueError, match=r"cache must be the 4-tuple returned by conv_forward_fast"):
        fast_layers.conv_general_backward_fast(dout, (inner, x_shape, (4, 4, 3, 3), dtype, (stride, pad, 1, 1)))
    # the inner cache's im2col columns were cut short
    x_shape_in, w, s, p, g, cols = inner
    short = (x_shape_in, w, s, p, g, np.ascontiguousarray(cols[:, :-1]))
    with pytest.raises(ValueError, match=r"cache entry cols must have shape"):
        fast_layers.conv_general_backward_fast(dout, (short, x_shape, w_shape, dtype, (stride, pad, dilation, groups)))
    with pytest.raises(ValueError, match=r"cache entry settings must be at least 1"):
        fast_layers.conv_general_backward_fast(dout, (inner, x_shape, w_shape, dtype, (stride, pad, 0, groups)))


def test_the_transposed_convolution_refuses_a_bad_cache_or_dout(rng):
    x, w = rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((2, 3, 3, 3))
    out, cache = fast_layers.conv_transpose_forward_fast(x, w, np.zeros(3), {"stride": 2, "pad": 1})
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward output \(1, 3, 5, 5\)"):
        fast_layers.conv_transpose_backward_fast(np.zeros((1, 3, 5, 4)), cache)
    x_c, w_c, stride, pad, output_padding = cache
    with pytest.raises(ValueError, match=r"cache is not a consistent transposed convolution cache"):
        fast_layers.conv_transpose_backward_fast(np.zeros(out.shape), (x_c, w_c, stride, pad, stride))
    with pytest.raises(TypeError, match=r"cache entries x and w must have one dtype"):
        fast_layers.conv_transpose_backward_fast(np.zeros(out.shape), (x_c, w_c.astype(np.float32), stride, pad, 0))


def test_the_poolings_refuse_a_cache_that_is_not_theirs(rng):
    x = rng.standard_normal((1, 2, 4, 4))
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    _, max_cache = fast_layers.max_pool_forward_fast(x, param)
    with pytest.raises(ValueError, match=r"cache must be the 3-tuple returned by avg_pool_forward_fast"):
        fast_layers.avg_pool_backward_fast(np.zeros((1, 2, 2, 2)), max_cache)
    _, cache = fast_layers.avg_pool_forward_fast(x, param)
    with pytest.raises(ValueError, match=r"cache is not a consistent pooling cache"):
        fast_layers.avg_pool_backward_fast(np.zeros((1, 2, 2, 2)), (cache[0], cache[1], (3, 3, 2)))
    _, cache = fast_layers.global_avg_pool_forward_fast(x)
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward output \(1, 2\)"):
        fast_layers.global_avg_pool_backward_fast(np.zeros((2, 1)), cache)
    with pytest.raises(TypeError, match=r"cache entry dtype must be float32 or float64"):
        fast_layers.global_avg_pool_backward_fast(np.zeros((1, 2)), (cache[0], np.int64))

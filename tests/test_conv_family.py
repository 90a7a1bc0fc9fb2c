"""The naive layers of the convolution family (:mod:`convlab.conv_family`), and what both twins refuse.

Each layer is checked against its formula (by loops over the definition, or
by an identity with the course's convolution), every backward pass against
a numeric gradient in float64, and bad input -- for the naive layer and its
fast twin alike -- against an error message naming the argument.
"""

import numpy as np
import pytest

from convlab import conv_family, fast_layers, layers
from convlab.gradient_check import eval_numerical_gradient_array, rel_error

# --------------------------------------------------------------------------
# 1x1 convolution: an ordinary convolution
# --------------------------------------------------------------------------


@pytest.mark.parametrize("forward", [layers.conv_forward_naive, fast_layers.conv_forward_fast,
                                     conv_family.conv_general_forward_naive,
                                     fast_layers.conv_general_forward_fast])
def test_a_1x1_convolution_is_a_matrix_product_over_channels_at_every_pixel(rng, forward):
    x = rng.standard_normal((2, 5, 4, 3))
    w = rng.standard_normal((6, 5, 1, 1))
    b = rng.standard_normal(6)
    out, _ = forward(x, w, b, {"stride": 1, "pad": 0})
    expected = np.einsum("fc,nchw->nfhw", w[:, :, 0, 0], x) + b[:, None, None]
    assert out.shape == (2, 6, 4, 3)
    assert rel_error(out, expected) < 1e-12


def test_a_1x1_convolution_with_stride_2_keeps_every_other_pixel(rng):
    x = rng.standard_normal((1, 3, 5, 5))
    w = rng.standard_normal((2, 3, 1, 1))
    b = np.zeros(2)
    out, _ = layers.conv_forward_naive(x, w, b, {"stride": 2, "pad": 0})
    expected = np.einsum("fc,nchw->nfhw", w[:, :, 0, 0], x[:, :, ::2, ::2])
    assert rel_error(out, expected) < 1e-12


# --------------------------------------------------------------------------
# The general convolution: dilation and groups
# --------------------------------------------------------------------------


@pytest.mark.exercise("conv_general.forward", points=2)
def test_the_general_convolution_follows_its_formula(rng):
    x = rng.standard_normal((2, 4, 7, 7))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    param = {"stride": 2, "pad": 1, "dilation": 2, "groups": 2}
    out, _ = conv_family.conv_general_forward_naive(x, w, b, param)
    # H_out = 1 + (7 + 2 - (3 - 1) * 2 - 1) // 2 = 3, W_out = 1 + (7 + 2 - (2 - 1) * 2 - 1) // 2 = 4
    assert out.shape == (2, 6, 3, 4)
    x_pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for n, f, i, j in np.ndindex(out.shape):
        g = f // 3   # 3 filters per group, each seeing 2 channels
        total = b[f]
        for c, p, q in np.ndindex(2, 3, 2):
            total += w[f, c, p, q] * x_pad[n, 2 * g + c, 2 * i + 2 * p, 2 * j + 2 * q]
        assert abs(out[n, f, i, j] - total) < 1e-12


def test_without_dilation_or_groups_it_is_the_course_convolution(rng):
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    dout = rng.standard_normal((2, 4, 3, 3))
    param = {"stride": 2, "pad": 1}
    out, cache = conv_family.conv_general_forward_naive(x, w, b, {**param, "dilation": 1, "groups": 1})
    expected, expected_cache = layers.conv_forward_naive(x, w, b, param)
    assert rel_error(out, expected) < 1e-14
    for got, want in zip(conv_family.conv_general_backward_naive(dout, cache),
                         layers.conv_backward_naive(dout, expected_cache)):
        assert rel_error(got, want) < 1e-14


@pytest.mark.exercise("conv_general.forward", points=1)
def test_a_dilated_filter_is_a_larger_filter_with_zeros_between_its_taps(rng):
    x = rng.standard_normal((2, 2, 9, 8))
    w = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(3)
    holey = np.zeros((3, 2, 7, 4))
    holey[:, :, ::3, ::3] = w    # dilation 3: taps 3 pixels apart
    out, _ = conv_family.conv_general_forward_naive(x, w, b, {"stride": 1, "pad": 1, "dilation": 3})
    expected, _ = layers.conv_forward_naive(x, holey, b, {"stride": 1, "pad": 1})
    assert rel_error(out, expected) < 1e-13


@pytest.mark.exercise("conv_general.forward", points=1)
def test_a_grouped_convolution_is_one_convolution_per_slice_of_channels(rng):
    x = rng.standard_normal((2, 6, 5, 5))
    w = rng.standard_normal((6, 2, 3, 3))   # 3 groups: 2 channels and 2 filters each
    b = rng.standard_normal(6)
    out, _ = conv_family.conv_general_forward_naive(x, w, b, {"stride": 1, "pad": 1, "groups": 3})
    for g in range(3):
        part, _ = layers.conv_forward_naive(x[:, 2 * g:2 * g + 2], w[2 * g:2 * g + 2], b[2 * g:2 * g + 2],
                                            {"stride": 1, "pad": 1})
        assert rel_error(out[:, 2 * g:2 * g + 2], part) < 1e-13


@pytest.mark.exercise("conv_general.forward", points=1)
def test_a_depthwise_convolution_filters_each_channel_on_its_own(rng):
    x = rng.standard_normal((2, 3, 4, 4))
    w = rng.standard_normal((3, 1, 3, 3))
    b = rng.standard_normal(3)
    out, _ = conv_family.conv_general_forward_naive(x, w, b, {"stride": 1, "pad": 1, "groups": 3})
    for c in range(3):
        alone, _ = layers.conv_forward_naive(x[:, c:c + 1], w[c:c + 1], b[c:c + 1], {"stride": 1, "pad": 1})
        assert rel_error(out[:, c:c + 1], alone) < 1e-13


@pytest.mark.parametrize("x_shape, w_shape, conv_param", [
    ((2, 2, 7, 7), (3, 2, 3, 3), {"stride": 1, "pad": 2, "dilation": 2}),
    ((2, 4, 5, 6), (4, 2, 3, 2), {"stride": 1, "pad": 1, "groups": 2}),
    ((2, 3, 5, 5), (3, 1, 3, 3), {"stride": 2, "pad": 1, "groups": 3}),            # depthwise, strided
    ((1, 4, 7, 9), (6, 2, 2, 3), {"stride": 3, "pad": 1, "dilation": 2, "groups": 2}),
])
def test_the_general_convolution_backward_gradient_check(rng, x_shape, w_shape, conv_param):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    out, cache = conv_family.conv_general_forward_naive(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape)
    forward = conv_family.conv_general_forward_naive
    dx_num = eval_numerical_gradient_array(lambda v: forward(v, w, b, conv_param)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda v: forward(x, v, b, conv_param)[0], w, dout)
    db_num = eval_numerical_gradient_array(lambda v: forward(x, w, v, conv_param)[0], b, dout)
    dx, dw, db = conv_family.conv_general_backward_naive(dout, cache)
    assert rel_error(dx, dx_num) < 1e-8
    assert rel_error(dw, dw_num) < 1e-8
    assert rel_error(db, db_num) < 1e-8


# --------------------------------------------------------------------------
# Transposed convolution
# --------------------------------------------------------------------------


@pytest.mark.exercise("conv_transpose.forward", points=1)
def test_a_transposed_convolution_scatters_each_pixel_times_the_filter():
    x = np.array([[[[1.0, 2.0]]]])               # one 1 x 2 image
    w = np.array([[[[1.0, 10.0], [100.0, 1000.0]]]])   # one 2 x 2 filter
    out, _ = conv_family.conv_transpose_forward_naive(x, w, np.array([0.5]), {"stride": 2, "pad": 0})
    assert out.tolist() == [[[[1.5, 10.5, 2.5, 20.5], [100.5, 1000.5, 200.5, 2000.5]]]]
    # stride 1: the copies overlap and add up; pad 1 crops them to the middle
    out, _ = conv_family.conv_transpose_forward_naive(x, w, np.array([0.0]), {"stride": 1, "pad": 0})
    assert out.tolist() == [[[[1.0, 12.0, 20.0], [100.0, 1200.0, 2000.0]]]]


@pytest.mark.parametrize("x_shape, w_shape, conv_param", [
    ((2, 3, 3, 3), (3, 2, 3, 3), {"stride": 2, "pad": 1}),
    ((1, 2, 4, 3), (2, 3, 3, 2), {"stride": 1, "pad": 1}),
    ((2, 2, 3, 2), (2, 2, 4, 4), {"stride": 3, "pad": 2}),
])
def test_the_transposed_convolution_is_the_input_gradient_of_a_convolution(rng, x_shape, w_shape, conv_param):
    """The transposed convolution of ``x`` is ``conv_backward_naive``'s ``dx`` for ``dout = x``; its ``dx``
    is the convolution's forward pass."""
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    out, cache = conv_family.conv_transpose_forward_naive(x, w, np.zeros(w_shape[1]), conv_param)
    conv_input = np.zeros(out.shape)
    _, conv_cache = layers.conv_forward_naive(conv_input, w, np.zeros(w_shape[0]), conv_param)
    dx_conv, _, _ = layers.conv_backward_naive(x, conv_cache)
    assert rel_error(out, dx_conv) < 1e-13
    dout = rng.standard_normal(out.shape)
    dx, _, _ = conv_family.conv_transpose_backward_naive(dout, cache)
    conv_out, _ = layers.conv_forward_naive(dout, w, np.zeros(w_shape[0]), conv_param)
    assert rel_error(dx, conv_out) < 1e-13


@pytest.mark.exercise("conv_transpose.forward", points=2)
def test_output_padding_adds_the_rows_a_strided_convolution_forgets(rng):
    """Convolutions with stride 2 map 5 and 6 rows alike to 3; ``output_padding`` picks 6."""
    x = rng.standard_normal((1, 2, 3, 3))
    w = rng.standard_normal((2, 1, 3, 3))
    b = rng.standard_normal(1)
    out5, _ = conv_family.conv_transpose_forward_naive(x, w, b, {"stride": 2, "pad": 1})
    out6, _ = conv_family.conv_transpose_forward_naive(x, w, b, {"stride": 2, "pad": 1, "output_padding": 1})
    assert out5.shape == (1, 1, 5, 5) and out6.shape == (1, 1, 6, 6)
    assert rel_error(out6[:, :, :5, :5], out5) < 1e-14
    # the extra row and column are what the crop by pad = 1 had cut at the end
    full, _ = conv_family.conv_transpose_forward_naive(x, w, b, {"stride": 2, "pad": 0})
    assert rel_error(out6, full[:, :, 1:7, 1:7]) < 1e-14
    # with output_padding > pad the output reaches past what any pixel scatters onto: the bias alone
    out, _ = conv_family.conv_transpose_forward_naive(x, w, b, {"stride": 3, "pad": 0, "output_padding": 2})
    assert out.shape == (1, 1, 11, 11)
    assert np.all(out[:, :, 9:, :] == b[0]) and np.all(out[:, :, :, 9:] == b[0])


@pytest.mark.parametrize("x_shape, w_shape, conv_param", [
    ((2, 3, 3, 3), (3, 2, 3, 3), {"stride": 2, "pad": 1, "output_padding": 1}),
    ((1, 2, 3, 2), (2, 3, 2, 3), {"stride": 1, "pad": 0}),
    ((2, 2, 2, 3), (2, 2, 3, 2), {"stride": 3, "pad": 1, "output_padding": 2}),
])
def test_the_transposed_convolution_backward_gradient_check(rng, x_shape, w_shape, conv_param):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1])
    out, cache = conv_family.conv_transpose_forward_naive(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape)
    forward = conv_family.conv_transpose_forward_naive
    dx_num = eval_numerical_gradient_array(lambda v: forward(v, w, b, conv_param)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda v: forward(x, v, b, conv_param)[0], w, dout)
    db_num = eval_numerical_gradient_array(lambda v: forward(x, w, v, conv_param)[0], b, dout)
    dx, dw, db = conv_family.conv_transpose_backward_naive(dout, cache)
    assert rel_error(dx, dx_num) < 1e-8
    assert rel_error(dw, dw_num) < 1e-8
    assert rel_error(db, db_num) < 1e-8


# --------------------------------------------------------------------------
# Average pooling and global average pooling
# --------------------------------------------------------------------------


@pytest.mark.exercise("avg_pool.forward", points=1)
def test_average_pooling_takes_the_mean_of_every_window():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out, _ = conv_family.avg_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    assert out.tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
    out, _ = conv_family.avg_pool_forward_naive(x, {"pool_height": 3, "pool_width": 2, "stride": 1})
    assert out[0, 0, 0].tolist() == [4.5, 5.5, 6.5]   # mean of rows 0-2 of columns (0, 1), (1, 2), (2, 3)


@pytest.mark.exercise("avg_pool.backward", points=1)
@pytest.mark.parametrize("x_shape, pool_param", [
    ((2, 3, 4, 4), {"pool_height": 2, "pool_width": 2, "stride": 2}),
    ((2, 2, 5, 6), {"pool_height": 3, "pool_width": 2, "stride": 1}),    # overlapping, not square
    ((1, 2, 7, 7), {"pool_height": 3, "pool_width": 3, "stride": 2}),
])
def test_average_pooling_backward_gradient_check(rng, x_shape, pool_param):
    x = rng.standard_normal(x_shape)
    out, cache = conv_family.avg_pool_forward_naive(x, pool_param)
    dout = rng.standard_normal(out.shape)
    dx = conv_family.avg_pool_backward_naive(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda v: conv_family.avg_pool_forward_naive(v, pool_param)[0],
                                           x, dout)
    assert rel_error(dx, dx_num) < 1e-8


def test_global_average_pooling_forward_and_gradient(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    out, cache = conv_family.global_avg_pool_forward_naive(x)
    assert out.shape == (3, 4)
    assert rel_error(out, x.mean(axis=(2, 3))) < 1e-14
    dout = rng.standard_normal((3, 4))
    dx = conv_family.global_avg_pool_backward_naive(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda v: conv_family.global_avg_pool_forward_naive(v)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8


def test_global_average_pooling_is_average_pooling_with_the_whole_map_as_window(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    out, _ = conv_family.global_avg_pool_forward_naive(x)
    pooled, _ = conv_family.avg_pool_forward_naive(x, {"pool_height": 5, "pool_width": 4, "stride": 1})
    assert rel_error(out, pooled[:, :, 0, 0]) < 1e-14


# --------------------------------------------------------------------------
# Bad input, naive and fast alike
# --------------------------------------------------------------------------

GENERAL = [conv_family.conv_general_forward_naive, fast_layers.conv_general_forward_fast]
TRANSPOSED = [conv_family.conv_transpose_forward_naive, fast_layers.conv_transpose_forward_fast]


@pytest.mark.parametrize("forward", GENERAL)
@pytest.mark.parametrize("x_shape, w_shape, conv_param, message", [
    ((1, 4, 5, 5), (2, 4, 3, 3), {"stride": 1, "pad": 1, "dilation": 0},
     r"conv_param\['dilation'\] must be a positive integer; got 0"),
    ((1, 4, 5, 5), (2, 4, 3, 3), {"stride": 1, "pad": 1, "dilation": 1.5},
     r"conv_param\['dilation'\] must be a positive integer; got 1.5"),
    ((1, 4, 5, 5), (2, 4, 3, 3), {"stride": 1, "pad": 1, "groups": 0},
     r"conv_param\['groups'\] must be a positive integer; got 0"),
    ((1, 4, 5, 5), (3, 1, 3, 3), {"stride": 1, "pad": 1, "groups": 3},
     r"conv_param\['groups'\] = 3 must divide the 4 channels of x"),
    ((1, 4, 5, 5), (3, 2, 3, 3), {"stride": 1, "pad": 1, "groups": 2},
     r"conv_param\['groups'\] = 2 must divide the 3 filters of w"),
    ((1, 4, 5, 5), (4, 4, 3, 3), {"stride": 1, "pad": 1, "groups": 2},
     r"w must have C / groups = 2 channels"),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"stride": 1, "pad": 0, "dilation": 3},
     r"larger than the padded input .* dilated by conv_param\['dilation'\] = 3, span 7 x 7"),
    ((1, 2, 6, 6), (2, 2, 3, 3), {"stride": 2, "pad": 0, "dilation": 2},
     r"does not tile .* dilated by conv_param\['dilation'\] = 2"),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"stride": 0, "pad": 1}, r"conv_param\['stride'\] must be a positive integer"),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"pad": 1}, r"conv_param must contain 'stride'"),
    ((1, 2, 5), (2, 2, 3, 3), {"stride": 1, "pad": 1}, r"x must have shape \(N, C, H, W\)"),
])
def test_the_general_convolution_refuses_bad_input_naming_it(forward, x_shape, w_shape, conv_param, message):
    with pytest.raises(ValueError, match=message):
        forward(np.zeros(x_shape), np.zeros(w_shape), np.zeros(w_shape[0]), conv_param)


@pytest.mark.parametrize("forward", GENERAL + TRANSPOSED)
def test_a_bias_of_the_wrong_shape_is_refused(forward):
    w_shape = (2, 2, 3, 3)
    with pytest.raises(ValueError, match=r"b must have shape"):
        forward(np.zeros((1, 2, 5, 5)), np.zeros(w_shape), np.zeros(3), {"stride": 1, "pad": 1})


@pytest.mark.parametrize("forward", TRANSPOSED)
@pytest.mark.parametrize("x_shape, w_shape, conv_param, message", [
    ((1, 2, 1, 1), (2, 3, 1, 1), {"stride": 1, "pad": 1},
     r"conv_param\['pad'\] = 1 crops the output of the transposed convolution to -1 x -1"),
    ((1, 2, 3, 3), (2, 3, 3, 3), {"stride": 2, "pad": 1, "output_padding": 2},
     r"conv_param\['output_padding'\] must be smaller than conv_param\['stride'\] = 2; got 2"),
    ((1, 2, 3, 3), (2, 3, 3, 3), {"stride": 2, "pad": 1, "output_padding": -1},
     r"conv_param\['output_padding'\] must be a non-negative integer; got -1"),
    ((1, 2, 3, 3), (2, 3, 3, 3), {"stride": 2, "pad": -1}, r"conv_param\['pad'\] must be a non-negative integer"),
    ((1, 2, 3, 3), (3, 2, 3, 3), {"stride": 1, "pad": 0}, r"w must have shape \(C, F, HH, WW\) with C = 2"),
    ((1, 2, 3, 3), (2, 3, 0, 3), {"stride": 1, "pad": 0}, r"w must have a non-empty filter"),
    ((1, 2, 3, 3), (2, 3, 3, 3), {"stride": 1}, r"conv_param must contain 'pad'"),
])
def test_the_transposed_convolution_refuses_bad_input_naming_it(forward, x_shape, w_shape, conv_param, message):
    with pytest.raises(ValueError, match=message):
        forward(np.zeros(x_shape), np.zeros(w_shape), np.zeros(w_shape[1]), conv_param)


@pytest.mark.parametrize("forward", [conv_family.avg_pool_forward_naive, fast_layers.avg_pool_forward_fast])
@pytest.mark.parametrize("pool_param, message", [
    ({"pool_height": 0, "pool_width": 2, "stride": 2}, r"pool_param\['pool_height'\] must be positive"),
    ({"pool_height": 3, "pool_width": 3, "stride": 2}, r"does not tile the input"),
    ({"pool_height": 2, "pool_width": 2}, r"pool_param must contain 'stride'"),
])
def test_average_pooling_refuses_bad_input_naming_it(forward, pool_param, message):
    with pytest.raises(ValueError, match=message):
        forward(np.zeros((1, 1, 4, 4)), pool_param)


@pytest.mark.parametrize("forward", [conv_family.global_avg_pool_forward_naive,
                                     fast_layers.global_avg_pool_forward_fast])
def test_global_average_pooling_refuses_bad_shapes(forward):
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\)"):
        forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"x must have non-empty feature maps"):
        forward(np.zeros((2, 3, 0, 4)))


@pytest.mark.parametrize("key", ["dilation", "groups"])
@pytest.mark.parametrize("forward", [layers.conv_forward_naive, fast_layers.conv_forward_fast])
def test_the_course_convolution_refuses_dilation_and_groups_rather_than_ignore_them(forward, key):
    with pytest.raises(ValueError, match=rf"conv_param\['{key}'\] = 2: this convolution has no {key}"):
        forward(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), np.zeros(2), {"stride": 1, "pad": 1, key: 2})
    # 1, the value that changes nothing, is accepted
    out, _ = forward(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), np.zeros(2), {"stride": 1, "pad": 1, key: 1})
    assert out.shape == (1, 2, 5, 5)

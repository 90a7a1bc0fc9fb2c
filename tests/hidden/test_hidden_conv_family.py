"""Hidden tests of the convolution family's naive layers: random shapes, dilations, groups, strides, crops.

As in ``test_hidden_layers.py``, the inputs come from the grading's secret
seed, results are compared with :func:`convlab.gradient_check.scaled_error`,
and the oracles are written differently from the reference solutions:
sliding windows and einsum for the general convolution and the average
pooling, and for the transposed convolution the textbook identity "insert
``stride - 1`` zeros between the input's pixels, pad by the filter size
minus one, and correlate with the flipped filters".
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from convlab import conv_family
from convlab.gradient_check import eval_numerical_gradient_array, scaled_error

# (x shape, w shape, stride, pad, dilation, groups): w is (F, C / groups, HH, WW)
GENERAL_CASES = [
    ((2, 4, 9, 8), (6, 2, 3, 2), 1, 2, 2, 2),
    ((1, 6, 7, 7), (6, 1, 3, 3), 2, 1, 1, 6),     # depthwise, strided
    ((2, 3, 10, 9), (4, 3, 2, 3), 1, 0, 3, 1),    # dilation alone, non-square
    ((1, 4, 11, 9), (8, 2, 3, 2), 2, 1, 2, 2),
]
# (x shape, w shape, stride, pad, output_padding): w is (C, F, HH, WW)
TRANSPOSE_CASES = [
    ((2, 3, 3, 4), (3, 2, 3, 3), 2, 1, 1),
    ((1, 2, 4, 3), (2, 3, 2, 4), 1, 0, 0),
    ((2, 2, 3, 2), (2, 1, 4, 3), 3, 2, 2),
]
# (x shape, pool height, pool width, stride): overlapping, non-square, uneven
POOL_CASES = [
    ((2, 3, 7, 7), 3, 3, 2),
    ((1, 2, 7, 8), 1, 2, 3),
    ((2, 1, 6, 9), 4, 3, 2),
]


def general_oracle(x, w, b, stride, pad, dilation, groups):
    """Every dilated window as a view, then one einsum per group of channels."""
    F, C_g, HH, WW = w.shape
    span = ((HH - 1) * dilation + 1, (WW - 1) * dilation + 1)
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(x_pad, span, axis=(2, 3))[:, :, ::stride, ::stride, ::dilation, ::dilation]
    F_g = F // groups
    parts = [np.einsum("nchwpq,fcpq->nfhw", windows[:, g * C_g:(g + 1) * C_g], w[g * F_g:(g + 1) * F_g])
             for g in range(groups)]
    return np.concatenate(parts, axis=1) + b[None, :, None, None]


def transpose_oracle(x, w, b, stride, pad, output_padding):
    """Zeros between the input's pixels, a full padding, the flipped filters, then the crop."""
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    spread = np.zeros((N, C, (H - 1) * stride + 1, (W - 1) * stride + 1))
    spread[:, :, ::stride, ::stride] = x
    spread = np.pad(spread, ((0, 0), (0, 0), (HH - 1, HH - 1), (WW - 1, WW - 1)))
    flipped = w[:, :, ::-1, ::-1]
    full = np.einsum("nchwpq,cfpq->nfhw", sliding_window_view(spread, (HH, WW), axis=(2, 3)), flipped)
    full = np.pad(full, ((0, 0), (0, 0), (0, output_padding), (0, output_padding)))
    H_out = (H - 1) * stride - 2 * pad + HH + output_padding
    W_out = (W - 1) * stride - 2 * pad + WW + output_padding
    return full[:, :, pad:pad + H_out, pad:pad + W_out] + b[None, :, None, None]


def avg_pool_oracle(x, ph, pw, stride):
    """Average pooling through a view of every window."""
    return sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::stride, ::stride].mean(axis=(4, 5))


def _inputs(rng, x_shape, w_shape, bias, dtype=np.float64):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(bias).astype(dtype)
    return x, w, b


def _general_param(case):
    return {"stride": case[2], "pad": case[3], "dilation": case[4], "groups": case[5]}


def _transpose_param(case):
    return {"stride": case[2], "pad": case[3], "output_padding": case[4]}


@pytest.mark.exercise("conv_general.forward", points=1)
@pytest.mark.parametrize("case", GENERAL_CASES)
def test_general_conv_forward_random_dilations_and_groups(rng, case):
    x, w, b = _inputs(rng, case[0], case[1], case[1][0])
    out, _ = conv_family.conv_general_forward_naive(x, w, b, _general_param(case))
    assert scaled_error(out, general_oracle(x, w, b, *case[2:])) < 1e-10


@pytest.mark.exercise("conv_general.forward", points=1)
def test_general_conv_forward_float32_and_inputs_unchanged(rng):
    case = GENERAL_CASES[3]
    x, w, b = _inputs(rng, case[0], case[1], case[1][0], np.float32)
    before = [a.copy() for a in (x, w, b)]
    out, _ = conv_family.conv_general_forward_naive(x, w, b, _general_param(case))
    assert out.dtype == np.float32
    assert scaled_error(out, general_oracle(x, w, b, *case[2:])) < 1e-4
    assert all(np.array_equal(a, c) for a, c in zip((x, w, b), before))


@pytest.mark.exercise("conv_transpose.forward", points=1)
@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_transposed_conv_forward_random_strides_crops_and_output_padding(rng, case):
    x, w, b = _inputs(rng, case[0], case[1], case[1][1])
    out, _ = conv_family.conv_transpose_forward_naive(x, w, b, _transpose_param(case))
    assert scaled_error(out, transpose_oracle(x, w, b, *case[2:])) < 1e-10


@pytest.mark.exercise("conv_transpose.forward", points=1)
def test_transposed_conv_forward_float32_and_inputs_unchanged(rng):
    case = TRANSPOSE_CASES[0]
    x, w, b = _inputs(rng, case[0], case[1], case[1][1], np.float32)
    before = [a.copy() for a in (x, w, b)]
    out, _ = conv_family.conv_transpose_forward_naive(x, w, b, _transpose_param(case))
    assert out.dtype == np.float32
    assert scaled_error(out, transpose_oracle(x, w, b, *case[2:])) < 1e-4
    assert all(np.array_equal(a, c) for a, c in zip((x, w, b), before))


@pytest.mark.exercise("avg_pool.forward", points=1)
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_avg_pool_forward_random_shapes_and_dtypes(rng, case, dtype):
    x_shape, ph, pw, stride = case
    x = rng.standard_normal(x_shape).astype(dtype)
    before = x.copy()
    out, _ = conv_family.avg_pool_forward_naive(x, {"pool_height": ph, "pool_width": pw, "stride": stride})
    assert out.dtype == dtype
    bound = 1e-12 if dtype == np.float64 else 1e-5
    assert scaled_error(out, avg_pool_oracle(x.astype(np.float64), ph, pw, stride)) < bound
    assert np.array_equal(x, before)


@pytest.mark.exercise("avg_pool.backward", points=1)
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool_backward_random_shapes(rng, case):
    x_shape, ph, pw, stride = case
    x = rng.standard_normal(x_shape)
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    dout = rng.standard_normal(avg_pool_oracle(x, ph, pw, stride).shape)
    before = (x.copy(), dout.copy())
    dx = conv_family.avg_pool_backward_naive(dout, conv_family.avg_pool_forward_naive(x, pool_param)[1])
    dx_num = eval_numerical_gradient_array(lambda v: avg_pool_oracle(v, ph, pw, stride), x, dout)
    assert scaled_error(dx, dx_num) < 1e-8
    assert np.array_equal(x, before[0]) and np.array_equal(dout, before[1])


@pytest.mark.exercise("avg_pool.backward", points=1)
def test_avg_pool_backward_float32(rng):
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    _, cache = conv_family.avg_pool_forward_naive(x, {"pool_height": 3, "pool_width": 3, "stride": 3})
    dx = conv_family.avg_pool_backward_naive(np.full((2, 2, 2, 2), 9.0, np.float32), cache)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert np.array_equal(dx, np.ones_like(x))

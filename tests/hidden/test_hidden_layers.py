"""Hidden tests of the naive layers: random shapes and dtypes, uneven stride and pad, inputs left alone.

At grading, the inputs come from a secret seed drawn anew for every grading
(see ``conftest.py``), so every bound here must hold for *any* draw. Results
are compared with :func:`convlab.gradient_check.scaled_error`, the largest difference relative to the
largest entry: the elementwise relative error of ``rel_error`` blows up on
entries that happen to be near zero (a correct conv backward pass reached
4e-7 there, a correct batch norm 1e-4, in 60 draws), while the scaled error of
a correct answer stays near 1e-10 and a wrong one is of order 1.

At grading a backward pass receives the cache of the student's own forward
pass: the tests call the forward pass for the cache, and the grader replays
that call on the student's forward. The oracles here are written differently
from the reference solutions (sliding windows and einsum instead of loops).
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from convlab.gradient_check import eval_numerical_gradient_array, scaled_error
from convlab.layers import (
    conv_backward_naive,
    conv_forward_naive,
    max_pool_backward_naive,
    max_pool_forward_naive,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)

# (x shape, w shape, stride, pad): odd sizes, non-square filters, stride > 1 with pad
CONV_CASES = [
    ((2, 3, 7, 5), (4, 3, 3, 1), 2, 1),
    ((1, 2, 9, 9), (3, 2, 5, 5), 2, 2),
    ((3, 1, 6, 8), (2, 1, 2, 4), 2, 0),
    ((1, 4, 5, 5), (2, 4, 3, 3), 1, 2),
]
# (x shape, pool height, pool width, stride): overlapping, non-square, uneven
POOL_CASES = [
    ((2, 3, 7, 7), 3, 3, 2),
    ((1, 2, 7, 8), 1, 2, 3),
    ((2, 1, 6, 9), 4, 3, 2),
]


def conv_oracle(x, w, b, stride, pad):
    """Convolution through a view of every window and one einsum."""
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(x_pad, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwpq,fcpq->nfhw", windows, w) + b[None, :, None, None]


def pool_oracle(x, ph, pw, stride):
    """Max pooling through a view of every window."""
    return sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::stride, ::stride].max(axis=(4, 5))


def spatial_bn_oracle(x, gamma, beta, eps=1e-5):
    """Per-channel normalization over (N, H, W), written out."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (x - mean) / np.sqrt(var + eps) + beta[None, :, None, None]


def _conv_inputs(rng, case, dtype):
    x_shape, w_shape, stride, pad = case
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, w, b, {"stride": stride, "pad": pad}


@pytest.mark.exercise("conv.forward", points=2)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_random_shapes_uneven_stride_and_pad(rng, case):
    x, w, b, conv_param = _conv_inputs(rng, case, np.float64)
    out, _ = conv_forward_naive(x, w, b, conv_param)
    assert scaled_error(out, conv_oracle(x, w, b, case[2], case[3])) < 1e-10


@pytest.mark.exercise("conv.forward", points=1)
def test_conv_forward_float32_and_inputs_unchanged(rng):
    x, w, b, conv_param = _conv_inputs(rng, CONV_CASES[0], np.float32)
    before = [a.copy() for a in (x, w, b)]
    out, _ = conv_forward_naive(x, w, b, conv_param)
    assert out.dtype == np.float32
    assert scaled_error(out, conv_oracle(x, w, b, 2, 1)) < 1e-4
    assert all(np.array_equal(a, c) for a, c in zip((x, w, b), before))


@pytest.mark.exercise("conv.backward", points=2)
@pytest.mark.parametrize("case", CONV_CASES[:3])
def test_conv_backward_random_shapes_uneven_stride_and_pad(rng, case):
    x, w, b, conv_param = _conv_inputs(rng, case, np.float64)
    stride, pad = case[2], case[3]
    dout = rng.standard_normal(conv_oracle(x, w, b, stride, pad).shape)
    _, cache = conv_forward_naive(x, w, b, conv_param)
    dx, dw, db = conv_backward_naive(dout, cache)
    assert scaled_error(dx, eval_numerical_gradient_array(lambda v: conv_oracle(v, w, b, stride, pad), x, dout)) < 1e-7
    assert scaled_error(dw, eval_numerical_gradient_array(lambda v: conv_oracle(x, v, b, stride, pad), w, dout)) < 1e-7
    assert scaled_error(db, dout.sum(axis=(0, 2, 3))) < 1e-10


@pytest.mark.exercise("conv.backward", points=1)
def test_conv_backward_float32_and_inputs_unchanged(rng):
    x, w, b, conv_param = _conv_inputs(rng, CONV_CASES[1], np.float32)
    dout = rng.standard_normal(conv_oracle(x, w, b, 2, 2).shape).astype(np.float32)
    before = [a.copy() for a in (x, w, b, dout)]
    grads = conv_backward_naive(dout, conv_forward_naive(x, w, b, conv_param)[1])
    assert [g.dtype for g in grads] == [np.float32] * 3
    assert [g.shape for g in grads] == [x.shape, w.shape, b.shape]
    assert all(np.array_equal(a, c) for a, c in zip((x, w, b, dout), before))


@pytest.mark.exercise("pool.forward", points=2)
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pool_forward_random_shapes_and_dtypes(rng, case, dtype):
    x_shape, ph, pw, stride = case
    x = rng.standard_normal(x_shape).astype(dtype)
    before = x.copy()
    out, _ = max_pool_forward_naive(x, {"pool_height": ph, "pool_width": pw, "stride": stride})
    assert out.dtype == dtype
    assert np.array_equal(out, pool_oracle(x, ph, pw, stride))
    assert np.array_equal(x, before)


@pytest.mark.exercise("pool.backward", points=2)
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_backward_random_shapes(rng, case):
    x_shape, ph, pw, stride = case
    x = rng.standard_normal(x_shape)
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    dout = rng.standard_normal(pool_oracle(x, ph, pw, stride).shape)
    before = (x.copy(), dout.copy())
    dx = max_pool_backward_naive(dout, max_pool_forward_naive(x, pool_param)[1])
    dx_num = eval_numerical_gradient_array(lambda v: pool_oracle(v, ph, pw, stride), x, dout)
    assert scaled_error(dx, dx_num) < 1e-8
    assert np.array_equal(x, before[0]) and np.array_equal(dout, before[1])


@pytest.mark.exercise("pool.backward", points=1)
def test_pool_backward_float32(rng):
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    _, cache = max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = max_pool_backward_naive(np.ones((2, 2, 2, 2), np.float32), cache)
    assert dx.dtype == np.float32 and dx.sum() == 16


def _bn_inputs(rng, shape, dtype=np.float64):
    x = (3 * rng.standard_normal(shape) + 5).astype(dtype)
    gamma = rng.standard_normal(shape[1]).astype(dtype)
    beta = rng.standard_normal(shape[1]).astype(dtype)
    return x, gamma, beta


@pytest.mark.exercise("spatial_bn.forward", points=2)
@pytest.mark.parametrize("shape", [(3, 2, 5, 4), (1, 5, 3, 7)])
def test_spatial_bn_forward_train_mode_and_running_statistics(rng, shape):
    x, gamma, beta = _bn_inputs(rng, shape)
    before = x.copy()
    bn_param = {"mode": "train", "momentum": 0.8}
    out, _ = spatial_batchnorm_forward(x, gamma, beta, bn_param)
    assert scaled_error(out, spatial_bn_oracle(x, gamma, beta)) < 1e-9
    assert scaled_error(bn_param["running_mean"], 0.2 * x.mean(axis=(0, 2, 3))) < 1e-10
    assert scaled_error(bn_param["running_var"], 0.8 + 0.2 * x.var(axis=(0, 2, 3))) < 1e-10
    assert np.array_equal(x, before)


@pytest.mark.exercise("spatial_bn.forward", points=1)
def test_spatial_bn_forward_float32(rng):
    x, gamma, beta = _bn_inputs(rng, (2, 3, 4, 4), np.float32)
    out, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert out.dtype == np.float32 and out.shape == x.shape


@pytest.mark.exercise("spatial_bn.backward", points=3)
@pytest.mark.parametrize("shape", [(2, 3, 3, 5), (4, 2, 2, 3)])
def test_spatial_bn_backward_random_shapes(rng, shape):
    x, gamma, beta = _bn_inputs(rng, shape)
    _, cache = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dout = rng.standard_normal(shape)
    before = dout.copy()
    dx, dgamma, dbeta = spatial_batchnorm_backward(dout, cache)
    assert scaled_error(dx, eval_numerical_gradient_array(lambda v: spatial_bn_oracle(v, gamma, beta), x, dout)) < 1e-6
    assert scaled_error(dgamma, eval_numerical_gradient_array(lambda v: spatial_bn_oracle(x, v, beta), gamma, dout)) < 1e-6
    assert scaled_error(dbeta, dout.sum(axis=(0, 2, 3))) < 1e-10
    assert np.array_equal(dout, before)

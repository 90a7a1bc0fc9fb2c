"""Tests of the sandwich layers in ``convlab.layer_utils``.

Each sandwich is checked twice: against a numeric gradient, and against the
same chain assembled by hand from the naive layers (the oracle).
"""

import numpy as np
import pytest

from convlab.gradient_check import eval_numerical_gradient_array, rel_error
from convlab.layer_utils import (
    affine_relu_backward,
    affine_relu_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    conv_relu_backward,
    conv_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from convlab.layers import (
    affine_forward,
    conv_forward_naive,
    max_pool_forward_naive,
    relu_forward,
    spatial_batchnorm_forward,
)


def _numeric_grads(forward, args, dout, which):
    """Numeric gradients of ``forward(*args)[0]`` w.r.t. the arguments at positions ``which``."""
    grads = []
    for k in which:
        def f(value, k=k):
            return forward(*args[:k], value, *args[k + 1:])[0]
        grads.append(eval_numerical_gradient_array(f, args[k], dout))
    return grads


def test_affine_relu_gradient_check(rng, one_openmp_thread):
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal((12, 10))
    b = rng.standard_normal(10)
    out, cache = affine_relu_forward(x, w, b)
    assert rel_error(out, relu_forward(affine_forward(x, w, b)[0])[0]) < 1e-14
    dout = rng.standard_normal(out.shape)
    dx, dw, db = affine_relu_backward(dout, cache)
    dx_num, dw_num, db_num = _numeric_grads(affine_relu_forward, [x, w, b], dout, [0, 1, 2])
    # The course promises errors around 1e-10.
    assert rel_error(dx, dx_num) < 1e-8
    assert rel_error(dw, dw_num) < 1e-8
    assert rel_error(db, db_num) < 1e-8


def test_conv_relu_gradient_check(rng, one_openmp_thread):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((3, 3, 3, 3))
    b = rng.standard_normal(3)
    conv_param = {"stride": 1, "pad": 1}
    out, cache = conv_relu_forward(x, w, b, conv_param)
    expected = relu_forward(conv_forward_naive(x, w, b, conv_param)[0])[0]
    assert rel_error(out, expected) < 1e-12
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_relu_backward(dout, cache)
    dx_num, dw_num, db_num = _numeric_grads(conv_relu_forward, [x, w, b, conv_param], dout, [0, 1, 2])
    # The course reports dx ~3e-8, dw ~6e-10, db ~1e-11.
    assert rel_error(dx, dx_num) < 1e-6
    assert rel_error(dw, dw_num) < 1e-8
    assert rel_error(db, db_num) < 1e-9


@pytest.mark.exercise("sandwich.conv_relu_pool", points=2)
def test_conv_relu_pool_gradient_check(rng, one_openmp_thread):
    x = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((3, 3, 3, 3))
    b = rng.standard_normal(3)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    expected = max_pool_forward_naive(relu_forward(conv_forward_naive(x, w, b, conv_param)[0])[0], pool_param)[0]
    assert out.shape == (2, 3, 4, 4)
    assert rel_error(out, expected) < 1e-12
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_relu_pool_backward(dout, cache)
    dx_num, dw_num, db_num = _numeric_grads(
        conv_relu_pool_forward, [x, w, b, conv_param, pool_param], dout, [0, 1, 2]
    )
    # The course reports dx ~1e-7, dw ~4e-10, db ~1e-11.
    assert rel_error(dx, dx_num) < 1e-6
    assert rel_error(dw, dw_num) < 1e-8
    assert rel_error(db, db_num) < 1e-9


def test_conv_bn_relu_gradient_check(rng, one_openmp_thread):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    gamma = rng.standard_normal(4)
    beta = rng.standard_normal(4)
    conv_param = {"stride": 1, "pad": 1}

    def forward(x, w, b, gamma, beta):
        return conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, {"mode": "train"})

    out, cache = forward(x, w, b, gamma, beta)
    conv_out = conv_forward_naive(x, w, b, conv_param)[0]
    expected = relu_forward(spatial_batchnorm_forward(conv_out, gamma, beta, {"mode": "train"})[0])[0]
    assert rel_error(out, expected) < 1e-10
    dout = rng.standard_normal(out.shape)
    grads = conv_bn_relu_backward(dout, cache)
    assert len(grads) == 5
    numeric = _numeric_grads(forward, [x, w, b, gamma, beta], dout, [0, 1, 2, 3, 4])
    for name, g, g_num in zip(["dx", "dw", "dgamma", "dbeta"], grads[:2] + grads[3:], numeric[:2] + numeric[3:]):
        assert rel_error(g, g_num) < 1e-6, name
    # The conv bias is followed by batch norm, which removes any per-channel shift:
    # its true gradient is zero, so a relative error would only compare rounding noise.
    assert np.allclose(grads[2], 0, atol=1e-10)
    assert np.allclose(numeric[2], 0, atol=1e-8)


def test_conv_bn_relu_updates_and_uses_running_statistics(rng):
    x = rng.standard_normal((4, 2, 5, 5)) + 3
    w = rng.standard_normal((3, 2, 3, 3))
    b, gamma, beta = np.zeros(3), np.ones(3), np.zeros(3)
    conv_param = {"stride": 1, "pad": 1}
    bn_param = {"mode": "train"}
    conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param)
    assert bn_param["running_mean"].shape == (3,)
    bn_param["mode"] = "test"
    running_mean = bn_param["running_mean"].copy()
    out, _ = conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param)
    conv_out = conv_forward_naive(x, w, b, conv_param)[0]
    expected = relu_forward(spatial_batchnorm_forward(conv_out, gamma, beta, dict(bn_param))[0])[0]
    assert rel_error(out, expected) < 1e-10
    assert np.array_equal(bn_param["running_mean"], running_mean)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sandwiches_preserve_dtype(rng, dtype):
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = np.zeros(4, dtype)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    assert out.dtype == dtype
    assert all(g.dtype == dtype for g in conv_relu_pool_backward(np.ones_like(out), cache))
    out, cache = conv_bn_relu_forward(x, w, b, np.ones(4, dtype), np.zeros(4, dtype), conv_param, {"mode": "train"})
    assert out.dtype == dtype
    assert all(g.dtype == dtype for g in conv_bn_relu_backward(np.ones_like(out), cache))
    out, cache = affine_relu_forward(x, rng.standard_normal((192, 5)).astype(dtype), np.zeros(5, dtype))
    assert out.dtype == dtype
    assert all(g.dtype == dtype for g in affine_relu_backward(np.ones_like(out), cache))


def test_sandwich_bad_input_raises_value_error():
    with pytest.raises(ValueError, match=r"does not tile"):
        conv_relu_pool_forward(np.zeros((1, 3, 7, 7)), np.zeros((2, 3, 3, 3)), np.zeros(2),
                               {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2})
    with pytest.raises(ValueError, match=r"channels"):
        conv_relu_forward(np.zeros((1, 3, 8, 8)), np.zeros((2, 4, 3, 3)), np.zeros(2), {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"gamma must have shape \(2,\)"):
        conv_bn_relu_forward(np.zeros((1, 3, 8, 8)), np.zeros((2, 3, 3, 3)), np.zeros(2), np.ones(3), np.zeros(2),
                             {"stride": 1, "pad": 1}, {"mode": "train"})

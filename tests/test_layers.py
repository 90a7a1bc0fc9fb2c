"""Tests of the naive layers in ``convlab.layers`` (the oracle).

Every backward pass is checked against a numeric gradient in float64, at the
error magnitudes the course promises; the conv and pool forward passes are
checked against the course's reference outputs.
"""

import numpy as np
import pytest

from convlab.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from convlab.layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    conv_backward_naive,
    conv_forward_naive,
    conv_output_size,
    dropout_backward,
    dropout_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    max_pool_backward_naive,
    max_pool_forward_naive,
    relu_backward,
    relu_forward,
    softmax_loss,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
    svm_loss,
)


# --------------------------------------------------------------------------
# Affine and nonlinearities
# --------------------------------------------------------------------------


def test_affine_forward_flattens_each_example(rng):
    x = rng.standard_normal((4, 2, 3))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    out, _ = affine_forward(x, w, b)
    expected = np.array([[sum(x[n].ravel()[d] * w[d, m] for d in range(6)) + b[m] for m in range(5)]
                         for n in range(4)])
    assert out.shape == (4, 5)
    assert rel_error(out, expected) < 1e-12


def test_affine_backward_gradient_check(rng):
    x = rng.standard_normal((10, 2, 3))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    dout = rng.standard_normal((10, 5))
    dx_num = eval_numerical_gradient_array(lambda x: affine_forward(x, w, b)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda w: affine_forward(x, w, b)[0], w, dout)
    db_num = eval_numerical_gradient_array(lambda b: affine_forward(x, w, b)[0], b, dout)
    dx, dw, db = affine_backward(dout, affine_forward(x, w, b)[1])
    assert dx.shape == x.shape
    assert rel_error(dx, dx_num) < 1e-9
    assert rel_error(dw, dw_num) < 1e-9
    assert rel_error(db, db_num) < 1e-9


def test_relu_forward_and_backward(rng):
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    out, cache = relu_forward(x)
    assert np.array_equal(out, [[0.0, 0.0, 0.0, 0.5, 3.0]])
    assert np.array_equal(relu_backward(np.ones_like(x), cache), [[0.0, 0.0, 0.0, 1.0, 1.0]])

    x = rng.standard_normal((10, 10))
    dout = rng.standard_normal((10, 10))
    dx_num = eval_numerical_gradient_array(lambda x: relu_forward(x)[0], x, dout)
    dx = relu_backward(dout, relu_forward(x)[1])
    assert rel_error(dx, dx_num) < 1e-10


def test_leaky_relu_forward_and_backward(rng):
    x = np.array([-2.0, -0.5, 0.5, 3.0])
    out, cache = leaky_relu_forward(x, alpha=0.1)
    assert np.allclose(out, [-0.2, -0.05, 0.5, 3.0], rtol=0, atol=1e-15)
    assert np.allclose(leaky_relu_backward(np.ones(4), cache), [0.1, 0.1, 1.0, 1.0])
    out_default, _ = leaky_relu_forward(x)
    assert np.allclose(out_default, [-0.02, -0.005, 0.5, 3.0], rtol=0, atol=1e-15)

    x = rng.standard_normal((6, 7))
    dout = rng.standard_normal((6, 7))
    dx_num = eval_numerical_gradient_array(lambda x: leaky_relu_forward(x, 0.2)[0], x, dout)
    dx = leaky_relu_backward(dout, leaky_relu_forward(x, 0.2)[1])
    assert rel_error(dx, dx_num) < 1e-10


# --------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------


@pytest.mark.exercise("conv.forward", points=2)
def test_conv_forward_naive_matches_course_reference():
    x_shape, w_shape = (2, 3, 4, 4), (3, 3, 4, 4)
    x = np.linspace(-0.1, 0.5, num=np.prod(x_shape)).reshape(x_shape)
    w = np.linspace(-0.2, 0.3, num=np.prod(w_shape)).reshape(w_shape)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
    correct_out = np.array([[[[-0.08759809, -0.10987781],
                              [-0.18387192, -0.2109216]],
                             [[0.21027089, 0.21661097],
                              [0.22847626, 0.23004637]],
                             [[0.50813986, 0.54309974],
                              [0.64082444, 0.67101435]]],
                            [[[-0.98053589, -1.03143541],
                              [-1.19128892, -1.24695841]],
                             [[0.69108355, 0.66880383],
                              [0.59480972, 0.56776003]],
                             [[2.36270298, 2.36904306],
                              [2.38090835, 2.38247847]]]])
    assert rel_error(out, correct_out) < 1e-7


@pytest.mark.exercise("conv.forward", points=2)
def test_conv_forward_naive_against_explicit_sum(rng):
    """Non-square filters, stride 2: compare with the defining formula written out."""
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    stride, pad = 2, 1
    out, _ = conv_forward_naive(x, w, b, {"stride": stride, "pad": pad})
    assert out.shape == (2, 4, 4, 4)
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    for n, f, i, j in np.ndindex(out.shape):
        total = b[f]
        for c, p, q in np.ndindex(3, 3, 2):
            total += w[f, c, p, q] * x_pad[n, c, i * stride + p, j * stride + q]
        assert abs(out[n, f, i, j] - total) < 1e-12


@pytest.mark.exercise("conv.backward", points=1)
@pytest.mark.parametrize(
    "x_shape, w_shape, conv_param",
    [
        ((4, 3, 5, 5), (2, 3, 3, 3), {"stride": 1, "pad": 1}),  # the course's check
        ((2, 2, 7, 5), (3, 2, 3, 1), {"stride": 2, "pad": 0}),  # non-square, strided
        ((1, 1, 4, 4), (2, 1, 4, 4), {"stride": 2, "pad": 1}),
    ],
)
def test_conv_backward_naive_gradient_check(rng, x_shape, w_shape, conv_param):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    out, cache = conv_forward_naive(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape)
    dx_num = eval_numerical_gradient_array(lambda x: conv_forward_naive(x, w, b, conv_param)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda w: conv_forward_naive(x, w, b, conv_param)[0], w, dout)
    db_num = eval_numerical_gradient_array(lambda b: conv_forward_naive(x, w, b, conv_param)[0], b, dout)
    dx, dw, db = conv_backward_naive(dout, cache)
    # The course promises errors around 1e-9.
    assert rel_error(dx, dx_num) < 1e-7
    assert rel_error(dw, dw_num) < 1e-7
    assert rel_error(db, db_num) < 1e-7


# --------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------


@pytest.mark.exercise("pool.forward", points=1)
def test_max_pool_forward_naive_matches_course_reference():
    x_shape = (2, 3, 4, 4)
    x = np.linspace(-0.3, 0.4, num=np.prod(x_shape)).reshape(x_shape)
    out, _ = max_pool_forward_naive(x, {"pool_width": 2, "pool_height": 2, "stride": 2})
    correct_out = np.array([[[[-0.26315789, -0.24842105],
                              [-0.20421053, -0.18947368]],
                             [[-0.14526316, -0.13052632],
                              [-0.08631579, -0.07157895]],
                             [[-0.02736842, -0.01263158],
                              [0.03157895, 0.04631579]]],
                            [[[0.09052632, 0.10526316],
                              [0.14947368, 0.16421053]],
                             [[0.20842105, 0.22315789],
                              [0.26736842, 0.28210526]],
                             [[0.32631579, 0.34105263],
                              [0.38526316, 0.4]]]])
    assert rel_error(out, correct_out) < 1e-7


@pytest.mark.exercise("pool.forward", points=1)
def test_max_pool_forward_overlapping_non_square_windows(rng):
    x = rng.standard_normal((2, 3, 6, 7))
    pool_param = {"pool_height": 3, "pool_width": 2, "stride": 1}
    out, _ = max_pool_forward_naive(x, pool_param)
    assert out.shape == (2, 3, 4, 6)
    for n, c, i, j in np.ndindex(out.shape):
        assert out[n, c, i, j] == x[n, c, i:i + 3, j:j + 2].max()


@pytest.mark.exercise("pool.backward", points=1)
@pytest.mark.parametrize(
    "x_shape, pool_param",
    [
        ((3, 2, 8, 8), {"pool_height": 2, "pool_width": 2, "stride": 2}),  # the course's check
        ((2, 2, 7, 7), {"pool_height": 3, "pool_width": 3, "stride": 2}),  # overlapping
        ((2, 3, 6, 7), {"pool_height": 3, "pool_width": 2, "stride": 1}),  # non-square, overlapping
    ],
)
def test_max_pool_backward_naive_gradient_check(rng, x_shape, pool_param):
    x = rng.standard_normal(x_shape)
    out, cache = max_pool_forward_naive(x, pool_param)
    dout = rng.standard_normal(out.shape)
    dx_num = eval_numerical_gradient_array(lambda x: max_pool_forward_naive(x, pool_param)[0], x, dout)
    dx = max_pool_backward_naive(dout, cache)
    # The course promises an error around 1e-12.
    assert rel_error(dx, dx_num) < 1e-10


@pytest.mark.exercise("pool.backward", points=1)
def test_max_pool_backward_routes_ties_to_first_maximum_in_row_major_order():
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    x = np.array([[[[1.0, 5.0, 7.0, 7.0],
                    [5.0, 2.0, 7.0, 7.0],
                    [0.0, 0.0, 3.0, 1.0],
                    [0.0, 4.0, 3.0, 3.0]]]])
    out, cache = max_pool_forward_naive(x, pool_param)
    assert np.array_equal(out, [[[[5.0, 7.0], [4.0, 3.0]]]])
    dx = max_pool_backward_naive(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]), cache)
    expected = np.array([[[[0.0, 10.0, 20.0, 0.0],   # 5 at (0,1) beats 5 at (1,0); 7 at (0,2) wins
                           [0.0, 0.0, 0.0, 0.0],
                           [0.0, 0.0, 40.0, 0.0],     # 3 at (2,2) beats (3,2) and (3,3)
                           [0.0, 30.0, 0.0, 0.0]]]])
    assert np.array_equal(dx, expected)


@pytest.mark.exercise("pool.backward", points=1)
def test_max_pool_backward_overlapping_windows_accumulate():
    """With stride 1, an input that is the maximum of two windows receives both gradients."""
    x = np.array([[[[0.0, 9.0, 0.0]]]])
    pool_param = {"pool_height": 1, "pool_width": 2, "stride": 1}
    out, cache = max_pool_forward_naive(x, pool_param)
    assert np.array_equal(out, [[[[9.0, 9.0]]]])
    dx = max_pool_backward_naive(np.array([[[[1.5, 2.0]]]]), cache)
    assert np.array_equal(dx, [[[[0.0, 3.5, 0.0]]]])


@pytest.mark.exercise("pool.backward", points=1)
def test_max_pool_backward_all_equal_window_goes_to_top_left():
    x = np.ones((1, 2, 3, 3))
    out, cache = max_pool_forward_naive(x, {"pool_height": 3, "pool_width": 3, "stride": 1})
    dx = max_pool_backward_naive(np.full(out.shape, 2.0), cache)
    expected = np.zeros_like(x)
    expected[:, :, 0, 0] = 2.0
    assert np.array_equal(dx, expected)


# --------------------------------------------------------------------------
# Batch normalization
# --------------------------------------------------------------------------


def test_batchnorm_train_mode_normalizes_then_scales_and_shifts(rng):
    x = 4 * rng.standard_normal((200, 3)) + 10
    out, _ = batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"})
    assert np.allclose(out.mean(axis=0), 0, atol=1e-10)
    assert np.allclose(out.std(axis=0), 1, rtol=1e-5)

    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([11.0, 12.0, 13.0])
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert np.allclose(out.mean(axis=0), beta, atol=1e-10)
    assert np.allclose(out.std(axis=0), gamma, rtol=1e-5)


def test_batchnorm_running_statistics_created_and_updated(rng):
    x = 3 * rng.standard_normal((50, 4)) - 2
    bn_param = {"mode": "train", "momentum": 0.8}
    batchnorm_forward(x, np.ones(4), np.zeros(4), bn_param)
    # Created on first use (zeros and ones) and updated with the momentum rule.
    assert np.allclose(bn_param["running_mean"], 0.2 * x.mean(axis=0), rtol=1e-12)
    assert np.allclose(bn_param["running_var"], 0.8 + 0.2 * x.var(axis=0), rtol=1e-12)


def test_batchnorm_test_mode_uses_running_statistics(rng):
    gamma, beta = np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3])
    bn_param = {"mode": "train"}
    for _ in range(50):
        batchnorm_forward(2.3 * rng.standard_normal((200, 3)) + 13, gamma, beta, bn_param)
    running_mean, running_var = bn_param["running_mean"].copy(), bn_param["running_var"].copy()
    assert np.allclose(running_mean, 13, atol=0.3)
    assert np.allclose(running_var, 2.3**2, rtol=0.1)

    bn_param["mode"] = "test"
    x = 2.3 * rng.standard_normal((3, 3)) + 13  # a tiny batch: its own statistics would be poor
    out, _ = batchnorm_forward(x, gamma, beta, bn_param)
    expected = gamma * (x - running_mean) / np.sqrt(running_var + 1e-5) + beta
    assert rel_error(out, expected) < 1e-12
    # Test mode leaves the running statistics alone and does not depend on the rest of the batch.
    assert np.array_equal(bn_param["running_mean"], running_mean)
    assert np.array_equal(bn_param["running_var"], running_var)
    out_first_row, _ = batchnorm_forward(x[:1], gamma, beta, bn_param)
    assert rel_error(out_first_row, out[:1]) < 1e-14
    train_out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert rel_error(train_out, out) > 1e-2


def test_batchnorm_test_mode_normalizes_fresh_data(rng):
    bn_param = {"mode": "train"}
    gamma, beta = np.ones(5), np.zeros(5)
    for _ in range(50):
        batchnorm_forward(2.3 * rng.standard_normal((200, 5)) + 13, gamma, beta, bn_param)
    bn_param["mode"] = "test"
    out, _ = batchnorm_forward(2.3 * rng.standard_normal((500, 5)) + 13, gamma, beta, bn_param)
    assert np.allclose(out.mean(axis=0), 0, atol=0.2)
    assert np.allclose(out.std(axis=0), 1, atol=0.1)


def _batchnorm_numeric_grads(forward, x, gamma, beta, bn_param, dout):
    dx = eval_numerical_gradient_array(lambda x: forward(x, gamma, beta, dict(bn_param))[0], x, dout)
    dg = eval_numerical_gradient_array(lambda g: forward(x, g, beta, dict(bn_param))[0], gamma, dout)
    db = eval_numerical_gradient_array(lambda b: forward(x, gamma, b, dict(bn_param))[0], beta, dout)
    return dx, dg, db


@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_alt])
def test_batchnorm_backward_gradient_check(rng, backward):
    N, D = 4, 5
    x = 5 * rng.standard_normal((N, D)) + 12
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    dout = rng.standard_normal((N, D))
    bn_param = {"mode": "train"}
    dx_num, dg_num, db_num = _batchnorm_numeric_grads(batchnorm_forward, x, gamma, beta, bn_param, dout)
    dx, dgamma, dbeta = backward(dout, batchnorm_forward(x, gamma, beta, dict(bn_param))[1])
    assert rel_error(dx, dx_num) < 1e-7
    assert rel_error(dgamma, dg_num) < 1e-9
    assert rel_error(dbeta, db_num) < 1e-9


@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_alt])
def test_batchnorm_backward_gradient_check_test_mode(rng, backward):
    N, D = 4, 3
    x = rng.standard_normal((N, D))
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    bn_param = {"mode": "test", "running_mean": rng.standard_normal(D), "running_var": rng.random(D) + 0.5}
    dout = rng.standard_normal((N, D))
    dx_num, dg_num, db_num = _batchnorm_numeric_grads(batchnorm_forward, x, gamma, beta, bn_param, dout)
    dx, dgamma, dbeta = backward(dout, batchnorm_forward(x, gamma, beta, dict(bn_param))[1])
    assert rel_error(dx, dx_num) < 1e-9
    assert rel_error(dgamma, dg_num) < 1e-9
    assert rel_error(dbeta, db_num) < 1e-9


def test_batchnorm_backward_alt_equals_graph_version(rng):
    N, D = 100, 50
    x = 5 * rng.standard_normal((N, D)) + 12
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    dout = rng.standard_normal((N, D))
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx1, dgamma1, dbeta1 = batchnorm_backward(dout, cache)
    dx2, dgamma2, dbeta2 = batchnorm_backward_alt(dout, cache)
    assert rel_error(dx1, dx2) < 1e-10
    assert rel_error(dgamma1, dgamma2) < 1e-14
    assert rel_error(dbeta1, dbeta2) < 1e-14


@pytest.mark.exercise("spatial_bn.forward", points=1)
def test_spatial_batchnorm_train_mode_statistics_per_channel(rng):
    x = 4 * rng.standard_normal((2, 3, 4, 5)) + 10
    out, _ = spatial_batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"})
    assert out.shape == x.shape
    assert np.allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-10)
    assert np.allclose(out.std(axis=(0, 2, 3)), 1, rtol=1e-5)
    gamma, beta = np.array([3.0, 4.0, 5.0]), np.array([6.0, 7.0, 8.0])
    out, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert np.allclose(out.mean(axis=(0, 2, 3)), beta, atol=1e-10)
    assert np.allclose(out.std(axis=(0, 2, 3)), gamma, rtol=1e-5)


@pytest.mark.exercise("spatial_bn.forward", points=1)
def test_spatial_batchnorm_test_mode_uses_running_statistics(rng):
    N, C, H, W = 10, 4, 11, 12
    gamma, beta = np.ones(C), np.zeros(C)
    bn_param = {"mode": "train"}
    for _ in range(50):
        spatial_batchnorm_forward(2.3 * rng.standard_normal((N, C, H, W)) + 13, gamma, beta, bn_param)
    assert bn_param["running_mean"].shape == (C,)
    bn_param["mode"] = "test"
    x = 2.3 * rng.standard_normal((N, C, H, W)) + 13
    out, _ = spatial_batchnorm_forward(x, gamma, beta, bn_param)
    assert np.allclose(out.mean(axis=(0, 2, 3)), 0, atol=0.1)
    assert np.allclose(out.std(axis=(0, 2, 3)), 1, atol=0.1)
    rm, rv = bn_param["running_mean"], bn_param["running_var"]
    expected = (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5)
    assert rel_error(out, expected) < 1e-12


@pytest.mark.exercise("spatial_bn.backward", points=2)
def test_spatial_batchnorm_backward_gradient_check(rng):
    N, C, H, W = 2, 3, 4, 5
    x = 5 * rng.standard_normal((N, C, H, W)) + 12
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    dout = rng.standard_normal((N, C, H, W))
    bn_param = {"mode": "train"}
    dx_num, dg_num, db_num = _batchnorm_numeric_grads(spatial_batchnorm_forward, x, gamma, beta, bn_param, dout)
    dx, dgamma, dbeta = spatial_batchnorm_backward(
        dout, spatial_batchnorm_forward(x, gamma, beta, dict(bn_param))[1]
    )
    assert dx.shape == x.shape
    assert rel_error(dx, dx_num) < 1e-7  # a known broken version had 1.0 here
    assert rel_error(dgamma, dg_num) < 1e-9
    assert rel_error(dbeta, db_num) < 1e-9


# --------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.25, 0.4, 0.7])
def test_dropout_train_mode_statistics(rng, p):
    x = rng.standard_normal((500, 500)) + 10
    out, _ = dropout_forward(x, {"mode": "train", "p": p, "seed": 123})
    # Inverted dropout: a fraction p is kept and scaled by 1/p, so the mean is preserved.
    assert abs((out != 0).mean() - p) < 0.01
    kept = out != 0
    assert np.allclose(out[kept], x[kept] / p)
    assert abs(out.mean() - x.mean()) < 0.1


def test_dropout_test_mode_is_identity(rng):
    x = rng.standard_normal((20, 30))
    out, cache = dropout_forward(x, {"mode": "test", "p": 0.3})
    assert np.array_equal(out, x)
    dout = rng.standard_normal((20, 30))
    assert np.array_equal(dropout_backward(dout, cache), dout)


def test_dropout_seed_makes_mask_reproducible(rng):
    x = rng.standard_normal((10, 10))
    out1, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 7})
    out2, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 7})
    out3, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 8})
    assert np.array_equal(out1, out2)
    assert not np.array_equal(out1, out3)


def test_dropout_keep_probability_one_keeps_everything(rng):
    x = rng.standard_normal((10, 10))
    out, _ = dropout_forward(x, {"mode": "train", "p": 1.0})
    assert np.array_equal(out, x)


def test_dropout_backward_gradient_check(rng):
    x = rng.standard_normal((10, 10)) + 10
    dout = rng.standard_normal((10, 10))
    dropout_param = {"mode": "train", "p": 0.2, "seed": 123}
    dx_num = eval_numerical_gradient_array(lambda x: dropout_forward(x, dropout_param)[0], x, dout)
    dx = dropout_backward(dout, dropout_forward(x, dropout_param)[1])
    assert rel_error(dx, dx_num) < 1e-10


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


def test_softmax_loss_at_small_scores_is_log_num_classes(rng):
    x = 0.001 * rng.standard_normal((50, 10))
    y = rng.integers(10, size=50)
    loss, _ = softmax_loss(x, y)
    assert abs(loss - np.log(10)) < 1e-2


def test_softmax_loss_against_definition_and_stable_for_large_scores():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y = np.array([2, 0])
    expected = -0.5 * (np.log(np.exp(3) / np.exp([1, 2, 3]).sum()) + np.log(1 / 3))
    loss, _ = softmax_loss(x, y)
    assert abs(loss - expected) < 1e-12
    loss_big, dx_big = softmax_loss(x + 1000.0, y)
    assert abs(loss_big - expected) < 1e-12
    assert np.all(np.isfinite(dx_big))


def test_svm_loss_at_small_scores_is_num_classes_minus_one(rng):
    x = 0.001 * rng.standard_normal((50, 10))
    y = rng.integers(10, size=50)
    loss, _ = svm_loss(x, y)
    assert abs(loss - 9) < 1e-1


def test_svm_loss_against_definition():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 0.5]])
    y = np.array([1, 1])
    # row 0: max(0, 1-2+1) + max(0, 3-2+1) = 0 + 2; row 1: all margins negative -> 0
    loss, dx = svm_loss(x, y)
    assert abs(loss - 1.0) < 1e-12
    assert np.allclose(dx, [[0.0, -0.5, 0.5], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_loss_gradient_check(rng, loss_fn):
    N, C = 50, 10
    x = 0.001 * rng.standard_normal((N, C))
    y = rng.integers(C, size=N)
    dx_num = eval_numerical_gradient(lambda x: loss_fn(x, y)[0], x, verbose=False)
    _, dx = loss_fn(x, y)
    # The course promises around 1e-9 (svm) and 1e-8 (softmax).
    assert rel_error(dx, dx_num) < 1e-7


# --------------------------------------------------------------------------
# dtypes: float32 in, float32 out
# --------------------------------------------------------------------------


def test_float32_stays_float32(rng):
    f32 = np.float32
    x = rng.standard_normal((2, 3, 6, 6)).astype(f32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(f32)
    b = rng.standard_normal(4).astype(f32)

    out, cache = conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})
    assert out.dtype == f32
    assert all(g.dtype == f32 for g in conv_backward_naive(np.ones_like(out), cache))

    out, cache = max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    assert out.dtype == f32
    assert max_pool_backward_naive(np.ones_like(out), cache).dtype == f32

    wa, ba = rng.standard_normal((108, 5)).astype(f32), np.zeros(5, f32)
    out, cache = affine_forward(x, wa, ba)
    assert out.dtype == f32
    assert all(g.dtype == f32 for g in affine_backward(np.ones_like(out), cache))

    for forward, backward in [(relu_forward, relu_backward), (leaky_relu_forward, leaky_relu_backward)]:
        out, cache = forward(x)
        assert out.dtype == f32
        assert backward(np.ones_like(out), cache).dtype == f32

    gamma, beta = np.ones(3, f32), np.zeros(3, f32)
    for mode in ("train", "test"):
        bn_param = {"mode": mode}
        out, cache = spatial_batchnorm_forward(x, gamma, beta, bn_param)
        assert out.dtype == f32
        assert bn_param["running_mean"].dtype == f32 and bn_param["running_var"].dtype == f32
        assert all(g.dtype == f32 for g in spatial_batchnorm_backward(np.ones_like(out), cache))
        _, cache = batchnorm_forward(x[:, :, 0, 0], gamma, beta, {"mode": mode})
        assert all(g.dtype == f32 for g in batchnorm_backward(np.ones((2, 3), f32), cache))

    out, cache = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 0})
    assert out.dtype == f32
    assert dropout_backward(np.ones_like(out), cache).dtype == f32

    scores = rng.standard_normal((4, 10)).astype(f32)
    for loss_fn in (softmax_loss, svm_loss):
        _, dscores = loss_fn(scores, np.array([0, 1, 2, 3]))
        assert dscores.dtype == f32


# --------------------------------------------------------------------------
# Bad input: ValueError naming the argument and the shapes
# --------------------------------------------------------------------------

CONV_X = np.zeros((2, 3, 5, 5))
CONV_W = np.zeros((4, 3, 3, 3))
CONV_B = np.zeros(4)


@pytest.mark.parametrize(
    "x, w, b, conv_param, match",
    [
        (np.zeros((2, 3, 5)), CONV_W, CONV_B, {"stride": 1, "pad": 1}, r"x must have shape \(N, C, H, W\)"),
        (CONV_X, np.zeros((4, 3, 3)), CONV_B, {"stride": 1, "pad": 1}, r"w must have shape"),
        (CONV_X, np.zeros((4, 2, 3, 3)), CONV_B, {"stride": 1, "pad": 1}, r"x and w .*channels.*\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"),
        (CONV_X, CONV_W, CONV_B, {"stride": 0, "pad": 1}, r"conv_param\['stride'\] must be positive"),
        (CONV_X, CONV_W, CONV_B, {"stride": -1, "pad": 1}, r"conv_param\['stride'\] must be positive"),
        (CONV_X, CONV_W, CONV_B, {"stride": 1, "pad": -1}, r"conv_param\['pad'\]"),
        (CONV_X, np.zeros((4, 3, 8, 8)), CONV_B, {"stride": 1, "pad": 1}, r"filter of w .*larger than the padded input"),
        (CONV_X, CONV_W, CONV_B, {"stride": 3, "pad": 1}, r"does not tile the padded input.*\(2, 3, 5, 5\)"),
        (CONV_X, CONV_W, CONV_B, {"stride": 1}, r"conv_param must contain 'pad'"),
        (CONV_X, CONV_W, np.zeros(3), {"stride": 1, "pad": 1}, r"b must have shape \(4,\).*got shape \(3,\)"),
        # sizes the fast kernels cannot hold are refused by the naive layer too
        (np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), np.zeros(1), {"stride": 2**31, "pad": 0},
         r"conv_param\['stride'\] must be at most 2\*\*31 - 1; got 2147483648"),
        (np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 1, 1)), np.zeros(1), {"stride": 2**30, "pad": 2**31 - 1},
         r"conv_param\['pad'\] = 2147483647 pads x \(shape \(1, 1, 3, 3\)\) to planes of 4294967297 x 4294967297"),
        (CONV_X, CONV_W, CONV_B, {"stride": float("inf"), "pad": 1}, r"conv_param\['stride'\] must be an integer"),
        (CONV_X, CONV_W, CONV_B, {"stride": 1, "pad": float("nan")}, r"conv_param\['pad'\] must be an integer"),
    ],
)
def test_conv_forward_naive_bad_input(x, w, b, conv_param, match):
    with pytest.raises(ValueError, match=match):
        conv_forward_naive(x, w, b, conv_param)


@pytest.mark.parametrize(
    "x_shape, pool_param, match",
    [
        ((2, 3, 5, 5), {"pool_height": 2, "pool_width": 2, "stride": 2}, r"pooling window 2x2 with stride 2 does not tile.*\(2, 3, 5, 5\)"),
        ((2, 3, 4, 4), {"pool_height": 5, "pool_width": 2, "stride": 1}, r"larger than the input.*\(2, 3, 4, 4\)"),
        ((2, 3, 4, 4), {"pool_height": 2, "pool_width": 2, "stride": 0}, r"pool_param\['stride'\] must be positive"),
        ((2, 3, 4, 4), {"pool_height": 0, "pool_width": 2, "stride": 1}, r"pool_param\['pool_height'\] must be positive"),
        ((2, 3, 4), {"pool_height": 2, "pool_width": 2, "stride": 2}, r"x must have shape \(N, C, H, W\)"),
        ((1, 1, 3, 3), {"pool_height": 3, "pool_width": 3, "stride": 2**31},
         r"pool_param\['stride'\] must be at most 2\*\*31 - 1"),
        ((1, 1, 3, 3), {"pool_height": 3, "pool_width": 3, "stride": float("inf")},
         r"pool_param\['stride'\] must be an integer"),
    ],
)
def test_max_pool_forward_naive_bad_input(x_shape, pool_param, match):
    with pytest.raises(ValueError, match=match):
        max_pool_forward_naive(np.zeros(x_shape), pool_param)


def test_conv_output_size_bounds_each_padded_plane_by_a_C_int():
    """At most 2**31 - 1 pixels per padded plane: 46339**2 fits, 46341**2 does not."""
    assert conv_output_size((1, 1, 3, 3), (1, 1, 1, 1), {"stride": 1, "pad": 23168}) == (46339, 46339)
    with pytest.raises(ValueError, match=r"conv_param\['pad'\] = 23169 pads x .* 46341 x 46341 = 2147488281 pixels"):
        conv_output_size((1, 1, 3, 3), (1, 1, 1, 1), {"stride": 1, "pad": 23169})
    with pytest.raises(ValueError, match=r"x has shape \(1, 1, 46341, 46341\): planes of"):
        conv_output_size((1, 1, 46341, 46341), (1, 1, 1, 1), {"stride": 1, "pad": 0})


def test_affine_forward_bad_input():
    with pytest.raises(ValueError, match=r"x of shape \(4, 2, 3\) flattens to .*\(4, 6\).*w has shape \(5, 2\)"):
        affine_forward(np.zeros((4, 2, 3)), np.zeros((5, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"b must have shape \(2,\).*got shape \(3,\)"):
        affine_forward(np.zeros((4, 6)), np.zeros((6, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=r"w must have shape \(D, M\)"):
        affine_forward(np.zeros((4, 6)), np.zeros(6), np.zeros(1))


@pytest.mark.parametrize("forward", [batchnorm_forward, spatial_batchnorm_forward])
def test_batchnorm_bad_input(forward):
    x = np.zeros((4, 3)) if forward is batchnorm_forward else np.zeros((4, 3, 2, 2))
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\).*got shape \(2,\)"):
        forward(x, np.ones(2), np.zeros(3), {"mode": "train"})
    with pytest.raises(ValueError, match=r"beta must have shape \(3,\).*got shape \(4,\)"):
        forward(x, np.ones(3), np.zeros(4), {"mode": "train"})
    with pytest.raises(ValueError, match=r"bn_param\['mode'\] must be 'train' or 'test'"):
        forward(x, np.ones(3), np.zeros(3), {"mode": "eval"})
    with pytest.raises(ValueError, match=r"bn_param\['mode'\]"):
        forward(x, np.ones(3), np.zeros(3), {})
    with pytest.raises(ValueError, match=r"bn_param\['running_mean'\] must have shape \(3,\).*\(5,\)"):
        forward(x, np.ones(3), np.zeros(3), {"mode": "test", "running_mean": np.zeros(5)})


@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("eps", [float("nan"), float("inf"), float("-inf"), 0.0, -1e-5, "tiny", None])
def test_batchnorm_refuses_an_eps_that_is_not_positive_and_finite(mode, eps):
    with pytest.raises(ValueError, match=r"bn_param\['eps'\] must be"):
        batchnorm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3), {"mode": mode, "eps": eps})


def test_batchnorm_bad_input_dimensions():
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\); got shape \(4, 3, 2\)"):
        batchnorm_forward(np.zeros((4, 3, 2)), np.ones(3), np.zeros(3), {"mode": "train"})
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\); got shape \(4, 3\)"):
        spatial_batchnorm_forward(np.zeros((4, 3)), np.ones(3), np.zeros(3), {"mode": "train"})


def test_dropout_bad_input():
    for p in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"dropout_param\['p'\]"):
            dropout_forward(np.zeros(3), {"mode": "train", "p": p})
    with pytest.raises(ValueError, match=r"dropout_param must contain 'p'"):
        dropout_forward(np.zeros(3), {"mode": "train"})
    with pytest.raises(ValueError, match=r"dropout_param\['mode'\]"):
        dropout_forward(np.zeros(3), {"mode": "eval", "p": 0.5})


@pytest.mark.parametrize("loss_fn", [softmax_loss, svm_loss])
def test_loss_bad_labels(loss_fn):
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 4\).*\(3, 4\)"):
        loss_fn(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 4\)"):
        loss_fn(x, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"y must have shape \(3,\).*got shape \(2,\)"):
        loss_fn(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"y must have shape \(3,\).*got shape \(3, 1\)"):
        loss_fn(x, np.array([[0], [1], [2]]))
    with pytest.raises(ValueError, match=r"y must hold integer class labels"):
        loss_fn(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"x must have shape \(N, C\)"):
        loss_fn(np.zeros(3), np.array([0, 1, 2]))


def _forward_backward_pairs(rng):
    """(name, cache, correct dout shape, backward) for every layer."""
    x4 = rng.standard_normal((2, 3, 4, 4))
    x2 = rng.standard_normal((5, 3))
    pairs = [
        ("affine", affine_forward(x2, np.zeros((3, 2)), np.zeros(2)), affine_backward),
        ("relu", relu_forward(x2), relu_backward),
        ("leaky_relu", leaky_relu_forward(x2), leaky_relu_backward),
        ("conv", conv_forward_naive(x4, np.zeros((2, 3, 3, 3)), np.zeros(2), {"stride": 1, "pad": 0}),
         conv_backward_naive),
        ("pool", max_pool_forward_naive(x4, {"pool_height": 2, "pool_width": 2, "stride": 2}),
         max_pool_backward_naive),
        ("batchnorm", batchnorm_forward(x2, np.ones(3), np.zeros(3), {"mode": "train"}), batchnorm_backward),
        ("batchnorm_alt", batchnorm_forward(x2, np.ones(3), np.zeros(3), {"mode": "train"}),
         batchnorm_backward_alt),
        ("spatial_batchnorm", spatial_batchnorm_forward(x4, np.ones(3), np.zeros(3), {"mode": "train"}),
         spatial_batchnorm_backward),
        ("dropout", dropout_forward(x2, {"mode": "train", "p": 0.5, "seed": 0}), dropout_backward),
        ("dropout_test", dropout_forward(x2, {"mode": "test", "p": 0.5}), dropout_backward),
    ]
    return [(name, cache, out.shape, backward) for name, (out, cache), backward in pairs]


def test_backward_rejects_dout_of_wrong_shape(rng):
    for name, cache, shape, backward in _forward_backward_pairs(rng):
        wrong = shape[:-1] + (shape[-1] + 1,)
        with pytest.raises(ValueError, match=r"dout must have the shape of the forward output") as info:
            backward(np.zeros(wrong), cache)
        assert str(shape) in str(info.value) and str(wrong) in str(info.value), name

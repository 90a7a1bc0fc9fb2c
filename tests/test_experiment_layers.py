"""The layers added for the experiments chapter (:mod:`convlab.modern_layers`), and the fused Cython kernel.

GELU, global max pooling, batch norm with a frozen scale, batch norm followed
by a named activation, floor pooling and label smoothing are checked against
numeric gradients; the fused batch-norm + activation kernel
(:mod:`convlab._fast.bn_act`) is checked against the naive layers.
"""

import math

import numpy as np
import pytest

from convlab import layers, modern_layers
from convlab._fast import bn_act
from convlab.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error


def test_gelu_values_match_the_definition(rng):
    x = rng.standard_normal(50) * 3
    out, _ = modern_layers.gelu_forward(x)
    expected = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    assert np.max(np.abs(out - expected)) < 1e-14
    # Known values: GELU(0) = 0, GELU(x) -> x for large x, -> 0 for very negative x.
    assert modern_layers.gelu_forward(np.array([0.0, 10.0, -10.0]))[0] == pytest.approx([0, 10, 0], abs=1e-12)


def test_gelu_backward_gradient_check(rng):
    x = rng.standard_normal((4, 5))
    dout = rng.standard_normal((4, 5))
    _, cache = modern_layers.gelu_forward(x)
    dx = modern_layers.gelu_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda v: modern_layers.gelu_forward(v)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8


def test_global_max_pool_forward_and_gradient(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    out, cache = modern_layers.global_max_pool_forward(x)
    assert out.shape == (3, 4)
    assert np.array_equal(out, x.max(axis=(2, 3)))
    dout = rng.standard_normal((3, 4))
    dx = modern_layers.global_max_pool_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda v: modern_layers.global_max_pool_forward(v)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8


def test_global_max_pool_ties_go_to_the_first_maximum():
    x = np.zeros((1, 1, 2, 2))
    _, cache = modern_layers.global_max_pool_forward(x)
    dx = modern_layers.global_max_pool_backward(np.ones((1, 1)), cache)
    assert dx.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]


def test_global_max_pool_rejects_bad_shapes():
    with pytest.raises(ValueError, match="x must have shape"):
        modern_layers.global_max_pool_forward(np.zeros((2, 3, 4)))
    _, cache = modern_layers.global_max_pool_forward(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError):
        modern_layers.global_max_pool_backward(np.zeros((3, 2)), cache)


def test_frozen_scale_batchnorm_gradient_check(rng):
    x = rng.standard_normal((4, 3, 2, 5)) * 2 + 1
    beta = rng.standard_normal(3)
    dout = rng.standard_normal(x.shape)

    def forward(x_, beta_):
        return modern_layers.spatial_batchnorm_frozen_scale_forward(x_, beta_, {"mode": "train"}, scale=1.5)[0]

    out, cache = modern_layers.spatial_batchnorm_frozen_scale_forward(x, beta, {"mode": "train"}, scale=1.5)
    # Every channel has mean beta and standard deviation 1.5 (up to eps).
    assert np.allclose(out.mean(axis=(0, 2, 3)), beta)
    assert np.allclose(out.std(axis=(0, 2, 3)), 1.5, rtol=1e-4)
    dx, dbeta = modern_layers.spatial_batchnorm_frozen_scale_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda v: forward(v, beta), x, dout)
    dbeta_num = eval_numerical_gradient_array(lambda v: forward(x, v), beta, dout)
    assert rel_error(dx, dx_num) < 1e-7
    assert rel_error(dbeta, dbeta_num) < 1e-8


def test_label_smoothing_zero_is_the_plain_loss(rng):
    x = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    plain = layers.softmax_loss(x, y)
    smooth0 = layers.softmax_loss(x, y, label_smoothing=0.0)
    assert plain[0] == smooth0[0]
    assert np.array_equal(plain[1], smooth0[1])


def test_label_smoothing_loss_and_gradient(rng):
    x = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    eps = 0.2
    loss, dx = layers.softmax_loss(x, y, label_smoothing=eps)
    # Direct formula: cross-entropy with the smoothed target distribution.
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    target = np.full((6, 4), eps / 4)
    target[np.arange(6), y] += 1 - eps
    assert loss == pytest.approx(-(target * np.log(p)).sum(1).mean(), rel=1e-12)
    dx_num = eval_numerical_gradient(lambda v: layers.softmax_loss(v, y, label_smoothing=eps)[0],
                                     x, verbose=False)
    # Normwise: one entry of dx is ~1e-5, where the centred difference's own
    # rounding dominates an elementwise relative error.
    assert np.linalg.norm(dx - dx_num) < 1e-8 * np.linalg.norm(dx_num)


def test_label_smoothing_rejects_bad_values(rng):
    with pytest.raises(ValueError, match="label_smoothing"):
        layers.softmax_loss(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.0)


@pytest.mark.parametrize("activation", modern_layers.ACTIVATIONS)
def test_spatial_batchnorm_act_gradient_check(rng, activation):
    x = rng.standard_normal((3, 2, 3, 4)) * 2 + 1
    gamma, beta = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    dout = rng.standard_normal(x.shape)

    def forward(x_, gamma_, beta_):
        return modern_layers.spatial_batchnorm_act_forward(x_, gamma_, beta_, {"mode": "train"},
                                                    activation, 0.1)[0]

    _, cache = modern_layers.spatial_batchnorm_act_forward(x, gamma, beta, {"mode": "train"}, activation, 0.1)
    dx, dgamma, dbeta = modern_layers.spatial_batchnorm_act_backward(dout, cache)
    assert rel_error(dx, eval_numerical_gradient_array(lambda v: forward(v, gamma, beta), x, dout)) < 1e-6
    assert rel_error(dgamma, eval_numerical_gradient_array(lambda v: forward(x, v, beta), gamma, dout)) < 1e-7
    assert rel_error(dbeta, eval_numerical_gradient_array(lambda v: forward(x, gamma, v), beta, dout)) < 1e-7


def test_activation_by_name_is_the_named_layer(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    assert np.array_equal(modern_layers.activation_forward(x, "relu")[0], layers.relu_forward(x)[0])
    assert np.array_equal(modern_layers.activation_forward(x, "leaky_relu", 0.2)[0],
                          layers.leaky_relu_forward(x, 0.2)[0])
    assert np.array_equal(modern_layers.activation_forward(x, "gelu")[0], modern_layers.gelu_forward(x)[0])
    out, cache = modern_layers.activation_forward(x, "identity")
    assert np.array_equal(out, x)
    assert np.array_equal(modern_layers.activation_backward(x, cache), x)
    with pytest.raises(ValueError, match="activation must be one of"):
        modern_layers.activation_forward(x, "tanh")


@pytest.mark.parametrize("H, W", [(4, 6), (5, 7), (2, 3)])
def test_max_pool_floor_naive_drops_the_odd_row_and_column(rng, H, W):
    x = rng.standard_normal((2, 3, H, W))
    out, cache = modern_layers.max_pool_floor_forward_naive(x)
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    cropped = x[:, :, :2 * (H // 2), :2 * (W // 2)]
    assert np.array_equal(out, layers.max_pool_forward_naive(cropped, pool)[0])
    dout = rng.standard_normal(out.shape)
    dx = modern_layers.max_pool_floor_backward_naive(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda v: modern_layers.max_pool_floor_forward_naive(v)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-8
    assert not dx[:, :, 2 * (H // 2):, :].any() and not dx[:, :, :, 2 * (W // 2):].any()


# ----------------------------------------------------------------- fused kernel

#: The kernel's activation codes, by the names of the naive layers.
ACTS = {0: "identity", 1: "relu", 2: "leaky_relu", 3: "gelu"}


@pytest.mark.usefixtures("simd_path")
@pytest.mark.parametrize("act", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_bn_act_matches_the_naive_layers(rng, act, dtype):
    N, C, H, W = 5, 3, 4, 6
    x = (rng.standard_normal((N, C, H, W)) * 2 + 0.5).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    dout = rng.standard_normal((N, C, H, W)).astype(dtype)
    alpha = 0.1
    ref, cache = modern_layers.spatial_batchnorm_act_forward(
        x.astype(np.float64), gamma.astype(np.float64), beta.astype(np.float64),
        {"mode": "train", "eps": 1e-5}, ACTS[act], alpha)
    dx_ref, dgamma_ref, dbeta_ref = modern_layers.spatial_batchnorm_act_backward(dout.astype(np.float64), cache)

    x3 = x.reshape(N, C, H * W)
    out = np.empty_like(x3)
    mean, invstd = np.empty(C), np.empty(C)
    bn_act.bn_act_forward_train(x3, gamma, beta, 1e-5, act, alpha, out, mean, invstd)
    dx = np.empty_like(x3)
    dgamma, dbeta = np.empty(C), np.empty(C)
    bn_act.bn_act_backward(dout.reshape(N, C, -1), x3, mean, invstd, gamma, beta, act, alpha,
                           dx, dgamma, dbeta)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    # Normwise relative errors: elementwise ones are meaningless near zero.
    for got, want in ((out.reshape(x.shape), ref), (dx.reshape(x.shape), dx_ref),
                      (dgamma, dgamma_ref), (dbeta, dbeta_ref)):
        assert np.linalg.norm(got - want) <= tol * np.linalg.norm(want) * 10
    assert np.allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)))


@pytest.mark.usefixtures("simd_path")
@pytest.mark.parametrize("act", [1, 2, 3])
def test_fused_test_mode_and_act_backward(rng, act):
    N, C, P = 3, 4, 7
    x = rng.standard_normal((N, C, P))
    scale, shift = rng.uniform(0.5, 2, C), rng.standard_normal(C)
    out = np.empty_like(x)
    bn_act.scale_shift_act(x, scale, shift, act, 0.1, out)
    y = scale[None, :, None] * x + shift[None, :, None]
    if act == 1:
        want = np.maximum(y, 0)
    elif act == 2:
        want = np.where(y > 0, y, 0.1 * y)
    else:
        want = modern_layers.gelu_forward(y)[0]
    assert np.max(np.abs(out - want)) < 1e-12
    dout = rng.standard_normal(x.shape)
    dy = np.empty_like(x)
    bn_act.act_backward(dout, x, scale, shift, act, 0.1, dy)

    def f(v):
        o = np.empty_like(v)
        bn_act.scale_shift_act(v, scale, shift, act, 0.1, o)
        return o

    dx_num = eval_numerical_gradient_array(f, x.copy(), dout) / scale[None, :, None]
    assert rel_error(dy, dx_num) < 1e-7


@pytest.mark.usefixtures("simd_path")
def test_fused_float32_gelu_is_accurate_over_a_wide_range():
    y = np.linspace(-12, 12, 4001).astype(np.float32).reshape(1, 1, -1)
    one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
    out = np.empty_like(y)
    bn_act.scale_shift_act(y, one, zero, 3, 0.0, out)
    want = modern_layers.gelu_forward(y.astype(np.float64))[0]
    assert np.max(np.abs(out - want)) < 1e-6
    d = np.empty_like(y)
    bn_act.act_backward(np.ones_like(y), y, one, zero, 3, 0.0, d)
    want_d = modern_layers.gelu_backward(np.ones(y.shape), y.astype(np.float64))
    assert np.max(np.abs(d - want_d)) < 1e-6


@pytest.mark.usefixtures("simd_path")
def test_fused_kernel_does_not_depend_on_the_thread_count(rng):
    from threadpoolctl import threadpool_limits

    x = rng.standard_normal((8, 6, 33)).astype(np.float32)
    g, b = np.ones(6, np.float32), np.zeros(6, np.float32)
    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="openmp"):
            out, m, s = np.empty_like(x), np.empty(6), np.empty(6)
            bn_act.bn_act_forward_train(x, g, b, 1e-5, 3, 0.0, out, m, s)
            dx, dg, db = np.empty_like(x), np.empty(6), np.empty(6)
            bn_act.bn_act_backward(x, x, m, s, g, b, 3, 0.0, dx, dg, db)
            results.append((out, dx, dg, db))
    for a, b_ in zip(*results):
        assert np.array_equal(a, b_)

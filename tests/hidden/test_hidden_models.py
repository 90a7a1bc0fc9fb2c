"""Hidden tests of the conv - relu - pool sandwich and the three-layer network's loss.

At grading the inputs come from a secret seed drawn anew for every grading, so
each test draws inputs at which the function is smooth (:func:`smooth_input`):
a numeric gradient taken across a ReLU's or a max-pool's kink is not the
gradient, and would fail a correct answer on some draws. Gradients are
compared relative to their largest entry (:func:`convlab.gradient_check.scaled_error`).
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from convlab.classifiers.three_layer_convnet import ThreeLayerConvNet
from convlab.fast_layers import conv_forward_fast, max_pool_forward_fast
from convlab.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, scaled_error
from convlab.layer_utils import conv_relu_pool_backward, conv_relu_pool_forward
from convlab.layers import affine_forward, softmax_loss


MARGIN = 1e-3  # no ReLU or max-pool decision within this distance of flipping; numeric steps are <= 1e-5


def sandwich_oracle(x, w, b, conv_param, pool_param):
    a, _ = conv_forward_fast(x, w, b, conv_param)
    return max_pool_forward_fast(np.maximum(a, 0), pool_param)[0]


def kink_distance(a, pool_param):
    """How far the conv output ``a`` (N, F, H, W) is from a kink of ReLU then max pooling.

    The smaller of: the smallest ``|a|`` (a ReLU switching), and in each pool
    window whose maximum is positive, the gap between its two largest values
    (the pool's choice switching).
    """
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    windows = sliding_window_view(np.maximum(a, 0), (ph, pw), axis=(2, 3))[:, :, ::stride, ::stride]
    ordered = np.sort(windows.reshape(*windows.shape[:4], -1), axis=-1)
    gaps = (ordered[..., -1] - ordered[..., -2])[ordered[..., -1] > 0]
    return min(np.abs(a).min(), gaps.min(initial=np.inf))


def smooth_input(rng, shape, alive, tries=1000):
    """A standard normal draw of ``shape`` for which ``alive(x)`` holds (redrawn until it does)."""
    for _ in range(tries):
        x = rng.standard_normal(shape)
        if alive(x):
            return x
    raise AssertionError(f"no smooth input of shape {shape} in {tries} draws")


@pytest.mark.exercise("sandwich.conv_relu_pool", points=2)
@pytest.mark.parametrize("stride, pad, size", [(1, 1, 6), (2, 2, 9)])
def test_conv_relu_pool_random_shapes(rng, stride, pad, size):
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    conv_param = {"stride": stride, "pad": pad}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    x = smooth_input(rng, (2, 3, size, size),
                     lambda x: kink_distance(conv_forward_fast(x, w, b, conv_param)[0], pool_param) > MARGIN)
    out, cache = conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    assert scaled_error(out, sandwich_oracle(x, w, b, conv_param, pool_param)) < 1e-10
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_relu_pool_backward(dout, cache)
    oracle = sandwich_oracle
    assert scaled_error(dx, eval_numerical_gradient_array(lambda v: oracle(v, w, b, conv_param, pool_param), x, dout)) < 1e-6
    assert scaled_error(dw, eval_numerical_gradient_array(lambda v: oracle(x, v, b, conv_param, pool_param), w, dout)) < 1e-6
    assert scaled_error(db, eval_numerical_gradient_array(lambda v: oracle(x, w, v, conv_param, pool_param), b, dout)) < 1e-6


def _small_model(reg, dtype=np.float64):
    return ThreeLayerConvNet(input_dim=(2, 8, 6), num_filters=3, filter_size=3, hidden_dim=5,
                             num_classes=4, weight_scale=0.5, reg=reg, dtype=dtype, seed=7)


def lively(model, X):
    """Whether the loss is smooth at ``X`` and its first layer's gradients are not all zero.

    Smooth: no conv ReLU or max-pool decision, and no hidden ReLU, within
    ``MARGIN`` of flipping. Lively: some hidden unit is active, so the
    gradients of ``W1`` and ``b1`` test something.
    """
    p = model.params
    a, _ = conv_forward_fast(X, p["W1"], p["b1"], model.conv_param)
    pooled = max_pool_forward_fast(np.maximum(a, 0), model.pool_param)[0]
    hidden = affine_forward(pooled, p["W2"], p["b2"])[0]
    return kink_distance(a, model.pool_param) > MARGIN and np.abs(hidden).min() > MARGIN and (hidden > 0).any()


def loss_oracle(model, X, y):
    """The loss written out with the reference layers."""
    p = model.params
    pooled = sandwich_oracle(X, p["W1"], p["b1"], model.conv_param, model.pool_param)
    hidden = np.maximum(affine_forward(pooled, p["W2"], p["b2"])[0], 0)
    scores = affine_forward(hidden, p["W3"], p["b3"])[0]
    reg = 0.5 * model.reg * sum(np.sum(p[k] ** 2) for k in ("W1", "W2", "W3"))
    return scores, softmax_loss(scores, y)[0] + reg


@pytest.mark.exercise("three_layer.loss", points=2)
@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_three_layer_loss_and_gradients_on_odd_input(rng, reg):
    model = _small_model(reg)
    X = smooth_input(rng, (3, 2, 8, 6), lambda X: lively(model, X))
    y = rng.integers(4, size=3)
    before = X.copy()
    scores, expected = loss_oracle(model, X, y)
    assert scaled_error(model.loss(X), scores) < 1e-10
    loss, grads = model.loss(X, y)
    assert abs(loss - expected) < 1e-10
    assert set(grads) == set(model.params)
    for name in sorted(model.params):
        def f(_):
            return model.loss(X, y)[0]
        numeric = eval_numerical_gradient(f, model.params[name], verbose=False, h=1e-6)
        # relative to the largest entry: single tiny entries make elementwise ratios noisy
        assert scaled_error(grads[name], numeric) < 1e-6, name
    assert np.array_equal(X, before)


@pytest.mark.exercise("three_layer.loss", points=1)
def test_three_layer_float32_gradients(rng):
    model = _small_model(0.1, np.float32)
    loss, grads = model.loss(rng.standard_normal((2, 2, 8, 6)), np.array([0, 3]))
    assert np.isfinite(loss)
    assert all(grads[k].dtype == np.float32 and grads[k].shape == model.params[k].shape for k in model.params)

"""Tests of ``convlab.classifiers.three_layer_convnet.ThreeLayerConvNet``."""

import numpy as np
import pytest

from convlab.classifiers.three_layer_convnet import ThreeLayerConvNet
from convlab.gradient_check import eval_numerical_gradient, rel_error
from convlab.layers import affine_forward, conv_forward_naive, max_pool_forward_naive, relu_forward, softmax_loss


def _naive_scores(model, X):
    """The network's forward pass assembled from the naive layers (the oracle)."""
    p = model.params
    a = relu_forward(conv_forward_naive(X, p["W1"], p["b1"], model.conv_param)[0])[0]
    a = max_pool_forward_naive(a, model.pool_param)[0]
    a = relu_forward(affine_forward(a, p["W2"], p["b2"])[0])[0]
    return affine_forward(a, p["W3"], p["b3"])[0]


def test_parameter_shapes_and_dtype_default():
    model = ThreeLayerConvNet(seed=0)
    expected = {"W1": (32, 3, 7, 7), "b1": (32,), "W2": (32 * 16 * 16, 100), "b2": (100,),
                "W3": (100, 10), "b3": (10,)}
    assert {k: v.shape for k, v in model.params.items()} == expected
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert abs(model.params["W2"].std() - 1e-3) < 1e-4
    assert all(not v.any() for k, v in model.params.items() if k.startswith("b"))


@pytest.mark.parametrize(
    "input_dim, filter_size, pooled",
    [((3, 16, 16), 3, (8, 8)), ((1, 10, 14), 5, (5, 7)), ((2, 15, 15), 4, (7, 7)), ((3, 12, 20), 7, (6, 10))],
)
def test_flattened_size_follows_input_dim(rng, input_dim, filter_size, pooled):
    model = ThreeLayerConvNet(input_dim=input_dim, num_filters=4, filter_size=filter_size, hidden_dim=6,
                              dtype=np.float64, seed=1)
    assert model.params["W2"].shape == (4 * pooled[0] * pooled[1], 6)
    X = rng.standard_normal((3, *input_dim))
    scores = model.loss(X)
    assert scores.shape == (3, 10)
    assert rel_error(scores, _naive_scores(model, X)) < 1e-10


def test_seed_makes_initialization_reproducible():
    a, b, c = (ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, hidden_dim=5, seed=s) for s in (3, 3, 4))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["W1"], c.params["W1"])


@pytest.mark.exercise("three_layer.loss", points=1)
def test_initial_loss_is_log_num_classes_and_grows_with_reg(rng, one_openmp_thread):
    model = ThreeLayerConvNet(seed=0)
    X = rng.standard_normal((10, 3, 32, 32))
    y = rng.integers(10, size=10)
    loss, grads = model.loss(X, y)
    assert abs(loss - np.log(10)) < 1e-3
    assert set(grads) == set(model.params)
    assert all(grads[k].shape == model.params[k].shape and grads[k].dtype == np.float32 for k in grads)
    model.reg = 0.5
    loss_reg, _ = model.loss(X, y)
    assert loss_reg > loss + 0.1


@pytest.mark.exercise("three_layer.loss", points=1)
def test_regularization_adds_half_reg_sum_of_squares(rng):
    kwargs = dict(input_dim=(2, 8, 8), num_filters=3, filter_size=3, hidden_dim=5, weight_scale=0.1,
                  dtype=np.float64, seed=5)
    plain, regularized = ThreeLayerConvNet(**kwargs), ThreeLayerConvNet(reg=0.7, **kwargs)
    X = rng.standard_normal((4, 2, 8, 8))
    y = rng.integers(10, size=4)
    loss0, grads0 = plain.loss(X, y)
    loss1, grads1 = regularized.loss(X, y)
    penalty = 0.5 * 0.7 * sum(np.sum(plain.params[k] ** 2) for k in ("W1", "W2", "W3"))
    assert abs(loss1 - (loss0 + penalty)) < 1e-12
    assert abs(loss0 - softmax_loss(_naive_scores(plain, X), y)[0]) < 1e-12
    for k in grads0:
        expected = grads0[k] + (0.7 * plain.params[k] if k.startswith("W") else 0)
        assert rel_error(grads1[k], expected) < 1e-12, k


@pytest.mark.exercise("three_layer.loss", points=1)
@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_gradient_check_on_3x16x16_inputs(rng, one_openmp_thread, reg):
    """The check a known broken version could not run: it hard-coded the flattened size.

    ``h = 1e-6`` keeps the nudges away from ReLU and max-pool kinks. The
    weights are drawn at scale 0.05 rather than the default 1e-3 so that the
    gradients stand well above the round-off of the numeric ones (about
    1e-10 absolute); the largest elementwise relative error then comes from
    the entries closest to zero, around 1e-6 to 1e-5.
    """
    X = rng.standard_normal((2, 3, 16, 16))
    y = rng.integers(10, size=2)
    model = ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=(3, 16, 16), hidden_dim=7,
                              weight_scale=0.05, reg=reg, dtype=np.float64, seed=0)
    loss, grads = model.loss(X, y)
    for name in sorted(model.params):
        numeric = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name], verbose=False, h=1e-6)
        # a loss that does not move with the parameter passes any comparison of zeros: it must move
        assert np.max(np.abs(numeric)) > 1e-6, name
        assert rel_error(numeric, grads[name]) < 1e-4, name
        # Relative to the gradient's overall scale, the two agree to round-off.
        assert np.max(np.abs(numeric - grads[name])) < 1e-7 * np.max(np.abs(grads[name])) + 1e-9, name


def test_float32_model_computes_in_float32(rng):
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, filter_size=3, hidden_dim=5, seed=0)
    X = rng.standard_normal((2, 3, 8, 8))  # float64 input is cast to the model's dtype
    assert model.loss(X).dtype == np.float32
    _, grads = model.loss(X, np.array([1, 2]))
    assert all(g.dtype == np.float32 for g in grads.values())


def test_bad_input_dim_raises():
    with pytest.raises(ValueError, match=r"input_dim \(3, 15, 15\) with filter_size 7 .*15x15 conv output.*2x2 max pool"):
        ThreeLayerConvNet(input_dim=(3, 15, 15), filter_size=7)
    with pytest.raises(ValueError, match=r"input_dim \(3, 1, 1\) does not fit filter_size 4 .*larger than the padded input"):
        ThreeLayerConvNet(input_dim=(3, 1, 1), filter_size=4)
    with pytest.raises(ValueError, match=r"input_dim must be \(C, H, W\)"):
        ThreeLayerConvNet(input_dim=(32, 32))
    with pytest.raises(ValueError, match=r"num_filters must be a positive integer"):
        ThreeLayerConvNet(num_filters=0)
    with pytest.raises(ValueError, match=r"filter_size must be a positive integer"):
        ThreeLayerConvNet(filter_size=3.5)
    with pytest.raises(ValueError, match=r"dtype must be a floating dtype"):
        ThreeLayerConvNet(dtype=np.int32)


def test_bad_minibatch_raises():
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, filter_size=3, hidden_dim=5, seed=0)
    with pytest.raises(ValueError, match=r"X must have shape \(N, 3, 8, 8\).*got shape \(2, 3, 16, 16\)"):
        model.loss(np.zeros((2, 3, 16, 16)))
    with pytest.raises(ValueError, match=r"X must have shape .*got shape \(3, 8, 8\)"):
        model.loss(np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 10\)"):
        model.loss(np.zeros((2, 3, 8, 8)), np.array([0, 10]))
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        model.loss(np.zeros((2, 3, 8, 8)), np.array([0, 1, 2]))

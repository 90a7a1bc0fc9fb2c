"""The configurable ConvNet of the experiments chapter."""

import numpy as np
import pytest

from convlab.classifiers.airbench_convnet import ConvNet, whitening_filters
from convlab.gradient_check import eval_numerical_gradient


def _grad_errors(model, X, y):
    loss, grads = model.loss(X, y)
    errors = {}
    for name in sorted(model.params):
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name],
                                      verbose=False, h=1e-6)
        errors[name] = np.linalg.norm(num - grads[name]) / max(np.linalg.norm(num), 1e-12)
    return loss, errors


@pytest.mark.parametrize("kwargs, size", [
    (dict(activation="gelu", bn_scale=True, label_smoothing=0.2), 9),
    (dict(activation="leaky_relu", bn_scale=False, whiten_kernel=None, reg=0.1), 8),
    # Odd map (floor pooling). No dirac init here: identity filters copy the
    # exact zeros of ReLU(whitened) into the max pool, whose ties are kinks.
    (dict(activation="relu", convs_per_block=1, dirac_init=False), 10),
])
def test_gradient_check(rng, one_openmp_thread, kwargs, size):
    model = ConvNet(input_dim=(3, size, size), widths=(4, 5), dtype=np.float64, seed=1, **kwargs)
    X = rng.standard_normal((5, 3, size, size))
    y = rng.integers(0, 10, 5)
    if model.whiten_kernel is not None:
        model.init_whitening(X)
    _, errors = _grad_errors(model, X, y)
    for name, err in errors.items():
        assert err < 1e-6, (name, err)


def test_initial_loss_is_near_log_num_classes(rng):
    model = ConvNet(input_dim=(3, 16, 16), widths=(8, 8), seed=0)
    X = rng.standard_normal((20, 3, 16, 16)).astype(np.float32)
    loss, grads = model.loss(X, rng.integers(0, 10, 20))
    assert abs(loss - np.log(10)) < 0.1
    assert all(g.dtype == np.float32 for g in grads.values())
    assert set(grads) == set(model.params)
    assert model.loss(X).shape == (20, 10)


def test_frozen_scale_has_no_gamma_parameters():
    model = ConvNet(input_dim=(3, 8, 8), widths=(4,), bn_scale=False)
    assert not any(k.startswith("gamma") for k in model.params)
    assert ConvNet(input_dim=(3, 8, 8), widths=(4,), bn_scale=True).params["gamma1_1"].shape == (4,)


def test_whitening_filters_decorrelate_patches(rng):
    X = rng.standard_normal((40, 2, 6, 6)) @ np.array([[1.0, 0.5], [0.0, 1.0]] * 3)[:6, :6]
    X = np.ascontiguousarray(X[:, :, :, :6])
    w = whitening_filters(X, kernel_size=2, eps=0.0)
    assert w.shape == (16, 2, 2, 2)
    assert np.array_equal(w[8:], -w[:8])
    patches = np.lib.stride_tricks.sliding_window_view(X, (2, 2), axis=(2, 3))
    patches = patches.transpose(0, 2, 3, 1, 4, 5).reshape(-1, 8)
    patches = patches - patches.mean(0)
    z = patches @ w[:8].reshape(8, 8).T
    assert np.allclose(np.cov(z.T, bias=True), np.eye(8), atol=1e-8)


def test_state_dict_round_trip_restores_test_mode_scores(rng):
    model = ConvNet(input_dim=(3, 12, 12), widths=(4, 6), seed=3)
    X = rng.standard_normal((8, 3, 12, 12)).astype(np.float32)
    model.init_whitening(X)
    model.loss(X, rng.integers(0, 10, 8))          # updates running statistics
    scores = model.loss(X)
    state = model.state_dict()
    other = ConvNet(input_dim=(3, 12, 12), widths=(4, 6), seed=3)
    assert not np.allclose(other.loss(X), scores)
    other.load_state_dict(state)
    assert np.array_equal(other.loss(X), scores)
    with pytest.raises(ValueError, match="keys"):
        other.load_state_dict({"nonsense": np.zeros(1)})


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="activation"):
        ConvNet(activation="swish")
    with pytest.raises(ValueError, match="too small"):
        ConvNet(input_dim=(3, 4, 4), widths=(4, 4, 4))
    with pytest.raises(ValueError, match="widths"):
        ConvNet(widths=())
    model = ConvNet(input_dim=(3, 8, 8), widths=(4,))
    with pytest.raises(ValueError, match="X must have shape"):
        model.loss(np.zeros((2, 3, 9, 9), np.float32))
    with pytest.raises(ValueError, match="y must hold labels"):
        model.loss(np.zeros((2, 3, 8, 8), np.float32), np.array([0, 10]))

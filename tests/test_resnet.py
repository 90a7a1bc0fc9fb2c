"""The CIFAR ResNet and its plain twin: gradients, sizes (against convlab.summary), state, bad settings."""

import numpy as np
import pytest

from convlab import architectures, summary
from convlab.classifiers.resnet import ResNet
from convlab.gradient_check import grad_check_sparse


@pytest.mark.parametrize("residual, shortcut", [(True, "pad"), (True, "project"), (False, "pad")])
def test_gradients_match_numeric_ones(residual, shortcut):
    rng = np.random.default_rng(0)
    model = ResNet(input_dim=(3, 6, 6), blocks_per_stage=1, widths=(2, 4), num_classes=3,
                   residual=residual, shortcut=shortcut, dtype=np.float64, seed=1)
    X = rng.standard_normal((4, 3, 6, 6))
    y = rng.integers(0, 3, 4)
    loss, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    # every block's gradients are checked in full in test_residual_block.py; here a few
    # entries of every parameter check that the model wires the blocks together right
    for k, name in enumerate(sorted(model.params)):
        errors = grad_check_sparse(lambda _: model.loss(X, y)[0], model.params[name], grads[name],
                                   num_checks=3, h=1e-6, seed=k)
        assert errors.max() < 1e-5, name


def test_resnet20_has_the_papers_size_and_shapes():
    model = ResNet(seed=0)
    spec_rows = summary.summary(architectures.resnet20(), (3, 32, 32))
    assert sum(p.size for p in model.params.values()) == summary.totals(spec_rows)["params"] == 269_722
    assert [kind for _, _, kind in model.blocks] == ["identity"] * 3 + ["pad", "identity", "identity"] * 2
    scores = model.loss(np.zeros((2, 3, 32, 32), np.float32))
    assert scores.shape == (2, 10) and scores.dtype == np.float32
    plain = ResNet(residual=False, seed=0)
    assert {kind for _, _, kind in plain.blocks} == {"none"}
    assert set(plain.params) == set(model.params)


def test_state_round_trips_and_test_mode_uses_it():
    rng = np.random.default_rng(2)
    model = ResNet(input_dim=(3, 8, 8), blocks_per_stage=1, widths=(4, 8), seed=0)
    X = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
    model.loss(X, rng.integers(0, 10, 8))           # training mode moves the running statistics
    other = ResNet(input_dim=(3, 8, 8), blocks_per_stage=1, widths=(4, 8), seed=0)
    assert not np.array_equal(other.loss(X), model.loss(X))
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(other.loss(X), model.loss(X))
    with pytest.raises(ValueError, match="state has keys"):
        other.load_state_dict({})
    assert model.batchnorm_shifts() == [n for n in model.params if n.startswith("beta")]


@pytest.mark.parametrize("kwargs, message", [
    (dict(blocks_per_stage=0), "blocks_per_stage must be a positive integer"),
    (dict(widths=(16, 0)), "widths must be positive integers"),
    (dict(shortcut="identity"), "shortcut must be 'pad' or 'project'"),
    (dict(input_dim=(3, 32)), r"input_dim must be \(C, H, W\)"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNet(**kwargs)

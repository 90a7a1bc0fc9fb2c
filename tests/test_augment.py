"""Data augmentation and test-time augmentation."""

import numpy as np
import pytest

from convlab import augment


def test_random_flip_mirrors_about_half_and_keeps_the_input(rng):
    X = rng.standard_normal((400, 2, 3, 5)).astype(np.float32)
    before = X.copy()
    out = augment.random_flip(X, np.random.default_rng(0))
    assert np.array_equal(X, before)
    assert out.dtype == np.float32 and out.shape == X.shape
    flipped = np.all(out == X[:, :, :, ::-1], axis=(1, 2, 3))
    same = np.all(out == X, axis=(1, 2, 3))
    assert np.all(flipped | same)
    assert 150 < flipped.sum() < 250


def test_random_translate_is_a_reflect_padded_crop(rng):
    X = rng.standard_normal((60, 3, 8, 8))
    out = augment.random_translate(X, np.random.default_rng(1), max_shift=2)
    padded = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    shifts = set()
    for n in range(len(X)):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if np.array_equal(out[n], padded[n, :, dy:dy + 8, dx:dx + 8])]
        assert matches, f"image {n} is not a crop of the padded image"
        shifts.add(matches[0])
    assert len(shifts) > 10  # many different offsets are drawn


def test_translate_moves_content():
    X = np.arange(16, dtype=float).reshape(1, 1, 4, 4)
    out = augment.translate(X, 1, 0, mode="constant")
    assert np.array_equal(out[0, 0, 1:], X[0, 0, :3])
    assert np.array_equal(out[0, 0, 0], np.zeros(4))
    assert np.array_equal(augment.translate(X, 0, 0), X)


def test_make_augment_is_reproducible(rng):
    X = rng.standard_normal((10, 3, 6, 6))
    aug = augment.make_augment(flip=True, max_shift=1)
    a = aug(X, np.random.default_rng(5))
    b = aug(X, np.random.default_rng(5))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, X)


def test_tta_views_weights_sum_to_one():
    for level in (0, 1, 2):
        assert sum(v[3] for v in augment.tta_views(level)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="level"):
        augment.tta_views(3)


def test_predict_tta_averages_flipped_scores(rng):
    X = rng.standard_normal((7, 1, 4, 4))

    def score_fn(xb):  # a "model" that looks at the left column only
        return np.stack([xb[:, 0, :, 0].sum(1), -xb[:, 0, :, 0].sum(1)], axis=1)

    s0 = augment.predict_tta(score_fn, X, level=0, batch_size=3)
    assert np.allclose(s0, score_fn(X))
    s1 = augment.predict_tta(score_fn, X, level=1, batch_size=3)
    assert np.allclose(s1, 0.5 * (score_fn(X) + score_fn(X[:, :, :, ::-1])))
    s2 = augment.predict_tta(score_fn, X, level=2, batch_size=4)
    assert s2.shape == (7, 2)


def test_bad_input_raises_value_error(rng):
    with pytest.raises(ValueError, match="shape"):
        augment.random_flip(np.zeros((3, 4, 4)), rng)
    with pytest.raises(ValueError, match="max_shift"):
        augment.random_translate(np.zeros((1, 1, 4, 4)), rng, max_shift=4)
    with pytest.raises(ValueError, match="mode"):
        augment.random_translate(np.zeros((1, 1, 4, 4)), rng, max_shift=1, mode="wrap")

"""Tests for convlab.vis_utils: the image grid and the plotting helpers (headless, Agg)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from convlab.vis_utils import (
    confusion_matrix,
    plot_confusion_matrix,
    plot_training_history,
    visualize_grid,
)


def render(fig) -> np.ndarray:
    """Draw ``fig`` with the Agg renderer; return the RGBA pixels."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())
    assert (pixels[..., :3] < 200).any()  # something dark was drawn
    return pixels


# ---------------------------------------------------------------------------
# visualize_grid
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("N, G", [(1, 1), (2, 2), (4, 2), (5, 3), (9, 3), (10, 4), (32, 6)])
@pytest.mark.parametrize("padding", [0, 1, 3])
def test_grid_shape(N, G, padding):
    H, W, C = 4, 5, 3
    Xs = np.random.default_rng(N).normal(size=(N, H, W, C))
    grid = visualize_grid(Xs, padding=padding)
    assert grid.shape == (G * H + (G - 1) * padding, G * W + (G - 1) * padding, C)
    assert grid.dtype == np.float64


def test_grid_places_rescaled_images_row_by_row():
    rng = np.random.default_rng(0)
    N, H, W, C, pad, ub = 5, 3, 4, 2, 2, 10.0
    Xs = rng.normal(size=(N, H, W, C)) * rng.uniform(0.1, 100, size=(N, 1, 1, 1))
    grid = visualize_grid(Xs, ubound=ub, padding=pad)
    G = 3
    covered = np.zeros(grid.shape[:2], dtype=bool)
    for i in range(N):
        r, c = divmod(i, G)
        y0, x0 = r * (H + pad), c * (W + pad)
        cell = grid[y0:y0 + H, x0:x0 + W]
        x = Xs[i]
        np.testing.assert_allclose(cell, ub * (x - x.min()) / (x.max() - x.min()), atol=1e-12)
        assert cell.min() == 0.0 and cell.max() == pytest.approx(ub)
        covered[y0:y0 + H, x0:x0 + W] = True
    # padding and the four empty cells are zero
    assert np.all(grid[~covered] == 0)


def test_grid_default_ubound_and_uint8_display():
    Xs = np.random.default_rng(1).normal(size=(8, 7, 7, 3))
    grid = visualize_grid(Xs)
    assert grid.min() == 0.0 and grid.max() == pytest.approx(255.0)
    img = grid.astype("uint8")  # how the book displays it
    assert img.max() >= 254


def test_grid_single_channel_and_integer_input():
    Xs = np.arange(2 * 2 * 3 * 1).reshape(2, 2, 3, 1)
    grid = visualize_grid(Xs, ubound=1.0, padding=0)
    assert grid.shape == (4, 6, 1)
    np.testing.assert_allclose(grid[:2, :3, 0], np.arange(6).reshape(2, 3) / 5)
    np.testing.assert_allclose(grid[:2, 3:, 0], np.arange(6).reshape(2, 3) / 5)


def test_grid_constant_image_becomes_zero_not_nan():
    Xs = np.ones((2, 3, 3, 3))
    Xs[1] = np.random.default_rng(2).normal(size=(3, 3, 3))
    grid = visualize_grid(Xs, padding=0)
    assert np.all(np.isfinite(grid))
    assert np.all(grid[:3, :3] == 0)
    assert grid[:3, 3:6].max() == pytest.approx(255.0)


def test_grid_does_not_modify_its_input():
    Xs = np.random.default_rng(3).normal(size=(3, 2, 2, 3))
    copy = Xs.copy()
    visualize_grid(Xs)
    np.testing.assert_array_equal(Xs, copy)


@pytest.mark.parametrize("Xs, kwargs, match", [
    (np.zeros((4, 4, 3)), {}, r"\(N, H, W, C\).*\(4, 4, 3\)"),
    (np.zeros((0, 4, 4, 3)), {}, "got \\(0, 4, 4, 3\\)"),
    (np.array([[[[np.nan]]]]), {}, "NaN"),
    (np.array([[[["a"]]]]), {}, "dtype"),
    (np.zeros((1, 2, 2, 1)), {"ubound": 0}, "ubound"),
    (np.zeros((1, 2, 2, 1)), {"ubound": float("inf")}, "ubound"),
    (np.zeros((1, 2, 2, 1)), {"padding": -1}, "padding"),
    (np.zeros((1, 2, 2, 1)), {"padding": 1.5}, "padding"),
])
def test_grid_bad_input(Xs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        visualize_grid(Xs, **kwargs)


# ---------------------------------------------------------------------------
# plot_training_history
# ---------------------------------------------------------------------------


HISTORY = {
    "loss_history": [2.3, 2.1, 1.9, 1.7, 1.8, 1.5, 1.4],
    "train_acc_history": [0.1, 0.35, 0.5],
    "val_acc_history": [0.12, 0.3, 0.41],
}


def _check_history_axes(loss_ax, acc_ax):
    (loss_line,) = loss_ax.lines
    np.testing.assert_array_equal(loss_line.get_xdata(), np.arange(7))
    np.testing.assert_array_equal(loss_line.get_ydata(), HISTORY["loss_history"])
    assert loss_ax.get_xlabel() == "iteration"
    train, val = acc_ax.lines
    np.testing.assert_array_equal(train.get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(train.get_ydata(), HISTORY["train_acc_history"])
    np.testing.assert_array_equal(val.get_ydata(), HISTORY["val_acc_history"])
    assert acc_ax.get_xlabel() == "epoch"
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == ["train", "validation"]


def test_history_from_a_dict_draws_two_panels():
    fig = plot_training_history(HISTORY)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    _check_history_axes(*fig.axes)
    assert render(fig).shape[2] == 4


def test_history_from_a_solver_like_object_into_given_axes():
    solver = SimpleNamespace(**HISTORY, model=None)
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert plot_training_history(solver, ax=axes) is fig
    _check_history_axes(*axes)
    render(fig)


class _SoftmaxModel:
    """The smallest model the Solver accepts: a linear softmax classifier."""

    def __init__(self, dim, num_classes, rng):
        self.params = {"W": 0.01 * rng.normal(size=(dim, num_classes)),
                       "b": np.zeros(num_classes)}

    def loss(self, X, y=None):
        scores = X.reshape(len(X), -1) @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        shifted = scores - scores.max(axis=1, keepdims=True)
        p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(len(y)), y]).mean()
        dscores = p
        dscores[np.arange(len(y)), y] -= 1
        dscores /= len(y)
        return loss, {"W": X.reshape(len(X), -1).T @ dscores, "b": dscores.sum(axis=0)}


def test_history_of_a_trained_solver():
    solver_module = pytest.importorskip("convlab.solver")
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(40, 6)), rng.integers(0, 3, 40)
    data = {"X_train": X[:30], "y_train": y[:30], "X_val": X[30:], "y_val": y[30:]}
    solver = solver_module.Solver(_SoftmaxModel(6, 3, rng), data, batch_size=10, num_epochs=3,
                                  verbose=False, progress=False, seed=0)
    solver.train()
    fig = plot_training_history(solver)
    loss_ax, acc_ax = fig.axes
    np.testing.assert_array_equal(loss_ax.lines[0].get_ydata(), solver.loss_history)
    assert len(loss_ax.lines[0].get_ydata()) == 9  # 3 epochs of 3 iterations
    np.testing.assert_array_equal(acc_ax.lines[1].get_ydata(), solver.val_acc_history)
    np.testing.assert_array_equal(acc_ax.lines[0].get_xdata(), [0, 1, 2, 3])
    render(fig)


def test_history_empty_lists_still_draw():
    fig = plot_training_history({k: [] for k in HISTORY})
    render(fig)


@pytest.mark.parametrize("obj, match", [
    ({"loss_history": [1.0], "train_acc_history": [0.1]}, "val_acc_history"),
    (SimpleNamespace(loss_history=[1.0]), "train_acc_history, val_acc_history"),
    ({**HISTORY, "loss_history": [[1.0, 2.0]]}, r"loss_history must be one-dimensional"),
])
def test_history_bad_input(obj, match):
    with pytest.raises(ValueError, match=match):
        plot_training_history(obj)


def test_history_ax_must_be_a_pair():
    fig = Figure()
    with pytest.raises(ValueError, match="pair of Axes"):
        plot_training_history(HISTORY, ax=fig.subplots())


# ---------------------------------------------------------------------------
# confusion matrix
# ---------------------------------------------------------------------------


def test_confusion_matrix_counts():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, 3),
        [[1, 1, 0],
         [0, 1, 0],
         [1, 0, 2]])


def test_confusion_matrix_random_agrees_with_a_loop():
    rng = np.random.default_rng(4)
    y_true, y_pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    expected = np.zeros((10, 10), dtype=int)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    counts = confusion_matrix(y_true, y_pred, 10)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, expected)


@pytest.mark.parametrize("y_true, y_pred, K, match", [
    ([0, 1], [0], 2, r"same shape.*\(2,\) and \(1,\)"),
    ([[0, 1]], [[0, 1]], 2, "same shape"),
    ([0, 3], [0, 1], 3, r"y_true must lie in 0\.\.2"),
    ([0, 1], [0, -1], 3, r"y_pred must lie in 0\.\.2"),
    ([0.0, 1.0], [0, 1], 3, "integer"),
    ([0, 1], [0, 1], 0, "num_classes"),
])
def test_confusion_matrix_bad_input(y_true, y_pred, K, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(y_true, y_pred, K)


def test_plot_confusion_matrix():
    names = ["cat", "dog", "ship"]
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    fig = plot_confusion_matrix(y_true, y_pred, names)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), confusion_matrix(y_true, y_pred, 3))
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert sorted(t.get_text() for t in ax.texts) == sorted("110010102")
    assert "66.7%" in ax.get_title()
    render(fig)


def test_plot_confusion_matrix_into_given_axes_with_ten_classes():
    rng = np.random.default_rng(5)
    names = [f"class {k}" for k in range(10)]
    fig = Figure(figsize=(8, 8))
    ax = fig.subplots()
    y = rng.integers(0, 10, 1000)
    assert plot_confusion_matrix(y, y, names, ax=ax) is fig
    assert np.trace(ax.images[0].get_array()) == 1000
    render(fig)


def test_plot_confusion_matrix_label_out_of_range():
    with pytest.raises(ValueError, match="y_pred"):
        plot_confusion_matrix([0, 1], [0, 2], ["a", "b"])

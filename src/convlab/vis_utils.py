"""Plotting helpers: image grids, training curves and confusion matrices.

Everything here uses Matplotlib's object API. The plotting functions draw into
the Axes they are given, or, without one, into a new
:class:`matplotlib.figure.Figure` that is not registered with ``pyplot``; they
return the Figure. That works under any backend (including the headless
``Agg``), leaks no global figures, and in Jupyter a Figure that is the last
expression of a cell is shown as an image::

    fig = plot_training_history(solver)
    fig                       # or display(fig), or fig.savefig("history.png")
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "visualize_grid",
    "plot_training_history",
    "confusion_matrix",
    "plot_confusion_matrix",
]


def visualize_grid(Xs, ubound=255.0, padding=1):
    """Tile a stack of images into one square-ish grid image.

    Each image is rescaled on its own so that its smallest value becomes 0 and
    its largest ``ubound``; an image whose values are all equal becomes all 0.
    The images fill a ``G x G`` grid, ``G = ceil(sqrt(N))``, row by row; cells
    left over at the end and the padding between cells are 0.

    A typical use shows the first-layer filters of a ConvNet, whose weights
    ``W1`` have shape (F, C, HH, WW)::

        grid = visualize_grid(W1.transpose(0, 2, 3, 1))
        ax.imshow(grid.astype("uint8"))

    Parameters
    ----------
    Xs : array_like of shape (N, H, W, C)
        ``N >= 1`` images, channels last (C is 3 for colour, 1 for grey).
        All values must be finite.
    ubound : float, default 255.0
        The value the largest entry of every image is mapped to (must be > 0).
    padding : int, default 1
        Pixels of zeros between neighbouring cells (>= 0).

    Returns
    -------
    grid : ndarray of shape (G*H + (G-1)*padding, G*W + (G-1)*padding, C), float64
        The tiled image, values in ``[0, ubound]``.

    Raises
    ------
    ValueError
        If ``Xs`` is not a non-empty 4-D array of finite numbers, ``ubound``
        is not a positive finite number, or ``padding`` is not an integer >= 0.
    """
    Xs = np.asarray(Xs)
    if Xs.ndim != 4 or min(Xs.shape) < 1:
        raise ValueError(f"Xs must have shape (N, H, W, C) with all sizes >= 1, got {Xs.shape}")
    if Xs.dtype.kind not in "biuf":
        raise ValueError(f"Xs must hold real numbers, got dtype {Xs.dtype}")
    Xs = Xs.astype(np.float64)
    if not np.all(np.isfinite(Xs)):
        raise ValueError(f"Xs of shape {Xs.shape} contains NaN or infinite values")
    if isinstance(ubound, bool) or not isinstance(ubound, (int, float, np.integer, np.floating)) \
            or not math.isfinite(ubound) or ubound <= 0:
        raise ValueError(f"ubound must be a positive finite number, got {ubound!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")

    N, H, W, C = Xs.shape
    G = math.ceil(math.sqrt(N))
    grid = np.zeros((G * H + (G - 1) * padding, G * W + (G - 1) * padding, C))
    for i in range(N):
        row, col = divmod(i, G)
        img = Xs[i]
        low, high = img.min(), img.max()
        y0, x0 = row * (H + padding), col * (W + padding)
        if high > low:
            grid[y0:y0 + H, x0:x0 + W] = ubound * (img - low) / (high - low)
    return grid


def _new_figure(nrows, ncols, figsize):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


_HISTORY_KEYS = ("loss_history", "train_acc_history", "val_acc_history")


def plot_training_history(solver_or_history, ax=None):
    """Plot the training loss per iteration and the accuracies per epoch.

    Parameters
    ----------
    solver_or_history : Solver or mapping
        Anything with the attributes ``loss_history`` (one loss per
        iteration), ``train_acc_history`` and ``val_acc_history`` (one
        accuracy per epoch, the first measured before training), such as a
        :class:`convlab.solver.Solver`; or a dict with those keys.
    ax : pair of matplotlib Axes, optional
        ``(loss_ax, acc_ax)`` to draw into; by default a new Figure with two
        side-by-side panels is made.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The Figure holding the two panels: the loss against the iteration
        number, and the training and validation accuracy against the epoch
        (epoch 0 is before training).

    Raises
    ------
    ValueError
        If a history is missing or is not one-dimensional, or ``ax`` is not a
        pair of Axes.
    """
    histories = {}
    missing = []
    for key in _HISTORY_KEYS:
        if isinstance(solver_or_history, Mapping):
            value = solver_or_history.get(key)
        else:
            value = getattr(solver_or_history, key, None)
        if value is None:
            missing.append(key)
            continue
        values = np.asarray(value, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"{key} must be one-dimensional, got shape {values.shape}")
        histories[key] = values
    if missing:
        raise ValueError(
            f"solver_or_history has no {', '.join(missing)}: pass a Solver-like object with "
            f"those attributes or a dict with the keys {list(_HISTORY_KEYS)}"
        )

    if ax is None:
        fig, (loss_ax, acc_ax) = _new_figure(1, 2, figsize=(11, 4))
    else:
        if not isinstance(ax, (Sequence, np.ndarray)) or len(ax) != 2:
            raise ValueError("ax must be a pair of Axes (loss_ax, acc_ax)")
        loss_ax, acc_ax = ax
        fig = loss_ax.figure

    loss = histories["loss_history"]
    loss_ax.plot(np.arange(loss.size), loss, "o", markersize=2, alpha=0.5, label="loss")
    loss_ax.set_xlabel("iteration")
    loss_ax.set_ylabel("training loss")
    loss_ax.set_title("Loss per iteration")

    for key, label, marker in (("train_acc_history", "train", "o-"),
                               ("val_acc_history", "validation", "s-")):
        acc = histories[key]
        acc_ax.plot(np.arange(acc.size), acc, marker, label=label)
    from matplotlib.ticker import MaxNLocator

    acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_title("Accuracy per epoch")
    acc_ax.legend(loc="lower right")
    return fig


def confusion_matrix(y_true, y_pred, num_classes):
    """Count how often each true class was predicted as each class.

    Parameters
    ----------
    y_true : array_like of shape (N,)
        True labels, integers in ``0..num_classes-1``.
    y_pred : array_like of shape (N,)
        Predicted labels, same range.
    num_classes : int
        Number of classes ``K`` (>= 1).

    Returns
    -------
    counts : ndarray of shape (K, K), int64
        ``counts[i, j]`` is the number of examples of class ``i`` predicted as
        class ``j``; the diagonal holds the correct predictions.

    Raises
    ------
    ValueError
        If the label arrays are not one-dimensional integers of equal length
        or hold a label outside ``0..K-1``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape (N,), got "
                         f"{y_true.shape} and {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and y.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer labels, got dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, "
                             f"found {y.min()}..{y.max()}")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true.astype(np.intp), y_pred.astype(np.intp)), 1)
    return counts


def plot_confusion_matrix(y_true, y_pred, class_names, ax=None):
    """Draw the confusion matrix of a classifier, with the counts written in the cells.

    Rows are true classes, columns predicted classes; darker cells hold more
    examples, and the title gives the overall accuracy.

    Parameters
    ----------
    y_true : array_like of shape (N,)
        True labels in ``0..K-1``.
    y_pred : array_like of shape (N,)
        Predicted labels in ``0..K-1``.
    class_names : sequence of str, length K
        Name of every class, in label order (e.g.
        :func:`convlab.data_utils.cifar10_class_names`).
    ax : matplotlib Axes, optional
        Where to draw; by default a new Figure is made.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The Figure holding the plot (its image is ``fig.axes[0].images[0]``,
        whose data is the (K, K) count matrix of :func:`confusion_matrix`).

    Raises
    ------
    ValueError
        As for :func:`confusion_matrix`, with ``K = len(class_names)``.
    """
    names = [str(n) for n in class_names]
    counts = confusion_matrix(y_true, y_pred, len(names))
    K = len(names)

    if ax is None:
        fig, (ax,) = _new_figure(1, 1, figsize=(1.0 + 0.6 * K, 0.8 + 0.6 * K))
    else:
        fig = ax.figure
    image = ax.imshow(counts, cmap="Blues", vmin=0)
    threshold = counts.max() / 2
    for i in range(K):
        for j in range(K):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if counts[i, j] > threshold else "black")
    ax.set_xticks(range(K), names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(K), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = counts.sum()
    accuracy = np.trace(counts) / total if total else float("nan")
    ax.set_title(f"Accuracy {accuracy:.1%} on {total} examples")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig

"""Data augmentation and test-time augmentation for image batches.

Training-time augmentation shows the network a slightly different version of
every image each epoch -- mirrored left/right, shifted by a pixel or two --
so it cannot memorise exact pixel positions and must learn features that
survive those changes. Test-time augmentation (TTA) uses the same idea at
prediction time: average the scores of a few transformed copies of the image.

Every function works on batches ``X`` of shape ``(N, C, H, W)`` and returns a
new array of the same shape and dtype; the input is never modified.
:func:`make_augment` builds a function with the signature of the
``augment(X_batch, rng) -> X_batch`` hook of :class:`convlab.solver.Solver`.
"""

import numpy as np


def _check_batch(X):
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(f"X must have shape (N, C, H, W), got shape {X.shape}")
    return X


def random_flip(X, rng, p=0.5):
    """Mirror each image left-right with probability ``p``.

    Parameters
    ----------
    X : ndarray of shape (N, C, H, W)
    rng : numpy.random.Generator
    p : float in [0, 1]

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    X = _check_batch(X)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    flip = rng.random(X.shape[0]) < p
    out = X.copy()
    out[flip] = X[flip, :, :, ::-1]
    return out


def random_translate(X, rng, max_shift=2, mode="reflect"):
    """Shift each image by a random offset, filling the border by reflection.

    Equivalent to padding by ``max_shift`` on every side and taking a random
    ``H x W`` crop. Offsets ``(dy, dx)`` are drawn uniformly from
    ``{-max_shift, ..., max_shift}^2``. Reflection padding (``mode='reflect'``)
    fills the uncovered border with mirrored pixels, which look more like
    natural image content than the black bars of zero padding
    (``mode='constant'``).

    Parameters
    ----------
    X : ndarray of shape (N, C, H, W)
    rng : numpy.random.Generator
    max_shift : int
        Largest shift in pixels (``0 <= max_shift < min(H, W)``).
    mode : {'reflect', 'constant'}

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    X = _check_batch(X)
    N, C, H, W = X.shape
    s = int(max_shift)
    if s < 0 or s >= min(H, W):
        raise ValueError(f"max_shift must lie in [0, {min(H, W) - 1}] for images of "
                         f"shape {X.shape[1:]}, got {max_shift}")
    if mode not in ("reflect", "constant"):
        raise ValueError(f"mode must be 'reflect' or 'constant', got {mode!r}")
    if s == 0:
        return X.copy()
    padded = np.pad(X, ((0, 0), (0, 0), (s, s), (s, s)), mode=mode)
    offsets = rng.integers(0, 2 * s + 1, size=(N, 2))
    out = np.empty_like(X)
    # Group the images by offset: at most (2s+1)^2 vectorised copies.
    code = offsets[:, 0] * (2 * s + 1) + offsets[:, 1]
    for c in np.unique(code):
        idx = np.flatnonzero(code == c)
        dy, dx = offsets[idx[0]]
        out[idx] = padded[idx, :, dy:dy + H, dx:dx + W]
    return out


def translate(X, dy, dx, mode="reflect"):
    """Shift every image by the same ``(dy, dx)`` pixels (for TTA).

    A positive ``dy`` moves the content down, a positive ``dx`` to the right.

    Parameters
    ----------
    X : ndarray of shape (N, C, H, W)
    dy, dx : int
    mode : {'reflect', 'constant'}

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    X = _check_batch(X)
    N, C, H, W = X.shape
    s = max(abs(dy), abs(dx))
    if s >= min(H, W):
        raise ValueError(f"shift ({dy}, {dx}) too large for images of shape {X.shape[1:]}")
    if s == 0:
        return X.copy()
    padded = np.pad(X, ((0, 0), (0, 0), (s, s), (s, s)), mode=mode)
    return np.ascontiguousarray(padded[:, :, s - dy:s - dy + H, s - dx:s - dx + W])


def make_augment(flip=True, max_shift=2, mode="reflect"):
    """An ``augment(X_batch, rng) -> X_batch`` function for the Solver.

    Parameters
    ----------
    flip : bool
        Random horizontal flips (probability 1/2).
    max_shift : int
        Random translation of up to this many pixels (0: none).
    mode : {'reflect', 'constant'}
        How the border uncovered by a translation is filled.

    Returns
    -------
    callable
    """
    def augment(X, rng):
        if max_shift > 0:
            X = random_translate(X, rng, max_shift, mode)
        if flip:
            X = random_flip(X, rng)
        return X
    return augment


def tta_views(level):
    """The transformations averaged by :func:`predict_tta` at each level.

    Level 0: the image itself. Level 1: also its mirror image. Level 2: also
    the image and its mirror shifted one pixel up-left and one pixel
    down-right.

    Returns
    -------
    list of (flip, dy, dx, weight) tuples whose weights sum to 1.
    """
    if level == 0:
        return [(False, 0, 0, 1.0)]
    if level == 1:
        return [(False, 0, 0, 0.5), (True, 0, 0, 0.5)]
    if level == 2:
        views = [(False, 0, 0, 0.25), (True, 0, 0, 0.25)]
        for dy, dx in ((-1, -1), (1, 1)):
            views += [(False, dy, dx, 0.125), (True, dy, dx, 0.125)]
        return views
    raise ValueError(f"level must be 0, 1 or 2, got {level}")


def predict_tta(score_fn, X, level=1, batch_size=500):
    """Class scores averaged over the test-time-augmentation views of ``X``.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(X_batch) -> scores`` of shape ``(n, num_classes)``, e.g. a
        model's ``loss`` method in test mode.
    X : ndarray of shape (N, C, H, W)
    level : {0, 1, 2}
        Which views to average (see :func:`tta_views`).
    batch_size : int

    Returns
    -------
    scores : ndarray of shape (N, num_classes)
    """
    X = _check_batch(X)
    views = tta_views(level)
    total = None
    for start in range(0, X.shape[0], batch_size):
        xb = X[start:start + batch_size]
        acc = None
        for flip, dy, dx, weight in views:
            v = xb[:, :, :, ::-1] if flip else xb
            v = translate(v, dy, dx) if (dy or dx) else np.ascontiguousarray(v)
            s = weight * np.asarray(score_fn(v), dtype=np.float64)
            acc = s if acc is None else acc + s
        if total is None:
            total = np.empty((X.shape[0], acc.shape[1]))
        total[start:start + batch_size] = acc
    return total

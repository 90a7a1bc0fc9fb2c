"""Draw the book's favicon, book/favicon.png: a 3 x 3 filter over a 4 x 4 image.

    python scripts/make-favicon.py

The icon is the convlab authors' own drawing, made by this script and
released under the project's MIT licence like the rest of the repository.
It is drawn pixel by pixel with NumPy and saved with matplotlib, so it is
the same on every run.
"""

from pathlib import Path

import matplotlib.image
import numpy as np

SIZE = 32
CELL = 8  # pixels per cell of the 4 x 4 image grid


def favicon():
    """The icon as an RGBA array of shape (SIZE, SIZE, 4), values in [0, 1]."""
    icon = np.ones((SIZE, SIZE, 4))
    light = np.array([0.85, 0.90, 0.97, 1.0])     # the image: pale blue cells
    filt = np.array([0.16, 0.38, 0.71, 1.0])      # the filter window: blue
    line = np.array([1.0, 1.0, 1.0, 1.0])         # grid lines: white
    icon[:, :] = light
    icon[:3 * CELL, :3 * CELL] = filt             # 3 x 3 window, top left
    for k in range(0, SIZE, CELL):
        icon[k, :] = line
        icon[:, k] = line
    icon[-1, :] = line
    icon[:, -1] = line
    return icon


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "book" / "favicon.png"
    matplotlib.image.imsave(target, favicon())
    print(f"wrote {target}")

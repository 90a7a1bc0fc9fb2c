"""The book's diagrams, drawn from the layers they explain and saved as SVG files.

Each ``draw_*`` function returns a :class:`matplotlib.figure.Figure` (not
registered with ``pyplot``) whose numbers come from :mod:`convlab.layers` and
:mod:`convlab.conv_family`, so a diagram cannot silently disagree with the
code: the output sizes come from ``conv_output_size``,
``conv_general_output_size`` and ``conv_transpose_output_size``, the pooling
gradient from ``max_pool_backward_naive``, which filter tap of which window
lands where in the convolution's input gradient from ``conv_backward_naive``.
:func:`save_all` writes every diagram to a directory, byte for byte the same
on every run (fixed SVG ids, no date in the metadata)::

    python -m convlab.diagrams book/figures

``tests/test_diagrams.py`` redraws them and compares with the committed files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from convlab.conv_family import conv_general_output_size, conv_transpose_output_size
from convlab.layers import (
    conv_backward_naive,
    conv_forward_naive,
    conv_output_size,
    max_pool_backward_naive,
    max_pool_forward_naive,
)

__all__ = [
    "draw_stride_padding",
    "draw_receptive_field",
    "draw_backward_scatter",
    "draw_flipped_filter_full_conv",
    "draw_maxpool_routing",
    "draw_im2col",
    "draw_three_layer_net",
    "draw_pointwise_conv",
    "draw_dilated_conv",
    "draw_grouped_conv",
    "draw_transposed_conv",
    "draw_average_pooling",
    "draw_residual_block",
    "DIAGRAMS",
    "save_all",
]

# Colours (colour-blind safe, from the Okabe-Ito palette) and line widths.
PAD = "#d9d9d9"
INPUT = "#ffffff"
FILTER = "#eef3f8"
HIGHLIGHT = ("#0072b2", "#e69f00", "#009e73", "#cc79a7")
EDGE = "#404040"
FONT = 11


def _figure(width, height):
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _grid(ax, top, left, rows, cols, cell=1.0, face=INPUT, labels=None, fontsize=FONT):
    """Draw a rows x cols grid of squares with its top-left corner at (left, top).

    ``face`` is one colour or an array of colours of shape (rows, cols);
    ``labels`` an optional array of strings of the same shape. The y axis
    points down (the axes are inverted by the caller).
    """
    faces = np.broadcast_to(np.asarray(face, dtype=object), (rows, cols))
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((left + c * cell, top + r * cell), cell, cell,
                                   facecolor=faces[r, c], edgecolor=EDGE, linewidth=0.8))
            if labels is not None and labels[r][c] != "":
                ax.text(left + (c + 0.5) * cell, top + (r + 0.5) * cell, labels[r][c],
                        ha="center", va="center", fontsize=fontsize)


def _outline(ax, top, left, rows, cols, color, cell=1.0, width=3.0, inset=0.06):
    ax.add_patch(Rectangle((left + inset, top + inset), cols * cell - 2 * inset,
                           rows * cell - 2 * inset, fill=False, edgecolor=color,
                           linewidth=width))


def _arrow(ax, start, end, color=EDGE, style="-|>", width=1.5, rad=0.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=14,
                                 color=color, linewidth=width,
                                 connectionstyle=f"arc3,rad={rad}"))


def _finish(ax, left, right, top, bottom):
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)  # y grows downwards, like row indices


def draw_stride_padding(H=5, kernel=3, stride=2, pad=1):
    """A 3x3 filter with stride 2 on a 5x5 input padded with one ring of zeros.

    Left: the padded input (padding in grey) with the windows of the first
    output row outlined in the colours of the outputs they produce, and the
    stride drawn as an arrow between the first two windows. Middle: the
    filter that slides over it. Right: the output.
    """
    H_out, W_out = conv_output_size((1, 1, H, H), (1, 1, kernel, kernel),
                                    {"stride": stride, "pad": pad})
    side = H + 2 * pad
    faces = np.full((side, side), PAD, dtype=object)
    faces[pad:pad + H, pad:pad + H] = INPUT
    labels = [["0" if faces[r, c] == PAD else "" for c in range(side)] for r in range(side)]
    fig, ax = _figure(7.6, 3.9)
    _grid(ax, 0, 0, side, side, face=faces, labels=labels, fontsize=9)
    for j in range(W_out):
        color = HIGHLIGHT[j % len(HIGHLIGHT)]
        _outline(ax, 0, j * stride, kernel, kernel, color, inset=0.06 + 0.08 * j)
    # the stride: from the centre of the first window to the centre of the second
    if W_out > 1:
        _arrow(ax, (kernel / 2, -0.45), (kernel / 2 + stride, -0.45), style="<|-|>")
        ax.text(kernel / 2 + stride / 2, -0.75, f"stride {stride}", ha="center",
                va="bottom", fontsize=FONT)
    ax.text(side / 2, side + 0.6,
            f"input {H}x{H}, padded by {pad} (grey zeros)", ha="center", va="top",
            fontsize=FONT)

    filter_left = side + 1.5
    filter_top = (side - kernel) / 2
    taps = [[f"w{p}{q}" for q in range(kernel)] for p in range(kernel)]
    _grid(ax, filter_top, filter_left, kernel, kernel, face=FILTER, labels=taps, fontsize=9)
    ax.text(filter_left + kernel / 2, filter_top + kernel + 0.6,
            f"{kernel}x{kernel} filter w\n(the same at every\nwindow position)",
            ha="center", va="top", fontsize=FONT)

    out_left = filter_left + kernel + 1.5
    out_top = (side - H_out) / 2
    out_faces = np.full((H_out, W_out), INPUT, dtype=object)
    for j in range(W_out):
        out_faces[0, j] = HIGHLIGHT[j % len(HIGHLIGHT)]
    _grid(ax, out_top, out_left, H_out, W_out, face=out_faces)
    ax.text(out_left + W_out / 2, out_top + H_out + 0.6,
            f"output {H_out}x{W_out}\n(each window gives the\noutput of its colour)",
            ha="center", va="top", fontsize=FONT)
    _finish(ax, -0.3, out_left + W_out + 1.2, -1.5, side + 1.9)
    return fig


def draw_receptive_field(H=7, kernel=3):
    """Two stacked 3x3 convolutions (stride 1, no padding): what one output sees.

    One output of the second layer (right) depends on a 3x3 window of the
    first layer's output (middle), which depends on a 5x5 window of the input
    (left): each layer adds ``kernel - 1`` rows and columns.
    """
    params = {"stride": 1, "pad": 0}
    H1, _ = conv_output_size((1, 1, H, H), (1, 1, kernel, kernel), params)
    H2, _ = conv_output_size((1, 1, H1, H1), (1, 1, kernel, kernel), params)
    i = j = H2 // 2  # the output whose receptive field is drawn
    field1 = kernel
    field0 = field1 + kernel - 1
    fig, ax = _figure(6.4, 3.0)
    lefts = (0, H + 1.5, H + H1 + 3.0)
    tops = (0, (H - H1) / 2, (H - H2) / 2)
    sizes = (H, H1, H2)
    fields = (field0, field1, 1)
    names = ("input", "layer 1", "layer 2")
    for left, top, size, field, name, color in zip(lefts, tops, sizes, fields, names,
                                                    ("#cfe3f2", "#f7dfb0", HIGHLIGHT[2])):
        faces = np.full((size, size), INPUT, dtype=object)
        faces[i:i + field, j:j + field] = color
        _grid(ax, top, left, size, size, face=faces)
        ax.text(left + size / 2, top + size + 0.4, f"{name}\n{size}x{size}",
                ha="center", va="top", fontsize=FONT)
        ax.text(left + j + field / 2, top + i + field / 2,
                f"{field}x{field}" if field > 1 else "", ha="center", va="center",
                fontsize=FONT, fontweight="bold")
    for k in range(2):
        start = (lefts[k] + j + fields[k], tops[k] + i + fields[k] / 2)
        end = (lefts[k + 1] + j, tops[k + 1] + i + fields[k + 1] / 2)
        _arrow(ax, start, end)
    _finish(ax, -0.3, lefts[2] + H2 + 0.3, -0.3, H + 1.9)
    return fig


# The dark accent of the backward-pass figures (Okabe-Ito vermillion): the window
# being followed and the entry of the gradient it produces.
ACCENT = "#d55e00"


def _light(k):
    """The light shade of the k-th highlight colour (cycling through the four)."""
    return LIGHT[HIGHLIGHT[k % len(HIGHLIGHT)]]


def _scatter_taps(H, kernel, stride, pad):
    """Which tap of which window lands on each entry of the gradient of the padded input.

    Computed by ``conv_backward_naive`` on one channel: a filter holding
    ``1 .. kernel**2``, an upstream gradient that is 1 at one output and 0
    elsewhere, and an input of the padded input's size with ``pad = 0``, so
    that nothing is cropped.

    Returns
    -------
    taps : ndarray of int, shape (H_out, W_out, H + 2 * pad, H + 2 * pad)
        ``taps[i, j, r, c]`` is ``1 + p * kernel + q`` if the window of output
        ``(i, j)`` adds ``w[p, q] * dout[i, j]`` to entry ``(r, c)``, else 0.
    """
    H_out, W_out = conv_output_size((1, 1, H, H), (1, 1, kernel, kernel),
                                    {"stride": stride, "pad": pad})
    side = H + 2 * pad
    w = np.arange(1, kernel * kernel + 1, dtype=float).reshape(1, 1, kernel, kernel)
    _, cache = conv_forward_naive(np.zeros((1, 1, side, side)), w, np.zeros(1),
                                  {"stride": stride, "pad": 0})
    taps = np.zeros((H_out, W_out, side, side), dtype=int)
    for i in range(H_out):
        for j in range(W_out):
            one_hot = np.zeros((1, 1, H_out, W_out))
            one_hot[0, 0, i, j] = 1.0
            taps[i, j] = conv_backward_naive(one_hot, cache)[0][0, 0].astype(int)
    return taps


def _tap_name(tap, kernel):
    """``'w12'`` for the tap numbered ``1 + 1 * kernel + 2`` by :func:`_scatter_taps`."""
    p, q = divmod(tap - 1, kernel)
    return f"w{p}{q}"


def _padded_faces(side, pad):
    """Faces of a side x side grid whose outer ``pad`` rings are padding (grey)."""
    faces = np.full((side, side), PAD, dtype=object)
    faces[pad:side - pad, pad:side - pad] = INPUT
    return faces


def draw_backward_scatter(H=3, kernel=3, stride=2, pad=1):
    """The input gradient of a strided convolution as a scatter: 3x3 filter, stride 2, pad 1.

    Left: the upstream gradient ``dout`` (one colour per output). Middle:
    the filter. Right: the gradient of the padded input. Each ``dout[i, j]``
    adds ``dout[i, j] * w`` to its window (outlined in its colour); the
    numbers count the windows that add up on each entry; ``dx`` is the inner
    part (the padding cropped). Under it, the four terms that meet on the
    centre, read off ``conv_backward_naive`` (see :func:`_scatter_taps`).
    """
    taps = _scatter_taps(H, kernel, stride, pad)
    H_out, W_out, side, _ = taps.shape
    count = (taps > 0).sum(axis=(0, 1))
    fig, ax = _figure(6.4, 3.9)

    top_d = (side - H_out) / 2
    faces = np.array([[_light(i * W_out + j) for j in range(W_out)] for i in range(H_out)],
                     dtype=object)
    _grid(ax, top_d, 0, H_out, W_out, face=faces,
          labels=[[f"d{i}{j}" for j in range(W_out)] for i in range(H_out)], fontsize=10)
    ax.text(W_out / 2, top_d + H_out + 0.4, f"dout\n{H_out}x{W_out}", ha="center", va="top",
            fontsize=FONT)
    ax.text(W_out + 0.75, side / 2, "\u00d7", ha="center", va="center", fontsize=16)

    left_w = W_out + 1.5
    top_w = (side - kernel) / 2
    _grid(ax, top_w, left_w, kernel, kernel, face=FILTER,
          labels=[[f"w{p}{q}" for q in range(kernel)] for p in range(kernel)], fontsize=9)
    ax.text(left_w + kernel / 2, top_w + kernel + 0.4, f"filter w\n{kernel}x{kernel}",
            ha="center", va="top", fontsize=FONT)

    left = left_w + kernel + 2.0
    _arrow(ax, (left_w + kernel + 0.2, side / 2), (left - 0.2, side / 2), width=2)
    ax.text(left_w + kernel + 1.0, side / 2 - 0.25, "scatter", ha="center", va="bottom",
            fontsize=9)
    _grid(ax, 0, left, side, side, face=_padded_faces(side, pad),
          labels=[[str(v) for v in row] for row in count], fontsize=10)
    for i in range(H_out):
        for j in range(W_out):
            k = i * W_out + j
            _outline(ax, i * stride, left + j * stride, kernel, kernel,
                     HIGHLIGHT[k % len(HIGHLIGHT)], inset=0.05 + 0.07 * k, width=2.5)
    _outline(ax, pad, left + pad, H, H, "black", width=1.2, inset=-0.02)
    ax.text(left + side / 2, side + 0.4,
            f"gradient of the padded\ninput {side}x{side}; dx: the\ninner {H}x{H} (black)",
            ha="center", va="top", fontsize=FONT)

    # The entry where the most windows meet, and the terms that add up there.
    r, c = np.unravel_index(np.argmax(count), count.shape)
    terms = [f"d{i}{j}\u00b7{_tap_name(taps[i, j, r, c], kernel)}"
             for i in range(H_out) for j in range(W_out) if taps[i, j, r, c]]
    where = "centre" if (r, c) == (side // 2, side // 2) else f"entry ({r}, {c})"
    ax.text((left + side) / 2, side + 2.5, f"{where}: " + " + ".join(terms),
            ha="center", va="top", fontsize=FONT)
    _finish(ax, -0.3, left + side + 0.3, -0.3, side + 3.3)
    return fig


def draw_flipped_filter_full_conv(H=3, kernel=3, stride=2, pad=1):
    """The same input gradient as a full convolution with the flipped filter.

    Left: ``dout`` with ``stride - 1`` zeros inserted between its entries
    and ``kernel - 1`` rings of zeros around them. Middle: the filter flipped
    in both axes. Right: sliding the flipped filter over the left grid gives
    the gradient of the padded input (its size from ``conv_output_size``);
    two windows are followed, the corner's (dashed) and the centre's (solid).
    """
    H_out, W_out = conv_output_size((1, 1, H, H), (1, 1, kernel, kernel),
                                    {"stride": stride, "pad": pad})
    dilated = (H_out - 1) * stride + 1
    ring = kernel - 1
    side = dilated + 2 * ring
    result, _ = conv_output_size((1, 1, side, side), (1, 1, kernel, kernel),
                                 {"stride": 1, "pad": 0})
    fig, ax = _figure(6.4, 3.9)

    faces = _padded_faces(side, ring)
    labels = [["0"] * side for _ in range(side)]
    for i in range(H_out):
        for j in range(W_out):
            r, c = ring + i * stride, ring + j * stride
            faces[r, c] = _light(i * W_out + j)
            labels[r][c] = f"d{i}{j}"
    _grid(ax, 0, 0, side, side, face=faces, labels=labels, fontsize=9)
    centre = result // 2
    _outline(ax, centre, centre, kernel, kernel, ACCENT, width=2.5)
    corner = Rectangle((0.08, 0.08), kernel - 0.16, kernel - 0.16, fill=False,
                       edgecolor=ACCENT, linewidth=2.0, linestyle=(0, (3, 2)))
    ax.add_patch(corner)
    inserted = {1: "no zeros", 2: "a zero"}.get(stride, f"{stride - 1} zeros")
    ax.text(side / 2, side + 0.4,
            f"dout {H_out}x{W_out}, {inserted} between\nentries, {ring} rings "
            f"of zeros: {side}x{side}",
            ha="center", va="top", fontsize=FONT)

    left_w = side + 1.0
    top_w = (side - kernel) / 2
    flipped = np.flip(np.array([[f"w{p}{q}" for q in range(kernel)] for p in range(kernel)]))
    _grid(ax, top_w, left_w, kernel, kernel, face=FILTER, labels=flipped.tolist(), fontsize=9)
    ax.text(left_w + kernel / 2, top_w + kernel + 0.4, "w flipped\nin both axes",
            ha="center", va="top", fontsize=FONT)

    left = left_w + kernel + 1.8
    top = (side - result) / 2
    _arrow(ax, (left_w + kernel + 0.2, side / 2), (left - 0.2, side / 2), width=2)
    out_faces = _padded_faces(result, pad)
    _grid(ax, top, left, result, result, face=out_faces)
    _outline(ax, top + centre, left + centre, 1, 1, ACCENT, width=2.5)
    ax.add_patch(Rectangle((left + 0.08, top + 0.08), 0.84, 0.84, fill=False, edgecolor=ACCENT,
                           linewidth=2.0, linestyle=(0, (3, 2))))
    _outline(ax, top + pad, left + pad, H, H, "black", width=1.2, inset=-0.02)
    ax.text(left + result / 2, top + result + 0.4,
            f"full convolution:\nthe padded input's\ngradient {result}x{result};"
            f"\ndx: the inner {H}x{H}",
            ha="center", va="top", fontsize=FONT)
    _finish(ax, -0.3, left + result + 0.6, -0.3, side + 1.6)
    return fig


MAXPOOL_EXAMPLE = np.array([[1, 3, 2, 0],
                            [4, 2, 1, 1],
                            [0, 5, 7, 6],
                            [2, 1, 8, 3]], dtype=float)


def draw_maxpool_routing(x=MAXPOOL_EXAMPLE, dout=((0.1, 0.2), (0.3, 0.4))):
    """Max pooling 2x2, stride 2, forward (top) and backward (bottom).

    Each window's maximum is outlined; the upstream gradient of each output
    goes back to that position only, and every other entry gets zero. The
    pooled values and the routed gradient come from ``max_pool_forward_naive``
    and ``max_pool_backward_naive``.
    """
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    x4 = np.asarray(x, dtype=float).reshape(1, 1, 4, 4)
    out, cache = max_pool_forward_naive(x4, pool_param)
    dout4 = np.asarray(dout, dtype=float).reshape(1, 1, 2, 2)
    dx = max_pool_backward_naive(dout4, cache)[0, 0]
    window_color = np.empty((4, 4), dtype=object)
    for r in range(4):
        for c in range(4):
            window_color[r, c] = HIGHLIGHT[(r // 2) * 2 + c // 2]
    light = {color: shade for color, shade in zip(
        HIGHLIGHT, ("#d6e7f3", "#fbe9c6", "#cdeee4", "#f2dcea"))}
    faces = np.vectorize(light.get, otypes=[object])(window_color)
    fig, ax = _figure(6.4, 5.2)
    # Forward: x -> out.
    _grid(ax, 0, 0, 4, 4, face=faces, labels=[[f"{v:g}" for v in row] for row in x4[0, 0]])
    pooled = [[f"{v:g}" for v in row] for row in out[0, 0]]
    out_faces = np.array([[HIGHLIGHT[0], HIGHLIGHT[1]], [HIGHLIGHT[2], HIGHLIGHT[3]]],
                         dtype=object)
    out_faces = np.vectorize(light.get, otypes=[object])(out_faces)
    _grid(ax, 1, 7, 2, 2, face=out_faces, labels=pooled)
    # Backward: dout -> dx.
    _grid(ax, 7, 7, 2, 2, face=out_faces,
          labels=[[f"{v:g}" for v in row] for row in dout4[0, 0]])
    _grid(ax, 6, 0, 4, 4, face=faces,
          labels=[[f"{v:g}" if v != 0 else "0" for v in row] for row in dx])
    for a in range(2):
        for b in range(2):
            window = x4[0, 0, 2 * a:2 * a + 2, 2 * b:2 * b + 2]
            r, c = np.unravel_index(np.argmax(window), (2, 2))
            color = HIGHLIGHT[a * 2 + b]
            _outline(ax, 2 * a + r, 2 * b + c, 1, 1, color)
            _outline(ax, 6 + 2 * a + r, 2 * b + c, 1, 1, color)
    _arrow(ax, (4.3, 2), (6.8, 2), width=2)
    _arrow(ax, (6.8, 8), (4.3, 8), width=2)
    ax.text(5.55, 7.7, "route", ha="center", va="bottom", fontsize=FONT)
    ax.text(5.55, 1.7, "max", ha="center", va="bottom", fontsize=FONT)
    ax.text(2, 4.3, "x", ha="center", va="top", fontsize=FONT)
    ax.text(8, 3.3, "out", ha="center", va="top", fontsize=FONT)
    ax.text(8, 9.3, "dout", ha="center", va="top", fontsize=FONT)
    ax.text(2, 10.3, "dx: each dout at its\nwindow's maximum", ha="center", va="top",
            fontsize=FONT)
    ax.text(10.2, 2, "forward", ha="left", va="center", fontsize=FONT, style="italic")
    ax.text(10.2, 8, "backward", ha="left", va="center", fontsize=FONT, style="italic")
    _finish(ax, -0.3, 12.6, -0.3, 11.8)
    return fig


def draw_im2col(H=3, kernel=2):
    """im2col on one 3x3 channel holding 1..9, for a 2x2 filter with stride 1.

    Each window of the input (left) becomes one column of the matrix
    ``X_col`` (right), in the colour of that window; column ``i * W' + j``
    holds the window whose top-left corner is at ``(i, j)``, read row by row.
    """
    H_out, W_out = conv_output_size((1, 1, H, H), (1, 1, kernel, kernel),
                                    {"stride": 1, "pad": 0})
    x = np.arange(1, H * H + 1).reshape(H, H)
    windows = [(i, j) for i in range(H_out) for j in range(W_out)]
    cols = np.stack([x[i:i + kernel, j:j + kernel].ravel() for i, j in windows], axis=1)
    fig, ax = _figure(6.4, 3.2)
    _grid(ax, 0.5, 0, H, H, labels=[[str(v) for v in row] for row in x])
    for k, (i, j) in enumerate(windows):
        _outline(ax, 0.5 + i, j, kernel, kernel, HIGHLIGHT[k], inset=0.05 + 0.07 * k,
                 width=2.5)
    left = H + 2.5
    faces = np.empty(cols.shape, dtype=object)
    for k in range(cols.shape[1]):
        faces[:, k] = HIGHLIGHT[k]
    light = dict(zip(HIGHLIGHT, ("#d6e7f3", "#fbe9c6", "#cdeee4", "#f2dcea")))
    faces = np.vectorize(light.get, otypes=[object])(faces)
    _grid(ax, 0, left, cols.shape[0], cols.shape[1], face=faces,
          labels=[[str(v) for v in row] for row in cols])
    for k in range(cols.shape[1]):
        _outline(ax, 0, left + k, cols.shape[0], 1, HIGHLIGHT[k], width=2.5)
        ax.text(left + k + 0.5, -0.15, f"{windows[k]}", ha="center", va="bottom",
                fontsize=9)
    _arrow(ax, (H + 0.3, 0.5 + H / 2), (left - 0.3, 0.5 + H / 2), width=2)
    ax.text(H / 2, 0.5 + H + 0.3, f"input {H}x{H}", ha="center", va="top", fontsize=FONT)
    ax.text(left + cols.shape[1] / 2, cols.shape[0] + 0.3,
            f"X_col: {cols.shape[0]} x {cols.shape[1]}\n(one column per window)",
            ha="center", va="top", fontsize=FONT)
    ax.text(left + cols.shape[1] + 0.4, 2, "row\n(c, p, q)", ha="left", va="center",
            fontsize=9)
    _finish(ax, -0.3, left + cols.shape[1] + 2.2, -1.0, cols.shape[0] + 1.6)
    return fig


def draw_three_layer_net(C=3, H=32, F=32, k=7, D=100, K=10):
    """The three-layer ConvNet as a column of boxes, with the shape of every array."""
    H_conv, _ = conv_output_size((1, C, H, H), (F, C, k, k),
                                 {"stride": 1, "pad": (k - 1) // 2})
    H_pool = H_conv // 2
    stages = [
        (f"input image  {C} x {H} x {H}", None),
        (f"conv {k}x{k}, {F} filters, stride 1, pad {(k - 1) // 2}", "W1, b1"),
        (f"ReLU  ->  {F} x {H_conv} x {H_conv}", None),
        (f"2x2 max pool, stride 2  ->  {F} x {H_pool} x {H_pool}", None),
        (f"affine {F * H_pool * H_pool:,} -> {D}, ReLU", "W2, b2"),
        (f"affine {D} -> {K}:  class scores", "W3, b3"),
        ("softmax loss", None),
    ]
    layer_of = {1: "layer 1", 4: "layer 2", 5: "layer 3"}
    fig, ax = _figure(6.4, 6.0)
    height, gap, width = 0.9, 0.55, 8.0
    fills = ("#f0f0f0", "#d6e7f3", "#d6e7f3", "#d6e7f3", "#fbe9c6", "#cdeee4", "#f0f0f0")
    for s, ((text, params), fill) in enumerate(zip(stages, fills)):
        top = s * (height + gap)
        ax.add_patch(FancyBboxPatch((0, top), width, height,
                                    boxstyle="round,pad=0.02,rounding_size=0.15",
                                    facecolor=fill, edgecolor=EDGE, linewidth=1.0))
        ax.text(width / 2, top + height / 2, text, ha="center", va="center", fontsize=FONT)
        if params is not None:
            ax.text(width + 0.2, top + height / 2, params, ha="left", va="center",
                    fontsize=FONT, family="monospace")
        if s in layer_of:
            ax.text(-0.2, top + height / 2, layer_of[s], ha="right", va="center",
                    fontsize=FONT, style="italic")
        if s + 1 < len(stages):
            _arrow(ax, (width / 2, top + height), (width / 2, top + height + gap), width=1.2)
    _finish(ax, -1.7, width + 1.7, -0.2, len(stages) * (height + gap) - gap + 0.2)
    return fig


# --------------------------------------------------------------------------
# The convolution family
# --------------------------------------------------------------------------

LIGHT = dict(zip(HIGHLIGHT, ("#d6e7f3", "#fbe9c6", "#cdeee4", "#f2dcea")))


def _stack(ax, top, left, depth, rows, cols, faces, step=0.45):
    """``depth`` grids of rows x cols drawn back to front, each ``step`` down and right of the last.

    ``faces`` is a list of ``depth`` face arguments for :func:`_grid`.
    Returns the (top, left) of the front grid.
    """
    for k in range(depth):
        _grid(ax, top + k * step, left + k * step, rows, cols, face=faces[k])
    return top + (depth - 1) * step, left + (depth - 1) * step


def draw_pointwise_conv(C=3, F=2, H=4, pixel=(1, 2)):
    """A 1x1 convolution: at every pixel, the C values of the input become F outputs.

    The pixel's column through the C input channels (left) is multiplied by
    the F x C weight matrix (middle) and gives the column through the F
    output channels (right); the spatial size does not change (from
    ``conv_output_size`` with a 1x1 filter).
    """
    H_out, W_out = conv_output_size((1, C, H, H), (F, C, 1, 1), {"stride": 1, "pad": 0})
    i, j = pixel
    fig, ax = _figure(6.4, 3.2)
    faces = []
    for k in range(C):
        face = np.full((H, H), INPUT, dtype=object)
        face[i, j] = LIGHT[HIGHLIGHT[0]]
        faces.append(face)
    front_top, front_left = _stack(ax, 0, 0, C, H, H, faces)
    _outline(ax, front_top + i, front_left + j, 1, 1, HIGHLIGHT[0])
    ax.text(front_left + H / 2 - 0.4, front_top + H + 0.4, f"input\n{C} channels, {H}x{H}",
            ha="center", va="top", fontsize=FONT)
    left_w = H + C * 0.45 + 1.6
    _grid(ax, 0.9, left_w, F, C, face=LIGHT[HIGHLIGHT[1]],
          labels=[[f"w{f}{c}" for c in range(C)] for f in range(F)], fontsize=9)
    ax.text(left_w + C / 2, 0.9 + F + 0.4, f"weights\n{F} x {C}\n({F * C} + {F} bias)",
            ha="center", va="top", fontsize=FONT)
    left_out = left_w + C + 1.6
    out_faces = []
    for k in range(F):
        face = np.full((H_out, W_out), INPUT, dtype=object)
        face[i, j] = LIGHT[HIGHLIGHT[2]]
        out_faces.append(face)
    out_top, out_left = _stack(ax, 0, left_out, F, H_out, W_out, out_faces)
    _outline(ax, out_top + i, out_left + j, 1, 1, HIGHLIGHT[2])
    ax.text(out_left + W_out / 2 - 0.2, out_top + H_out + 0.4, f"output\n{F} channels, {H_out}x{W_out}",
            ha="center", va="top", fontsize=FONT)
    _arrow(ax, (front_left + j + 1.0, front_top + i + 0.5), (left_w - 0.2, 0.9 + F / 2), width=1.5)
    _arrow(ax, (left_w + C + 0.2, 0.9 + F / 2), (out_left + j - 0.1, out_top + i + 0.5), width=1.5)
    _finish(ax, -0.3, out_left + W_out + 0.3, -0.3, front_top + H + 1.7)
    return fig


def draw_dilated_conv(H=7, kernel=3, dilation=2):
    """A 3x3 filter with dilation 2 on a 7x7 input: nine taps spread over a 5x5 window.

    Left: the taps of the first output (coloured) and of the last one
    (outlined); right: the output, whose size comes from
    ``conv_general_output_size``, next to the same filter without dilation.
    """
    H_out, W_out = conv_general_output_size((1, 1, H, H), (1, 1, kernel, kernel),
                                            {"stride": 1, "pad": 0, "dilation": dilation})
    span = (kernel - 1) * dilation + 1
    faces = np.full((H, H), INPUT, dtype=object)
    faces[0:span, 0:span] = "#f4f4f4"
    faces[0:span:dilation, 0:span:dilation] = HIGHLIGHT[0]
    fig, ax = _figure(6.4, 3.4)
    _grid(ax, 0, 0, H, H, face=faces)
    _outline(ax, 0, 0, span, span, HIGHLIGHT[0], width=2.0)
    last = H - span
    for p in range(kernel):
        for q in range(kernel):
            _outline(ax, last + p * dilation, last + q * dilation, 1, 1, HIGHLIGHT[1], width=2.5)
    ax.text(H / 2, H + 0.4, f"input {H}x{H}: {kernel}x{kernel} taps, dilation {dilation},\n"
            f"span {span}x{span}", ha="center", va="top", fontsize=FONT)
    left = H + 2.0
    out_faces = np.full((H_out, W_out), INPUT, dtype=object)
    out_faces[0, 0] = HIGHLIGHT[0]
    out_faces[-1, -1] = LIGHT[HIGHLIGHT[1]]
    top = (H - H_out) / 2
    _grid(ax, top, left, H_out, W_out, face=out_faces)
    _outline(ax, top + H_out - 1, left + W_out - 1, 1, 1, HIGHLIGHT[1], width=2.5)
    ax.text(left + W_out / 2, top + H_out + 0.4, f"output {H_out}x{W_out}", ha="center", va="top",
            fontsize=FONT)
    _arrow(ax, (span + 0.2, span / 2), (left - 0.2, top + 0.5), width=1.5)
    _finish(ax, -0.3, left + W_out + 0.3, -0.3, H + 1.8)
    return fig


def draw_grouped_conv(C=4, F=4, groups=(1, 2, 4)):
    """Which input channels each filter sees: a full, a grouped and a depthwise convolution.

    One panel per number of groups: the C input channels on top, the F
    output channels below, a line wherever a filter reads a channel, coloured
    by group. The line count, ``F * C / groups``, is the weight count per
    filter tap.
    """
    fig, ax = _figure(6.4, 2.6)
    width = C + 1.5
    for k, G in enumerate(groups):
        conv_general_output_size((1, C, 1, 1), (F, C // G, 1, 1), {"stride": 1, "pad": 0, "groups": G})
        left = k * width
        C_g, F_g = C // G, F // G
        for f in range(F):
            g = f // F_g
            for c in range(g * C_g, (g + 1) * C_g):
                ax.plot([left + c + 0.5, left + f + 0.5], [1.0, 3.0], color=HIGHLIGHT[g % len(HIGHLIGHT)],
                        linewidth=1.4)
        faces_in = [LIGHT[HIGHLIGHT[(c // C_g) % len(HIGHLIGHT)]] for c in range(C)]
        faces_out = [LIGHT[HIGHLIGHT[(f // F_g) % len(HIGHLIGHT)]] for f in range(F)]
        _grid(ax, 0, left, 1, C, face=np.array([faces_in], dtype=object))
        _grid(ax, 3, left, 1, F, face=np.array([faces_out], dtype=object))
        name = {1: "full", C: "depthwise"}.get(G, "grouped")
        ax.text(left + C / 2, 4.3, f"{name}: groups = {G}\n{F * C_g} weights per tap",
                ha="center", va="top", fontsize=FONT)
    ax.text(-0.2, 0.5, "in", ha="right", va="center", fontsize=FONT, style="italic")
    ax.text(-0.2, 3.5, "out", ha="right", va="center", fontsize=FONT, style="italic")
    _finish(ax, -1.2, len(groups) * width - 1.2, -0.3, 5.9)
    return fig


def draw_transposed_conv(H=2, kernel=3, stride=2):
    """A transposed convolution, 3x3 filter, stride 2, on a 2x2 input: each pixel scatters a filter.

    Every input pixel (left) adds a copy of the filter, scaled by its value,
    onto the output (right), ``stride`` pixels from its neighbour's; the
    numbers count the copies that overlap on each output pixel. The output
    size comes from ``conv_transpose_output_size``.
    """
    H_out, W_out = conv_transpose_output_size((1, 1, H, H), (1, 1, kernel, kernel),
                                              {"stride": stride, "pad": 0})
    count = np.zeros((H_out, W_out), dtype=int)
    for i in range(H):
        for j in range(H):
            count[i * stride:i * stride + kernel, j * stride:j * stride + kernel] += 1
    fig, ax = _figure(6.4, 3.3)
    top_in = (H_out - H) / 2
    _grid(ax, top_in, 0, H, H, face=np.array([[LIGHT[HIGHLIGHT[i * H + j]] for j in range(H)]
                                              for i in range(H)], dtype=object),
          labels=[[f"x{i}{j}" for j in range(H)] for i in range(H)])
    ax.text(H / 2, top_in + H + 0.4, f"input {H}x{H}", ha="center", va="top", fontsize=FONT)
    left = H + 2.5
    faces = np.full((H_out, W_out), INPUT, dtype=object)
    for i in range(H):
        for j in range(H):
            block = faces[i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            block[block == INPUT] = LIGHT[HIGHLIGHT[i * H + j]]
    faces[count > 1] = "#e0e0e0"
    _grid(ax, 0, left, H_out, W_out, face=faces,
          labels=[[str(v) for v in row] for row in count], fontsize=10)
    for i in range(H):
        for j in range(H):
            _outline(ax, i * stride, left + j * stride, kernel, kernel, HIGHLIGHT[i * H + j],
                     inset=0.05 + 0.06 * (i * H + j), width=2.0)
    _arrow(ax, (H + 0.2, top_in + H / 2), (left - 0.2, H_out / 2), width=2)
    ax.text(left + W_out / 2, H_out + 0.4,
            f"output {H_out}x{W_out}: copies of the {kernel}x{kernel} filter,\n"
            f"{stride} apart (numbers: how many overlap)", ha="center", va="top", fontsize=FONT)
    _finish(ax, -0.3, left + W_out + 0.3, -0.3, H_out + 1.9)
    return fig


def draw_average_pooling(x=MAXPOOL_EXAMPLE):
    """The example of the max-pooling figure pooled three ways: max 2x2, average 2x2 and global average.

    The window means are computed here with NumPy (the same numbers as
    ``convlab.conv_family.avg_pool_forward_naive``); the global average is
    one number per channel, the mean of the whole map.
    """
    x = np.asarray(x, dtype=float)
    H = x.shape[0]
    blocks = x.reshape(H // 2, 2, H // 2, 2)
    pooled = {"max 2x2": blocks.max(axis=(1, 3)), "average 2x2": blocks.mean(axis=(1, 3))}
    window_color = np.empty((H, H), dtype=object)
    for r in range(H):
        for c in range(H):
            window_color[r, c] = LIGHT[HIGHLIGHT[(r // 2) * 2 + c // 2]]
    fig, ax = _figure(6.4, 3.6)
    top_in = 1.0
    _grid(ax, top_in, 0, H, H, face=window_color, labels=[[f"{v:g}" for v in row] for row in x])
    ax.text(H / 2, top_in + H + 0.4, "one channel", ha="center", va="top", fontsize=FONT)
    out_faces = np.array([[LIGHT[HIGHLIGHT[0]], LIGHT[HIGHLIGHT[1]]],
                          [LIGHT[HIGHLIGHT[2]], LIGHT[HIGHLIGHT[3]]]], dtype=object)
    left = H + 2.5
    outputs = [(name, out, 2.6 * k) for k, (name, out) in enumerate(pooled.items())]
    outputs.append(("global average", np.array([[x.mean()]]), 5.2))
    for name, out, top in outputs:
        size = out.shape[0]
        faces = out_faces if size == 2 else np.full((1, 1), "#e0e0e0", dtype=object)
        _grid(ax, top, left, size, size, face=faces, labels=[[f"{v:g}" for v in row] for row in out])
        ax.text(left + size + 0.3, top + size / 2, name, ha="left", va="center", fontsize=FONT)
        _arrow(ax, (H + 0.2, top_in + H / 2), (left - 0.2, top + size / 2), width=1.2)
    _finish(ax, -0.3, left + 6.5, -0.3, 6.5)
    return fig


def draw_residual_block(C=16, F=32, H=32, stride=2):
    """A residual block: the main path of two convolutions, the shortcut beside it, their sum.

    The shapes come from ``conv_output_size`` (padding 1, the size rounded
    down as the block's convolutions do); the shortcut is labelled with the
    two forms it takes when the block changes the shape ("option A" pads the
    subsampled input with zero channels, "option B" projects it with a 1x1
    convolution). Beside the boxes, the backward pass: the upstream gradient
    reaches the sum and goes down both paths, and the two gradients add at
    the block's input.
    """
    H_out = (H + 2 - 3) // stride + 1
    shape_in, shape_out = f"{C} x {H} x {H}", f"{F} x {H_out} x {H_out}"
    steps = [
        (f"conv 3x3, {F} filters, stride {stride}", "#d6e7f3"),
        ("batch norm, ReLU", "#cdeee4"),
        (f"conv 3x3, {F} filters, stride 1", "#d6e7f3"),
        ("batch norm", "#cdeee4"),
    ]
    fig, ax = _figure(8.0, 4.6)
    width, height, gap = 5.6, 0.8, 0.45
    left = 0.0
    ax.text(left + width / 2, -0.35, f"x   ({shape_in})", ha="center", va="bottom",
            fontsize=FONT)
    top = 0.5
    _arrow(ax, (left + width / 2, -0.25), (left + width / 2, top), width=1.2)
    for s, (text, fill) in enumerate(steps):
        ax.add_patch(FancyBboxPatch((left, top), width, height,
                                    boxstyle="round,pad=0.02,rounding_size=0.15",
                                    facecolor=fill, edgecolor=EDGE, linewidth=1.0))
        ax.text(left + width / 2, top + height / 2, text, ha="center", va="center",
                fontsize=FONT)
        _arrow(ax, (left + width / 2, top + height), (left + width / 2, top + height + gap),
               width=1.2)
        top += height + gap
    ax.text(left - 0.25, 0.5 + 2 * (height + gap) - gap / 2, "main path\nF(x)",
            ha="right", va="center", fontsize=FONT, style="italic")
    # the sum
    radius = 0.32
    centre = (left + width / 2, top + radius)
    ax.add_patch(matplotlib.patches.Circle(centre, radius, facecolor=INPUT, edgecolor=EDGE,
                                           linewidth=1.2))
    ax.text(*centre, "+", ha="center", va="center", fontsize=FONT + 4)
    # the shortcut: from x around the right of the boxes into the sum
    skip_x = left + width + 1.0
    ax.plot([left + width / 2 + 0.15, skip_x, skip_x], [-0.15, -0.15, centre[1]],
            color=HIGHLIGHT[1], linewidth=2.0)
    _arrow(ax, (skip_x, centre[1]), (centre[0] + radius, centre[1]), color=HIGHLIGHT[1],
           width=2.0)
    ax.text(skip_x + 0.2, 1.6, "shortcut", ha="left", va="center", fontsize=FONT,
            color=HIGHLIGHT[1], style="italic")
    ax.text(skip_x + 0.2, 2.3, "x itself, or where\nthe shape changes:\n"
            "A: x[:, :, ::2, ::2]\n   + zero channels\nB: conv 1x1, stride 2,\n   batch norm",
            ha="left", va="top", fontsize=FONT, family="monospace")
    bottom = centre[1] + radius
    _arrow(ax, (centre[0], bottom), (centre[0], bottom + gap), width=1.2)
    ax.add_patch(FancyBboxPatch((left, bottom + gap), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.15",
                                facecolor="#f0f0f0", edgecolor=EDGE, linewidth=1.0))
    ax.text(left + width / 2, bottom + gap + height / 2, f"ReLU  ->  out  ({shape_out})",
            ha="center", va="center", fontsize=FONT)
    # the backward pass, drawn on the left
    back_x = left - 2.4
    last = bottom + gap + height / 2
    _arrow(ax, (back_x, last), (back_x, 0.1), color=HIGHLIGHT[0], width=1.5)
    ax.text(back_x + 0.2, last, "dout", ha="left", va="center", fontsize=FONT,
            color=HIGHLIGHT[0])
    ax.text(back_x - 0.3, -0.45, "dx = dx main\n   + dx shortcut", ha="left", va="center",
            fontsize=FONT, color=HIGHLIGHT[0], family="monospace")
    ax.text(back_x - 0.2, (last + 0.1) / 2, "backward pass", ha="right", va="center",
            rotation=90, fontsize=FONT, color=HIGHLIGHT[0], style="italic")
    _finish(ax, back_x - 0.9, skip_x + 4.3, -1.1, bottom + gap + height + 0.3)
    return fig


DIAGRAMS = {
    "stride_padding": draw_stride_padding,
    "receptive_field": draw_receptive_field,
    "backward_scatter": draw_backward_scatter,
    "flipped_filter_full_conv": draw_flipped_filter_full_conv,
    "maxpool_routing": draw_maxpool_routing,
    "im2col": draw_im2col,
    "three_layer_net": draw_three_layer_net,
    "pointwise_conv": draw_pointwise_conv,
    "dilated_conv": draw_dilated_conv,
    "grouped_conv": draw_grouped_conv,
    "transposed_conv": draw_transposed_conv,
    "average_pooling": draw_average_pooling,
    "residual_block": draw_residual_block,
}


def save_all(directory):
    """Draw every diagram of :data:`DIAGRAMS` into ``directory`` as ``<name>.svg``.

    The files are identical on every run with the same Matplotlib version:
    the SVG ids are salted with a fixed string and the metadata carry no date.

    Parameters
    ----------
    directory : str or pathlib.Path
        Created if missing.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of :data:`DIAGRAMS`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    style = {"svg.hashsalt": "convlab", "svg.fonttype": "path",
             "font.family": "DejaVu Sans"}
    with matplotlib.rc_context(style):
        for name, draw in DIAGRAMS.items():
            path = directory / f"{name}.svg"
            draw().savefig(path, format="svg", metadata={"Date": None, "Creator": None})
            written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m convlab.diagrams DIRECTORY")
    for written_path in save_all(sys.argv[1]):
        print(written_path)

"""The cost of a network, layer by layer: output shape, parameters, FLOPs, activation memory, receptive field.

A network is described by a *spec*: a list of layers made by the small
functions below (:func:`conv`, :func:`batchnorm`, :func:`relu`,
:func:`max_pool`, :func:`avg_pool`, :func:`global_avg_pool`,
:func:`flatten`, :func:`affine`, :func:`zero_pad_shortcut`) and of residual
blocks (:func:`residual`),
which hold two such lists, a main path and a shortcut. :func:`summary`
walks the spec with an input shape and returns one row per layer; it never
builds arrays, so it sizes ResNet-18 as quickly as LeNet.
:mod:`convlab.architectures` holds the specs of the classic networks.

The arithmetic, for one image (the batch multiplies everything but the
parameters):

* output size along an axis, as in most frameworks (rounding down):
  ``(H + 2 * pad - dilation * (k - 1) - 1) // stride + 1``;
* parameters of a convolution: ``F * (C / groups) * k * k`` weights, plus
  ``F`` biases; of batch norm: ``2 * C`` (scale and shift; the running
  statistics are state, not parameters); of an affine layer ``D * M + M``;
* FLOPs: ``2`` per multiply-add of the convolutions and affine layers (a
  convolution makes ``H_out * W_out * F * (C / groups) * k * k`` of them);
  everything else is counted as free. (Papers often quote multiply-adds
  and call them FLOPs: halve our figure to compare.)
* activation memory: the output's elements times 4 bytes (float32), what a
  training step keeps for the backward pass, layer by layer;
* receptive field ``r`` and *jump* ``j`` (the input pixels between two
  neighbouring outputs), from ``r = j = 1`` at the input: a layer with
  kernel ``k``, dilation ``d`` and stride ``s`` gives
  ``r' = r + d * (k - 1) * j`` and ``j' = j * s``. A residual block's
  output sees what either path sees: the larger of the two.
"""

import math

__all__ = ["conv", "batchnorm", "relu", "max_pool", "avg_pool", "global_avg_pool", "flatten",
           "affine", "zero_pad_shortcut", "residual", "summary", "totals", "format_summary"]

BYTES_PER_VALUE = 4   # float32


# ----------------------------------------------------------------------
# The spec: one dict per layer
# ----------------------------------------------------------------------

def conv(filters, size, stride=1, pad=0, dilation=1, groups=1, bias=True, name=None):
    """A convolution with ``filters`` filters of ``size x size`` (see the module docstring)."""
    return {"kind": "conv", "filters": filters, "size": size, "stride": stride, "pad": pad,
            "dilation": dilation, "groups": groups, "bias": bias, "name": name}


def batchnorm(name=None):
    """Spatial batch normalization (a scale and a shift per channel)."""
    return {"kind": "batchnorm", "name": name}


def relu(name=None):
    """ReLU (any elementwise activation costs the same here)."""
    return {"kind": "relu", "name": name}


def max_pool(size, stride=None, pad=0, name=None):
    """Max pooling over ``size x size`` windows, stride ``size`` unless given."""
    return {"kind": "max_pool", "size": size, "stride": stride or size, "pad": pad, "name": name}


def avg_pool(size, stride=None, pad=0, name=None):
    """Average pooling over ``size x size`` windows, stride ``size`` unless given."""
    return {"kind": "avg_pool", "size": size, "stride": stride or size, "pad": pad, "name": name}


def global_avg_pool(name=None):
    """The mean of every channel over the whole map: (C, H, W) -> (C,)."""
    return {"kind": "global_avg_pool", "name": name}


def flatten(name=None):
    """(C, H, W) -> (C * H * W,)."""
    return {"kind": "flatten", "name": name}


def affine(outputs, name=None):
    """A fully connected layer with ``outputs`` outputs (weights and biases)."""
    return {"kind": "affine", "outputs": outputs, "name": name}


def zero_pad_shortcut(filters, stride=2, name=None):
    """He et al.'s parameter-free shortcut ("option A"): every ``stride``-th pixel, channels zero-padded to ``filters``."""
    return {"kind": "zero_pad_shortcut", "filters": filters, "stride": stride, "name": name}


def residual(main, shortcut=(), name=None):
    """A residual block: ``main(x) + shortcut(x)``; an empty shortcut is the identity.

    Parameters
    ----------
    main, shortcut : list of layer dicts
        Both must give the same output shape. A shortcut that changes the
        shape is usually ``[conv(F, 1, stride=2, bias=False), batchnorm()]``.
    """
    return {"kind": "residual", "main": list(main), "shortcut": list(shortcut), "name": name}


# ----------------------------------------------------------------------
# Walking the spec
# ----------------------------------------------------------------------

def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _window(layer, shape, where):
    """Output shape, kernel extent and stride of a conv or pooling layer on ``shape`` (C, H, W)."""
    if len(shape) != 3:
        raise ValueError(f"{where}: needs a (C, H, W) input, got shape {shape}")
    k = _positive_int(layer["size"], f"{where}: size")
    s = _positive_int(layer["stride"], f"{where}: stride")
    d = _positive_int(layer.get("dilation", 1), f"{where}: dilation")
    pad = layer["pad"]
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"{where}: pad must be a non-negative integer, got {pad!r}")
    extent = d * (k - 1) + 1
    _, H, W = shape
    if H + 2 * pad < extent or W + 2 * pad < extent:
        raise ValueError(f"{where}: a {extent}x{extent} window does not fit the padded "
                         f"{H + 2 * pad}x{W + 2 * pad} input")
    return (H + 2 * pad - extent) // s + 1, (W + 2 * pad - extent) // s + 1, extent, s


def _layer(layer, shape, where):
    """(output shape, parameters, FLOPs, kernel extent, stride) of one plain layer."""
    kind = layer["kind"]
    if kind == "conv":
        H, W, extent, s = _window(layer, shape, where)
        C = shape[0]
        F = _positive_int(layer["filters"], f"{where}: filters")
        g = _positive_int(layer["groups"], f"{where}: groups")
        if C % g or F % g:
            raise ValueError(f"{where}: groups={g} must divide the {C} input channels "
                             f"and the {F} filters")
        weights = F * (C // g) * layer["size"] ** 2
        params = weights + (F if layer["bias"] else 0)
        return (F, H, W), params, 2 * H * W * weights, extent, s
    if kind in ("max_pool", "avg_pool"):
        H, W, extent, s = _window(layer, shape, where)
        return (shape[0], H, W), 0, 0, extent, s
    if kind in ("batchnorm", "relu"):
        return shape, (2 * shape[0] if kind == "batchnorm" else 0), 0, 1, 1
    if kind == "global_avg_pool":
        if len(shape) != 3:
            raise ValueError(f"{where}: needs a (C, H, W) input, got shape {shape}")
        # every output sees the whole map: one window as large as the map
        return (shape[0],), 0, 0, max(shape[1:]), max(shape[1:])
    if kind == "zero_pad_shortcut":
        F = _positive_int(layer["filters"], f"{where}: filters")
        s = _positive_int(layer["stride"], f"{where}: stride")
        if len(shape) != 3 or F < shape[0]:
            raise ValueError(f"{where}: pads a (C, H, W) input to filters >= C channels, "
                             f"got shape {shape} and filters={F}")
        return (F, -(-shape[1] // s), -(-shape[2] // s)), 0, 0, 1, s
    if kind == "flatten":
        return (math.prod(shape),), 0, 0, 1, 1
    if kind == "affine":
        if len(shape) != 1:
            raise ValueError(f"{where}: needs a flat input (add flatten() or "
                             f"global_avg_pool()), got shape {shape}")
        M = _positive_int(layer["outputs"], f"{where}: outputs")
        return (M,), shape[0] * M + M, 2 * shape[0] * M, 1, 1
    raise ValueError(f"{where}: unknown layer kind {kind!r}")


def _walk(spec, shape, field, prefix, rows):
    """Append the rows of ``spec`` applied to ``shape`` with receptive field/jump ``field``."""
    if not isinstance(spec, (list, tuple)):
        raise ValueError(f"a spec is a list of layers, got {type(spec).__name__}")
    counts = {}
    for layer in spec:
        if not isinstance(layer, dict) or "kind" not in layer:
            raise ValueError(f"{prefix or 'spec'}: a layer must come from convlab.summary's "
                             f"functions (conv, relu, ...), got {layer!r}")
        kind = layer["kind"]
        counts[kind] = counts.get(kind, 0) + 1
        name = prefix + (layer.get("name") or f"{kind}{counts[kind]}")
        if kind == "residual":
            main_rows, short_rows = [], []
            main_shape, main_field = _walk(layer["main"], shape, field, name + ".", main_rows)
            short_shape, short_field = _walk(layer["shortcut"], shape, field,
                                             name + ".shortcut.", short_rows)
            if main_shape != short_shape:
                raise ValueError(f"{name}: the main path gives shape {main_shape}, the shortcut "
                                 f"{short_shape}; they must match to be added")
            if main_field[1] != short_field[1]:
                raise ValueError(f"{name}: the main path and the shortcut have different strides")
            shape, field = main_shape, (max(main_field[0], short_field[0]), main_field[1])
            block_rows = main_rows + short_rows + [_row(name + ".add", "add", shape, 0, 0, field)]
            for row in block_rows:
                row["block"] = row["block"] or name     # the outermost block wins
            rows += block_rows
            continue
        shape, params, flops, extent, stride = _layer(layer, tuple(shape), name)
        r, j = field
        field = (r + (extent - 1) * j, j * stride)
        rows.append(_row(name, kind, shape, params, flops, field))
    return tuple(shape), field


def _row(name, kind, shape, params, flops, field):
    return {"name": name, "kind": kind, "shape": tuple(shape), "params": params, "flops": flops,
            "activation_bytes": math.prod(shape) * BYTES_PER_VALUE,
            "receptive_field": field[0], "jump": field[1], "block": None}


def summary(spec, input_shape):
    """One row per layer of ``spec`` applied to one image of ``input_shape``.

    Parameters
    ----------
    spec : list of layer dicts
        Made with this module's functions (or taken from
        :mod:`convlab.architectures`).
    input_shape : tuple of int
        ``(C, H, W)`` of one image, e.g. ``(3, 32, 32)``.

    Returns
    -------
    rows : list of dict
        Each with ``name`` (e.g. ``'stage2.block1.conv1'``), ``kind`` (the
        layer's kind, ``'conv'``, ``'relu'``, ...; ``'add'`` for the sum that
        ends a residual block), ``shape`` (the
        output's shape for one image), ``params``, ``flops`` (for one image),
        ``activation_bytes`` (the output in float32), ``receptive_field``
        (input pixels along each axis that one output value depends on) and
        ``jump``. A residual block adds its main path's rows, its shortcut's
        and an ``.add`` row; ``block`` names the outermost residual block
        a row belongs to (None outside blocks).

    Raises
    ------
    ValueError
        Naming the layer: a window larger than its padded input, groups that
        do not divide the channels, an affine layer on a map, paths of a
        residual block that do not match, an unknown layer.
    """
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                       for n in input_shape)):
        raise ValueError(f"input_shape must be (C, H, W) of positive integers, got {input_shape!r}")
    rows = []
    _walk(spec, tuple(input_shape), (1, 1), "", rows)
    return rows


def totals(rows):
    """Parameters, FLOPs and activation bytes of a whole :func:`summary`, as a dict."""
    return {"params": sum(r["params"] for r in rows), "flops": sum(r["flops"] for r in rows),
            "activation_bytes": sum(r["activation_bytes"] for r in rows)}


def format_summary(rows, top_level_only=False):
    """The rows as a fixed-width table, with a total line.

    Parameters
    ----------
    rows : list of dict
        From :func:`summary`.
    top_level_only : bool
        Show a residual block as one row: its output, its parameters and
        FLOPs summed (the total line still counts every layer's activations).
    """
    shown = rows
    if top_level_only:
        shown, pending = [], {"params": 0, "flops": 0}
        for row in rows:
            if row["block"] is None:
                shown.append(row)
                continue
            for key in pending:
                pending[key] += row[key]
            if row["name"] == row["block"] + ".add":
                shown.append({**row, **pending, "name": row["block"]})
                pending = dict.fromkeys(pending, 0)
    lines = [f"{'layer':32s} {'output':>14s} {'params':>11s} {'MFLOP':>9s} "
             f"{'act. KiB':>9s} {'RF':>4s}"]
    for r in shown:
        shape = "x".join(map(str, r["shape"]))
        lines.append(f"{r['name']:32s} {shape:>14s} {r['params']:11,d} {r['flops'] / 1e6:9.2f} "
                     f"{r['activation_bytes'] / 1024:9.1f} {r['receptive_field']:4d}")
    total = totals(rows)
    lines.append(f"{'total':32s} {'':>14s} {total['params']:11,d} {total['flops'] / 1e6:9.2f} "
                 f"{total['activation_bytes'] / 1024:9.1f}")
    return "\n".join(lines)

"""Naive, readable forward and backward passes for the layers of a ConvNet.

Every function here is written to be checked against the math by a student:
plain loops and NumPy, no cleverness. These layers are the *oracle* that the
fast layers in :mod:`convlab.fast_layers` are tested against, so this module
never imports the fast path.

Conventions (the CS231n lineage)
--------------------------------
* A forward pass returns ``(out, cache)``; the matching backward pass takes
  ``(dout, cache)`` and returns the gradients of its inputs.
* Images are laid out as ``(N, C, H, W)``: batch, channels, height, width.
  Convolution filters are ``(F, C, HH, WW)``.
* Bad input raises :class:`ValueError` naming the argument and the shapes.
"""

import numpy as np


def conv_output_size(x_shape, w_shape, conv_param):
    """Spatial size of the output of a convolution, after checking the input.

    The output size along each axis is ``1 + (H + 2 * pad - HH) // stride``;
    this function insists that the division is exact, so that the filter
    tiles the padded input with no leftover rows or columns.

    Parameters
    ----------
    x_shape : tuple of int
        Shape ``(N, C, H, W)`` of the input.
    w_shape : tuple of int
        Shape ``(F, C, HH, WW)`` of the filters.
    conv_param : dict
        ``'stride'`` (positive int) and ``'pad'`` (non-negative int).

    Returns
    -------
    (H_out, W_out) : tuple of int

    Raises
    ------
    ValueError
        If a shape has the wrong number of dimensions, the channels of ``x``
        and ``w`` differ, the stride is not positive, the pad is negative,
        a filter is larger than the padded input, or the filter does not
        tile the padded input with this stride.
    """
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"w must have shape (F, C, HH, WW); got shape {w_shape}")
    stride, pad = _int_param(conv_param, "conv_param", "stride"), _int_param(conv_param, "conv_param", "pad")
    N, C, H, W = x_shape
    F, Cw, HH, WW = w_shape
    if C != Cw:
        raise ValueError(
            f"x and w must have the same number of channels: x has shape {x_shape} "
            f"({C} channels) but w has shape {w_shape} ({Cw} channels)"
        )
    if stride <= 0:
        raise ValueError(f"conv_param['stride'] must be positive; got {stride}")
    if pad < 0:
        raise ValueError(f"conv_param['pad'] must be non-negative; got {pad}")
    if HH <= 0 or WW <= 0:
        raise ValueError(f"w must have a non-empty filter; got shape {w_shape}")
    Hp, Wp = H + 2 * pad, W + 2 * pad
    if HH > Hp or WW > Wp:
        raise ValueError(
            f"filter of w (shape {w_shape}) is larger than the padded input "
            f"({Hp}, {Wp}) of x (shape {x_shape}, pad {pad})"
        )
    if (Hp - HH) % stride or (Wp - WW) % stride:
        raise ValueError(
            f"filter {HH}x{WW} with stride {stride} does not tile the padded input "
            f"{Hp}x{Wp} of x (shape {x_shape}, pad {pad}): need (H + 2*pad - HH) "
            f"and (W + 2*pad - WW) divisible by the stride"
        )
    return 1 + (Hp - HH) // stride, 1 + (Wp - WW) // stride


def pool_output_size(x_shape, pool_param):
    """Spatial size of the output of max pooling, after checking the input.

    Parameters
    ----------
    x_shape : tuple of int
        Shape ``(N, C, H, W)`` of the input.
    pool_param : dict
        ``'pool_height'``, ``'pool_width'`` and ``'stride'`` (positive ints).

    Returns
    -------
    (H_out, W_out) : tuple of int
        ``1 + (H - pool_height) // stride`` and ``1 + (W - pool_width) // stride``.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, a parameter is not positive, the window is larger
        than the input, or the window does not tile the input with this stride.
    """
    x_shape = tuple(x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x_shape}")
    ph = _int_param(pool_param, "pool_param", "pool_height")
    pw = _int_param(pool_param, "pool_param", "pool_width")
    stride = _int_param(pool_param, "pool_param", "stride")
    for name, value in (("pool_height", ph), ("pool_width", pw), ("stride", stride)):
        if value <= 0:
            raise ValueError(f"pool_param['{name}'] must be positive; got {value}")
    N, C, H, W = x_shape
    if ph > H or pw > W:
        raise ValueError(
            f"pooling window {ph}x{pw} is larger than the input {H}x{W} of x (shape {x_shape})"
        )
    if (H - ph) % stride or (W - pw) % stride:
        raise ValueError(
            f"pooling window {ph}x{pw} with stride {stride} does not tile the input "
            f"{H}x{W} of x (shape {x_shape}): need (H - pool_height) and "
            f"(W - pool_width) divisible by the stride"
        )
    return 1 + (H - ph) // stride, 1 + (W - pw) // stride


def _int_param(params, dict_name, key):
    """Read ``params[key]`` as an int, with a clear error if absent or not integral."""
    if key not in params:
        raise ValueError(f"{dict_name} must contain '{key}'; got keys {sorted(params)}")
    value = params[key]
    if isinstance(value, (bool, np.bool_)) or int(value) != value:
        raise ValueError(f"{dict_name}['{key}'] must be an integer; got {value!r}")
    return int(value)

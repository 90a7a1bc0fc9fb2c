"""What the fast kernels can be handed: real arrays, sizes their C ints and buffers hold.

The kernels compute in float32 or float64 and take strides, pads and
window sizes as C ints; max pooling records each window's winner as an
int32 index in its plane, and a convolution copies each padded image into
a work buffer. The checks here turn input outside those limits into a
``ValueError`` or ``TypeError`` naming the argument, before a kernel runs.
"""

import sys

import numpy as np

from convlab.layers import INDEX_MAX
from convlab.modern_layers import ACTIVATIONS


_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INT_MAX = INDEX_MAX  # the kernels take strides, pads and window sizes as C ints


def _is_real(dtype):
    """Whether arrays of ``dtype`` hold real numbers (floats, integers or bools)."""
    return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer) or dtype == np.bool_


def _real_dtype(**arrays):
    """The floating dtype the kernels compute in: float32 or float64.

    float32 (and narrower floats or small ints mixed with float32) stays
    float32; anything wider becomes float64.  Complex or non-numeric input
    is a ``TypeError`` naming the argument (the keyword it is passed by).
    """
    for name, a in arrays.items():
        if not _is_real(a.dtype):
            raise TypeError(f"{name} must be real-valued (a float, integer or bool array); "
                            f"got dtype {a.dtype} for shape {a.shape}")
    dtype = np.result_type(*arrays.values(), np.float32)
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def _real_dout(dout, shape, dtype):
    """``dout`` of the forward output's ``shape``, real-valued, as a C-contiguous ``dtype`` array."""
    dout = np.asarray(dout)
    if not _is_real(dout.dtype):
        raise TypeError(f"dout must be real-valued (a float, integer or bool array); got dtype {dout.dtype}")
    if dout.shape != tuple(shape):
        raise ValueError(f"dout must have the shape of the forward output {tuple(shape)}; "
                         f"got shape {dout.shape}")
    return np.ascontiguousarray(dout, dtype=dtype)


def _check_padded_image(x_shape, pad, itemsize, pad_name):
    """Refuse a convolution whose padded image would not fit a work buffer.

    The direct kernels copy one image at a time into a zero-padded buffer of
    ``C * (H + 2 * pad) * (W + 2 * pad)`` values, plus less than a row,
    whose size in bytes is a ``Py_ssize_t``.
    :func:`convlab.layers.conv_output_size` already bounds each padded plane
    by 2**31 - 1 pixels; with enough channels their
    product could still wrap around, so sizes past half the address space are
    a ``ValueError`` naming ``pad_name`` (or ``x``, without padding).
    """
    _, C, H, W = x_shape
    Hp, Wp = H + 2 * pad, W + 2 * pad
    size = C * Hp * Wp * itemsize
    if size > sys.maxsize // 2:
        source = f"{pad_name} = {pad} pads each image of x (shape {tuple(x_shape)}) to" if pad else \
            f"x has shape {tuple(x_shape)}: images of"
        raise ValueError(f"{source} {C} x {Hp} x {Wp} values ({size} bytes), more than a "
                         f"work buffer can address")


def _check_pool_plane(x_shape, name):
    """Refuse planes whose pixels an int32 ``argmax`` cannot index.

    The general max pooling kernel records each window's winner as the flat
    index ``h * W + w`` inside its plane, in an int32 array; a plane of more
    than 2**31 - 1 pixels would wrap it.  (The 2x2 stride-2 kernel records
    positions 0 to 3 inside the window, and has no such limit.)
    """
    H, W = x_shape[2], x_shape[3]
    if H * W > INDEX_MAX:
        raise ValueError(f"{name} of shape {tuple(x_shape)} has planes of {H} x {W} = {H * W} pixels; "
                         f"max pooling records each winner as an int32 index in its plane, so at "
                         f"most 2**31 - 1 pixels per plane are supported (2x2 windows with stride 2 "
                         f"have no such limit)")


#: The codes of the activations of :data:`convlab.modern_layers.ACTIVATIONS` in :mod:`convlab._fast.bn_act`.
_ACTIVATION_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "gelu": 3}


def _activation_code(activation):
    if activation not in _ACTIVATION_CODES:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}")
    return _ACTIVATION_CODES[activation]

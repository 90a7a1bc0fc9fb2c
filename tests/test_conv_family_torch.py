"""PyTorch as a second oracle for the convolution family: naive and fast layers against ``torch.nn.functional``.

``conv2d(stride=, padding=, dilation=, groups=)``, ``conv_transpose2d(stride=,
padding=, output_padding=)``, ``avg_pool2d`` and ``adaptive_avg_pool2d``
compute the same layers independently of convlab; their outputs and their
autograd gradients must agree with both of convlab's layers, in float64,
normwise to a few ulps of the sums of absolute values. Skipped when PyTorch
is not installed (convlab itself never imports it; ``nox -s pytorch`` installs
it and runs every test marked ``pytorch``).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convlab import conv_family, fast_layers

from _pytorch import import_torch

pytestmark = pytest.mark.pytorch
torch = import_torch()
functional = torch.nn.functional

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-12


def assert_close(actual, expected, magnitude, what):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = np.linalg.norm((actual - expected).ravel())
    assert diff <= TOL * max(np.linalg.norm(magnitude.ravel()), 1e-300), f"{what}: ||convlab - torch|| = {diff:.3e}"


def torch_pass(function, arrays, dout, **kwargs):
    """``function(*arrays, **kwargs)`` in PyTorch, and the gradients of ``sum(out * dout)`` for every array."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = function(*tensors, **kwargs)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def check_layer(naive, fast, torch_function, arrays, param, torch_kwargs, seed):
    """Naive and fast layers against PyTorch: the output and every gradient."""
    out_naive, cache_naive = naive[0](*arrays, param)
    dout = np.random.default_rng(seed).standard_normal(out_naive.shape)
    out_torch, grads_torch = torch_pass(torch_function, arrays, dout, **torch_kwargs)
    absolute = [np.abs(a) for a in arrays]
    out_abs, cache_abs = naive[0](*absolute, param)
    grads_abs = naive[1](np.abs(dout), cache_abs)
    grads_abs = grads_abs if isinstance(grads_abs, tuple) else (grads_abs,)
    for layer, (forward, backward) in (("naive", naive), ("fast", fast)):
        out, cache = forward(*arrays, param)
        grads = backward(dout, cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        assert_close(out, out_torch, out_abs, f"{layer} out")
        for name, got, want, magnitude in zip(("dx", "dw", "db"), grads, grads_torch, grads_abs):
            assert_close(got, want, magnitude, f"{layer} {name}")


@st.composite
def conv_problems(draw):
    groups = draw(st.integers(1, 3))
    C, F = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    HH, WW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, pad, dilation = draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(1, 3))
    H_out, W_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H = (H_out - 1) * stride + (HH - 1) * dilation + 1 - 2 * pad
    W = (W_out - 1) * stride + (WW - 1) * dilation + 1 - 2 * pad
    assume(H >= 1 and W >= 1)
    return (draw(st.integers(1, 2)), C, H, W), (F, C // groups, HH, WW), \
        {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups}, draw(st.integers(0, 2**32 - 1))


@SETTINGS
@given(conv_problems())
def test_the_general_convolution_is_torch_conv2d(problem):
    x_shape, w_shape, param, seed = problem
    rng = np.random.default_rng(seed)
    arrays = (rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0]))
    check_layer((conv_family.conv_general_forward_naive, conv_family.conv_general_backward_naive),
                (fast_layers.conv_general_forward_fast, fast_layers.conv_general_backward_fast),
                functional.conv2d, arrays, param,
                {"stride": param["stride"], "padding": param["pad"], "dilation": param["dilation"],
                 "groups": param["groups"]}, seed + 1)


@st.composite
def transposed_problems(draw):
    N, C, F = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W, HH, WW = (draw(st.integers(1, 4)) for _ in range(4))
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    output_padding = draw(st.integers(0, stride - 1))
    assume((H - 1) * stride + HH - 2 * pad + output_padding >= 1)
    assume((W - 1) * stride + WW - 2 * pad + output_padding >= 1)
    return (N, C, H, W), (C, F, HH, WW), {"stride": stride, "pad": pad, "output_padding": output_padding}, \
        draw(st.integers(0, 2**32 - 1))


@SETTINGS
@given(transposed_problems())
def test_the_transposed_convolution_is_torch_conv_transpose2d(problem):
    x_shape, w_shape, param, seed = problem
    rng = np.random.default_rng(seed)
    arrays = (rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1]))
    check_layer((conv_family.conv_transpose_forward_naive, conv_family.conv_transpose_backward_naive),
                (fast_layers.conv_transpose_forward_fast, fast_layers.conv_transpose_backward_fast),
                functional.conv_transpose2d, arrays, param,
                {"stride": param["stride"], "padding": param["pad"], "output_padding": param["output_padding"]},
                seed + 1)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4),
       st.integers(0, 2**32 - 1))
def test_average_pooling_is_torch_avg_pool2d(ph, pw, stride, H_out, W_out, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, (H_out - 1) * stride + ph, (W_out - 1) * stride + pw))
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    check_layer((conv_family.avg_pool_forward_naive, conv_family.avg_pool_backward_naive),
                (fast_layers.avg_pool_forward_fast, fast_layers.avg_pool_backward_fast),
                functional.avg_pool2d, (x,), param, {"kernel_size": (ph, pw), "stride": stride}, seed + 1)


@pytest.mark.parametrize("x_shape", [(2, 3, 4, 5), (1, 1, 1, 1), (3, 2, 7, 7)])
def test_global_average_pooling_is_torch_adaptive_avg_pool2d_to_one_pixel(rng, x_shape):
    x = rng.standard_normal(x_shape)
    dout = rng.standard_normal(x_shape[:2])
    tensor = torch.tensor(x, requires_grad=True)
    out_torch = functional.adaptive_avg_pool2d(tensor, 1)[:, :, 0, 0]
    out_torch.backward(torch.tensor(dout))
    for forward, backward in ((conv_family.global_avg_pool_forward_naive, conv_family.global_avg_pool_backward_naive),
                              (fast_layers.global_avg_pool_forward_fast, fast_layers.global_avg_pool_backward_fast)):
        out, cache = forward(x)
        assert_close(out, out_torch.detach().numpy(), np.abs(x).mean(axis=(2, 3)), "out")
        assert_close(backward(dout, cache), tensor.grad.numpy(), np.abs(tensor.grad.numpy()), "dx")

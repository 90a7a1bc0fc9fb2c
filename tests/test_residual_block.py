"""The residual block of convlab.layer_utils: numeric gradients, the rounding-down convolution, PyTorch as an oracle.

The block's forward and backward passes are the course kit's exercises ``residual.forward`` and
``residual.backward``; the tests marked with them are their public tests (hidden ones are in
``tests/hidden/test_hidden_residual.py``).
"""

import copy

import numpy as np
import pytest
from _pytorch import import_torch

from convlab.gradient_check import eval_numerical_gradient_array, rel_error
from convlab.layer_utils import residual_block_backward, residual_block_forward
from convlab.layers import conv_forward_naive, relu_forward, spatial_batchnorm_forward


def _block(rng, C, F, shortcut, dtype=np.float64):
    params = {"w1": rng.standard_normal((F, C, 3, 3)), "w2": rng.standard_normal((F, F, 3, 3)),
              "gamma1": 1 + 0.1 * rng.standard_normal(F), "beta1": 0.1 * rng.standard_normal(F),
              "gamma2": 1 + 0.1 * rng.standard_normal(F), "beta2": 0.1 * rng.standard_normal(F)}
    if shortcut == "project":
        params.update(ws=rng.standard_normal((F, C, 1, 1)), gammas=1 + 0.1 * rng.standard_normal(F),
                      betas=0.1 * rng.standard_normal(F))
    params = {k: v.astype(dtype) for k, v in params.items()}
    bn_params = {key: {"mode": "train"} for key in ("1", "2", "s")}
    return params, bn_params


@pytest.mark.exercise("residual.forward", points=1)
def test_forward_is_the_chain_of_naive_layers():
    """conv -> BN -> ReLU -> conv -> BN, plus the shortcut, then a ReLU, out of the naive layers. A
    stride-2 convolution whose output size rounds down is the stride-1 one at every other pixel."""
    rng = np.random.default_rng(4)
    for C, F, H, stride, shortcut in [(3, 3, 5, 1, "identity"), (2, 4, 6, 2, "pad"), (3, 5, 7, 2, "project"),
                                      (2, 3, 6, 2, "none")]:
        x = rng.standard_normal((2, C, H, H))
        params, bn_params = _block(rng, C, F, shortcut)
        out, _ = residual_block_forward(x, params, bn_params, stride, shortcut)

        def conv(h, w, s):
            full, _ = conv_forward_naive(h, w, np.zeros(len(w)), {"stride": 1, "pad": w.shape[2] // 2})
            return full[:, :, ::s, ::s]

        def bn(h, key):
            return spatial_batchnorm_forward(h, params["gamma" + key], params["beta" + key], {"mode": "train"})[0]

        main = bn(conv(relu_forward(bn(conv(x, params["w1"], stride), "1"))[0], params["w2"], 1), "2")
        if shortcut == "identity":
            shortcut_out = x
        elif shortcut == "pad":  # option A: zero channels after the input's
            shortcut_out = np.pad(x[:, :, ::stride, ::stride], ((0, 0), (0, F - C), (0, 0), (0, 0)))
        elif shortcut == "project":  # option B: a 1x1 convolution and a batch norm
            shortcut_out = bn(conv(x, params["ws"], stride), "s")
        else:
            shortcut_out = 0.0
        expected = relu_forward(main + shortcut_out)[0]
        assert out.shape == expected.shape == (2, F, -(-H // stride), -(-H // stride)), shortcut
        assert rel_error(out, expected) < 1e-10, shortcut


@pytest.mark.exercise("residual.backward", points=1)
@pytest.mark.parametrize("C, F, H, stride, shortcut", [
    (3, 3, 5, 1, "identity"),
    (2, 4, 6, 2, "pad"),       # even map: the last padded row is never reached
    (2, 4, 5, 2, "pad"),       # odd map
    (3, 4, 6, 2, "project"),
    (3, 5, 7, 1, "project"),
    (2, 4, 6, 2, "none"),      # the plain twin
])
def test_gradients_match_numeric_ones(C, F, H, stride, shortcut):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, C, H, H))
    params, bn_params = _block(rng, C, F, shortcut)
    out, cache = residual_block_forward(x, params, copy.deepcopy(bn_params), stride, shortcut)
    side = -(-H // stride)
    assert out.shape == (2, F, side, side)
    dout = rng.standard_normal(out.shape)
    dx, grads = residual_block_backward(dout, cache)
    assert set(grads) == set(params)

    def forward(**changed):
        return residual_block_forward(x if "x" not in changed else changed["x"],
                                      {**params, **{k: v for k, v in changed.items() if k != "x"}},
                                      copy.deepcopy(bn_params), stride, shortcut)[0]

    assert rel_error(dx, eval_numerical_gradient_array(lambda v: forward(x=v), x.copy(), dout)) < 1e-6
    for name, value in params.items():
        numeric = eval_numerical_gradient_array(lambda v: forward(**{name: v}), value.copy(), dout)
        assert rel_error(grads[name], numeric) < 1e-6, name


@pytest.mark.exercise("residual.backward", points=1)
def test_the_identity_shortcut_passes_the_gradient_through():
    """With the main path's last scale at zero, the block is ReLU(x + beta2): dx is the ReLU's mask."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 4))
    params, bn_params = _block(rng, 3, 3, "identity")
    params["gamma2"][:] = 0.0
    params["beta2"][:] = 0.0
    out, cache = residual_block_forward(x, params, bn_params)
    np.testing.assert_allclose(out, np.maximum(x, 0), atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, _ = residual_block_backward(dout, cache)
    np.testing.assert_allclose(dx, dout * (x > 0), atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(shortcut="skip"), "shortcut must be one of identity, pad, project, none; got 'skip'"),
    (dict(stride=2), "shortcut 'identity' needs stride 1"),
])
def test_bad_settings_are_named(kwargs, message):
    rng = np.random.default_rng(2)
    params, bn_params = _block(rng, 3, 3, "identity")
    with pytest.raises(ValueError, match=message):
        residual_block_forward(rng.standard_normal((1, 3, 4, 4)), params, bn_params, **kwargs)


def test_option_a_needs_as_many_filters_as_input_channels():
    """The check is made before any work, outside the exercise's solution (a student's copy keeps it)."""
    rng = np.random.default_rng(2)
    params, bn_params = _block(rng, 4, 3, "pad")
    with pytest.raises(ValueError, match=r"shortcut 'pad' needs at least as many filters \(3\) as input channels \(4\)"):
        residual_block_forward(rng.standard_normal((1, 4, 4, 4)), params, bn_params, 2, "pad")


@pytest.mark.pytorch
@pytest.mark.parametrize("H, stride, shortcut", [(8, 1, "identity"), (8, 2, "project"),
                                                 (7, 2, "project"), (8, 2, "pad")])
def test_forward_and_backward_agree_with_pytorch(H, stride, shortcut):
    torch = import_torch()
    F_ = torch.nn.functional
    rng = np.random.default_rng(3)
    C, F = (4, 4) if shortcut == "identity" else (3, 6)
    x = rng.standard_normal((3, C, H, H))
    params, bn_params = _block(rng, C, F, shortcut)
    out, cache = residual_block_forward(x, params, bn_params, stride, shortcut)
    dout = rng.standard_normal(out.shape)
    dx, grads = residual_block_backward(dout, cache)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx = torch.tensor(x, requires_grad=True)

    def bn(h, g, b):
        return F_.batch_norm(h, None, None, g, b, training=True, eps=1e-5)

    h = F_.relu(bn(F_.conv2d(tx, t["w1"], stride=stride, padding=1), t["gamma1"], t["beta1"]))
    h = bn(F_.conv2d(h, t["w2"], padding=1), t["gamma2"], t["beta2"])
    if shortcut == "identity":
        skip = tx
    elif shortcut == "pad":
        s = tx[:, :, ::stride, ::stride]
        skip = F_.pad(s, (0, 0, 0, 0, 0, F - C))
    else:
        skip = bn(F_.conv2d(tx, t["ws"], stride=stride), t["gammas"], t["betas"])
    tout = F_.relu(h + skip)
    tout.backward(torch.tensor(dout))
    assert rel_error(out, tout.detach().numpy()) < 1e-10
    assert rel_error(dx, tx.grad.numpy()) < 1e-9
    for name in params:
        assert rel_error(grads[name], t[name].grad.numpy()) < 1e-9, name

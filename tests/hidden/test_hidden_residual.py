"""Hidden tests of the residual block: random shapes, strides 1 and 2, every shortcut, float64 and float32.

As in the other hidden tests, the inputs come from the grading's secret seed and
results are compared with :func:`convlab.gradient_check.scaled_error`. The
oracle is the block written out with the naive layers of :mod:`convlab.layers`
(``conv_forward_naive``, ``spatial_batchnorm_forward``, ``relu_forward``), and
differently from the reference solution: a strided convolution whose output
size rounds down is the stride-1 convolution kept at every ``stride``-th row
and column, and option A's shortcut is the subsampled input concatenated with
zero channels. Numeric gradients are taken through the oracle, at inputs where
neither of the block's two ReLUs is within ``MARGIN`` of its kink.
"""

import copy

import numpy as np
import pytest

from convlab import layer_utils
from convlab.gradient_check import eval_numerical_gradient_array, scaled_error
from convlab.layers import conv_forward_naive, relu_forward, spatial_batchnorm_forward

MARGIN = 1e-3  # no ReLU input within this distance of 0; numeric steps are 1e-5
SHORTCUTS = ["identity", "pad", "project", "none"]
STRIDES = {"identity": (1,), "pad": (1, 2), "project": (1, 2), "none": (1, 2)}


def strided_conv(x, w, stride):
    """Convolution with ``w`` (F, C, k, k), padding k // 2, bias 0, output rounded down.

    Returns
    -------
    ndarray of shape (N, F, ceil(H / stride), ceil(W / stride))
    """
    full, _ = conv_forward_naive(x, w, np.zeros(w.shape[0], x.dtype), {"stride": 1, "pad": w.shape[2] // 2})
    return full[:, :, ::stride, ::stride]


def batchnorm(h, params, key, bn_params):
    """Spatial batch norm of ``h`` (N, F, H, W) with ``gamma<key>``, ``beta<key>`` and ``bn_params[key]``."""
    return spatial_batchnorm_forward(h, params["gamma" + key], params["beta" + key], bn_params[key])[0]


def oracle(x, params, bn_params, stride, shortcut):
    """The block out of naive layers.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    params, bn_params : dict
        As for :func:`convlab.layer_utils.residual_block_forward`; the running
        statistics of ``bn_params`` are updated in train mode.

    Returns
    -------
    out : ndarray of shape (N, F, ceil(H / stride), ceil(W / stride))
    relu_inputs : tuple of two ndarrays
        What the two ReLUs receive: after the first batch norm, and the sum.
    """
    a1 = batchnorm(strided_conv(x, params["w1"], stride), params, "1", bn_params)
    a2 = batchnorm(strided_conv(relu_forward(a1)[0], params["w2"], 1), params, "2", bn_params)
    if shortcut == "identity":
        skip = x
    elif shortcut == "pad":
        kept = x[:, :, ::stride, ::stride]
        zeros = np.zeros((kept.shape[0], a2.shape[1] - kept.shape[1], *kept.shape[2:]), x.dtype)
        skip = np.concatenate([kept, zeros], axis=1)
    elif shortcut == "project":
        skip = batchnorm(strided_conv(x, params["ws"], stride), params, "s", bn_params)
    else:
        skip = np.zeros_like(a2)
    total = a2 + skip
    return relu_forward(total)[0], (a1, total)


def draw_block(rng, shortcut, stride, dtype=np.float64):
    """Random input, parameters and train-mode ``bn_params`` of a block, away from the ReLUs' kinks.

    C is 2 or 3 channels; F is C for 'identity', 2 C at stride 2 (the map
    halves, the channels double), else C plus 1 or 2; H and W are 4 to 7
    (even and odd, not always square); N is 2.
    """
    C = int(rng.integers(2, 4))
    F = C if shortcut == "identity" else 2 * C if stride == 2 else C + int(rng.integers(1, 3))
    H, W = (int(n) for n in rng.integers(4, 8, size=2))
    params = {"w1": rng.standard_normal((F, C, 3, 3)), "w2": rng.standard_normal((F, F, 3, 3)),
              "gamma1": 1 + 0.2 * rng.standard_normal(F), "beta1": 0.2 * rng.standard_normal(F),
              "gamma2": 1 + 0.2 * rng.standard_normal(F), "beta2": 0.2 * rng.standard_normal(F)}
    if shortcut == "project":
        params.update(ws=rng.standard_normal((F, C, 1, 1)), gammas=1 + 0.2 * rng.standard_normal(F),
                      betas=0.2 * rng.standard_normal(F))
    params = {k: v.astype(dtype) for k, v in params.items()}
    bn_params = {key: {"mode": "train"} for key in ("1", "2", "s")}
    for _ in range(1000):
        x = rng.standard_normal((2, C, H, W)).astype(dtype)
        _, relu_inputs = oracle(x.astype(np.float64), params, copy.deepcopy(bn_params), stride, shortcut)
        if min(np.abs(a).min() for a in relu_inputs) > MARGIN:
            return x, params, bn_params
    raise AssertionError(f"no smooth input for a {shortcut} block in 1000 draws")


def numeric_gradients(x, params, bn_params, stride, shortcut, dout):
    """``(dx, {name: dparam})`` of the oracle at float64 copies of ``x`` and ``params``, contracted with ``dout``."""
    x = x.astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in params.items()}

    def out(x_, **changed):
        return oracle(x_, {**params, **changed}, copy.deepcopy(bn_params), stride, shortcut)[0]

    dx = eval_numerical_gradient_array(lambda v: out(v), x.copy(), dout)
    grads = {name: eval_numerical_gradient_array(lambda v, name=name: out(x, **{name: v}), value.copy(), dout)
             for name, value in params.items()}
    return dx, grads


@pytest.mark.exercise("residual.forward", points=1)
@pytest.mark.parametrize("shortcut", SHORTCUTS)
def test_residual_forward_random_shapes_strides_1_and_2(rng, shortcut):
    for stride in STRIDES[shortcut]:
        x, params, bn_params = draw_block(rng, shortcut, stride)
        expected, _ = oracle(x, params, copy.deepcopy(bn_params), stride, shortcut)
        out, _ = layer_utils.residual_block_forward(x, params, bn_params, stride, shortcut)
        assert out.shape == expected.shape, (stride, out.shape, expected.shape)
        assert scaled_error(out, expected) < 1e-10, stride


@pytest.mark.exercise("residual.forward", points=1)
def test_residual_forward_float32_and_inputs_unchanged(rng):
    for shortcut in SHORTCUTS:
        stride = max(STRIDES[shortcut])
        x, params, bn_params = draw_block(rng, shortcut, stride, np.float32)
        before = copy.deepcopy((x, params))
        expected, _ = oracle(x.astype(np.float64), {k: v.astype(np.float64) for k, v in params.items()},
                             copy.deepcopy(bn_params), stride, shortcut)
        out, _ = layer_utils.residual_block_forward(x, params, bn_params, stride, shortcut)
        assert out.dtype == np.float32, (shortcut, out.dtype)
        assert scaled_error(out, expected) < 1e-5, shortcut
        assert np.array_equal(x, before[0]), f"{shortcut}: the input x was modified"
        for name, value in params.items():
            assert np.array_equal(value, before[1][name]), f"{shortcut}: params[{name!r}] was modified"


@pytest.mark.exercise("residual.forward", points=1)
def test_residual_forward_keeps_each_batch_norms_running_averages(rng):
    """Train mode updates each batch norm's own ``bn_params`` entry; test mode then uses them."""
    for shortcut in ("project", "pad"):
        x, params, bn_params = draw_block(rng, shortcut, 2)
        expected_params = copy.deepcopy(bn_params)
        oracle(x, params, expected_params, 2, shortcut)
        layer_utils.residual_block_forward(x, params, bn_params, 2, shortcut)
        for key in ("1", "2", "s") if shortcut == "project" else ("1", "2"):
            for stat in ("running_mean", "running_var"):
                assert scaled_error(bn_params[key][stat], expected_params[key][stat]) < 1e-10, (shortcut, key, stat)
        for params_of_mode in (bn_params, expected_params):
            for bn_param in params_of_mode.values():
                bn_param["mode"] = "test"
        x = rng.standard_normal(x.shape)
        expected, _ = oracle(x, params, expected_params, 2, shortcut)
        out, _ = layer_utils.residual_block_forward(x, params, bn_params, 2, shortcut)
        assert scaled_error(out, expected) < 1e-10, shortcut


@pytest.mark.exercise("residual.backward", points=1)
@pytest.mark.parametrize("shortcut", SHORTCUTS)
def test_residual_backward_random_shapes_strides_1_and_2(rng, shortcut):
    for stride in STRIDES[shortcut]:
        x, params, bn_params = draw_block(rng, shortcut, stride)
        out, cache = layer_utils.residual_block_forward(x, params, copy.deepcopy(bn_params), stride, shortcut)
        dout = rng.standard_normal(out.shape)
        dx, grads = layer_utils.residual_block_backward(dout, cache)
        dx_num, grads_num = numeric_gradients(x, params, bn_params, stride, shortcut, dout)
        assert dx.shape == x.shape and set(grads) == set(params), (stride, dx.shape, sorted(grads))
        assert scaled_error(dx, dx_num) < 1e-6, (stride, "dx")
        for name in params:
            assert scaled_error(grads[name], grads_num[name]) < 1e-6, (stride, name)


@pytest.mark.exercise("residual.backward", points=1)
def test_residual_backward_float32(rng):
    for shortcut in SHORTCUTS:
        stride = max(STRIDES[shortcut])
        x, params, bn_params = draw_block(rng, shortcut, stride, np.float32)
        out, cache = layer_utils.residual_block_forward(x, params, copy.deepcopy(bn_params), stride, shortcut)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        dx, grads = layer_utils.residual_block_backward(dout, cache)
        assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values()), shortcut
        dx_num, grads_num = numeric_gradients(x, params, bn_params, stride, shortcut, dout)
        # A batch norm's dgamma is a sum over its channel's pixels that can be small next to its terms,
        # each of which float32 keeps to about 1e-7: a correct answer scores up to a few 1e-5 (a few
        # 1e-7 for most draws), a wrong one about 1.
        assert scaled_error(dx, dx_num) < 1e-3, (shortcut, "dx")
        for name in params:
            assert scaled_error(grads[name], grads_num[name]) < 1e-3, (shortcut, name)


@pytest.mark.exercise("residual.backward", points=1)
@pytest.mark.parametrize("shortcut", ["identity", "pad"])
def test_residual_backward_adds_the_shortcuts_gradient(rng, shortcut):
    """With the main path's last batch norm scaled to zero the block is ReLU(shortcut): all of dx comes
    through the shortcut, masked by the ReLU after the sum (and, for option A, only at the pixels
    and channels the shortcut kept)."""
    stride = max(STRIDES[shortcut])
    x, params, bn_params = draw_block(rng, shortcut, stride)
    params["gamma2"][:] = 0.0
    params["beta2"][:] = 0.0
    out, cache = layer_utils.residual_block_forward(x, params, bn_params, stride, shortcut)
    dout = rng.standard_normal(out.shape)
    dx, _ = layer_utils.residual_block_backward(dout, cache)
    kept = x[:, :, ::stride, ::stride]
    expected = np.zeros_like(x)
    expected[:, :, ::stride, ::stride] = dout[:, :x.shape[1]] * (kept > 0)
    assert scaled_error(dx, expected) < 1e-12

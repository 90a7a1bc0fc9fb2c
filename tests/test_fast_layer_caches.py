"""Fast backward passes check their caches: a tampered cache raises, it never crashes or lies.

The kernels of :mod:`convlab._fast` index their buffers with what a cache
says, without bounds checks, so every backward pass of
:mod:`convlab.fast_layers` checks its cache first.  Two tests here:

* a table of named tamperings (an out-of-range pooling ``argmax``, a
  negative ``pad``, a shrunk ``x_shape``, another layer's cache, ...), each
  of which must raise ``ValueError`` or ``TypeError`` with a message that
  names the cache entry;
* a property test that mutates the caches of every fast layer at random and
  asserts "``ValueError``/``TypeError``, or the naive layer's answer".

A crash (segmentation fault, heap corruption) would kill the process:
pytest's ``faulthandler`` plugin prints the Python stack of every thread
when that happens, and the test run fails.  Memory errors that do not
crash at once are what the sanitizer build of ``nox -s sanitize``
(noxutil/portability.py) finds, running this module against kernels compiled
with ``-fsanitize=address,undefined``.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convlab import fast_layers as fl
from convlab import layers, modern_layers

# Every test runs once per SIMD path of the kernels (plain C, portable vectors, AVX2).
pytestmark = pytest.mark.usefixtures("simd_path")

CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 3, "stride": 1}   # overlapping windows: int32 argmax
POOL_2X2 = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _layers(dtype=np.float64):
    """Every fast layer run forward on small random input, with its naive answer.

    Returns
    -------
    dict
        name -> ``(backward, cache, dout, expected)``: calling
        ``backward(dout, cache)`` must give ``expected`` (the naive layer's
        gradients, a tuple).
    """
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    x_odd = rng.standard_normal((3, 2, 9, 7)).astype(dtype)
    gamma = rng.standard_normal(3).astype(dtype)
    beta = rng.standard_normal(3).astype(dtype)
    made = {}

    out, cache = fl.conv_forward_fast(x, w, b, CONV)
    dout = rng.standard_normal(out.shape).astype(dtype)
    _, naive_cache = layers.conv_forward_naive(x, w, b, CONV)
    grads = layers.conv_backward_naive(dout, naive_cache)
    made["conv"] = (fl.conv_backward_fast, cache, dout, grads)
    made["conv_weights"] = (fl.conv_backward_weights_fast, cache, dout, grads[1:])
    _, cache = fl.conv_forward_im2col(x, w, b, CONV)
    made["conv_im2col"] = (fl.conv_backward_im2col, cache, dout, grads)

    for name, param in (("pool", POOL), ("pool_2x2", POOL_2X2)):
        out, cache = fl.max_pool_forward_fast(x, param)
        dout = rng.standard_normal(out.shape).astype(dtype)
        _, naive_cache = layers.max_pool_forward_naive(x, param)
        made[name] = (fl.max_pool_backward_fast, cache, dout, (layers.max_pool_backward_naive(dout, naive_cache),))
    out, cache = fl.max_pool_floor_forward_fast(x_odd)
    dout = rng.standard_normal(out.shape).astype(dtype)
    _, naive_cache = modern_layers.max_pool_floor_forward_naive(x_odd)
    made["pool_floor"] = (fl.max_pool_floor_backward_fast, cache, dout,
                          (modern_layers.max_pool_floor_backward_naive(dout, naive_cache),))

    out, cache = fl.activation_forward_fast(x, "relu")
    dout = rng.standard_normal(out.shape).astype(dtype)
    _, naive_cache = modern_layers.activation_forward(x, "relu")
    made["activation"] = (fl.activation_backward_fast, cache, dout,
                          (modern_layers.activation_backward(dout, naive_cache),))

    for mode in ("train", "test"):
        bn_param = {"mode": mode, "running_mean": rng.standard_normal(3), "running_var": rng.random(3) + 0.5}
        naive_param = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in bn_param.items()}
        out, cache = fl.spatial_batchnorm_act_forward_fast(x, gamma, beta, bn_param, "leaky_relu")
        dout = rng.standard_normal(out.shape).astype(dtype)
        _, naive_cache = modern_layers.spatial_batchnorm_act_forward(x, gamma, beta, naive_param, "leaky_relu")
        made[f"bn_{mode}"] = (fl.spatial_batchnorm_act_backward_fast, cache, dout,
                              modern_layers.spatial_batchnorm_act_backward(dout, naive_cache))
    return made


LAYERS = _layers()


def _with(cache, index, value):
    """``cache`` with entry ``index`` replaced by ``value``."""
    return cache[:index] + (value,) + cache[index + 1:]


def _argmax_set(cache, position, value):
    """A pooling cache whose ``argmax`` holds ``value`` at ``position``."""
    argmax = cache[1].copy()
    argmax[position] = value
    return _with(cache, 1, argmax)


def _grown_x_negative_pad(cache):
    """A convolution cache with pad -1 and an input 4 pixels larger: ``dout``'s shape still fits."""
    x = np.zeros(cache[0].shape[:2] + (cache[0].shape[2] + 4, cache[0].shape[3] + 4), cache[0].dtype)
    return (x, cache[1], cache[2], -1)


def _overflowing_pad(cache):
    """A convolution cache with pad 2**31 - 1 and stride 613566757, which still fit a C int.

    ``8 + 2 * pad - 3 = 7 * stride``: the filter tiles the padded input and the
    output is 8 x 8, the shape of ``dout``, so only the size of the padded
    input (2**32 + 6 rows, which ``H + 2 * pad`` in C ints wrapped around) is
    wrong.
    """
    return _with(_with(cache, 2, 613566757), 3, 2**31 - 1)


# (name, layer, tampering, expected error, text the message must contain)
TAMPERED = [
    ("conv: negative pad, grown x", "conv", _grown_x_negative_pad, ValueError, "pad"),
    ("conv: zero stride", "conv", lambda c: _with(c, 2, 0), ValueError, "stride"),
    ("conv: w with fewer channels", "conv", lambda c: _with(c, 1, c[1][:, :2].copy()), ValueError, "channels"),
    ("conv: w of another dtype", "conv", lambda c: _with(c, 1, c[1].astype(np.float32)), TypeError, "dtype"),
    ("conv: an activation's cache", "conv", lambda c: LAYERS["activation"][1], ValueError, "cache entry x"),
    ("conv dw: negative pad, grown x", "conv_weights", _grown_x_negative_pad, ValueError, "pad"),
    ("conv: a padded size past a C int", "conv", _overflowing_pad, ValueError, r"conv_param\['pad'\] = 2147483647"),
    ("conv dw: a padded size past a C int", "conv_weights", _overflowing_pad, ValueError,
     r"conv_param\['pad'\] = 2147483647"),
    ("im2col: a padded size past a C int", "conv_im2col", _overflowing_pad, ValueError,
     r"conv_param\['pad'\] = 2147483647"),
    ("im2col: x_shape with fewer channels", "conv_im2col", lambda c: _with(c, 0, (2, 2, 8, 8)),
     ValueError, "channels"),
    ("im2col: cols of fewer taps", "conv_im2col", lambda c: _with(c, 4, c[4][:, :-1].copy()),
     ValueError, "cache entry cols"),
    ("pool: argmax out of range", "pool", lambda c: _argmax_set(c, (0, 0, 0, 0), 10**6),
     ValueError, "cache entry argmax"),
    ("pool: negative argmax", "pool", lambda c: _argmax_set(c, (1, 2, 6, 5), -7), ValueError, "cache entry argmax"),
    ("pool: argmax outside its window", "pool", lambda c: _argmax_set(c, (0, 0, 0, 0), 63),
     ValueError, "cache entry argmax"),
    ("pool: shrunk x_shape", "pool", lambda c: _with(c, 0, (2, 3, 5, 5)), ValueError, "cache entry argmax"),
    ("pool: argmax of dtype int64", "pool", lambda c: _with(c, 1, c[1].astype(np.int64)),
     TypeError, "cache entry argmax"),
    ("pool: a convolution's cache", "pool", lambda c: LAYERS["conv"][1], TypeError, "cache entry x_shape"),
    ("pool 2x2: argmax above 3", "pool_2x2", lambda c: _argmax_set(c, (1, 1, 3, 3), 200),
     ValueError, "cache entry argmax"),
    ("pool floor: argmax above 3", "pool_floor", lambda c: _argmax_set(c, (2, 1, 3, 2), 7),
     ValueError, "cache entry argmax"),
    ("activation: x3 transposed", "activation", lambda c: _with(c, 0, np.ascontiguousarray(c[0].transpose(0, 2, 1))),
     ValueError, "cache entry x3"),
    ("activation: unknown activation code", "activation", lambda c: _with(c, 1, 9), ValueError, "activation code"),
    ("bn: mean of one channel", "bn_train", lambda c: _with(c, 2, c[2][:1].copy()), ValueError, "cache entry mean"),
    ("bn: gamma of one channel", "bn_train", lambda c: _with(c, 4, c[4][:1].copy()),
     ValueError, "cache entry gamma"),
    ("bn: unknown mode", "bn_train", lambda c: _with(c, 0, "eval"), ValueError, "cache entry mode"),
    ("bn test: scale of one channel", "bn_test", lambda c: _with(c, 4, c[4][:1].copy()),
     ValueError, "cache entry gamma/scale"),
    ("bn: a pooling cache", "bn_train", lambda c: LAYERS["pool"][1], ValueError, "4 entries"),
]


@pytest.mark.parametrize("name, layer, tamper, error, text", TAMPERED, ids=[t[0] for t in TAMPERED])
def test_a_tampered_cache_raises_an_error_naming_the_entry(name, layer, tamper, error, text):
    backward, cache, dout, _ = LAYERS[layer]
    with pytest.raises(error, match=text):
        backward(dout, tamper(cache))


def test_a_pooling_cache_of_planes_an_int32_argmax_cannot_index_is_refused():
    """x_shape claims 2**32 pixels per plane: no forward pass makes that cache (nothing is allocated)."""
    cache = ((1, 1, 2**16, 2**16), np.zeros((1, 1, 1, 1), np.int32), np.float32, (2**16, 2**16, 1))
    with pytest.raises(ValueError, match=r"cache entry x_shape of shape \(1, 1, 65536, 65536\) has planes of"):
        fl.max_pool_backward_fast(np.ones((1, 1, 1, 1), np.float32), cache)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_an_untouched_cache_gives_the_naive_answer(layer):
    backward, cache, dout, expected = LAYERS[layer]
    got = backward(dout, cache)
    got = got if isinstance(got, tuple) else (got,)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------
# Random tampering
# --------------------------------------------------------------------------

# The entries whose every *valid* change makes another consistent cache (a
# different activation, slope or batch-norm mode is the gradient of another
# layer, computed correctly): these only get invalid values, and are never
# swapped or replaced by another cache's entry.
_BAD_MODES, _BAD_CODES, _BAD_SLOPES = ["eval", None, 1], [-1, 4, 99, 2.0], [None, "x", 1j, np.array([0.01])]
INVALID_ONLY = {"bn_train": {0: _BAD_MODES, 6: _BAD_CODES, 7: _BAD_SLOPES},
                "bn_test": {0: _BAD_MODES, 6: _BAD_CODES, 7: _BAD_SLOPES},
                "activation": {1: _BAD_CODES, 2: _BAD_SLOPES}}
DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.complex128, np.bool_, object]
EXTREME_INTS = [-(2**63), -(2**31) - 1, -(2**31), -1, 0, 1, 2**31 - 1, 2**31, 2**40]


def _window_of(position):
    """The flat in-plane indices of the window at ``position`` of the general pooling layer."""
    (_, _, _, W), (ph, pw, stride) = LAYERS["pool"][1][0], LAYERS["pool"][1][3]
    ho, wo = position[2:]
    return {(ho * stride + i) * W + wo * stride + j for i in range(ph) for j in range(pw)}


@st.composite
def tampered_caches(draw):
    """A layer and a randomly tampered copy of its cache (one or two changes)."""
    layer = draw(st.sampled_from(sorted(LAYERS)))
    cache = LAYERS[layer][1]
    for _ in range(draw(st.integers(1, 2))):
        if not isinstance(cache, tuple) or not cache:
            break
        cache = draw(_one_change(layer, cache))
    return layer, cache


def _other_layers(layer):
    """The layers whose backward pass is another function than ``layer``'s.

    (Two caches of one backward pass, like batch norm in train and in test
    mode, are both valid for it: exchanging them forges a consistent cache.)
    """
    return [n for n in sorted(LAYERS) if LAYERS[n][0] is not LAYERS[layer][0]]


@st.composite
def _one_change(draw, layer, cache):
    kind = draw(st.sampled_from(["entry", "swap", "foreign_entry", "foreign_cache", "length"]))
    if kind == "foreign_cache":
        return draw(st.sampled_from([LAYERS[n][1] for n in _other_layers(layer)] + [list(cache), None]))
    if kind == "length":
        return draw(st.sampled_from([cache[:-1], cache + (cache[-1],), ()]))
    i = draw(st.integers(0, len(cache) - 1))
    invalid = INVALID_ONLY.get(layer, {})
    if i in invalid:
        return _with(cache, i, draw(st.sampled_from(invalid[i])))
    if kind == "swap":
        j = draw(st.integers(0, len(cache) - 1))
        if j in invalid:
            return cache
        a, b = cache[i], cache[j]
        if (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype) or type(a) is type(b):
            return cache  # swapping two entries of one kind could forge a consistent cache
        return _with(_with(cache, i, b), j, a)
    if kind == "foreign_entry":
        other = LAYERS[draw(st.sampled_from(_other_layers(layer)))][1]
        return _with(cache, i, other[min(i, len(other) - 1)])
    value = cache[i]
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        return _with(cache, i, draw(st.sampled_from([None, "x", 1.5, -1])))
    if isinstance(value, (int, np.integer)):
        new = draw(st.one_of(st.sampled_from(EXTREME_INTS), st.integers(-3, 3).map(lambda d: value + d)))
        return _with(cache, i, draw(st.sampled_from([new, float(new), np.int64(new)])))
    if isinstance(value, float):
        return _with(cache, i, draw(st.sampled_from([None, "x", 1j])))
    if isinstance(value, tuple):  # a shape or a pooling window
        k = draw(st.integers(0, len(value) - 1))
        new = draw(st.one_of(st.sampled_from(EXTREME_INTS), st.integers(-3, 3).map(lambda d: value[k] + d)))
        changed = value[:k] + (new,) + value[k + 1:]
        if layer == "pool_floor" and i == 0 and k >= 2 and new >= 2 and new // 2 == value[k] // 2:
            return cache  # floor pooling drops an odd last row or column: 8 or 9 rows, a consistent forgery
        return _with(cache, i, draw(st.sampled_from([changed, changed[:-1], list(changed)])))
    if isinstance(value, np.ndarray):
        change = draw(st.sampled_from(["dtype", "slice", "ravel", "non_contiguous", "values"]))
        if change == "dtype":
            return _with(cache, i, value.astype(draw(st.sampled_from(DTYPES))))
        if change == "slice" and value.ndim > 0:
            axis = draw(st.integers(0, value.ndim - 1))
            return _with(cache, i, np.delete(value, 0, axis=axis))
        if change == "ravel":
            return _with(cache, i, value.ravel())
        if change == "non_contiguous" and value.ndim > 0:
            return _with(cache, i, np.repeat(value, 2, axis=-1)[..., ::2])
        if change == "values" and np.issubdtype(value.dtype, np.integer) and value.size:
            position = tuple(draw(st.integers(0, n - 1)) for n in value.shape)
            info = np.iinfo(value.dtype)
            new = draw(st.integers(int(info.min), int(info.max)))
            if layer == "pool" and new in _window_of(position):
                return cache  # a winner moved inside its window: a consistent forgery
            if layer != "pool" and new <= 3:
                return cache
            changed = value.copy()
            changed[position] = new
            return _with(cache, i, changed)
        return cache
    return _with(cache, i, draw(st.sampled_from([None, "x", 1.5])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tampered_caches())
def test_a_randomly_tampered_cache_raises_or_gives_the_naive_answer(tampered):
    layer, cache = tampered
    backward, _, dout, expected = LAYERS[layer]
    try:
        got = backward(dout, cache)
    except (ValueError, TypeError) as error:
        assert "cache" in str(error) or "dout" in str(error), f"unhelpful message: {error}"
        return
    got = got if isinstance(got, tuple) else (got,)
    # a change that left the cache valid (a float32 copy, say) computes the same gradients
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4, err_msg=f"{layer}: {_describe(cache)}")


def _describe(cache):
    """The entries of a cache, arrays by shape and dtype: enough to see what was changed."""
    return [f"array{a.shape} {a.dtype}" if isinstance(a, np.ndarray) else repr(a) for a in cache]

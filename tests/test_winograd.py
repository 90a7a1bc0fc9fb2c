"""Winograd's F(2x2, 3x3) convolution agrees with the naive layer, and is chosen as documented.

The kernel (:mod:`convlab._fast.winograd`) is compared with
:func:`convlab.layers.conv_forward_naive` on random shapes -- odd map sizes
whose last 2 x 2 tile sticks out, one-pixel maps, channel counts that are
not multiples of the vector width, batches of one -- on every SIMD path of
the kernels this CPU runs.  float64 must agree to a few ulps of the sums of
absolute values; float32 is held to a normwise bound measured on realistic
data (:func:`test_float32_error_is_within_a_small_factor_of_direct`).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from convlab import fast_layers, layers
from convlab._fast import conv as conv_kernels
from convlab._fast import winograd as winograd_kernels

# Every test runs once per SIMD path of the kernels (plain C, portable vectors, AVX2).
pytestmark = pytest.mark.usefixtures("simd_path")

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Normwise bounds against the sums of absolute values (see conv_magnitudes):
# float64 as for the direct kernels; float32 by the measurement below.
TOL = {np.float32: 1e-5, np.float64: 1e-12}

# float32, realistic data (see the test): ||winograd - exact|| / ||exact||
# measured, forward and dx, on each SIMD path (AMD EPYC, AVX2), with the
# direct kernel at 2.5e-7:
#   F(2x2, 3x3): 2.4e-7 to 2.7e-7, 0.98 to 1.06 times the direct error;
#   F(4x4, 3x3): 9.8e-7 to 1.1e-6, 4.0 to 4.5 times the direct error.
# The bounds allow twice the measured factor and four times the error.
FLOAT32_FACTOR_OVER_DIRECT = {2: 2.0, 4: 9.0}
FLOAT32_RELATIVE_L2 = {2: 1e-6, 4: 4e-6}


@pytest.fixture(autouse=True)
def restore_conv_algorithm():
    """Each test may force an algorithm; the one in force before is put back."""
    before = fast_layers.conv_algorithm()
    yield
    fast_layers.set_conv_algorithm(before)


def naive_conv(x, w, b, pad):
    """The oracle in float64, and the same sums over absolute values (the rounding scale)."""
    conv_param = {"stride": 1, "pad": pad}
    f64 = [np.asarray(a, dtype=np.float64) for a in (x, w, b)]
    out, _ = layers.conv_forward_naive(*f64, conv_param)
    magnitude, _ = layers.conv_forward_naive(*[np.abs(a) for a in f64], conv_param)
    return out, magnitude


def normwise(actual, expected, magnitude):
    diff = np.linalg.norm((actual.astype(np.float64) - expected).ravel())
    return diff / max(np.linalg.norm(magnitude.ravel()), np.finfo(np.float64).tiny)


@st.composite
def winograd_problems(draw):
    """A random stride-1 3x3 convolution: shapes, pad, dtype, seed, the tiles per block and
    the output tile m of F(m x m, 3x3)."""
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 19))
    K = draw(st.integers(1, 19))
    pad = draw(st.integers(0, 2))
    H = draw(st.integers(max(1, 3 - 2 * pad), 12))
    W = draw(st.integers(max(1, 3 - 2 * pad), 12))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    block = draw(st.sampled_from([None, 1, 17, 40]))
    tile = draw(st.sampled_from([2, 4]))
    return (N, C, H, W), (K, C, 3, 3), pad, dtype, seed, block, tile


def random_arrays(x_shape, w_shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return rng, x, w, b


def winograd_forward(x, w, b, pad, **kwargs):
    """The kernel's output (NaN where it wrote nothing) and its non-finite flag."""
    N, C, H, W = x.shape
    out = np.full((N, w.shape[0], H + 2 * pad - 2, W + 2 * pad - 2), np.nan, dtype=x.dtype)
    nonfinite = winograd_kernels.conv_forward(x, w, b, out, pad, pad, **kwargs)
    return out, nonfinite


# --------------------------------------------------------------------------
# The kernel against the oracle
# --------------------------------------------------------------------------


@SETTINGS
@given(winograd_problems())
def test_winograd_kernel_matches_naive(problem):
    """Any shape, pad, block size and tile: every output written, equal to the naive sum."""
    x_shape, w_shape, pad, dtype, seed, block, tile = problem
    _, x, w, b = random_arrays(x_shape, w_shape, dtype, seed)
    out, nonfinite = winograd_forward(x, w, b, pad, block_tiles=block, tile=tile)
    expected, magnitude = naive_conv(x, w, b, pad)
    assert not nonfinite
    assert out.dtype == dtype and np.isfinite(out).all()  # no output left unwritten (NaN)
    assert normwise(out, expected, magnitude) <= TOL[dtype]


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, K, pad", [
    ((3, 1, 3, 8), 1, 0),    # one row of tiles per image: panels span images
    ((4, 2, 5, 6), 1, 0),    # odd map height: the last row of tiles is partial
    ((5, 3, 2, 16), 2, 1),   # two rows of tiles per image, 16 tiles wide
    ((2, 1, 9, 34), 1, 0),   # rows of 16 and 8 tiles, partial last column
])
def test_panels_across_rows_and_images(x_shape, K, pad, dtype, tile):
    """Panels of NR tiles that run across rows of tiles and across images, with
    partial tiles among them: every output written once, and right."""
    _, x, w, b = random_arrays(x_shape, (K, x_shape[1], 3, 3), dtype, seed=21)
    out, _ = winograd_forward(x, w, b, pad, tile=tile)
    expected, magnitude = naive_conv(x, w, b, pad)
    assert np.isfinite(out).all()
    assert normwise(out, expected, magnitude) <= TOL[dtype]


@SETTINGS
@given(winograd_problems())
def test_layers_forced_to_winograd_match_naive(problem):
    """conv_forward_fast and conv_backward_fast with Winograd: out, dx, dw, db."""
    x_shape, w_shape, pad, dtype, seed, _, tile = problem
    rng, x, w, b = random_arrays(x_shape, w_shape, dtype, seed)
    conv_param = {"stride": 1, "pad": pad}
    fast_layers.set_conv_algorithm("winograd" if tile == 2 else "winograd4")
    out, cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    f64 = [a.astype(np.float64) for a in (x, w, b, dout)]
    out_naive, cache_naive = layers.conv_forward_naive(*f64[:3], conv_param)
    grads_naive = layers.conv_backward_naive(f64[3], cache_naive)
    abs_out, abs_cache = layers.conv_forward_naive(*[np.abs(a) for a in f64[:3]], conv_param)
    abs_grads = layers.conv_backward_naive(np.abs(f64[3]), abs_cache)
    grads = fast_layers.conv_backward_fast(dout, cache)
    for name, got, want, mag in zip(("out", "dx", "dw", "db"), (out, *grads),
                                    (out_naive, *grads_naive), (abs_out, *abs_grads)):
        assert got.dtype == dtype, name
        assert normwise(got, want, mag) <= TOL[dtype], name


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_does_not_depend_on_threads_or_blocks(dtype, tile):
    """1 and 2 threads give the same bits; so does every block size (each tile is
    transformed, multiplied and summed over the channels in the same order)."""
    _, x, w, b = random_arrays((9, 21, 13, 11), (10, 21, 3, 3), dtype, seed=3)
    reference, _ = winograd_forward(x, w, b, 1, num_threads=1, tile=tile)
    for threads in (1, 2):
        for block in (None, 16, 48):
            out, _ = winograd_forward(x, w, b, 1, num_threads=threads, block_tiles=block,
                                      tile=tile)
            np.testing.assert_array_equal(out, reference, err_msg=f"{threads} threads, block {block}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_with_winograd_agree_on_one_and_two_threads(dtype):
    """Large enough for 2 threads when allowed (OpenMP limited with threadpoolctl)."""
    rng, x, w, b = random_arrays((16, 32, 16, 16), (48, 32, 3, 3), dtype, seed=9)
    dout = rng.standard_normal((16, 48, 16, 16)).astype(dtype)
    fast_layers.set_conv_algorithm("winograd")
    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            out, cache = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
            results.append((out, *fast_layers.conv_backward_fast(dout, cache)))
    for name, one, two in zip(("out", "dx", "dw", "db"), *results):
        np.testing.assert_array_equal(one, two, err_msg=name)


@pytest.mark.parametrize("tile", [2, 4])
def test_float32_error_is_within_a_small_factor_of_direct(tile):
    """The documented float32 bound, on data shaped like a trained network's.

    Inputs after a GELU-like activation (non-negative-heavy, unit scale),
    He-scaled filters, the 64-channel 32 x 32 layer of the benchmarks at
    batch 4; for ``dx``, a standard-normal ``dout`` and the flipped,
    transposed filters.  Both kernels are compared with the float64 sum;
    Winograd's relative L2 error must stay within FLOAT32_FACTOR_OVER_DIRECT
    times the direct kernel's and under FLOAT32_RELATIVE_L2.
    """
    rng = np.random.default_rng(17)
    z = rng.standard_normal((4, 64, 32, 32))
    x = (z * (z > -0.5) + 0.1 * z * (z <= -0.5)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) * np.sqrt(2.0 / (64 * 9))).astype(np.float32)
    b = np.zeros(64, dtype=np.float32)
    dout = rng.standard_normal((4, 64, 32, 32)).astype(np.float32)
    w_flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    for what, inputs, filters in (("forward", x, w), ("dx", dout, w_flipped)):
        exact, _ = naive_conv(inputs, filters, b, 1)
        direct = np.empty(exact.shape, dtype=np.float32)
        conv_kernels.conv_forward(inputs, filters, b, direct, 1, 1, 1)
        winograd, _ = winograd_forward(inputs, filters, b, 1, tile=tile)
        err_direct = np.linalg.norm((direct - exact).ravel()) / np.linalg.norm(exact.ravel())
        err_winograd = np.linalg.norm((winograd - exact).ravel()) / np.linalg.norm(exact.ravel())
        assert err_winograd <= FLOAT32_RELATIVE_L2[tile], (what, err_winograd, err_direct)
        assert err_winograd <= FLOAT32_FACTOR_OVER_DIRECT[tile] * err_direct, \
            (what, err_winograd, err_direct)


# --------------------------------------------------------------------------
# Infinities and NaNs, bad input, dispatch
# --------------------------------------------------------------------------


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("where", ["x", "w", "b"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_nonfinite_values_are_reported_and_the_layer_falls_back_to_direct(where, value, tile):
    """The kernel says when an output is not finite; the layer then gives the naive answer.

    Winograd's transforms turn one infinity into ``inf - inf = NaN`` across
    its tile where the direct sum keeps an infinity (or a finite value).
    """
    rng, x, w, b = random_arrays((2, 3, 6, 7), (4, 3, 3, 3), np.float64, seed=11)
    arrays = {"x": x, "w": w, "b": b}
    arrays[where].flat[rng.integers(arrays[where].size)] = value
    with np.errstate(invalid="ignore", over="ignore"):
        _, nonfinite = winograd_forward(x, w, b, 1, tile=tile)
        assert nonfinite
        fast_layers.set_conv_algorithm("winograd" if tile == 2 else "winograd4")
        out, _ = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        naive, _ = layers.conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})
    for mask in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(mask(out), mask(naive))


@pytest.mark.parametrize("w_shape, pad, match", [
    ((2, 3, 5, 5), 1, r"w must hold 3 x 3 filters .* got w of shape \(2, 3, 5, 5\)"),
    ((2, 3, 3, 2), 1, r"w must hold 3 x 3 filters"),
    ((2, 4, 3, 3), 1, r"w has 4 input channels, x has 3"),
    ((2, 3, 3, 3), -1, r"pad_h and pad_w must be >= 0"),
])
def test_winograd_kernel_rejects_bad_filters_and_pads(w_shape, pad, match):
    x = np.zeros((1, 3, 6, 6))
    w = np.zeros(w_shape)
    out = np.zeros((1, w_shape[0], 6, 6))
    with pytest.raises(ValueError, match=match):
        winograd_kernels.conv_forward(x, w, np.zeros(0), out, pad, pad)


def test_winograd_kernel_rejects_wrong_shapes_and_dtypes():
    x = np.zeros((1, 3, 6, 6))
    w = np.zeros((2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"out must have shape \(1, 2, 6, 6\)"):
        winograd_kernels.conv_forward(x, w, np.zeros(0), np.zeros((1, 2, 5, 5)), 1, 1)
    with pytest.raises(ValueError, match=r"b must have shape \(2,\) or \(0,\)"):
        winograd_kernels.conv_forward(x, w, np.zeros(3), np.zeros((1, 2, 6, 6)), 1, 1)
    with pytest.raises(ValueError, match=r"tile must be 2 \(F\(2x2, 3x3\)\) or 4 .* got 3"):
        winograd_kernels.conv_forward(x, w, np.zeros(0), np.zeros((1, 2, 6, 6)), 1, 1, tile=3)
    with pytest.raises(ValueError, match=r"a 3 x 3 filter does not fit"):
        winograd_kernels.conv_forward(np.zeros((1, 3, 1, 6)), w, np.zeros(0),
                                      np.zeros((1, 2, 1, 6)), 0, 1)
    with pytest.raises(TypeError):  # the kernels exist for float32 and float64 only
        winograd_kernels.conv_forward(x.astype(np.float16), w.astype(np.float16),
                                      np.zeros(0, np.float16), np.zeros((1, 2, 6, 6), np.float16), 1, 1)


@pytest.mark.parametrize("w_shape, stride, pad", [
    ((4, 3, 3, 3), 2, 1),   # stride 2
    ((4, 3, 5, 5), 1, 2),   # 5x5 filters
    ((4, 3, 1, 1), 1, 0),   # 1x1 filters
])
def test_forcing_winograd_leaves_other_convolutions_direct(w_shape, stride, pad):
    """Forced Winograd only takes stride-1 3x3 convolutions; others give the direct kernels' bits."""
    rng, x, w, b = random_arrays((2, 3, 9, 9), w_shape, np.float32, seed=4)
    conv_param = {"stride": stride, "pad": pad}
    results = []
    for algorithm in ("direct", "winograd", "winograd4"):
        fast_layers.set_conv_algorithm(algorithm)
        out, cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
        dout = np.random.default_rng(5).standard_normal(out.shape).astype(np.float32)
        results.append((out, *fast_layers.conv_backward_fast(dout, cache)))
    for name, direct, *forced in zip(("out", "dx", "dw", "db"), *results):
        for array in forced:
            np.testing.assert_array_equal(array, direct, err_msg=name)


def test_set_conv_algorithm_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"unknown algorithm 'fft'; choose one of auto, direct, "
                                         r"winograd, winograd4"):
        fast_layers.set_conv_algorithm("fft")
    assert fast_layers.conv_algorithm() in ("auto", "direct", "winograd", "winograd4")


def test_the_algorithms_differ_only_by_rounding_and_direct_is_the_direct_kernel():
    """The switch really switches: forced Winograd differs from direct in the last bits."""
    rng, x, w, b = random_arrays((2, 8, 10, 10), (6, 8, 3, 3), np.float32, seed=8)
    conv_param = {"stride": 1, "pad": 1}
    fast_layers.set_conv_algorithm("direct")
    direct, _ = fast_layers.conv_forward_fast(x, w, b, conv_param)
    kernel = np.empty_like(direct)
    conv_kernels.conv_forward(x, w, b, kernel, 1, 1, 1)
    np.testing.assert_array_equal(direct, kernel)
    fast_layers.set_conv_algorithm("winograd")
    winograd, _ = fast_layers.conv_forward_fast(x, w, b, conv_param)
    assert not np.array_equal(winograd, direct)
    np.testing.assert_allclose(winograd, direct, rtol=0, atol=1e-4 * np.abs(direct).max())


@pytest.mark.parametrize("C, K, H, tile32, tile64", [
    # the quick and best recipes' layers (whitening gives 24 channels at 31 x 31)
    (24, 16, 31, 0, 0), (16, 16, 15, 0, 0), (16, 64, 15, 4, 0), (64, 16, 15, 4, 0),
    (64, 64, 7, 4, 0), (64, 64, 3, 4, 0), (24, 32, 31, 4, 0), (32, 32, 15, 4, 0),
    (32, 128, 15, 4, 0), (128, 128, 7, 4, 2), (64, 128, 7, 4, 2), (128, 128, 3, 4, 0),
    # the benchmark layer; maps too small; few channels on one side
    (64, 64, 32, 4, 2), (128, 128, 2, 0, 0), (256, 8, 32, 0, 0), (1, 1024, 8, 0, 0),
])
def test_winograd_tile_is_a_fixed_rule_on_the_shape(C, K, H, tile32, tile64):
    """The documented rule: F(4x4) in float32 where C K >= 12 (C + K) on maps of 3 x 3 or more,
    F(2x2) in float64 only with 64+ channels on 7 x 7 maps or more."""
    assert fast_layers.winograd_tile(C, K, H, H, np.dtype(np.float32)) == tile32
    assert fast_layers.winograd_tile(C, K, H, H, np.dtype(np.float64)) == tile64
    assert fast_layers.winograd_pays(C, K, H, H, np.dtype(np.float32)) is (tile32 != 0)
    assert fast_layers.winograd_pays(C, K, H, H, np.dtype(np.float64)) is (tile64 != 0)


@pytest.mark.parametrize("x_shape, w_shape, dtype, tile", [
    ((1, 64, 32, 32), (64, 64, 3, 3), np.float32, 4),
    ((1, 64, 32, 32), (64, 64, 3, 3), np.float64, 2),
    ((1, 16, 15, 15), (16, 16, 3, 3), np.float32, 0),
])
def test_auto_sends_a_layer_where_winograd_pays(x_shape, w_shape, dtype, tile):
    """With "auto", the forward pass and dx give exactly the bits of the kernel the rule picks."""
    rng, x, w, b = random_arrays(x_shape, w_shape, dtype, seed=2)
    fast_layers.set_conv_algorithm("auto")
    out, cache = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = fast_layers.conv_backward_input_fast(dout, cache)
    np.testing.assert_array_equal(dx, fast_layers.conv_backward_fast(dout, cache)[0])
    w_flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    if tile:
        expected, _ = winograd_forward(x, w, b, 1, tile=tile)
        expected_dx, _ = winograd_forward(dout, w_flipped, np.zeros(0, dtype), 1, tile=tile)
    else:
        expected = np.empty_like(out)
        conv_kernels.conv_forward(x, w, b, expected, 1, 1, 1)
        fast_layers.set_conv_algorithm("direct")
        expected_dx = fast_layers.conv_backward_input_fast(dout, cache)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(dx, expected_dx)

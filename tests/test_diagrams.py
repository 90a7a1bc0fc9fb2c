"""The committed diagrams in book/figures are exactly what convlab.diagrams draws."""

import re
from pathlib import Path

import numpy as np
import pytest

from convlab import diagrams

FIGURES = Path(__file__).resolve().parent.parent / "book" / "figures"


def test_every_diagram_is_committed_and_nothing_else():
    assert sorted(p.stem for p in FIGURES.glob("*.svg")) == sorted(diagrams.DIAGRAMS)


@pytest.fixture(scope="module")
def redrawn(tmp_path_factory):
    directory = tmp_path_factory.mktemp("figures")
    return {path.name: path for path in diagrams.save_all(directory)}


@pytest.mark.parametrize("name", sorted(diagrams.DIAGRAMS))
def test_regenerating_gives_the_committed_file(name, redrawn):
    committed = (FIGURES / f"{name}.svg").read_bytes()
    assert redrawn[f"{name}.svg"].read_bytes() == committed, (
        f"book/figures/{name}.svg is out of date: run "
        "'python -m convlab.diagrams book/figures' and commit the result"
    )


def test_drawing_twice_gives_identical_files(tmp_path):
    first = diagrams.save_all(tmp_path / "a")
    second = diagrams.save_all(tmp_path / "b")
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()


def test_the_pooling_diagram_routes_the_gradient_to_the_maxima():
    fig = diagrams.draw_maxpool_routing()
    texts = [t.get_text() for t in fig.axes[0].texts]
    # dout entries appear twice (in dout and in dx at the maxima), the rest of dx is 0.
    for value in ("0.1", "0.2", "0.3", "0.4"):
        assert texts.count(value) == 2
    assert texts.count("0") == 12 + 2  # twelve zeros in dx, two in x


def test_svgs_carry_no_date():
    for path in FIGURES.glob("*.svg"):
        assert "<dc:date>" not in path.read_text(encoding="utf-8")


def test_the_grouped_diagram_draws_one_line_per_channel_a_filter_reads():
    fig = diagrams.draw_grouped_conv(C=4, F=4, groups=(1, 2, 4))
    # F * C / groups lines per panel: 16 + 8 + 4
    assert len(fig.axes[0].lines) == 16 + 8 + 4
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "full: groups = 1\n16 weights per tap" in texts
    assert "depthwise: groups = 4\n4 weights per tap" in texts


def test_the_transposed_diagram_counts_every_copy_of_the_filter():
    fig = diagrams.draw_transposed_conv(H=2, kernel=3, stride=2)
    counts = [int(t.get_text()) for t in fig.axes[0].texts if t.get_text().isdigit()]
    assert len(counts) == 5 * 5            # the output of (2 - 1) * 2 + 3 = 5 rows and columns
    assert sum(counts) == 2 * 2 * 3 * 3    # four input pixels, nine taps each
    assert max(counts) == 4                # the centre, reached by all four copies


def test_the_pooling_diagram_shows_the_means_of_the_windows():
    texts = [t.get_text() for t in diagrams.draw_average_pooling().axes[0].texts]
    for value in ("2.5", "1", "2", "6", "2.875"):   # the four 2x2 means and the global one
        assert value in texts
    assert "global average" in texts


def test_the_dilated_diagram_takes_its_output_size_from_the_layer():
    texts = [t.get_text() for t in diagrams.draw_dilated_conv(H=7, kernel=3, dilation=2).axes[0].texts]
    assert "output 3x3" in texts
    texts = [t.get_text() for t in diagrams.draw_dilated_conv(H=9, kernel=3, dilation=3).axes[0].texts]
    assert "output 3x3" in texts and any("span 7x7" in t for t in texts)


def test_the_pointwise_diagram_counts_the_weights():
    texts = [t.get_text() for t in diagrams.draw_pointwise_conv(C=3, F=2).axes[0].texts]
    assert "weights\n2 x 3\n(6 + 2 bias)" in texts
    assert "output\n2 channels, 4x4" in texts


def test_the_stride_diagram_draws_the_filter_and_labels_it_there():
    # The filter is a grid of its own between the padded input and the output, and
    # its label sits under it, not over the output grid.
    fig = diagrams.draw_stride_padding(H=5, kernel=3, stride=2, pad=1)
    ax = fig.axes[0]
    taps = [t for t in ax.texts if t.get_text().startswith("w")]
    assert sorted(t.get_text() for t in taps) == [f"w{p}{q}" for p in range(3) for q in range(3)]
    filter_left = min(t.get_position()[0] for t in taps) - 0.5
    filter_right = max(t.get_position()[0] for t in taps) + 0.5
    assert filter_left > 7  # right of the 7x7 padded input
    (label,) = [t for t in ax.texts if "3x3 filter" in t.get_text()]
    assert filter_left < label.get_position()[0] < filter_right
    (output_label,) = [t for t in ax.texts if t.get_text().startswith("output 3x3")]
    assert output_label.get_position()[0] > filter_right
    assert any(t.get_text() == "stride 2" for t in ax.texts)


def test_the_residual_diagram_takes_the_block_output_shape_from_the_layer():
    from convlab.layer_utils import residual_block_forward

    rng = np.random.default_rng(0)
    C, F, H = 2, 4, 7
    params = {"w1": rng.standard_normal((F, C, 3, 3)), "gamma1": np.ones(F),
              "beta1": np.zeros(F), "w2": rng.standard_normal((F, F, 3, 3)),
              "gamma2": np.ones(F), "beta2": np.zeros(F)}
    bn = {"1": {"mode": "train"}, "2": {"mode": "train"}}
    out, _ = residual_block_forward(rng.standard_normal((1, C, H, H)), params, bn, 2, "pad")
    fig = diagrams.draw_residual_block(C=C, F=F, H=H, stride=2)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(f"out  ({F} x {out.shape[2]} x {out.shape[3]})" in t for t in texts), texts
def test_the_scatter_diagram_counts_the_windows_on_each_entry():
    fig = diagrams.draw_backward_scatter(H=3, kernel=3, stride=2, pad=1)
    texts = [t.get_text() for t in fig.axes[0].texts]
    counts = np.array([int(t) for t in texts if t.isdigit()]).reshape(5, 5)  # the padded input
    along_one_axis = np.array([1, 1, 2, 1, 1])   # windows start at rows 0 and 2 and overlap on row 2
    np.testing.assert_array_equal(counts, np.outer(along_one_axis, along_one_axis))
    assert counts.sum() == 2 * 2 * 3 * 3         # four windows of nine taps
    # the centre meets each window at another tap: the filter is met backwards
    assert "centre: d00\u00b7w22 + d01\u00b7w20 + d10\u00b7w02 + d11\u00b7w00" in texts


def test_the_scatter_diagram_reads_its_terms_off_the_layer_for_any_geometry():
    fig = diagrams.draw_backward_scatter(H=5, kernel=3, stride=2, pad=1)
    texts = [t.get_text() for t in fig.axes[0].texts]
    counts = np.array([int(t) for t in texts if t.isdigit()]).reshape(7, 7)
    along_one_axis = np.array([1, 1, 2, 1, 2, 1, 1])
    np.testing.assert_array_equal(counts, np.outer(along_one_axis, along_one_axis))
    # the first entry where four windows meet is (2, 2) of the padded input
    assert "entry (2, 2): d00\u00b7w22 + d01\u00b7w20 + d10\u00b7w02 + d11\u00b7w00" in texts


def _full_conv_grids(fig, side, kernel):
    """The labels of the framed dout (side x side) and of the flipped filter, as drawn."""
    texts = [t.get_text() for t in fig.axes[0].texts]
    grid = np.array(texts[:side * side]).reshape(side, side)
    taps = [t for t in texts if re.fullmatch(r"w\d\d", t)]
    return grid, np.array(taps).reshape(kernel, kernel), texts


def test_the_full_convolution_diagram_inserts_zeros_and_flips_the_filter():
    fig = diagrams.draw_flipped_filter_full_conv(H=3, kernel=3, stride=2, pad=1)
    grid, flipped, texts = _full_conv_grids(fig, 7, 3)
    # dout's four entries two apart, inside two rings of zeros; every other entry 0
    assert [grid[r, c] for r in (2, 4) for c in (2, 4)] == ["d00", "d01", "d10", "d11"]
    assert (grid == "0").sum() == 7 * 7 - 4
    assert flipped.tolist() == [["w22", "w21", "w20"], ["w12", "w11", "w10"], ["w02", "w01", "w00"]]
    assert any("7x7" in t for t in texts) and any("gradient 5x5" in t for t in texts)


@pytest.mark.parametrize("H, kernel, stride, pad", [(3, 3, 2, 1), (5, 3, 2, 1), (4, 2, 2, 0), (4, 3, 1, 1)])
def test_the_two_backward_diagrams_draw_the_same_gradient(H, kernel, stride, pad):
    """Sliding the drawn flipped filter over the drawn grid meets, at every entry of the
    padded input's gradient, exactly the (dout entry, tap) pairs that the scatter adds there."""
    taps = diagrams._scatter_taps(H, kernel, stride, pad)
    H_out, W_out, side, _ = taps.shape
    framed = (H_out - 1) * stride + 1 + 2 * (kernel - 1)
    grid, flipped, _ = _full_conv_grids(
        diagrams.draw_flipped_filter_full_conv(H, kernel, stride, pad), framed, kernel)
    assert framed - kernel + 1 == side
    for r in range(side):
        for c in range(side):
            slid = {(grid[r + p, c + q], flipped[p, q])
                    for p in range(kernel) for q in range(kernel) if grid[r + p, c + q] != "0"}
            scattered = {(f"d{i}{j}", diagrams._tap_name(taps[i, j, r, c], kernel))
                         for i in range(H_out) for j in range(W_out) if taps[i, j, r, c]}
            assert slid == scattered, (r, c)

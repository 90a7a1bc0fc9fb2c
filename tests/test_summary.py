"""convlab.summary and convlab.architectures: shapes, parameters, FLOPs and receptive fields, checked three ways.

By hand for LeNet-5; against an independent brute-force receptive field on
random stacks; against PyTorch (parameter counts and every layer's output
shape of the same networks built from torch.nn) when it is installed.
"""

import math

import numpy as np
import pytest
from _pytorch import import_torch
from hypothesis import given, settings, strategies as st

from convlab import architectures, summary as S


def test_lenet5_by_hand():
    rows = S.summary(architectures.lenet5(), (1, 32, 32))
    by_name = {r["name"]: r for r in rows}
    assert by_name["conv1"]["shape"] == (6, 28, 28) and by_name["conv1"]["params"] == 6 * 25 + 6
    assert by_name["conv2"]["shape"] == (16, 10, 10)
    assert by_name["conv2"]["params"] == 16 * 6 * 25 + 16
    assert by_name["conv2"]["flops"] == 2 * 10 * 10 * 16 * 6 * 25
    assert by_name["affine1"]["params"] == 400 * 120 + 120
    assert S.totals(rows)["params"] == 156 + 2416 + 48120 + 10164 + 850
    # receptive field: 5, pool 2 -> 6 (jump 2), conv 5 -> 6 + 4 * 2 = 14, pool -> 14 + 2 = 16
    assert [by_name[n]["receptive_field"] for n in ("conv1", "avg_pool1", "conv2", "avg_pool2")] \
        == [5, 6, 14, 16]
    assert by_name["relu1"]["activation_bytes"] == 6 * 28 * 28 * 4


def test_the_classic_parameter_counts():
    """Figures quoted by the papers and the usual CIFAR implementations."""
    counts = {name: S.totals(S.summary(spec(), shape))["params"]
              for name, (spec, shape) in architectures.ARCHITECTURES.items()}
    assert counts["LeNet-5"] == 61_706
    assert counts["ResNet-20"] == 269_722          # "0.27M" in He et al. (2016), Table 6
    assert counts["ResNet-18"] == 11_173_962
    # VGG-11 without conv biases (batch norm follows each conv)
    assert counts["VGG-11"] == 9_228_362


def test_grouped_dilated_and_strided_convolutions():
    (row,) = S.summary([S.conv(8, 3, stride=2, pad=2, dilation=2, groups=4)], (4, 9, 9))
    # extent 2 * (3 - 1) + 1 = 5; (9 + 4 - 5) // 2 + 1 = 5; each filter sees 4 / 4 = 1 channel
    assert row["shape"] == (8, 5, 5)
    assert row["params"] == 8 * 1 * 9 + 8
    assert row["flops"] == 2 * 5 * 5 * 8 * 1 * 9
    assert row["receptive_field"] == 5 and row["jump"] == 2


def _brute_receptive_field(spec, size):
    """Input pixels (along one axis) that output pixel 0... affects, found by walking index sets back."""
    # forward sizes
    sizes = [size]
    for layer in spec:
        extent = layer.get("dilation", 1) * (layer["size"] - 1) + 1
        sizes.append((sizes[-1] + 2 * layer["pad"] - extent) // layer["stride"] + 1)
    widest = 0
    for out in range(sizes[-1]):
        touched = {out}
        for layer in reversed(spec):
            d = layer.get("dilation", 1)
            touched = {o * layer["stride"] - layer["pad"] + d * t
                       for o in touched for t in range(layer["size"])}
        widest = max(widest, max(touched) - min(touched) + 1)  # padding counts, as in the formula
    return widest


layer_strategy = st.one_of(
    st.builds(lambda k, s, p, d: S.conv(2, k, stride=s, pad=p, dilation=d),
              st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.integers(1, 3)),
    st.builds(lambda k, s: S.max_pool(k, stride=s), st.integers(1, 3), st.integers(1, 3)),
)


@settings(max_examples=60, deadline=None)
@given(spec=st.lists(layer_strategy, min_size=1, max_size=5))
def test_receptive_field_matches_brute_force(spec):
    try:
        rows = S.summary(spec, (2, 40, 40))
    except ValueError:       # a window that does not fit: nothing to compare
        return
    assert rows[-1]["receptive_field"] == _brute_receptive_field(spec, 40)
    assert rows[-1]["jump"] == math.prod(layer["stride"] for layer in spec)


def test_a_residual_block_sees_what_its_wider_path_sees():
    block = S.residual([S.conv(4, 3, pad=1), S.conv(4, 3, pad=1)], [])
    rows = S.summary([block], (4, 8, 8))
    assert rows[-1]["name"] == "residual1.add" and rows[-1]["receptive_field"] == 5
    assert {r["block"] for r in rows} == {"residual1"}
    table = S.format_summary(rows, top_level_only=True).splitlines()
    assert len(table) == 3 and table[1].split()[0] == "residual1"


@pytest.mark.parametrize("spec, shape, message", [
    ([S.conv(4, 5)], (3, 4, 4), "conv1: a 5x5 window does not fit the padded 4x4 input"),
    ([S.conv(4, 3, groups=2)], (3, 8, 8), "conv1: groups=2 must divide the 3 input channels"),
    ([S.conv(4, 3, dilation=0)], (3, 8, 8), "conv1: dilation must be a positive integer"),
    ([S.conv(4, 3, pad=-1)], (3, 8, 8), "conv1: pad must be a non-negative integer"),
    ([S.affine(10)], (3, 8, 8), "affine1: needs a flat input"),
    ([S.residual([S.conv(4, 3)], [])], (4, 8, 8), "residual1: the main path gives shape"),
    ([{"kind": "spline"}], (3, 8, 8), "spline1: unknown layer kind 'spline'"),
    (["conv"], (3, 8, 8), "a layer must come from convlab.summary's functions"),
    ([S.relu()], (3, 8), "input_shape must be (C, H, W)"),
])
def test_bad_specs_are_named(spec, shape, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        S.summary(spec, shape)


# ----------------------------------------------------------------------
# PyTorch as a second oracle
# ----------------------------------------------------------------------

def _torch_module(spec, channels, nn):
    """The same network in torch.nn, layer by layer (a list of (name, module))."""
    modules = []
    for layer in spec:
        kind = layer["kind"]
        if kind == "conv":
            module = nn.Conv2d(channels, layer["filters"], layer["size"], layer["stride"],
                               layer["pad"], layer["dilation"], layer["groups"], layer["bias"])
            channels = layer["filters"]
        elif kind == "batchnorm":
            module = nn.BatchNorm2d(channels)
        elif kind == "relu":
            module = nn.ReLU()
        elif kind == "max_pool":
            module = nn.MaxPool2d(layer["size"], layer["stride"], layer["pad"])
        elif kind == "avg_pool":
            module = nn.AvgPool2d(layer["size"], layer["stride"], layer["pad"])
        elif kind == "global_avg_pool":
            module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        elif kind == "flatten":
            module = nn.Flatten()
        elif kind == "affine":
            module = nn.LazyLinear(layer["outputs"])
        elif kind == "zero_pad_shortcut":
            module = _ZeroPad(layer["filters"], layer["stride"], nn)
            channels = layer["filters"]
        elif kind == "residual":
            main, out = _torch_module(layer["main"], channels, nn)
            short, _ = _torch_module(layer["shortcut"], channels, nn)
            module = _Residual(nn.Sequential(*[m for _, m in main]),
                               nn.Sequential(*[m for _, m in short]), nn)
            channels = out
        modules.append((kind, module))
    return modules, channels


def _ZeroPad(filters, stride, nn):
    import torch

    class ZeroPad(nn.Module):
        def forward(self, x):
            x = x[:, :, ::stride, ::stride]
            return torch.nn.functional.pad(x, (0, 0, 0, 0, 0, filters - x.shape[1]))
    return ZeroPad()


def _Residual(main, shortcut, nn):
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.main, self.shortcut = main, shortcut

        def forward(self, x):
            return self.main(x) + self.shortcut(x)
    return Residual()


@pytest.mark.pytorch
@pytest.mark.parametrize("name", list(architectures.ARCHITECTURES))
def test_parameters_and_shapes_agree_with_pytorch(name):
    torch = import_torch()
    spec_fn, shape = architectures.ARCHITECTURES[name]
    rows = [r for r in S.summary(spec_fn(), shape) if r["block"] is None or
            r["name"] == r["block"] + ".add"]
    modules, _ = _torch_module(spec_fn(), shape[0], torch.nn)
    assert len(modules) == len(rows)
    x = torch.zeros((1,) + shape)
    with torch.no_grad():
        for (kind, module), row in zip(modules, rows):
            x = module(x)
            assert tuple(x.shape[1:]) == row["shape"], (row["name"], kind)
    net = torch.nn.Sequential(*[m for _, m in modules])
    assert sum(p.numel() for p in net.parameters()) == S.totals(S.summary(spec_fn(), shape))["params"]
    assert np.isfinite(x.numpy()).all()


def test_every_row_names_its_kind_and_the_weight_layers_count_as_the_papers_do():
    def weight_layers(name):
        fn, shape = architectures.ARCHITECTURES[name]
        rows = S.summary(fn(), shape)
        assert all(r["kind"] for r in rows)
        return sum(1 for r in rows
                   if r["kind"] in ("conv", "affine") and ".shortcut." not in r["name"])

    # LeNet-5: 2 convolutions + 3 affine; VGG-11: 8 + 1 here; ResNet-n: n weight layers
    assert [weight_layers(n) for n in ("LeNet-5", "VGG-11", "ResNet-20", "ResNet-18")] == \
        [5, 9, 20, 18]
    rows = S.summary(architectures.resnet20(), (3, 32, 32))
    assert sum(r["kind"] == "add" for r in rows) == 9

"""profile_step times a recipe's training step part by part without touching the model's code."""

import sys

import pytest

from convlab import profiling
from convlab.classifiers import airbench_convnet


def test_profile_step_times_every_part_and_counts_convolution_flops():
    namespace = dict(vars(airbench_convnet))
    rows, total = profiling.profile_step("tiny", batch_size=8, repeats=1)
    parts = {part: (seconds, gflop) for part, seconds, gflop in rows}
    for part in ("conv forward (incl. whitening)", "conv backward dx+dw",
                 "conv backward dw only (first conv)", "max pool forward", "max pool backward",
                 "batch norm + activation forward", "batch norm + activation backward",
                 "activation after whitening", "global max pool + affine + loss",
                 "augmentation (translate + flip)", "optimizer update"):
        assert parts[part][0] > 0, part
    for part in ("conv forward (incl. whitening)", "conv backward dx+dw",
                 "conv backward dw only (first conv)"):
        assert parts[part][1] > 0, part
    assert parts["max pool forward"][1] is None
    assert total >= sum(seconds for part, (seconds, _) in parts.items()
                        if not part.startswith("rest")) * 0.999
    # nothing was replaced, and the profiling hook is gone
    assert vars(airbench_convnet) == namespace
    assert sys.getprofile() is None


def test_profile_step_needs_a_convnet_recipe():
    with pytest.raises(ValueError, match="ConvNet recipe"):
        profiling.profile_step("three_layer")

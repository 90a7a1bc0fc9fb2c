"""profile_step times a recipe's training step part by part without touching the model's code."""

import sys

import pytest

from convlab import profiling
from convlab.classifiers import airbench_convnet


def test_profile_step_times_every_part_and_counts_convolution_flops():
    namespace = dict(vars(airbench_convnet))
    rows, total = profiling.profile_step("tiny", ["ema_decay=0.9"], batch_size=8, repeats=1)
    parts = {part: (seconds, gflop) for part, seconds, gflop in rows}
    for part in ("conv forward (incl. whitening)", "conv backward dx+dw",
                 "conv backward dw only (first conv)", "max pool forward", "max pool backward",
                 "batch norm + activation forward", "batch norm + activation backward",
                 "activation after whitening", "global max pool + affine + loss",
                 "augmentation (translate + flip)", "optimizer update",
                 "moving average of the weights"):
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


# Issue 27: the step profiled is the step that trains (the recipe's learning rate,
# schedule and moving average), not a stand-in with settings of its own.
def test_profile_step_times_the_solvers_own_step(monkeypatch):
    from convlab.solver import Solver

    steps = []
    real_step = Solver.step

    def step(self, batch):
        steps.append((self.update_rule_name, self.ema_decay, len(batch)))
        return real_step(self, batch)

    monkeypatch.setattr(Solver, "step", step)
    profiling.profile_step("tiny", ["ema_decay=0.9"], batch_size=8, repeats=2)
    assert steps == [("nesterov_sgd", 0.9, 8)] * 3


def test_profile_step_needs_a_convnet_recipe():
    with pytest.raises(ValueError, match="ConvNet recipe"):
        profiling.profile_step("three_layer")

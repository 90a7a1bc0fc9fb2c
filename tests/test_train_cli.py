"""The training command line: a smoke test on a few real CIFAR-10 images, and exact resume."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from convlab import recipes, train

SMALL = ["--num-train", "256", "--num-val", "64", "--num-test", "64", "--no-progress"]


def _env():
    env = dict(os.environ)
    env.setdefault("CONVLAB_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets"))
    env["OMP_NUM_THREADS"] = "1"
    return env


def _have_data():
    root = _env()["CONVLAB_DATA"]
    return os.path.isdir(os.path.join(root, "cifar-10-batches-py"))


needs_data = pytest.mark.skipif(not _have_data(), reason="CIFAR-10 not found under CONVLAB_DATA")


@pytest.fixture(autouse=True)
def _data_location(monkeypatch):
    """In-process runs look for the data where the subprocess runs and the skip marks do."""
    monkeypatch.setenv("CONVLAB_DATA", _env()["CONVLAB_DATA"])


@needs_data
def test_cli_trains_and_prints_the_accuracies_last(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "convlab.train", "--recipe", "tiny", "--epochs", "1",
                           "--seed", "3", "--out", str(out), *SMALL],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-2].startswith("val accuracy: 0.") and len(lines[-2]) == len("val accuracy: 0.xxxx")
    assert lines[-1].startswith("test accuracy: 0.") and len(lines[-1]) == len("test accuracy: 0.xxxx")
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [0, 1]
    for key in ("loss", "train_acc", "val_acc", "lr", "epoch_time", "train_time"):
        assert key in history["epochs"][1]
    assert history["final_test_acc"] == pytest.approx(float(lines[-1].split(": ")[1]), abs=5e-5)
    assert history["num_train"] == 256 and history["num_test"] == 64
    assert (out / "checkpoint_epoch_1.npz").exists()
    with np.load(out / "model.npz") as model:
        assert "params/W1_1" in model.files and "state/whiten_w" in model.files


@needs_data
def test_resume_continues_exactly(tmp_path):
    data = recipes.load_data(256, 64, 64)
    full = train.run("tiny", epochs=2, seed=5, out=str(tmp_path / "full"), progress=False, data=data)
    # A run "interrupted" after epoch 1: only its first checkpoint survives.
    cut = tmp_path / "cut"
    os.makedirs(cut)
    (cut / "checkpoint_epoch_1.npz").write_bytes((tmp_path / "full" / "checkpoint_epoch_1.npz").read_bytes())
    resumed = train.run("tiny", epochs=2, seed=5, out=str(cut), resume=True, progress=False, data=data)
    assert resumed["loss_history"] == full["loss_history"]
    assert resumed["final_test_acc"] == full["final_test_acc"]
    with np.load(tmp_path / "full" / "model.npz") as a, np.load(cut / "model.npz") as b:
        assert a.files == b.files
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key
    # --resume into a folder with no run starts one (a sweep re-runs every trial with --resume)
    fresh = train.run("tiny", epochs=1, out=str(tmp_path / "empty"), resume=True, progress=False,
                      data=data)
    assert fresh["resumed"] is False and len(fresh["epochs"]) == 2


@needs_data
def test_ema_run_saves_and_evaluates_the_averaged_model(tmp_path):
    # ema_decay = 1: the average never leaves the initial weights and
    # batch-norm statistics, so that is the model the run must end with.
    data = recipes.load_data(256, 64, 64)
    overrides = ["ema_decay=1.0"]
    initial = recipes.build_model(recipes.resolve_recipe("tiny", overrides, 1), 6, data["X_train"])
    history = train.run("tiny", epochs=1, seed=6, out=str(tmp_path), overrides=overrides,
                        progress=False, data=data)
    acc, _ = train.evaluate(initial, data["X_test"], data["y_test"], tta=history["recipe"]["tta"])
    assert acc == history["final_test_acc"]
    with np.load(tmp_path / "model.npz") as saved:
        for name, value in initial.params.items():
            np.testing.assert_array_equal(saved[f"params/{name}"], value)
        for key, value in initial.state_dict().items():
            np.testing.assert_array_equal(saved[f"state/{key}"], value)


@needs_data
def test_saved_model_reloads_and_ensembles(tmp_path):
    from convlab.ensemble import ensemble_probabilities
    from convlab.recipes import load_trained_model

    data = recipes.load_data(256, 64, 64)
    history = train.run("tiny", epochs=1, seed=2, out=str(tmp_path / "a"), progress=False, data=data)
    model, recipe = load_trained_model(str(tmp_path / "a"))
    assert recipe["widths"] == tuple(recipes.RECIPES["tiny"]["widths"])
    acc, _ = train.evaluate(model, data["X_test"], data["y_test"], tta=recipe["tta"])
    assert acc == history["final_test_acc"]
    mean, members = ensemble_probabilities([model, model], data["X_test"], tta=1)
    assert np.allclose(mean, members[0]) and np.allclose(mean.sum(axis=1), 1.0)
    assert np.array_equal(mean.argmax(1), np.array(history["test_predictions"]))
    with pytest.raises(ValueError, match="at least one"):
        ensemble_probabilities([], data["X_test"])


# Issue 26, row 12: Ctrl-C printed a KeyboardInterrupt traceback.
@needs_data
def test_ctrl_c_prints_the_command_that_resumes_and_it_does(tmp_path):
    import shlex
    import signal
    import time

    out = tmp_path / "run"
    # enough epochs that a busy machine cannot finish them all between the first
    # checkpoint and the signal
    epochs = 12
    command = [sys.executable, "-m", "convlab.train", "--recipe", "tiny", "--epochs", str(epochs),
               "--seed", "1", "--out", str(out), "--num-train", "2048", "--num-val", "64",
               "--num-test", "64", "--no-progress"]
    # A shell that starts a job in the background makes it ignore SIGINT, and Python keeps
    # ignoring it: give the run the default disposition, as a terminal's Ctrl-C finds it.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (out / "checkpoint_epoch_1.npz").exists() and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.stderr.read()}"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    prefix = ("python -m convlab.train: interrupted; continue the run from its last checkpoint "
              "with: python -m convlab.train ")
    last = stderr.splitlines()[-1]
    assert last.startswith(prefix) and last.endswith(" --resume"), stderr
    again = subprocess.run([sys.executable, "-m", "convlab.train",
                            *shlex.split(last[len(prefix):])],
                           capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stderr
    history = json.loads((out / "history.json").read_text())
    assert history["resumed"] is True
    assert [e["epoch"] for e in history["epochs"]] == list(range(epochs + 1))


# Issue 24: `--resume` on a machine with another SIMD path continued silently with other numbers.
@needs_data
def test_resume_with_other_numerics_warns_in_one_line_and_strict_resume_refuses(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "convlab.train", "--recipe", "tiny", "--epochs", "1", "--seed", "1",
            "--out", str(out), *SMALL]
    first = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)
    assert first.returncode == 0, first.stderr
    (out / "model.npz").unlink()                   # resumable again: from its epoch-1 checkpoint
    plain = dict(_env(), CONVLAB_SIMD="plain")     # never the path a CPU takes by default
    strict = subprocess.run(args + ["--resume", "--strict-resume"], capture_output=True, text=True,
                            env=plain, timeout=300)
    assert strict.returncode == 2 and strict.stdout == ""
    assert strict.stderr.splitlines()[-1].startswith("python -m convlab.train: error: --strict-resume: ")
    assert " in the folder, plain now" in strict.stderr and "would not be bit-identical" in strict.stderr
    assert not (out / "model.npz").exists()
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True, env=plain, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and len(resumed.stderr.splitlines()) == 1, resumed.stderr
    assert re.fullmatch(r"warning: --resume: \S+checkpoint_epoch_1\.npz was computed with other numerics "
                        r"\(SIMD path \w+ in the folder, plain now\); the continuation will not be "
                        r"bit-identical \(--strict-resume refuses\)", warnings[0]), warnings[0]
    assert resumed.stdout.splitlines()[-1].startswith("test accuracy: 0.")
    # the numerics the checkpoint was computed with continue it without a word, strictly or not
    (out / "model.npz").unlink()
    again = subprocess.run(args + ["--resume", "--strict-resume"], capture_output=True, text=True,
                           env=_env(), timeout=300)
    assert again.returncode == 0 and again.stderr == "", again.stderr


@needs_data
def test_the_resnet_recipe_trains_saves_and_loads(tmp_path):
    """A residual network through the same recipe, Solver and run files as the others."""
    out = tmp_path / "run"
    history = train.run("resnet20", epochs=1, seed=0, out=str(out), num_train=128, num_val=32,
                        num_test=32, progress=False,
                        overrides=["blocks_per_stage=1", "widths=[4,8,8]", "batch_size=32"])
    assert history["final_val_acc"] >= 0.0 and len(history["epochs"]) == 2
    model, recipe = recipes.load_trained_model(str(out))
    assert type(model).__name__ == "ResNet" and recipe["blocks_per_stage"] == 1
    data = recipes.load_data(128, 32, 32)
    scores = model.loss(data["X_val"])
    assert scores.shape == (32, 10) and np.isfinite(scores).all()

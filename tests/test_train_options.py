"""Bad command lines of ``python -m convlab.train``: each fails with a message naming the option,
exit status 2, before any data is loaded, and leaves nothing behind."""

import os
import sys

import pytest

from convlab import recipes, train

# (arguments, a fragment of the error message)
BAD = [
    (["--recipe", "nope"], "invalid choice: 'nope'"),
    (["--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (["--epochs", "0"], "--epochs: expected a positive integer, got 0"),
    (["--epochs", "-2"], "--epochs: expected a positive integer, got -2"),
    (["--seed", "-1"], "--seed: expected an integer from 0 to 4294967295, got -1"),
    (["--seed", "4294967296"], "--seed: expected an integer from 0 to 4294967295"),
    (["--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (["--num-train", "0"], "--num-train: expected an integer from 1 to 49999, got 0"),
    (["--num-train", "50000"], "--num-train: expected an integer from 1 to 49999, got 50000"),
    (["--num-val", "0"], "--num-val: expected an integer from 1 to 1000, got 0"),
    (["--num-train", "49500", "--num-val", "1000"],
     "--num-val: expected an integer from 1 to 500, got 1000"),
    (["--num-test", "0"], "--num-test: expected an integer from 1 to 10000, got 0"),
    (["--num-test", "10001"], "--num-test: expected an integer from 1 to 10000, got 10001"),
    (["--set", "epochs=abc"], "--set epochs: expected a positive integer, got 'abc'"),
    (["--set", "epochs=1.5"], "--set epochs: expected a positive integer, got '1.5'"),
    (["--set", "momentum=abc"], "--set momentum: expected a number in [0, 1), got 'abc'"),
    (["--set", "momentum=1"], "--set momentum: expected a number in [0, 1), got '1'"),
    (["--set", "model=three_layer"], "--set model: recipe 'tiny' trains a 'convnet' model"),
    (["--set", "model=mlp"], "--set model: expected 'convnet', 'resnet' or 'three_layer', got 'mlp'"),
    (["--set", "batch_size=64.9"], "--set batch_size: expected a positive integer, got '64.9'"),
    (["--set", "batch_size=0"], "--set batch_size: expected a positive integer, got '0'"),
    (["--set", "batch_size=true"], "--set batch_size: expected a positive integer, got 'true'"),
    (["--set", "flip=abc"], "--set flip: expected true or false, got 'abc'"),
    (["--set", "flip=1"], "--set flip: expected true or false, got '1'"),
    (["--set", "translate=-3"], "--set translate: expected a non-negative integer (pixels), got '-3'"),
    (["--set", "tta=7"], "--set tta: expected 0, 1 or 2, got '7'"),
    (["--set", "learning_rate=0"], "--set learning_rate: expected a positive number (per example "
     "with update_rule nesterov, per step with the other rules), got '0'"),
    (["--set", "learning_rate=nan"], "--set learning_rate: expected a positive number"),
    (["--set", "weight_decay=-1"], "--set weight_decay: expected a non-negative number, got '-1'"),
    (["--set", "label_smoothing=1"], "--set label_smoothing: expected a number in [0, 1), got '1'"),
    (["--set", "activation=tanh"], "--set activation: expected one of identity, relu, leaky_relu, gelu"),
    (["--set", "update_rule=lbfgs"], "--set update_rule: expected one of nesterov, sgd"),
    # issue 27: one name, one unit: the optimizer behind "nesterov" is not a second spelling
    (["--set", "update_rule=nesterov_sgd"],
     "--set update_rule: in a recipe Nesterov SGD is 'nesterov' (learning_rate per example"),
    (["--set", "widths=[8,0,8]"], "--set widths: expected a list of positive integers"),
    (["--set", "widths=8"], "--set widths: expected a list of positive integers"),
    (["--set", "widths=[4,4,4,4,4,4,4]"], "does not build a working model"),
    (["--set", "whiten_kernel=0"], "--set whiten_kernel: expected a positive integer or null"),
    (["--set", "whiten_kernel=40"], "does not build a working model: whiten_kernel must lie in"),
    (["--set", "ema_decay=2"], "--set ema_decay: expected null or a number in [0, 1], got '2'"),
    (["--set", 'schedule={"name":"zigzag"}'], "--set schedule: expected a schedule such as"),
    (["--set", "schedule=linear"], "--set schedule: expected a schedule such as"),
    (["--set", "convs_per_block=0"], "--set convs_per_block: expected a positive integer"),
    (["--set", "bn_momentum=-0.1"], "--set bn_momentum: expected a number in [0, 1)"),
    (["--set", "nonsense=1"], "--set nonsense: recipe 'tiny' has no such entry"),
    (["--set", "no_equals_sign"], "--set expects KEY=VALUE, got 'no_equals_sign'"),
    (["--set", "=3"], "--set expects KEY=VALUE, got '=3'"),
    (["--recipe", "three_layer", "--set", "widths=[8,8,8]"],
     "--set widths: recipe 'three_layer' has no such entry"),
    (["--recipe", "three_layer", "--set", "update_rule=nesterov"],
     "--set update_rule: 'nesterov' needs the entries momentum, weight_decay, bias_lr_scale"),
    (["--recipe", "resnet20", "--set", "shortcut=identity"],
     "--set shortcut: expected 'pad' or 'project', got 'identity'"),
    (["--recipe", "resnet20", "--set", "blocks_per_stage=0"],
     "--set blocks_per_stage: expected a positive integer, got '0'"),
    (["--recipe", "three_layer", "--set", "filter_size=4"],
     "--set filter_size: expected a positive odd integer, got '4'"),
    (["--resume", "--overwrite"], "--resume and --overwrite contradict each other"),
    (["--epochs", "1", "--set", "epochs=3"],
     "--epochs 1 and --set epochs=3 both set the number of epochs; give one or the other"),
    (["--profile", "--recipe", "three_layer"], "--profile needs a ConvNet recipe"),
    (["--profile", "--set", "tta=9"], "--set tta: expected 0, 1 or 2, got '9'"),
]


@pytest.fixture
def no_data(monkeypatch):
    """Loading data (or profiling) during these tests is a failure: options come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded before the options were checked")
    monkeypatch.setattr(train, "load_data", refuse)
    monkeypatch.setattr(train, "profile_step", refuse)


def _run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    return exit_info.value.code, capsys.readouterr()


def test_the_table_is_long_enough():
    assert len(BAD) >= 40


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_option_fails_first_naming_it(args, message, tmp_path, capsys, no_data):
    out = tmp_path / "out"
    argv = ["--recipe", "tiny", "--no-progress", *args]
    argv += [] if "--profile" in args else ["--out", str(out)]
    code, captured = _run_cli(argv, capsys)
    assert code == 2
    assert message in captured.err, captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert os.listdir(tmp_path) == []               # nothing written, not even the folder


def test_an_out_that_is_a_file_or_under_one(tmp_path, capsys, no_data):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    for out in (blocker, blocker / "run"):
        code, captured = _run_cli(["--recipe", "tiny", "--out", str(out)], capsys)
        assert code == 2 and f"is a file, not a folder" in captured.err
    assert sorted(os.listdir(tmp_path)) == ["file"] and blocker.read_text() == "mine"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc, which no one can write")
def test_an_out_no_one_can_write_fails_before_training(capsys, no_data):
    # /proc refuses new files even to root, for whom permission bits do not count
    for out in ("/proc/convlab-run", "/proc/convlab/run"):
        code, captured = _run_cli(["--recipe", "tiny", "--out", out], capsys)
        assert code == 2 and f"--out {out}: cannot write to /proc" in captured.err, captured.err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes to read-only folders; /proc covers that case")
def test_a_read_only_out_fails_before_training(tmp_path, capsys, no_data):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, captured = _run_cli(["--recipe", "tiny", "--out", str(out)], capsys)
    finally:
        out.chmod(0o755)
    assert code == 2 and "cannot write to" in captured.err
    assert os.listdir(out) == []


def test_every_recipe_passes_its_own_checks():
    for name in recipes.RECIPES:
        recipes.resolve_recipe(name)


# Issue 26, row 12: a dangling symbolic link as --out said "File exists".
@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_dangling_symlink_out_is_named(tmp_path, capsys, no_data):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    for out in (link, link / "run"):
        code, captured = _run_cli(["--recipe", "tiny", "--out", str(out)], capsys)
        assert code == 2 and "Traceback" not in captured.err
        assert (f"--out {out}: {link} is a symbolic link to {tmp_path / 'nowhere'}, which does "
                "not exist") in captured.err, captured.err
    assert os.listdir(tmp_path) == ["link"]


# Issue 26, row 12: Ctrl-C printed a KeyboardInterrupt traceback.
def test_ctrl_c_says_how_to_resume_in_one_line(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train, "load_data", interrupted)
    out = str(tmp_path / "run")
    code = train.main(["--recipe", "tiny", "--out", out, "--overwrite", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 130
    assert captured.err.splitlines() == [
        "python -m convlab.train: interrupted; continue the run from its last checkpoint with: "
        f"python -m convlab.train --recipe tiny --out {out} --no-progress --resume"]


# Issue 26, row 15: without CONVLAB_DATA and without a network, a 30-line traceback.
def test_no_data_and_no_network_is_one_error_naming_CONVLAB_DATA(tmp_path):
    import socket
    import subprocess
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                 # closed again: nothing listens there
    env = {k: v for k, v in os.environ.items() if k != "CONVLAB_DATA"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"),
               CONVLAB_CIFAR10_URL=f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "convlab.train", "--recipe", "tiny", "--out",
                           str(out), "--no-progress"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[-1].startswith("python -m convlab.train: error: Downloading CIFAR-10 from ")
    assert "set CONVLAB_DATA to a directory containing cifar-10-batches-py/" in lines[-1]
    assert os.listdir(out) == []               # no run left behind to refuse the next attempt

"""A run's output folder: a result is never silently changed by a resumed, re-used or killed run."""

import json
import os
import re
import shutil

import numpy as np
import pytest

import convlab
from convlab import recipes, train
from convlab.runs import folder as run_folder
from convlab.solver import Solver

DATA_ROOT = os.environ.get("CONVLAB_DATA") or os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "datasets")
needs_data = pytest.mark.skipif(
    not os.path.isdir(os.path.join(DATA_ROOT, "cifar-10-batches-py")),
    reason="CIFAR-10 not found under CONVLAB_DATA")


@pytest.fixture(scope="module")
def data():
    old = os.environ.get("CONVLAB_DATA")
    os.environ["CONVLAB_DATA"] = DATA_ROOT
    try:
        return recipes.load_data(512, 64, 64)
    finally:
        if old is None:
            del os.environ["CONVLAB_DATA"]
        else:
            os.environ["CONVLAB_DATA"] = old


def _run(out, data, **kwargs):
    kwargs.setdefault("epochs", 2)
    return train.run("tiny", out=str(out), progress=False, data=data, **kwargs)


# This machine's numerics, as a run records them.
_MACHINE = run_folder.numerics(convlab.build_info())


def _files(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


# Finding 1: resuming a finished run re-evaluated other weights (the best epoch's
# batch-norm state, or the un-averaged weights of an EMA recipe) and overwrote
# model.npz and history.json with other accuracies.
@needs_data
@pytest.mark.parametrize("overrides", [[], ["ema_decay=0.9"]], ids=["plain", "ema"])
def test_resuming_a_finished_run_changes_nothing(tmp_path, data, overrides):
    first = _run(tmp_path / "a", data, overrides=overrides)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    before = _files(tmp_path / "b")
    again = _run(tmp_path / "b", data, overrides=overrides, resume=True)
    assert again["already_complete"] is True
    assert again["test_predictions"] == first["test_predictions"]
    assert again["final_val_acc"] == first["final_val_acc"]
    assert _files(tmp_path / "b") == before               # not one byte rewritten


@needs_data
@pytest.mark.parametrize("overrides", [[], ["ema_decay=0.9"]], ids=["plain", "ema"])
def test_a_run_killed_after_its_last_checkpoint_resumes_to_the_same_answer(tmp_path, data,
                                                                           overrides):
    first = _run(tmp_path / "a", data, overrides=overrides)
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "a", killed)
    # killed while evaluating: the last checkpoint is written, the outputs are not
    (killed / "model.npz").unlink()
    (killed / "history.json").unlink()
    manifest = json.loads((killed / "run.json").read_text())
    (killed / "run.json").write_text(json.dumps(dict(manifest, status="running")))
    resumed = _run(killed, data, overrides=overrides, resume=True)
    assert resumed["resumed"] is True and "already_complete" not in resumed
    assert resumed["test_predictions"] == first["test_predictions"]
    assert resumed["final_val_acc"] == first["final_val_acc"]
    assert resumed["loss_history"] == first["loss_history"]
    assert (killed / "model.npz").read_bytes() == (tmp_path / "a" / "model.npz").read_bytes()
    assert json.loads((killed / "run.json").read_text())["status"] == "complete"


# Finding 2: a fresh run into a used folder neither cleared nor refused the old
# checkpoints, and --resume took the latest without checking whose it was.
@needs_data
def test_a_fresh_run_refuses_a_used_folder_and_overwrite_replaces_only_run_files(tmp_path, data):
    out = tmp_path / "run"
    _run(out, data, epochs=2, seed=0)
    (out / "notes.txt").write_text("the user's own file")
    with pytest.raises(ValueError, match=r"already holds a training run \(checkpoint_epoch_1"
                                         r".*pass --resume to continue it or --overwrite"):
        _run(out, data, epochs=1, seed=1)
    replaced = _run(out, data, epochs=1, seed=1, overwrite=True)
    assert replaced["seed"] == 1
    assert sorted(os.listdir(out)) == ["checkpoint_epoch_1.npz", "history.json", "model.npz",
                                       "notes.txt", "run.json"]     # epoch 2's checkpoint is gone
    assert (out / "notes.txt").read_text() == "the user's own file"


@needs_data
def test_resume_refuses_another_runs_folder_naming_what_differs(tmp_path, data):
    out = tmp_path / "run"
    _run(out, data, epochs=2, seed=0)
    (out / "model.npz").unlink()          # make it resumable rather than complete
    cases = [({"seed": 1}, "seed: 0 in the folder, 1 now"),
             ({"overrides": ["flip=false"]}, "recipe entry flip: true in the folder, false now"),
             ({"epochs": 3}, "recipe entry epochs: 2 in the folder, 3 now")]
    for change, message in cases:
        kwargs = {"epochs": 2, "seed": 0, **change}
        with pytest.raises(ValueError, match=message):
            _run(out, data, resume=True, **kwargs)
    small = {k: v[:256] for k, v in data.items()}
    with pytest.raises(ValueError, match="num_train: 512 in the folder, 256 now"):
        _run(out, small, epochs=2, resume=True)


@needs_data
def test_resume_refuses_a_checkpoint_it_cannot_match_to_the_run(tmp_path, data):
    out = tmp_path / "run"
    _run(out, data, epochs=1, seed=0)
    # a checkpoint written by a Solver that recorded no fingerprint (older convlab)
    model = recipes.build_model(recipes.resolve_recipe("tiny"), 0, data["X_train"])
    Solver(model, data, batch_size=64, num_epochs=0, verbose=False, progress=False,
           seed=0).save_checkpoint(out / "checkpoint_epoch_5.npz")
    with pytest.raises(ValueError, match="records no run fingerprint"):
        _run(out, data, epochs=1, seed=0, resume=True)
    # without a manifest or checkpoint, the folder's files cannot be matched either
    for name in ("run.json", "checkpoint_epoch_1.npz", "checkpoint_epoch_5.npz"):
        (out / name).unlink()
    with pytest.raises(ValueError, match="no manifest"):
        _run(out, data, epochs=1, seed=0, resume=True)


@needs_data
def test_main_says_a_finished_run_is_complete(tmp_path, data, capsys, monkeypatch):
    monkeypatch.setattr(train, "load_data", lambda *a: data)
    args = ["--recipe", "tiny", "--epochs", "1", "--num-train", "512", "--num-val", "64",
            "--num-test", "64", "--no-progress", "--out", str(tmp_path)]
    assert train.main(args) == 0
    first = capsys.readouterr().out.splitlines()
    assert train.main(args + ["--resume"]) == 0
    second = capsys.readouterr().out.splitlines()
    assert second[0] == f"the run in {tmp_path} is already complete; its results:"
    assert second[-2:] == first[-2:]


# Item 8: checkpoints were 0600 while other outputs were 0644; a killed run's *.tmp
# files stayed behind.
@needs_data
def test_outputs_have_the_usual_mode_and_orphaned_temporary_files_go(tmp_path, data):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint_epoch_2.npz.k3x9a1.tmp").write_bytes(b"half a checkpoint")
    (out / "model.npz.q0w2e4.tmp").write_bytes(b"half a model")
    (out / "my.tmp").write_text("not the run's")
    _run(out, data, epochs=1)
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("checkpoint_epoch_1.npz", "model.npz", "history.json", "run.json"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert sorted(os.listdir(out)) == ["checkpoint_epoch_1.npz", "history.json", "model.npz",
                                       "my.tmp", "run.json"]


@pytest.mark.skipif(os.name != "posix", reason="the folder lock is an flock")
def test_two_runs_never_share_a_folder(tmp_path):
    fp = run_folder.fingerprint({"epochs": 1}, 0, 1, 1, 1, _MACHINE)
    with run_folder.RunFolder(tmp_path, fp) as folder:
        assert folder.state == "fresh"
        with pytest.raises(ValueError, match="another run is using this folder"):
            with run_folder.RunFolder(tmp_path, fp):
                pass
    with run_folder.RunFolder(tmp_path, fp) as folder:    # released on leaving
        assert folder.state == "fresh"


def test_differences_name_every_entry():
    a = run_folder.fingerprint({"epochs": 2, "widths": (4, 8)}, 0, 10, 5, 5, _MACHINE)
    b = run_folder.fingerprint({"epochs": 2, "widths": [4, 16], "tta": 1}, 3, 10, 5, 5, _MACHINE)
    assert run_folder.differences(a, a) == []
    assert run_folder.differences(a, b) == [
        "recipe entry tta: null in the folder, 1 now",
        "recipe entry widths: [4, 8] in the folder, [4, 16] now",
        "seed: 0 in the folder, 3 now"]


# Item 8: crafted checkpoints with a missing key raised KeyError tracebacks, a float64
# parameter was accepted silently; the ensemble gave a raw traceback on a missing or
# truncated model.npz.
@needs_data
def test_resume_refuses_crafted_checkpoints(tmp_path, data):
    recipe = recipes.resolve_recipe("tiny")
    model = recipes.build_model(recipe, 0, data["X_train"])
    solver = Solver(model, data, batch_size=64, num_epochs=1, verbose=False, progress=False,
                    seed=0)
    solver.train()
    good = tmp_path / "good.npz"
    solver.save_checkpoint(good)
    with np.load(good) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["meta"]))

    def crafted(name, change_arrays=None, change_meta=None):
        a, m = dict(arrays), dict(meta)
        (change_arrays or (lambda a: None))(a)
        (change_meta or (lambda m: None))(m)
        a["meta"] = np.array(json.dumps(m))
        np.savez(tmp_path / name, **a)
        return tmp_path / name

    cases = [
        (crafted("no_rng.npz", change_meta=lambda m: m.pop("rng")), "lacks the meta entries \\['rng'\\]"),
        (crafted("no_iteration.npz", change_meta=lambda m: m.pop("iteration")), "'iteration'"),
        (crafted("f64.npz", lambda a: a.update({"params/W1_1": a["params/W1_1"].astype(np.float64)})),
         "params entry 'W1_1' has shape .* and dtype float64 .* dtype float32 in the model"),
        (crafted("no_best.npz", lambda a: a.pop("best/W1_1")), "best/\\* entries"),
        (crafted("no_state.npz", lambda a: a.pop("model_state/whiten_w")), "model_state/\\* entries"),
        (crafted("no_optim.npz", change_meta=lambda m: m["optim_scalars"].pop("W1_1")),
         "optimizer settings"),
    ]
    for path, message in cases:
        fresh = recipes.build_model(recipe, 0, data["X_train"])
        other = Solver(fresh, data, batch_size=64, num_epochs=1, verbose=False, progress=False,
                       seed=0)
        with pytest.raises(ValueError, match=message):
            other.resume(path)


@needs_data
def test_ensemble_names_a_missing_or_damaged_model(tmp_path, data, capsys, monkeypatch):
    from convlab import ensemble

    monkeypatch.setattr(ensemble, "load_data", lambda **kw: pytest.fail("data loaded first"))
    _run(tmp_path / "run", data, epochs=1)
    damaged, missing = tmp_path / "damaged", tmp_path / "missing"
    damaged.mkdir()
    missing.mkdir()
    (damaged / "model.npz").write_bytes((tmp_path / "run" / "model.npz").read_bytes()[:500])
    for folder, message in ((missing, "model.npz does not exist"),
                            (damaged, "cannot read .*model.npz .*damaged")):
        with pytest.raises(ValueError, match=message):
            recipes.load_trained_model(str(folder))
        with pytest.raises(SystemExit) as exit_info:
            ensemble.main([str(tmp_path / "run"), str(folder)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "Traceback" not in err and "model.npz" in err


# Issue 26 (hardening, round 2) ---------------------------------------------------------

CLI = ["--recipe", "tiny", "--epochs", "2", "--num-train", "512", "--num-val", "64",
       "--num-test", "64", "--no-progress"]


def _cli(args, capsys):
    """``train.main(args)``: (exit status, stdout, stderr); a parser error's SystemExit too."""
    try:
        code = train.main(args)
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _interrupted_copy(src, dst):
    """A copy of the finished run ``src`` as if killed after its last checkpoint."""
    shutil.copytree(src, dst)
    (dst / "model.npz").unlink()
    (dst / "history.json").unlink()
    manifest = json.loads((dst / "run.json").read_text())
    (dst / "run.json").write_text(json.dumps(dict(manifest, status="running")))
    return dst


def _rewrite_checkpoint(path, change):
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    change(arrays)
    np.savez(path, **arrays)


# Rows 7 and 12: a bit-flipped, wrong-shape or NaN checkpoint: a traceback (status 1), or for
# NaN, exit 0 with "loss nan" and the run marked complete.
@needs_data
def test_resume_refuses_a_damaged_or_non_finite_checkpoint_in_one_line(tmp_path, data, capsys,
                                                                       monkeypatch):
    monkeypatch.setattr(train, "load_data", lambda *a: data)
    assert _cli([*CLI, "--out", str(tmp_path / "a")], capsys)[0] == 0
    with np.load(tmp_path / "a" / "checkpoint_epoch_2.npz") as archive:
        weights = archive["params/W1_1"].tobytes()

    def flip_a_bit(path):
        raw = bytearray(path.read_bytes())
        at = bytes(raw).index(weights) + len(weights) // 2
        raw[at] ^= 0x10
        path.write_bytes(bytes(raw))

    def nan(path):
        _rewrite_checkpoint(path, lambda a: a["params/W1_1"].__setitem__((0, 0, 0, 0), np.nan))

    def wrong_shape(path):
        _rewrite_checkpoint(path, lambda a: a.update({"params/W1_1": a["params/W1_1"][:1]}))

    for name, damage, message in (
            ("flipped", flip_a_bit, "cannot read checkpoint .*checkpoint_epoch_2.npz \\(BadZipFile: "
                                    "Bad CRC-32"),
            ("nan", nan, "checkpoint .*checkpoint_epoch_2.npz holds NaN or infinite values in "
                         "params/W1_1"),
            ("shape", wrong_shape, "params entry 'W1_1' has shape \\(1, ")):
        run = _interrupted_copy(tmp_path / "a", tmp_path / name)
        damage(run / "checkpoint_epoch_2.npz")
        before = _files(run)
        code, out, err = _cli([*CLI, "--out", str(run), "--resume"], capsys)
        assert code == 2, (name, err)
        assert "Traceback" not in err and out == ""
        assert re.search(message, err.splitlines()[-1]), (name, err)
        assert str(run / "checkpoint_epoch_2.npz") in err.splitlines()[-1]
        assert _files(run) == before, name                  # nothing written


# Row 7: a diverging run was never noticed.
@needs_data
def test_a_diverging_run_stops_with_its_own_exit_status(tmp_path, data, capsys, monkeypatch):
    monkeypatch.setattr(train, "load_data", lambda *a: data)
    code, out, err = _cli([*CLI, "--set", "learning_rate=1e30", "--out", str(tmp_path)], capsys)
    assert code == train.EXIT_DIVERGED == 3
    assert "Traceback" not in err and "accuracy" not in out
    assert re.match(r"python -m convlab\.train: error: the training loss became (nan|inf) at "
                    r"iteration \d+ \(epoch 1\): training diverged", err.splitlines()[-1]), err
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "running"
    assert not (tmp_path / "model.npz").exists()


# Row 12: a garbage model.npz was reported "already complete".
@needs_data
def test_a_damaged_model_of_a_finished_run_is_evaluated_again_or_named(tmp_path, data, capsys,
                                                                        monkeypatch):
    monkeypatch.setattr(train, "load_data", lambda *a: data)
    assert _cli([*CLI, "--out", str(tmp_path / "a")], capsys)[0] == 0
    model = (tmp_path / "a" / "model.npz").read_bytes()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "model.npz").write_bytes(b"garbage" * 100)
    code, out, err = _cli([*CLI, "--out", str(tmp_path / "b"), "--resume"], capsys)
    assert code == 0 and "already complete" not in out
    assert (tmp_path / "b" / "model.npz").read_bytes() == model    # from the last checkpoint
    # without a checkpoint to evaluate from, the damaged file is named
    (tmp_path / "b" / "model.npz").write_bytes(model[:len(model) // 2])
    for name in ("checkpoint_epoch_1.npz", "checkpoint_epoch_2.npz"):
        (tmp_path / "b" / name).unlink()
    code, out, err = _cli([*CLI, "--out", str(tmp_path / "b"), "--resume"], capsys)
    assert code == 2 and "Traceback" not in err
    assert f"--resume: {tmp_path / 'b' / 'model.npz'} is damaged" in err


# Row 12: --resume of a finished run on read-only storage was refused, though it only prints.
@needs_data
def test_a_finished_run_on_read_only_storage_prints_its_results(tmp_path, data, capsys,
                                                                monkeypatch):
    import errno
    import tempfile
    monkeypatch.setattr(train, "load_data", lambda *a: data)
    assert _cli([*CLI, "--out", str(tmp_path / "a")], capsys)[0] == 0
    (tmp_path / "a" / "model.npz.x1y2z3.tmp").write_bytes(b"an orphan that cannot go")
    before = _files(tmp_path / "a")

    def read_only(*args, **kwargs):             # what creating a file does on such storage
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(os, "unlink", read_only)
    code, out, err = _cli([*CLI, "--out", str(tmp_path / "a"), "--resume"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"the run in {tmp_path / 'a'} is already complete; its results:"
    assert _files(tmp_path / "a") == before
    # an unfinished run there is still refused, naming the folder
    monkeypatch.undo()
    monkeypatch.setattr(train, "load_data", lambda *a: data)
    _interrupted_copy(tmp_path / "a", tmp_path / "b")
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, out, err = _cli([*CLI, "--out", str(tmp_path / "b"), "--resume"], capsys)
    assert code == 2 and f"--out {tmp_path / 'b'}: cannot write to" in err


# Row 3: the ensemble preprocessed every member with the first run's num_train.
@needs_data
def test_ensemble_members_are_preprocessed_as_their_own_runs(tmp_path, data, capsys,
                                                             monkeypatch):
    from convlab import ensemble
    monkeypatch.setenv("CONVLAB_DATA", DATA_ROOT)
    small = recipes.load_data(256, 64, 64)                          # its own mean and scale
    a = _run(tmp_path / "a", data, epochs=1, seed=0)              # 512 training images
    b = _run(tmp_path / "b", small, epochs=1, seed=1)             # 256
    calls = []

    def load_data(num_train, num_val, num_test):
        calls.append(num_train)
        return recipes.load_data(num_train, num_val, num_test)
    monkeypatch.setattr(ensemble, "load_data", load_data)
    accuracies = {}
    for order in ([tmp_path / "a", tmp_path / "b"], [tmp_path / "b", tmp_path / "a"]):
        assert ensemble.main([*map(str, order), "--num-test", "64"]) == 0
        lines = capsys.readouterr().out.splitlines()
        accuracies[order[0].name] = dict(line.split(": test accuracy ") for line in lines[:2])
    assert sorted(calls) == [256, 256, 512, 512]
    assert accuracies["a"] == accuracies["b"]
    assert float(accuracies["a"][str(tmp_path / "a")]) == pytest.approx(a["final_test_acc"], abs=1e-4)
    assert float(accuracies["a"][str(tmp_path / "b")]) == pytest.approx(b["final_test_acc"], abs=1e-4)


# Issue 24: a run resumed on a machine with another SIMD path continued silently with other
# numbers; the fingerprint recorded neither the SIMD path nor the BLAS.
def _numerics(simd_path="avx2", threads=2, architecture="Haswell"):
    return {"simd_path": simd_path, "threads": threads,
            "blas": [{"internal_api": "openblas", "architecture": architecture, "version": "0.3.31",
                      "threads": threads}]}


def _checkpoint(out, run_info, epoch=1):
    """A checkpoint file whose only content is its fingerprint (enough for RunFolder)."""
    from convlab.runs import checkpoint

    checkpoint.save(out / f"checkpoint_epoch_{epoch}.npz", {"x": np.zeros(1)},
                    {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "run_info": run_info})


def test_the_fingerprint_records_this_machines_simd_path_blas_and_threads(tmp_path):
    from convlab.fast_layers import build_info

    _, folder = train.check_run("tiny", out=tmp_path / "run")
    recorded = folder.fingerprint["numerics"]
    assert recorded == run_folder.numerics(build_info())
    assert recorded["simd_path"] == build_info()["simd_path"]
    assert recorded["threads"] == build_info()["threads"]
    assert recorded["blas"] and all(set(b) == {"internal_api", "architecture", "version", "threads"}
                                    for b in recorded["blas"])
    assert json.loads(json.dumps(recorded)) == recorded


def test_other_numerics_are_the_same_run_but_named_and_a_strict_resume_refuses_them(tmp_path):
    here = run_folder.fingerprint({"epochs": 2}, 0, 10, 5, 5, machine=_numerics())
    there = run_folder.fingerprint({"epochs": 2}, 0, 10, 5, 5, machine=_numerics("portable", 1, "Prescott"))
    assert run_folder.differences(there, here) == []            # the same run ...
    assert run_folder.numerics_differences(there, here) == [    # ... computed with other numbers
        "SIMD path portable in the folder, avx2 now",
        "kernel threads 1 in the folder, 2 now",
        "BLAS openblas 0.3.31 (Prescott, 1 threads) in the folder, openblas 0.3.31 (Haswell, 2 threads) now"]
    assert run_folder.numerics_differences(here, here) == []
    _checkpoint(tmp_path, there)
    # the manifest of a resume that stopped before its first checkpoint records this machine
    (tmp_path / "run.json").write_text(json.dumps({"format": "convlab-run", "version": 1,
                                                   "status": "running", "fingerprint": here}))
    with run_folder.RunFolder(tmp_path, here, resume=True) as folder:
        assert folder.state == "resume" and folder.numerics_changes == run_folder.numerics_differences(there, here)
    with pytest.raises(ValueError, match=r"--strict-resume: .*checkpoint_epoch_1\.npz was computed with other "
                                         r"numerics than this machine's \(SIMD path portable in the folder, "
                                         r"avx2 now; .*\), so the continuation would not be bit-identical"):
        with run_folder.RunFolder(tmp_path, here, resume=True, strict=True):
            pass
    with run_folder.RunFolder(tmp_path, there, resume=True, strict=True) as folder:   # where it ran
        assert folder.state == "resume" and folder.numerics_changes == []
    with pytest.raises(ValueError, match="--strict-resume applies to --resume"):
        run_folder.RunFolder(tmp_path, here, strict=True)


def test_a_checkpoint_without_numerics_resumes_as_before_but_not_strictly(tmp_path):
    here = run_folder.fingerprint({"epochs": 2}, 0, 10, 5, 5, machine=_numerics())
    older = {k: v for k, v in here.items() if k != "numerics"}     # what convlab wrote before issue 24
    _checkpoint(tmp_path, older)
    assert run_folder.numerics_differences(older, here) is None
    with run_folder.RunFolder(tmp_path, here, resume=True) as folder:
        assert folder.state == "resume" and folder.numerics_changes == []
    with pytest.raises(ValueError, match=r"--strict-resume: .* records no SIMD path, BLAS or thread count"):
        with run_folder.RunFolder(tmp_path, here, resume=True, strict=True):
            pass

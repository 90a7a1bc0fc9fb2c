"""The checkpoint file: written atomically, read back with its format checked, the latest one found.

Also the atomic writes (:mod:`convlab.runs.files`) and the former module names."""

import json
import os

import numpy as np
import pytest

from convlab.runs import checkpoint, files


def test_save_and_load_round_trip(tmp_path):
    arrays = {"params/W": np.arange(6.0).reshape(2, 3), "optim/W/velocity": np.ones((2, 3), np.float32)}
    path = tmp_path / "sub" / "ckpt.npz"
    checkpoint.save(path, arrays, {"epoch": 3, "loss_history": [1.5, 0.5]})
    assert os.listdir(tmp_path / "sub") == ["ckpt.npz"]  # no temporary file left behind
    loaded, meta = checkpoint.load(path)
    assert meta == {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "epoch": 3,
                    "loss_history": [1.5, 0.5]}
    assert loaded.keys() == arrays.keys()
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


def test_load_rejects_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="cannot read checkpoint .*missing.npz"):
        checkpoint.load(tmp_path / "missing.npz")
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(2))
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        checkpoint.load(plain)
    old = tmp_path / "old.npz"
    np.savez(old, meta=np.array(json.dumps({"format": checkpoint.FORMAT, "version": 1})))
    with pytest.raises(ValueError, match="not a version-2 convlab checkpoint"):
        checkpoint.load(old)


def test_find_latest_checkpoint_compares_epochs_as_numbers(tmp_path):
    prefix = tmp_path / "run" / "checkpoint"
    assert checkpoint.find_latest_checkpoint(prefix) is None
    os.makedirs(prefix.parent)
    for epoch in (2, 10, 9):
        (prefix.parent / f"checkpoint_epoch_{epoch}.npz").write_bytes(b"")
    (prefix.parent / "checkpoint_epoch_x.npz").write_bytes(b"")
    assert checkpoint.find_latest_checkpoint(prefix) == f"{prefix}_epoch_10.npz"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "history.json"
    files.atomic_write_text(path, "old")

    def fail(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.write_atomically(path, fail)
    assert os.listdir(tmp_path) == ["history.json"]
    assert path.read_text() == "old"


@pytest.mark.parametrize("old, new", [("convlab.checkpoint", "convlab.runs.checkpoint"),
                                      ("convlab.run_dir", "convlab.runs.folder")])
def test_the_former_module_names_say_where_their_contents_went(old, new):
    import importlib
    import sys

    sys.modules.pop(old, None)
    with pytest.raises(ImportError, match=f"{old} has moved.*{new}"):
        importlib.import_module(old)

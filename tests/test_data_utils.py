"""Tests for convlab.data_utils: loading, checking, finding and downloading CIFAR-10.

No test touches the network: downloads are served from a local HTTP server on
127.0.0.1 holding a small synthetic archive in the official format. The tests
at the end read the real data when CONVLAB_DATA is set.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from convlab import data_utils
from convlab.data_utils import (
    CIFAR10DownloadError,
    CIFAR10Error,
    CIFAR10NotFoundError,
    cifar10_class_names,
    find_CIFAR10,
    get_CIFAR10_data,
    load_CIFAR10,
    load_CIFAR_batch,
)

from _data_server import serve_files
from _data_synthetic import (
    CLASS_NAMES,
    DIRNAME,
    batch_dict,
    make_archive,
    make_cifar_dir,
    md5,
    write_pickle,
)

ARCHIVE_PATH = "/cifar-10-python.tar.gz"


def rows_to_hwc(rows):
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def tree(root: Path) -> list[str]:
    """Every file and directory under ``root``, relative, sorted."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def synth(tmp_path):
    """A synthetic cifar-10-batches-py with 20 images per batch."""
    return make_cifar_dir(tmp_path / "data")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No CONVLAB_* variables, a private XDG cache, no proxy for 127.0.0.1.

    Returns the cache directory convlab should use.
    """
    for var in ("CONVLAB_DATA", "CONVLAB_CIFAR10_URL", "CONVLAB_CIFAR10_MD5"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return tmp_path / "cache"


@pytest.fixture
def archive(tmp_path):
    """Bytes and MD5 of a synthetic archive, plus what it contains."""
    info = make_cifar_dir(tmp_path / "src", seed=1)
    data = make_archive(tmp_path / "src")
    return data, md5(data), info


# ---------------------------------------------------------------------------
# Loading well-formed files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", [str, bytes])
def test_load_CIFAR_batch_layout(tmp_path, key_type):
    info = make_cifar_dir(tmp_path, key_type=key_type)
    X, y = load_CIFAR_batch(info["dir"] / "data_batch_2")
    rows = info["train_rows"][20:40]
    assert X.shape == (20, 32, 32, 3) and X.dtype == np.uint8 and X.flags.c_contiguous
    assert y.shape == (20,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, info["train_labels"][20:40])
    # pixel (row r, column c) of channel ch is entry ch*1024 + r*32 + c of a row
    i, r, c, ch = 7, 5, 30, 2
    assert X[i, r, c, ch] == rows[i, ch * 1024 + r * 32 + c]
    np.testing.assert_array_equal(X, rows_to_hwc(rows))


def test_load_CIFAR10_concatenates_batches_in_order(synth):
    Xtr, ytr, Xte, yte = load_CIFAR10(synth["dir"])
    assert Xtr.shape == (100, 32, 32, 3) and Xte.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(Xtr, rows_to_hwc(synth["train_rows"]))
    np.testing.assert_array_equal(ytr, synth["train_labels"])
    np.testing.assert_array_equal(Xte, rows_to_hwc(synth["test_rows"]))
    np.testing.assert_array_equal(yte, synth["test_labels"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_get_CIFAR10_data_splits_and_mean(synth, dtype):
    data = get_CIFAR10_data(num_training=70, num_validation=20, num_test=15,
                            dtype=dtype, root=synth["dir"])
    raw = synth["train_rows"].reshape(-1, 3, 32, 32).astype(np.float64)
    mean = raw[:70].mean(axis=0)
    expected = {
        "X_train": raw[:70] - mean, "y_train": synth["train_labels"][:70],
        "X_val": raw[70:90] - mean, "y_val": synth["train_labels"][70:90],
        "X_test": synth["test_rows"][:15].reshape(-1, 3, 32, 32) - mean,
        "y_test": synth["test_labels"][:15],
    }
    assert set(data) == set(expected)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for key, want in expected.items():
        got = data[key]
        assert got.shape == want.shape, key
        assert got.flags.c_contiguous, key
        if key.startswith("X"):
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=key)
        else:
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, want, err_msg=key)
    # every pixel of the training split is centred
    assert np.abs(data["X_train"].astype(np.float64).mean(axis=0)).max() < tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_get_CIFAR10_data_with_unit_variance(synth, dtype):
    centred = get_CIFAR10_data(num_training=70, num_validation=20, num_test=15,
                               dtype=dtype, root=synth["dir"])
    data = get_CIFAR10_data(num_training=70, num_validation=20, num_test=15,
                            dtype=dtype, root=synth["dir"], unit_variance=True)
    std = centred["X_train"].astype(np.float64).std()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert data["X_train"].astype(np.float64).std() == pytest.approx(1.0, rel=tol)
    for key in ("X_train", "X_val", "X_test"):
        assert data[key].dtype == dtype
        np.testing.assert_allclose(data[key], centred[key] / std, rtol=tol, atol=tol, err_msg=key)


def test_get_CIFAR10_data_without_mean_subtraction(synth):
    data = get_CIFAR10_data(num_training=10, num_validation=5, num_test=3,
                            subtract_mean=False, root=synth["dir"])
    np.testing.assert_array_equal(
        data["X_val"], synth["train_rows"][10:15].reshape(-1, 3, 32, 32).astype(np.float32))
    assert data["X_train"].min() >= 0 and data["X_train"].max() <= 255


def test_get_CIFAR10_data_finds_data_through_CONVLAB_DATA(synth, clean_env, monkeypatch):
    monkeypatch.setenv("CONVLAB_DATA", str(synth["dir"].parent))
    data = get_CIFAR10_data(num_training=50, num_validation=50, num_test=20)
    assert data["X_train"].shape == (50, 3, 32, 32)
    assert data["X_val"].shape == (50, 3, 32, 32)
    assert data["X_test"].shape == (20, 3, 32, 32)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_training": 90, "num_validation": 11}, "exceeds the 100 training"),
    ({"num_training": 10, "num_validation": 1, "num_test": 21}, "exceeds the 20 test"),
    ({"num_training": 0}, "num_training"),
    ({"num_training": 10, "num_validation": -1}, "num_validation"),
    ({"num_training": 10, "num_test": 2.5}, "num_test"),
    ({"num_training": True}, "num_training"),
    ({"num_training": 10, "num_validation": 1, "num_test": 1, "dtype": np.int32}, "dtype"),
])
def test_get_CIFAR10_data_rejects_bad_arguments(synth, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_CIFAR10_data(root=synth["dir"], **kwargs)


@pytest.mark.parametrize("key_type", [str, bytes])
def test_class_names(tmp_path, key_type):
    info = make_cifar_dir(tmp_path, key_type=key_type)
    assert cifar10_class_names(info["dir"]) == CLASS_NAMES


# ---------------------------------------------------------------------------
# Missing, truncated and corrupt files
# ---------------------------------------------------------------------------


def test_missing_batch_is_FileNotFoundError_naming_the_path(synth):
    path = synth["dir"] / "data_batch_3"
    path.unlink()
    with pytest.raises(CIFAR10NotFoundError) as err:
        load_CIFAR10(synth["dir"])
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)
    assert str(path) in str(err.value) and "delete" in str(err.value)


def test_missing_directory(tmp_path):
    with pytest.raises(CIFAR10NotFoundError, match="does not exist"):
        load_CIFAR10(tmp_path / "nowhere")


@pytest.mark.parametrize("keep", [0, 1, 100, 0.5, -1])
def test_truncated_batch_names_the_path(synth, keep):
    path = synth["dir"] / "test_batch"
    content = path.read_bytes()
    n = int(len(content) * keep) if isinstance(keep, float) else keep % len(content)
    path.write_bytes(content[:n])
    with pytest.raises(CIFAR10Error, match="truncated or corrupt") as err:
        load_CIFAR_batch(path)
    assert str(path) in str(err.value)
    assert "delete the directory" in str(err.value)


def test_garbage_bytes(synth):
    path = synth["dir"] / "data_batch_1"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(CIFAR10Error, match=str(path)):
        load_CIFAR10(synth["dir"])


def test_foreign_pickle_is_refused_not_executed(synth, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = synth["dir"] / "data_batch_1"
    write_pickle(path, {"data": Evil(), "labels": []})
    with pytest.raises(CIFAR10Error, match="never contains"):
        load_CIFAR_batch(path)
    assert not marker.exists()


def _good_rows(n=4):
    return np.zeros((n, 3072), dtype=np.uint8)


@pytest.mark.parametrize("obj, match", [
    ([1, 2, 3], "not a dict"),
    ({"labels": [0]}, "missing key"),
    ({"data": _good_rows().astype(np.float32), "labels": [0] * 4}, "uint8"),
    ({"data": np.zeros((4, 3071), np.uint8), "labels": [0] * 4}, r"\(N, 3072\)"),
    ({"data": [[0] * 3072] * 4, "labels": [0] * 4}, "uint8 array"),
    ({"data": _good_rows(), "labels": [0] * 3}, "to match 'data'"),
    ({"data": _good_rows(), "labels": [0, 1, 2, 10]}, r"0\.\.9"),
    ({"data": _good_rows(), "labels": [0, -1, 2, 3]}, r"0\.\.9"),
    ({"data": _good_rows(), "labels": [0.0, 1.0, 2.0, 3.0]}, "integers"),
    ({"data": _good_rows(), "labels": [0, 1, True, 3]}, "should be integers, found a bool"),
    ({"data": _good_rows(), "labels": [[0], [1], [2], [3]]}, "should be integers, found a list"),
    ({"data": _good_rows(), "labels": "0123"}, "should be a list of 4 integers, got str"),
    ({"data": _good_rows(), "labels": np.zeros((4, 1), np.int64)}, r"to match 'data', got \(4, 1\)"),
    ({"data": _good_rows(), "labels": np.zeros(4)}, "should be integers, got dtype float64"),
])
def test_structurally_wrong_batch(tmp_path, obj, match):
    path = tmp_path / "data_batch_1"
    write_pickle(path, obj)
    with pytest.raises(CIFAR10Error, match=match) as err:
        load_CIFAR_batch(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("labels", [(3, 1, 4, 1), np.array([3, 1, 4, 1], np.uint8)], ids=["tuple", "array"])
def test_labels_may_be_a_tuple_or_an_integer_array(tmp_path, labels):
    path = tmp_path / "data_batch_1"
    write_pickle(path, {"data": _good_rows(), "labels": labels})
    X, y = load_CIFAR_batch(path)
    assert y.dtype == np.int64 and y.tolist() == [3, 1, 4, 1]


def _shared_nesting(depth):
    """A list nested ``depth`` deep whose two entries are one object: tiny as a pickle, 2**depth leaves."""
    nested = [0, 0]
    for _ in range(depth - 1):
        nested = [nested, nested]
    return nested


@pytest.mark.parametrize("depth", [3, 27])
def test_nested_labels_are_refused_before_numpy_expands_them(tmp_path, depth):
    """A few KB of pickle whose labels expand to 4 * 2**27 integers (4 GiB): refused at the first entry."""
    path = tmp_path / "data_batch_1"
    write_pickle(path, {"data": _good_rows(), "labels": [_shared_nesting(depth)] * 4})
    assert path.stat().st_size < 16_000
    with pytest.raises(CIFAR10Error, match="'labels' should be integers, found a list") as err:
        load_CIFAR_batch(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("depth", [3, 27])
def test_nested_label_names_are_refused_without_printing_them(synth, depth):
    path = synth["dir"] / "batches.meta"
    write_pickle(path, {"label_names": [_shared_nesting(depth)] * 10})
    with pytest.raises(CIFAR10Error, match="'label_names' should be a list of 10 strings, got a list of 10 entries"):
        cifar10_class_names(synth["dir"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_in_place_of_a_batch_is_refused_without_blocking(synth):
    path = synth["dir"] / "data_batch_2"
    path.unlink()
    os.mkfifo(path)

    def unblock():
        """Should the loader open the FIFO and wait for a writer, be that writer and hang up."""
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader: the loader did not block
            pass

    valve = threading.Timer(30, unblock)
    valve.start()
    try:
        with pytest.raises(CIFAR10Error, match="is a FIFO, not a regular file") as err:
            load_CIFAR10(synth["dir"])
    finally:
        valve.cancel()
    assert str(path) in str(err.value)


def test_a_directory_in_place_of_a_batch_is_refused(synth):
    path = synth["dir"] / "test_batch"
    path.unlink()
    path.mkdir()
    with pytest.raises(CIFAR10Error, match="is a directory, not a regular file") as err:
        load_CIFAR_batch(path)
    assert str(path) in str(err.value)


def test_bad_meta_names_the_path(synth):
    path = synth["dir"] / "batches.meta"
    write_pickle(path, {"label_names": ["a", "b"]})
    with pytest.raises(CIFAR10Error, match="label_names") as err:
        cifar10_class_names(synth["dir"])
    assert str(path) in str(err.value)


# ---------------------------------------------------------------------------
# Finding the data
# ---------------------------------------------------------------------------


def test_root_may_be_the_directory_or_its_parent(synth, clean_env):
    assert find_CIFAR10(synth["dir"]) == synth["dir"]
    assert find_CIFAR10(synth["dir"].parent) == synth["dir"]
    assert find_CIFAR10(str(synth["dir"].parent)) == synth["dir"]
    with pytest.raises(CIFAR10NotFoundError, match="neither"):
        find_CIFAR10(synth["dir"].parent.parent)


def test_CONVLAB_DATA_is_used_and_a_wrong_one_is_an_error_not_a_download(
        synth, clean_env, monkeypatch, archive):
    monkeypatch.setenv("CONVLAB_DATA", str(synth["dir"].parent))
    assert find_CIFAR10(cache_dir=clean_env) == synth["dir"]

    data, digest, _ = archive
    with serve_files({ARCHIVE_PATH: data}) as (base, requests):
        monkeypatch.setenv("CONVLAB_DATA", str(synth["dir"]))  # one level too deep
        with pytest.raises(CIFAR10NotFoundError, match="CONVLAB_DATA") as err:
            find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=digest)
        assert f"containing {DIRNAME}/" in str(err.value)
        assert requests == []
    assert tree(clean_env) == []


def test_no_download_when_download_is_false(clean_env):
    with pytest.raises(CIFAR10NotFoundError, match="download=False"):
        find_CIFAR10(cache_dir=clean_env, download=False)
    assert tree(clean_env) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="XDG_CACHE_HOME only decides the cache location on Linux")
def test_default_cache_honours_XDG_CACHE_HOME(clean_env, tmp_path):
    assert data_utils.default_cache_dir() == tmp_path / "xdg" / "convlab"


# ---------------------------------------------------------------------------
# Downloading from a local server
# ---------------------------------------------------------------------------


def test_download_checks_extracts_and_is_not_repeated(clean_env, monkeypatch, archive, tmp_path):
    data, digest, info = archive
    with serve_files({ARCHIVE_PATH: data}) as (base, requests):
        monkeypatch.setenv("CONVLAB_CIFAR10_URL", base + ARCHIVE_PATH)
        monkeypatch.setenv("CONVLAB_CIFAR10_MD5", digest)
        cache = tmp_path / "xdg" / "convlab"  # the default cache under XDG_CACHE_HOME
        found = find_CIFAR10()
        assert found == cache / DIRNAME
        assert requests == [ARCHIVE_PATH]
        # only the unpacked directory is left: no archive, no temporary files
        assert tree(cache) == [DIRNAME] + sorted(
            f"{DIRNAME}/{p.name}" for p in info["dir"].iterdir())
        for p in info["dir"].iterdir():
            assert (found / p.name).read_bytes() == p.read_bytes()

        # a second call, and loading, use the cache without asking the server
        assert find_CIFAR10() == found
        d = get_CIFAR10_data(num_training=90, num_validation=10, num_test=20)
        assert requests == [ARCHIVE_PATH]
    np.testing.assert_array_equal(d["y_val"], info["train_labels"][90:])
    assert cifar10_class_names() == CLASS_NAMES


def test_download_with_keyword_arguments(clean_env, archive):
    data, digest, info = archive
    with serve_files({ARCHIVE_PATH: data}) as (base, requests):
        found = find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=digest,
                             progressbar=False)
        assert found == clean_env / DIRNAME
        Xtr, ytr, _, _ = load_CIFAR10(found)
        np.testing.assert_array_equal(ytr, info["train_labels"])
        assert requests == [ARCHIVE_PATH]


def test_checksum_mismatch_leaves_nothing_to_trust(clean_env, archive):
    data, digest, _ = archive
    wrong = "0" * 32
    with serve_files({ARCHIVE_PATH: data}) as (base, requests):
        url = base + ARCHIVE_PATH
        with pytest.raises(CIFAR10DownloadError, match="MD5") as err:
            find_CIFAR10(cache_dir=clean_env, url=url, md5=wrong, progressbar=False)
        assert url in str(err.value)
        assert tree(clean_env) == []
        # the next run downloads again, and succeeds with the right checksum
        find_CIFAR10(cache_dir=clean_env, url=url, md5=digest, progressbar=False)
        assert requests == [ARCHIVE_PATH, ARCHIVE_PATH]
    assert (clean_env / DIRNAME / "test_batch").is_file()


def test_dropped_connection_leaves_no_partial_file(clean_env, archive):
    data, digest, _ = archive
    with serve_files({ARCHIVE_PATH: data}, drop_after=len(data) // 2) as (base, requests):
        with pytest.raises(CIFAR10DownloadError) as err:
            find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=digest,
                         progressbar=False)
        assert requests == [ARCHIVE_PATH]
    assert base in str(err.value)
    assert tree(clean_env) == []
    with serve_files({ARCHIVE_PATH: data}) as (base, requests):
        find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=digest,
                     progressbar=False)
    assert (clean_env / DIRNAME / "batches.meta").is_file()


def test_http_error_is_a_download_error(clean_env, archive):
    _, digest, _ = archive
    with serve_files({}) as (base, _):
        with pytest.raises(CIFAR10DownloadError, match="404"):
            find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=digest,
                         progressbar=False)
    assert tree(clean_env) == []


def _assert_bad_archive_leaves_nothing(clean_env, data, match):
    with serve_files({ARCHIVE_PATH: data}) as (base, _):
        with pytest.raises(CIFAR10DownloadError, match=match):
            find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=md5(data),
                         progressbar=False)
    assert tree(clean_env) == []


def test_archive_that_cannot_be_unpacked(clean_env, archive):
    data, _, _ = archive
    # The checksum matches (it is computed for the damaged bytes): unpacking must fail.
    _assert_bad_archive_leaves_nothing(clean_env, data[: len(data) // 2], "could not be unpacked")


def test_archive_missing_a_batch(clean_env, tmp_path):
    info = make_cifar_dir(tmp_path / "src")
    (info["dir"] / "data_batch_4").unlink()
    _assert_bad_archive_leaves_nothing(clean_env, make_archive(tmp_path / "src"), "data_batch_4")


def test_archive_with_a_corrupt_batch(clean_env, tmp_path):
    info = make_cifar_dir(tmp_path / "src")
    path = info["dir"] / "data_batch_5"
    path.write_bytes(path.read_bytes()[:-50])
    _assert_bad_archive_leaves_nothing(clean_env, make_archive(tmp_path / "src"), "data_batch_5")


def test_archive_members_outside_the_data_directory_are_ignored(clean_env, tmp_path):
    make_cifar_dir(tmp_path / "src")
    data = make_archive(tmp_path / "src", extra={"../escaped": b"x", "other/file": b"y"})
    with serve_files({ARCHIVE_PATH: data}) as (base, _):
        found = find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=md5(data),
                             progressbar=False)
    assert found == clean_env / DIRNAME
    assert not (clean_env.parent / "escaped").exists()
    assert tree(clean_env) == [DIRNAME] + sorted(f"{DIRNAME}/{p.name}" for p in found.iterdir())


def test_interrupted_extraction_leaves_only_the_checked_archive(clean_env, archive, monkeypatch):
    data, digest, _ = archive
    real_extract = data_utils._extract

    def extract_then_interrupt(archive_path, dest):
        real_extract(archive_path, dest)
        raise KeyboardInterrupt

    with serve_files({ARCHIVE_PATH: data}) as (base, requests):
        url = base + ARCHIVE_PATH
        monkeypatch.setattr(data_utils, "_extract", extract_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            find_CIFAR10(cache_dir=clean_env, url=url, md5=digest, progressbar=False)
        # The half-done directory is gone; the archive, whose checksum was verified, stays.
        assert tree(clean_env) == ["cifar-10-python.tar.gz"]
        monkeypatch.setattr(data_utils, "_extract", real_extract)
        find_CIFAR10(cache_dir=clean_env, url=url, md5=digest, progressbar=False)
        assert requests == [ARCHIVE_PATH]  # pooch re-checked the archive instead of downloading
    assert "cifar-10-python.tar.gz" not in tree(clean_env)
    assert (clean_env / DIRNAME / "data_batch_1").is_file()


def test_another_process_finishing_first_is_not_an_error(clean_env, archive, monkeypatch):
    data, digest, info = archive

    def other_process_wins(archive_path, dest):
        # meanwhile another process unpacked the data and deleted the archive
        shutil.copytree(info["dir"], clean_env / DIRNAME)
        Path(archive_path).unlink()
        raise FileNotFoundError(archive_path)

    monkeypatch.setattr(data_utils, "_extract", other_process_wins)
    with serve_files({ARCHIVE_PATH: data}) as (base, _):
        found = find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=digest,
                             progressbar=False)
    assert found == clean_env / DIRNAME
    assert tree(clean_env) == [DIRNAME] + sorted(f"{DIRNAME}/{p.name}" for p in found.iterdir())


def test_a_damaged_cached_archive_is_downloaded_again(clean_env, archive):
    data, digest, _ = archive
    clean_env.mkdir(parents=True)
    (clean_env / "cifar-10-python.tar.gz").write_bytes(data[:100])
    with serve_files({ARCHIVE_PATH: data}) as (base, requests):
        find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=digest,
                     progressbar=False)
        assert requests == [ARCHIVE_PATH]
    assert tree(clean_env)[0] == DIRNAME


# ---------------------------------------------------------------------------
# The real data set (needs CONVLAB_DATA)
# ---------------------------------------------------------------------------


def _real_data_root() -> Path:
    env = os.environ.get("CONVLAB_DATA")
    if not env:
        pytest.skip("CONVLAB_DATA is not set: set it to a directory containing "
                    "cifar-10-batches-py/ to test on the real CIFAR-10")
    return Path(env)


def _snapshot(root: Path) -> dict:
    """Name, size and modification time of everything under ``root`` (and of ``root``)."""
    entries = {".": root.stat().st_mtime_ns}
    for p in root.rglob("*"):
        st = p.stat()
        entries[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return entries


@pytest.fixture(scope="module")
def real():
    """Load the real data once for this module; check that nothing was written meanwhile."""
    root = _real_data_root()
    before = _snapshot(root)
    directory = find_CIFAR10()
    data = get_CIFAR10_data()
    raw = load_CIFAR10(directory)
    names = cifar10_class_names()
    test_batch = load_CIFAR_batch(directory / "test_batch")
    yield {"root": root, "dir": directory, "data": data, "raw": raw, "names": names,
           "test_batch": test_batch, "before": before}


def test_real_directory_comes_from_CONVLAB_DATA(real):
    assert real["dir"] == real["root"] / DIRNAME


def test_real_shapes_dtypes_and_labels(real):
    data = real["data"]
    shapes = {"X_train": (49000, 3, 32, 32), "y_train": (49000,),
              "X_val": (1000, 3, 32, 32), "y_val": (1000,),
              "X_test": (1000, 3, 32, 32), "y_test": (1000,)}
    assert {k: v.shape for k, v in data.items()} == shapes
    for k, v in data.items():
        assert v.dtype == (np.float32 if k.startswith("X") else np.int64), k
        if k.startswith("y"):
            assert v.min() == 0 and v.max() == 9, k
    Xtr, ytr, Xte, yte = real["raw"]
    assert Xtr.shape == (50000, 32, 32, 3) and Xtr.dtype == np.uint8
    assert Xte.shape == (10000, 32, 32, 3) and Xte.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(ytr, minlength=10), np.full(10, 5000))
    np.testing.assert_array_equal(np.bincount(yte, minlength=10), np.full(10, 1000))
    np.testing.assert_array_equal(real["test_batch"][0], Xte)
    np.testing.assert_array_equal(real["test_batch"][1], yte)
    assert real["names"] == CLASS_NAMES


def test_real_mean_subtraction_and_splits(real):
    data = real["data"]
    Xtr, ytr, Xte, yte = real["raw"]
    per_pixel = data["X_train"].mean(axis=0, dtype=np.float64)
    assert per_pixel.shape == (3, 32, 32)
    assert np.abs(per_pixel).max() < 1e-3
    # the image mean (channel means R, G, B about 125, 123, 114) was what got removed
    mean_image = Xtr[:49000].mean(axis=0, dtype=np.float64).transpose(2, 0, 1)
    np.testing.assert_allclose(mean_image.mean(axis=(1, 2)), [125.3, 122.9, 113.9], atol=0.5)
    for key, raw_X, raw_y in [("X_val", Xtr[49000:], ytr[49000:]),
                              ("X_test", Xte[:1000], yte[:1000])]:
        want = raw_X.transpose(0, 3, 1, 2) - mean_image
        np.testing.assert_allclose(data[key], want, rtol=0, atol=1e-4, err_msg=key)
        np.testing.assert_array_equal(data["y" + key[1:]], raw_y)


def test_real_loading_wrote_nothing_under_CONVLAB_DATA(real):
    assert _snapshot(real["root"]) == real["before"]


# Hardening review, item 8: a valid batch re-pickled with the highest protocol
# (protocol 5 rebuilds arrays with numpy's _frombuffer) was called "truncated or
# corrupt"; CONVLAB_DATA="" was ignored and a download was tried.
@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_a_batch_re_pickled_with_any_protocol_loads(synth, protocol):
    path = synth["dir"] / "data_batch_1"
    with open(path, "rb") as f:
        obj = pickle.load(f, encoding="latin1")
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    X, y = load_CIFAR_batch(str(path))
    assert X.shape == (20, 32, 32, 3)
    assert np.array_equal(y, synth["train_labels"][:20])


def test_an_empty_CONVLAB_DATA_is_an_error_not_a_download(clean_env, monkeypatch, archive):
    data, digest, _ = archive
    with serve_files({ARCHIVE_PATH: data}) as (base, requests):
        monkeypatch.setenv("CONVLAB_DATA", "")
        with pytest.raises(CIFAR10NotFoundError, match="CONVLAB_DATA is set but empty"):
            find_CIFAR10(cache_dir=clean_env, url=base + ARCHIVE_PATH, md5=digest)
        assert requests == []
    assert tree(clean_env) == []

"""A tiny synthetic CIFAR-10 in the official "python version" layout, for tests.

The files mirror the originals: pickle protocol 2, dicts with ``batch_label``,
``labels``, ``data`` and ``filenames`` (``data`` a uint8 array of shape
(N, 3072), ``labels`` a list of ints), and a ``batches.meta`` with
``num_cases_per_batch``, ``label_names`` and ``num_vis``. Keys can be written as
``str`` or as ``bytes`` (what Python 2 strings look like under
``encoding='bytes'``), so the loader is tested on both spellings.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

DIRNAME = "cifar-10-batches-py"
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]


def _key(k: str, key_type: type):
    return k.encode("latin1") if key_type is bytes else k


def batch_dict(data: np.ndarray, labels, label: str, key_type: type = str) -> dict:
    """The dict stored in one batch file."""
    n = data.shape[0]
    return {
        _key("batch_label", key_type): _key(label, key_type),
        _key("labels", key_type): [int(v) for v in labels],
        _key("data", key_type): data,
        _key("filenames", key_type): [_key(f"img_{i:05d}.png", key_type) for i in range(n)],
    }


def write_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_cifar_dir(parent: Path, n_per_batch: int = 20, seed: int = 0,
                   key_type: type = str) -> dict:
    """Write ``parent/cifar-10-batches-py/`` and return what is in it.

    Returns
    -------
    info : dict
        ``dir`` (the Path), ``train_rows`` (5 * n_per_batch, 3072) uint8,
        ``train_labels`` (5 * n_per_batch,), ``test_rows`` (n_per_batch, 3072),
        ``test_labels`` (n_per_batch,).
    """
    rng = np.random.default_rng(seed)
    d = Path(parent) / DIRNAME
    d.mkdir(parents=True)
    rows, labels = [], []
    for k, name in enumerate(TRAIN + ["test_batch"]):
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        y = rng.permutation(np.arange(n_per_batch) % 10)
        label = f"training batch {k + 1} of 5" if k < 5 else "testing batch 1 of 1"
        write_pickle(d / name, batch_dict(data, y, label, key_type))
        rows.append(data)
        labels.append(y)
    meta = {
        _key("num_cases_per_batch", key_type): n_per_batch,
        _key("label_names", key_type): [_key(c, key_type) for c in CLASS_NAMES],
        _key("num_vis", key_type): 3072,
    }
    write_pickle(d / "batches.meta", meta)
    return {
        "dir": d,
        "train_rows": np.concatenate(rows[:5]),
        "train_labels": np.concatenate(labels[:5]),
        "test_rows": rows[5],
        "test_labels": labels[5],
    }


def make_archive(src_parent: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """A gzipped tar of ``src_parent/cifar-10-batches-py`` (plus ``extra`` members), as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(Path(src_parent) / DIRNAME, arcname=DIRNAME)
        for name, content in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()

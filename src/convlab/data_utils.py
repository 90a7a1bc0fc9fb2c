"""Finding, downloading and loading CIFAR-10.

CIFAR-10 holds 60,000 colour images of 32x32 pixels in 10 classes: 50,000 for
training (five batches of 10,000) and 10,000 for testing. This module reads
the "python version" of the data set, a directory called
``cifar-10-batches-py/`` with the files ``data_batch_1`` ... ``data_batch_5``,
``test_batch`` and ``batches.meta``. Each batch is a pickled dictionary whose
``data`` entry is a ``uint8`` array of shape ``(N, 3072)``: every row holds the
1024 red values of one image, then the 1024 green values, then the 1024 blue
values, each channel in row-major order. Its ``labels`` entry is a list of
``N`` integers in ``0..9``.

Where the data comes from
-------------------------
:func:`find_CIFAR10` decides which directory to read, in this order:

1. an explicit ``root`` argument (the ``cifar-10-batches-py`` directory itself,
   or a directory that contains it);
2. the environment variable ``CONVLAB_DATA``, which names a directory that
   contains ``cifar-10-batches-py/``. This copy is only ever read, never
   written to, and nothing is downloaded when it is missing: a wrong (or
   set but empty) ``CONVLAB_DATA`` is an error, not a reason to fetch 170 MB;
3. a per-user cache directory, ``pooch.os_cache("convlab")`` (on Linux
   ``$XDG_CACHE_HOME/convlab``, by default ``~/.cache/convlab``). If the data
   is not there yet, the official archive is downloaded
   (:data:`CIFAR10_URL`), its MD5 checksum is compared with the published one
   (:data:`CIFAR10_MD5`), and it is unpacked into the cache.

The download is written to a temporary file and only renamed to
``cifar-10-python.tar.gz`` once its checksum matches; the archive is unpacked
into a temporary directory, every batch is checked, and only then is the
directory renamed to ``cifar-10-batches-py`` in one atomic step. An
interrupted or failed download therefore never leaves behind a file or
directory that a later run would trust. The archive is deleted once it has
been unpacked.

For tests and mirrors, the URL and checksum can be changed with the keyword
arguments of :func:`find_CIFAR10` or with the environment variables
``CONVLAB_CIFAR10_URL`` and ``CONVLAB_CIFAR10_MD5``.

Checking the files
------------------
The batch files are not compared with official checksums (a copy rebuilt from
another source is just as usable); instead every batch is checked for its
structure when it is loaded: the keys, the array shape and dtype, and the label
range. A missing, truncated or corrupt batch raises a :class:`CIFAR10Error`
whose message names the file and says what to do about it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from convlab.validation import check_int

__all__ = [
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "CIFAR10Error",
    "CIFAR10NotFoundError",
    "CIFAR10DownloadError",
    "find_CIFAR10",
    "default_cache_dir",
    "load_CIFAR_batch",
    "load_CIFAR10",
    "get_CIFAR10_data",
    "cifar10_class_names",
]

#: Where the official "CIFAR-10 python version" archive is published.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: The MD5 checksum published for that archive on https://www.cs.toronto.edu/~kriz/cifar.html.
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

#: Name of the directory the archive unpacks to.
CIFAR10_DIRNAME = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
ARCHIVE_NAME = "cifar-10-python.tar.gz"

ENV_DATA = "CONVLAB_DATA"
ENV_URL = "CONVLAB_CIFAR10_URL"
ENV_MD5 = "CONVLAB_CIFAR10_MD5"

NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)  # channels, height, width, as stored in a batch row
ROW_LENGTH = 3 * 32 * 32


class CIFAR10Error(ValueError):
    """A CIFAR-10 file is missing, truncated or does not have the expected structure."""


class CIFAR10NotFoundError(CIFAR10Error, FileNotFoundError):
    """The CIFAR-10 directory or one of its files does not exist where it was looked for."""


class CIFAR10DownloadError(CIFAR10Error):
    """Downloading, checking or unpacking the CIFAR-10 archive failed."""


# ---------------------------------------------------------------------------
# Reading one pickled batch
# ---------------------------------------------------------------------------


def _advice(path: Path) -> str:
    """Say what to do about a bad file ``path`` inside a cifar-10-batches-py directory."""
    directory = Path(path).parent
    return (
        f"If convlab downloaded this copy, delete the directory {directory} and run again "
        f"to download a fresh one. Otherwise replace the file with the one from the official "
        f"archive ({CIFAR10_URL}), or set {ENV_DATA} to a directory containing a complete "
        f"{CIFAR10_DIRNAME}/."
    )


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that only builds what a CIFAR-10 batch contains.

    A batch holds dicts, lists, strings, numbers and one NumPy array, so the
    only globals it needs are NumPy's array-rebuilding functions. Refusing all
    others means a damaged or foreign file fails with a clear error instead of
    running arbitrary code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        # pickle protocol 5 (``pickle.HIGHEST_PROTOCOL``) rebuilds arrays from a buffer
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"the pickle refers to {module}.{name}, which a CIFAR-10 file never contains"
            )
        return super().find_class(module, name)


def _open_regular_file(path: Path):
    """Open ``path`` for reading in binary mode, if it is a regular file.

    A FIFO, a device or a socket in place of a batch file could block the
    read forever or never end, so anything but a regular file (or a symbolic
    link to one) is a :class:`CIFAR10Error` naming the file.  The file is
    opened without blocking (opening a FIFO would otherwise wait for a
    writer) and checked with ``fstat``, so that what is checked is what is
    read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else \
                "a device or socket"
            raise CIFAR10Error(f"CIFAR-10 file {path} is {kind}, not a regular file. {_advice(path)}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _unpickle(path: Path) -> dict:
    """Load the pickled dictionary in ``path``; keys are returned as ``str``.

    The original files were written by Python 2, whose strings unpickle as
    ``bytes`` or ``str`` depending on the encoding; ``latin1`` turns them into
    ``str`` and keeps NumPy's array bytes intact. Keys that still arrive as
    ``bytes`` are decoded, so both spellings are accepted.  Only regular files
    are read (see :func:`_open_regular_file`).
    """
    path = Path(path)
    try:
        with _open_regular_file(path) as f:
            obj = _BatchUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise CIFAR10NotFoundError(f"CIFAR-10 file {path} does not exist. {_advice(path)}") from None
    except CIFAR10Error:
        raise
    except OSError as e:
        raise CIFAR10Error(f"CIFAR-10 file {path} could not be read ({e}). {_advice(path)}") from e
    except Exception as e:  # any unpickling failure means a truncated or corrupt file
        raise CIFAR10Error(
            f"CIFAR-10 file {path} is truncated or corrupt (unpickling failed: "
            f"{type(e).__name__}: {e}). {_advice(path)}"
        ) from e
    if not isinstance(obj, dict):
        raise CIFAR10Error(
            f"CIFAR-10 file {path} holds a {type(obj).__name__}, not a dict. {_advice(path)}"
        )
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one batch file.

    Returns
    -------
    data : ndarray of shape (N, 3072), uint8
        One image per row, channel-major (all red, then green, then blue values).
    labels : ndarray of shape (N,), int64
        Class indices in ``0..9``.
    """
    path = Path(path)
    batch = _unpickle(path)

    def bad(what: str) -> CIFAR10Error:
        return CIFAR10Error(f"CIFAR-10 file {path} is not a valid batch: {what}. {_advice(path)}")

    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise bad(f"missing key(s) {missing} (found {sorted(map(str, batch))})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != ROW_LENGTH:
        desc = (f"array of shape {data.shape} and dtype {data.dtype}"
                if isinstance(data, np.ndarray) else type(data).__name__)
        raise bad(f"'data' should be a uint8 array of shape (N, {ROW_LENGTH}), got {desc}")
    return data, _checked_labels(batch["labels"], data.shape[0], bad)


def _checked_labels(labels, n: int, bad) -> np.ndarray:
    """A batch's ``labels`` as an int64 array of shape ``(n,)``, each in ``0..9``.

    ``labels`` must be a list (or tuple) of ``n`` integers, or a 1-D integer
    array of length ``n``; anything else raises ``bad(what is wrong)``.  The
    type, the length and every entry are checked *before* NumPy sees the
    labels: ``np.asarray`` expands nested lists in full, and a pickle of a
    few kilobytes can nest lists that share their entries 27 levels deep,
    which would expand to gigabytes.
    """
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.shape[0] != n:
            raise bad(f"'labels' should have shape ({n},) to match 'data', got {labels.shape}")
        if n and labels.dtype.kind not in "iu":
            raise bad(f"'labels' should be integers, got dtype {labels.dtype}")
        low, high = (int(labels.min()), int(labels.max())) if n else (0, 0)
    elif isinstance(labels, (list, tuple)):
        if len(labels) != n:
            raise bad(f"'labels' should have shape ({n},) to match 'data', got a "
                      f"{type(labels).__name__} of {len(labels)} entries")
        for value in labels:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise bad(f"'labels' should be integers, found a {type(value).__name__}")
        low, high = (int(min(labels)), int(max(labels))) if n else (0, 0)
    else:
        raise bad(f"'labels' should be a list of {n} integers, got {type(labels).__name__}")
    if low < 0 or high >= NUM_CLASSES:
        raise bad(f"labels should lie in 0..{NUM_CLASSES - 1}, found {low}..{high}")
    return np.asarray(labels, dtype=np.int64)


def load_CIFAR_batch(filename):
    """Load one CIFAR-10 batch file (``data_batch_k`` or ``test_batch``).

    Parameters
    ----------
    filename : str or os.PathLike
        Path of the pickled batch.

    Returns
    -------
    X : ndarray of shape (N, 32, 32, 3), uint8
        The images, channels last (height, width, RGB), pixel values 0..255,
        C-contiguous. ``N`` is 10,000 for the official batches. The pixels stay
        ``uint8`` to save memory (a float64 copy of the training set is 1.2 GB):
        convert before doing arithmetic, e.g. ``X.astype(np.float32)``, because
        ``uint8`` arithmetic silently wraps around.
    y : ndarray of shape (N,), int64
        The labels, in ``0..9``.

    Raises
    ------
    CIFAR10NotFoundError
        If the file does not exist.
    CIFAR10Error
        If it is truncated, corrupt, or lacks the structure of a batch.
    """
    data, labels = _read_batch(Path(filename))
    X = np.ascontiguousarray(data.reshape(-1, *IMAGE_SHAPE).transpose(0, 2, 3, 1))
    return X, labels


def _load_raw(directory: Path):
    """Read all six batches of ``directory`` as rows (see :func:`_read_batch`)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CIFAR10NotFoundError(
            f"CIFAR-10 directory {directory} does not exist. Pass the path of a "
            f"{CIFAR10_DIRNAME}/ directory, or set {ENV_DATA} to a directory containing one."
        )
    train = [_read_batch(directory / name) for name in TRAIN_BATCHES]
    Xtr = np.concatenate([d for d, _ in train])
    ytr = np.concatenate([y for _, y in train])
    Xte, yte = _read_batch(directory / TEST_BATCH)
    return Xtr, ytr, Xte, yte


def load_CIFAR10(root):
    """Load the whole of CIFAR-10 from a ``cifar-10-batches-py`` directory.

    Parameters
    ----------
    root : str or os.PathLike
        The ``cifar-10-batches-py`` directory (use :func:`find_CIFAR10` to
        locate or download it).

    Returns
    -------
    Xtr : ndarray of shape (50000, 32, 32, 3), uint8
        Training images (``data_batch_1`` to ``data_batch_5`` in order),
        channels last, values 0..255.
    Ytr : ndarray of shape (50000,), int64
        Training labels in ``0..9``.
    Xte : ndarray of shape (10000, 32, 32, 3), uint8
        Test images (``test_batch``).
    Yte : ndarray of shape (10000,), int64
        Test labels in ``0..9``.

    The counts are those of the official files; a smaller copy with the same
    layout loads as well.

    Raises
    ------
    CIFAR10NotFoundError, CIFAR10Error
        As for :func:`load_CIFAR_batch`, naming the offending file.
    """
    Xtr, ytr, Xte, yte = _load_raw(Path(root))

    def to_hwc(rows):
        return np.ascontiguousarray(rows.reshape(-1, *IMAGE_SHAPE).transpose(0, 2, 3, 1))

    return to_hwc(Xtr), ytr, to_hwc(Xte), yte


def cifar10_class_names(root=None):
    """The ten class names, in label order, read from ``batches.meta``.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Where to look, as for :func:`find_CIFAR10` (which is called to resolve it).

    Returns
    -------
    names : list of str, length 10
        ``['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog',
        'horse', 'ship', 'truck']`` for the official data.
    """
    path = find_CIFAR10(root) / META_FILE
    meta = _unpickle(path)
    names = meta.get("label_names")
    if not isinstance(names, (list, tuple)) or len(names) != NUM_CLASSES \
            or not all(isinstance(n, (str, bytes)) for n in names):
        # described by type and length: the repr of nested lists can be huge
        got = f"a {type(names).__name__}" + (f" of {len(names)} entries"
                                             if isinstance(names, (list, tuple)) else "")
        raise CIFAR10Error(
            f"CIFAR-10 file {path} is not a valid batches.meta: 'label_names' should be a "
            f"list of {NUM_CLASSES} strings, got {got}. {_advice(path)}"
        )
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


# ---------------------------------------------------------------------------
# Finding and downloading
# ---------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """The per-user cache directory convlab downloads into.

    ``pooch.os_cache("convlab")``: on Linux ``$XDG_CACHE_HOME/convlab``
    (``~/.cache/convlab`` when the variable is unset), on macOS
    ``~/Library/Caches/convlab``, on Windows a folder under ``%LOCALAPPDATA%``.
    It is evaluated on every call, so changing ``XDG_CACHE_HOME`` takes effect.
    """
    import pooch

    return Path(pooch.os_cache("convlab"))


def _batches_dir_in(root: Path) -> Path | None:
    """``root`` itself if it holds the batches, else ``root/cifar-10-batches-py`` if that exists."""
    if (root / CIFAR10_DIRNAME).is_dir():
        return root / CIFAR10_DIRNAME
    if root.is_dir() and (root / TRAIN_BATCHES[0]).exists():
        return root
    return None


def find_CIFAR10(root=None, download=True, *, cache_dir=None, url=None, md5=None,
                 progressbar=True) -> Path:
    """Locate the ``cifar-10-batches-py`` directory, downloading it if needed.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Use this directory: either ``cifar-10-batches-py`` itself or a
        directory containing it. Nothing is downloaded.
    download : bool, default True
        When neither ``root`` nor ``CONVLAB_DATA`` is given and the cache has
        no copy, download the archive (if False, raise instead).
    cache_dir : str or os.PathLike, optional
        The cache to use instead of :func:`default_cache_dir`.
    url : str, optional
        Where to download from; default ``$CONVLAB_CIFAR10_URL`` or
        :data:`CIFAR10_URL`.
    md5 : str, optional
        The archive's expected MD5 (32 hex digits); default
        ``$CONVLAB_CIFAR10_MD5`` or :data:`CIFAR10_MD5`.
    progressbar : bool, default True
        Show a tqdm progress bar while downloading.

    Returns
    -------
    path : pathlib.Path
        The ``cifar-10-batches-py`` directory.

    Raises
    ------
    CIFAR10NotFoundError
        If ``root`` or ``CONVLAB_DATA`` does not lead to a
        ``cifar-10-batches-py`` directory, or the cache is empty and
        ``download`` is False.
    CIFAR10DownloadError
        If the download fails, its checksum does not match, or the archive
        cannot be unpacked into a complete, valid directory.
    """
    if root is not None:
        root = Path(root).expanduser()
        found = _batches_dir_in(root)
        if found is None:
            raise CIFAR10NotFoundError(
                f"{root} is neither a {CIFAR10_DIRNAME}/ directory nor a directory containing "
                f"one. Pass the right path, or pass root=None to use {ENV_DATA} or the "
                f"download cache."
            )
        return found

    env = os.environ.get(ENV_DATA)
    if env is not None and not env.strip():
        raise CIFAR10NotFoundError(
            f"{ENV_DATA} is set but empty. Set it to a directory containing "
            f"{CIFAR10_DIRNAME}/, or unset it to download CIFAR-10 into the cache."
        )
    if env:
        found = Path(env).expanduser() / CIFAR10_DIRNAME
        if not found.is_dir():
            raise CIFAR10NotFoundError(
                f"{ENV_DATA}={env} but {found} is not a directory. Set {ENV_DATA} to a "
                f"directory containing {CIFAR10_DIRNAME}/, or unset it to download CIFAR-10 "
                f"into the cache {default_cache_dir() if cache_dir is None else cache_dir}."
            )
        return found

    cache = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    target = cache / CIFAR10_DIRNAME
    if target.is_dir():
        return target
    if not download:
        raise CIFAR10NotFoundError(
            f"CIFAR-10 is not in the cache ({target} does not exist) and download=False. "
            f"Call with download=True, or set {ENV_DATA} to a directory containing "
            f"{CIFAR10_DIRNAME}/."
        )
    url = url or os.environ.get(ENV_URL) or CIFAR10_URL
    md5 = md5 or os.environ.get(ENV_MD5) or CIFAR10_MD5
    _download_and_extract(url, md5, cache, progressbar=progressbar)
    return target


def _download_and_extract(url: str, md5: str, cache: Path, progressbar: bool = True) -> None:
    """Download the archive into ``cache`` and unpack it to ``cache/cifar-10-batches-py``.

    Every step writes under a temporary name and renames only when it has
    succeeded, so a crash at any point leaves nothing a later run would use.
    """
    import pooch

    cache.mkdir(parents=True, exist_ok=True)
    # pooch streams into a temporary file in `cache`, checks the hash, and
    # only then moves it to ARCHIVE_NAME; on failure it deletes the temporary.
    # An existing archive whose hash does not match is downloaded again.
    # pooch logs "Downloading data from ..." before it knows whether the network
    # answers; the progress bar shows a download that works, an error one that fails
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        archive = Path(pooch.retrieve(url, known_hash=f"md5:{md5}", fname=ARCHIVE_NAME,
                                      path=cache, progressbar=progressbar))
    except ValueError as e:  # pooch reports a checksum mismatch as ValueError
        raise CIFAR10DownloadError(
            f"The file downloaded from {url} does not have the expected MD5 {md5} ({e}). "
            f"It was discarded; run again to retry, or download and unpack the archive "
            f"yourself and set {ENV_DATA} to the directory containing {CIFAR10_DIRNAME}/."
        ) from e
    except OSError as e:  # requests' exceptions are OSErrors too
        raise CIFAR10DownloadError(
            f"Downloading CIFAR-10 from {url} into {cache} failed ({type(e).__name__}: {e}). "
            f"Nothing was kept; run again to retry, or set {ENV_DATA} to a directory "
            f"containing {CIFAR10_DIRNAME}/."
        ) from e
    finally:
        logger.setLevel(level)

    target = cache / CIFAR10_DIRNAME
    staging = Path(tempfile.mkdtemp(prefix=".cifar-10-extract-", dir=cache))
    try:
        try:
            _extract(archive, staging)
            _read_batch(staging / CIFAR10_DIRNAME / TEST_BATCH)
            for name in TRAIN_BATCHES:
                _read_batch(staging / CIFAR10_DIRNAME / name)
            _unpickle(staging / CIFAR10_DIRNAME / META_FILE)
        except (CIFAR10Error, tarfile.TarError, OSError, EOFError, zlib.error) as e:
            if target.is_dir():  # another process finished the same download meanwhile
                return
            archive.unlink(missing_ok=True)
            raise CIFAR10DownloadError(
                f"The archive {archive} (from {url}) could not be unpacked into a valid "
                f"{CIFAR10_DIRNAME}/ ({type(e).__name__}: {e}). The archive was deleted; "
                f"run again to download it again."
            ) from e
        try:
            os.rename(staging / CIFAR10_DIRNAME, target)
        except OSError:
            if not target.is_dir():  # not merely another process finishing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink(missing_ok=True)


def _extract(archive: Path, dest: Path) -> None:
    """Unpack the regular files under ``cifar-10-batches-py/`` of ``archive`` into ``dest``."""
    with tarfile.open(archive, "r:gz") as tar:
        members = []
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if Path(m.name).is_absolute() or ".." in parts or not parts \
                    or parts[0] != CIFAR10_DIRNAME:
                continue  # nothing outside cifar-10-batches-py/ is needed
            if m.isfile() or m.isdir():
                members.append(m)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - older 3.11 patch releases
            tar.extractall(dest, members=members)


# ---------------------------------------------------------------------------
# The data dictionary the book trains on
# ---------------------------------------------------------------------------


def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000,
                     subtract_mean=True, dtype=np.float32, root=None, unit_variance=False):
    """CIFAR-10 split into train, validation and test sets, ready for a ConvNet.

    The splits are:

    - train: the first ``num_training`` of the 50,000 training images;
    - validation: the ``num_validation`` training images that follow them
      (images 49,000..49,999 with the defaults), so train and validation
      never overlap;
    - test: the first ``num_test`` images of ``test_batch``.

    With ``subtract_mean``, the per-pixel mean of the training split (an array
    of shape (3, 32, 32)) is subtracted from all three splits, so the training
    images have mean zero at every pixel. With ``unit_variance`` as well, all
    three splits are then divided by the standard deviation of the training
    split's values (one number), so those have variance one.

    Parameters
    ----------
    num_training : int, default 49000
        Size of the training split (at least 1).
    num_validation : int, default 1000
        Size of the validation split; ``num_training + num_validation`` must
        not exceed the 50,000 training images.
    num_test : int, default 1000
        Size of the test split, at most 10,000.
    subtract_mean : bool, default True
        Centre the data on the training split's per-pixel mean.
    dtype : floating dtype, default np.float32
        dtype of the returned images.
    root : str or os.PathLike, optional
        Where the data is, as for :func:`find_CIFAR10` (by default
        ``CONVLAB_DATA`` or the download cache, downloading if needed).
    unit_variance : bool, default False
        Scale the data to unit variance over the training split (after the
        mean is subtracted, if it is).

    Returns
    -------
    data : dict
        ``X_train`` : ndarray of shape (num_training, 3, 32, 32), channels first
        ``y_train`` : ndarray of shape (num_training,), int64
        ``X_val``   : ndarray of shape (num_validation, 3, 32, 32)
        ``y_val``   : ndarray of shape (num_validation,), int64
        ``X_test``  : ndarray of shape (num_test, 3, 32, 32)
        ``y_test``  : ndarray of shape (num_test,), int64

        The images are C-contiguous arrays of ``dtype``; without mean
        subtraction their values are the raw pixels 0..255.

    Raises
    ------
    ValueError
        If a count is negative or not an integer, the splits need more images
        than there are, or ``dtype`` is not a floating type.
    CIFAR10Error
        If the data cannot be found, downloaded or read (see
        :func:`find_CIFAR10` and :func:`load_CIFAR_batch`).
    """
    num_training = check_int("num_training", num_training)
    num_validation = check_int("num_validation", num_validation, minimum=0)
    num_test = check_int("num_test", num_test, minimum=0)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")

    Xtr, ytr, Xte, yte = _load_raw(find_CIFAR10(root))
    if num_training + num_validation > Xtr.shape[0]:
        raise ValueError(
            f"num_training + num_validation = {num_training} + {num_validation} exceeds the "
            f"{Xtr.shape[0]} training images"
        )
    if num_test > Xte.shape[0]:
        raise ValueError(f"num_test = {num_test} exceeds the {Xte.shape[0]} test images")

    def images(rows):
        # A batch row is already channel-major, so (N, 3072) -> (N, 3, 32, 32) is a reshape.
        return rows.reshape(-1, *IMAGE_SHAPE).astype(dtype)

    train = slice(0, num_training)
    val = slice(num_training, num_training + num_validation)
    data = {
        "X_train": images(Xtr[train]), "y_train": ytr[train].copy(),
        "X_val": images(Xtr[val]), "y_val": ytr[val].copy(),
        "X_test": images(Xte[:num_test]), "y_test": yte[:num_test].copy(),
    }
    if subtract_mean:
        mean_image = Xtr[train].mean(axis=0, dtype=np.float64).reshape(IMAGE_SHAPE)
        mean_image = mean_image.astype(dtype)
        for key in ("X_train", "X_val", "X_test"):
            data[key] -= mean_image
    if unit_variance:
        scale = dtype.type(1.0 / data["X_train"].std())
        for key in ("X_train", "X_val", "X_test"):
            data[key] *= scale
    return data

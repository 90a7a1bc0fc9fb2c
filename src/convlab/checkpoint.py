"""Solver checkpoints on disk: the file format, atomic writing, checked reading, the latest one.

:class:`convlab.solver.Solver` decides what goes into a checkpoint
(:meth:`~convlab.solver.Solver.save_checkpoint`) and whether one fits it
(:meth:`~convlab.solver.Solver.resume`); this module writes and reads the
file. Its atomic writers are the package's only ones (the training command
line writes its history and model through them too).

Checkpoint format
-----------------
One uncompressed ``.npz`` file (read it with
``np.load(path, allow_pickle=False)``; nothing is pickled):

- ``meta``: a 0-d string array holding JSON: format name and version, epoch,
  iteration, batch size, number of training examples, update-rule name, the
  base learning rate, the scalar entries of every parameter's optimizer config,
  all histories, ``best_val_acc``, the EMA decay, and the generator state
  ``rng.bit_generator.state``;
- ``params/<name>``: the model parameters;
- ``model_state/<key>``: ``model.state_dict()``, if the model has one;
- ``optim/<name>/<key>``: the array entries (velocities, moments, caches) of
  the optimizer config of parameter ``<name>``;
- ``best/<name>``: the best parameters so far;
- ``best_state/<key>``: the model state (``state_dict``) that went with them,
  if the model has one;
- ``ema/<name>``: the moving average of the parameters, when ``ema_decay`` is set;
- ``ema_state/<key>``: the moving average of the model's floating-point state
  (``state_dict``), when ``ema_decay`` is set and the model has state.

The file is written to a temporary file in the same directory and moved into
place with ``os.replace``, so a crash never leaves a half-written checkpoint
under the final name.
"""

import contextlib
import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["FORMAT", "VERSION", "save", "load", "load_meta", "check_finite",
           "find_latest_checkpoint", "atomic_savez", "atomic_write_text", "write_atomically"]

#: The ``format`` and ``version`` entries of every checkpoint's ``meta``.
FORMAT = "convlab-solver-checkpoint"
VERSION = 2


def save(path, arrays, meta):
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : str or path
        The file name, used as given (``.npz`` is not appended).
    arrays : dict of str -> ndarray
        The sections of the format (``params/<name>``, ...).
    meta : dict
        JSON-serialisable; stored after the format name and version.
    """
    arrays = dict(arrays)
    arrays["meta"] = np.array(json.dumps({"format": FORMAT, "version": VERSION, **meta}))
    atomic_savez(path, arrays)


def load(path):
    """Read a checkpoint written by :func:`save`.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    arrays : dict of str -> ndarray
        Every entry but ``meta``.
    meta : dict

    Raises
    ------
    ValueError
        If the file is missing, damaged, not a checkpoint, or of another
        format version.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        # missing, truncated, not a zip file, or no JSON 'meta' entry
        raise ValueError(f"cannot read checkpoint {path} ({type(error).__name__}: {error}); "
                         "it is missing, damaged or not written by Solver.save_checkpoint") from error
    _check_format(path, meta)
    return arrays, meta


def load_meta(path):
    """The ``meta`` dict of a checkpoint written by :func:`save`, without reading its arrays.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    meta : dict

    Raises
    ------
    ValueError
        As :func:`load`.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read checkpoint {path} ({type(error).__name__}: {error}); "
                         "it is missing, damaged or not written by Solver.save_checkpoint") from error
    _check_format(path, meta)
    return meta


def check_finite(path, arrays):
    """ValueError, naming ``path`` and the entry, if a floating-point array holds NaN or infinity.

    A run whose weights (or optimizer state, or moving averages) are not
    finite has diverged, or its file is damaged; continuing it would train
    on NaN without a word.

    Parameters
    ----------
    path : str or path
        The checkpoint the arrays come from (for the message).
    arrays : dict of str -> ndarray
        As :func:`load` returns them.
    """
    for key, value in arrays.items():
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.inexact) and not np.all(np.isfinite(value)):
            raise ValueError(f"checkpoint {os.fspath(path)} holds NaN or infinite values in "
                             f"{key}: the run it saves had diverged, or the file is damaged; "
                             "it cannot be resumed")


def _check_format(path, meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{path} is not a version-{VERSION} convlab checkpoint")


def find_latest_checkpoint(checkpoint_name):
    """The checkpoint with the highest epoch written under the prefix ``checkpoint_name``.

    Parameters
    ----------
    checkpoint_name : str or path
        The ``checkpoint_name`` given to :class:`convlab.solver.Solver`.

    Returns
    -------
    path : str or None
        ``f"{checkpoint_name}_epoch_{e}.npz"`` for the largest ``e`` found, or
        None if there is none.
    """
    prefix = os.fspath(checkpoint_name)
    directory = os.path.dirname(prefix) or "."
    stem = os.path.basename(prefix) + "_epoch_"
    best = None
    if not os.path.isdir(directory):
        return None
    for entry in os.listdir(directory):
        if entry.startswith(stem) and entry.endswith(".npz"):
            number = entry[len(stem):-len(".npz")]
            if number.isdigit() and (best is None or int(number) > best):
                best = int(number)
    return None if best is None else f"{prefix}_epoch_{best}.npz"


def atomic_savez(path, arrays):
    """``np.savez(path, **arrays)``, atomically (see :func:`write_atomically`).

    Parameters
    ----------
    path : str or path
    arrays : dict of str -> ndarray
    """
    write_atomically(path, lambda f: np.savez(f, **arrays))


def atomic_write_text(path, text):
    """Write the string ``text`` (UTF-8) to ``path``, atomically (see :func:`write_atomically`)."""
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def _file_mode():
    """The mode ``open`` gives a new file: 0o666 less the process's umask (read once, at import)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def write_atomically(path, write):
    """Call ``write(f)`` on a temporary binary file beside ``path``, then move it into place.

    ``os.replace`` is atomic, so a reader (or a crash) never sees a
    half-written file under the final name: it is the old file or the new
    one. The temporary file is removed if ``write`` fails (a killed process
    leaves it behind as ``<name>.<random>.tmp``; :mod:`convlab.run_dir`
    removes those). The file gets the usual mode (0o666 less the umask).

    Parameters
    ----------
    path : str or path
    write : callable taking a binary file object
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        # mkstemp makes the file private (0o600); the result gets the mode
        # of any other file the user creates.
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

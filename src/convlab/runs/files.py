"""Atomic writes: a reader, or a crash, sees the old file or the new one, never half of either.

Every file a run writes (checkpoints, ``model.npz``, ``history.json``,
``run.json``) and every file a sweep writes goes through
:func:`write_atomically`: the bytes go to a temporary file beside the target,
which is then moved into place with ``os.replace`` (atomic on POSIX and
Windows).
"""

import contextlib
import json
import os
import tempfile

import numpy as np

__all__ = ["FILE_MODE", "write_atomically", "atomic_savez", "atomic_write_text", "write_json"]


def _file_mode():
    """The mode ``open`` gives a new file: 0o666 less the process's umask (read once, at import)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


#: The permission bits a new file gets (0o666 less the umask at import).
FILE_MODE = _file_mode()


def write_atomically(path, write):
    """Call ``write(f)`` on a temporary binary file beside ``path``, then move it into place.

    ``os.replace`` is atomic, so a reader (or a crash) never sees a
    half-written file under the final name: it is the old file or the new
    one. The temporary file is removed if ``write`` fails (a killed process
    leaves it behind as ``<name>.<random>.tmp``; :mod:`convlab.runs.folder`
    removes those). The file gets the usual mode (:data:`FILE_MODE`).

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
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically; tuples become lists, other objects strings.

    Parameters
    ----------
    path : str or path
    obj : JSON-serialisable dict or list (tuples and other objects allowed, see above)
    """
    text = json.dumps(obj, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    atomic_write_text(path, text)

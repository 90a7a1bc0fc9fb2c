"""Files that appear whole or not at all: write a temporary file beside the target, then rename it.

A reader of ``summary.csv``, ``results.json`` or ``autograder.zip`` sees
either the previous file or the complete new one, never a half-written file,
even if the grader is killed while writing: :func:`os.replace` within one
folder is atomic on POSIX and Windows.
"""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def replacing(path, mode=0o644):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on an error it is removed.

    Parameters
    ----------
    path : path
        The file to (re)write. Its folder must exist.
    mode : int
        Permission bits of the new file, exactly (the umask does not apply).

    Yields
    ------
    pathlib.Path
        Where to write the new content.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path, text, mode=0o644):
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`replacing`."""
    with replacing(path, mode) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

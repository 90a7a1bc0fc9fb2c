"""The grader's signature on its results: an HMAC with a key that no submission can read.

A grade record at rest (``<submission>.json``) is only as trustworthy as the
folder it sits in. The grader signs each record it writes with HMAC-SHA256
under a key kept in the instructor's configuration folder, outside anything a
worker can reach, and on a re-run trusts a previous record only if
:func:`verify` accepts it and its fingerprint (submission hash + grader
version) is the current one. A record written or edited by anyone without the
key (a forked child of a submission, say) is graded again.

The key is 32 random bytes in ``$XDG_CONFIG_HOME/convlab/grading.key``
(``~/.config/convlab/grading.key`` when that variable is unset), made on
first use with mode 0600 in folders made with mode 0700.
"""

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

KEY_BYTES = 32


class IntegrityError(RuntimeError):
    """The grading key cannot be used: unreadable, readable by others, or of the wrong length."""


def default_key_path():
    """``$XDG_CONFIG_HOME/convlab/grading.key``, or ``~/.config/convlab/grading.key``.

    A relative ``XDG_CONFIG_HOME`` is ignored, as the XDG specification says.
    """
    config = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and Path(config).is_absolute() else Path.home() / ".config"
    return base / "convlab" / "grading.key"


def _make_folders(folder):
    """Create ``folder`` and its missing parents with mode 0700 (existing ones are left as they are)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another grader
            pass
        else:
            os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def _create_key(path):
    """Write a new random key to ``path`` unless one exists; complete or absent, never half-written."""
    handle = None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        _make_folders(path.parent)
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(handle, secrets.token_bytes(KEY_BYTES))
        os.fsync(handle)
        os.close(handle)
        handle = None
        os.link(temporary, path)  # fails if another grader made the key first: then that key is used
    except FileExistsError:
        pass
    except OSError as err:
        raise IntegrityError(f"cannot create the grading key {path}: {err.strerror}") from None
    finally:
        if handle is not None:
            os.close(handle)
        temporary.unlink(missing_ok=True)


def load_key(path=None):
    """The grading key: 32 bytes read from ``path``, which is created if it does not exist.

    Parameters
    ----------
    path : path or None
        The key file (default: :func:`default_key_path`).

    Returns
    -------
    bytes
        The key, ``KEY_BYTES`` long.

    Raises
    ------
    IntegrityError
        The file (named in the message) is not a regular file, is a symbolic
        link, belongs to another user, can be read or written by its group or
        by others, or does not hold exactly 32 bytes.
    """
    path = Path(path) if path is not None else default_key_path()
    if not os.path.lexists(path):
        _create_key(path)
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise IntegrityError(f"cannot read the grading key {path}: {err.strerror} "
                             "(a symbolic link is refused)") from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise IntegrityError(f"the grading key {path} is not a regular file")
        if os.name == "posix":
            if info.st_uid != os.getuid():
                raise IntegrityError(f"the grading key {path} belongs to another user (uid {info.st_uid})")
            if info.st_mode & 0o077:
                raise IntegrityError(f"the grading key {path} has mode {stat.S_IMODE(info.st_mode):04o}: group or "
                                     f"others may use it; make it private (chmod 600 {path}) or delete it "
                                     "to make a new one (earlier results are then graded again)")
        key = os.read(handle, KEY_BYTES + 1)
    finally:
        os.close(handle)
    if len(key) != KEY_BYTES:
        raise IntegrityError(f"the grading key {path} holds {len(key)}{'+' if len(key) > KEY_BYTES else ''} bytes, "
                             f"not {KEY_BYTES}; delete it to make a new one (earlier results are then graded again)")
    return key


def canonical(record):
    """The bytes that are signed: ``record`` without its ``"hmac"`` field, as canonical JSON.

    Keys sorted, no spaces (``separators=(",", ":")``), ASCII only, so the
    same record always gives the same bytes, whatever wrote it.
    """
    unsigned = {key: value for key, value in record.items() if key != "hmac"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sign(key, record):
    """The HMAC-SHA256 of ``record`` (without its ``"hmac"`` field) under ``key``, as hex.

    Parameters
    ----------
    key : bytes
        From :func:`load_key`.
    record : dict
        A grade record, JSON-serialisable.

    Returns
    -------
    str
        64 hex digits; store them as ``record["hmac"]``.
    """
    return hmac.new(key, canonical(record), hashlib.sha256).hexdigest()


def verify(key, record):
    """Whether ``record["hmac"]`` is the signature of the rest of ``record`` under ``key``.

    Compared in constant time (:func:`hmac.compare_digest`). Anything that is
    not a signed, JSON-serialisable dict is simply not verified (False).
    """
    if not isinstance(record, dict) or not isinstance(record.get("hmac"), str):
        return False
    try:
        expected = sign(key, record)
    except (TypeError, ValueError):
        return False
    return hmac.compare_digest(expected.encode("ascii"), record["hmac"].encode("utf-8"))

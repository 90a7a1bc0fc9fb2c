"""Who handed a submission in: ``submission.json``, written by ``collect``, read back by the grader.

``python -m convlab.submit collect --student-id ID --name NAME`` puts this
file into the zip next to the assignment's files::

    {"id": "s123", "name": "Alice A.", "submitted": "2026-12-01T10:00:00+00:00",
     "files": {"src/convlab/layers.py": "<sha256 hex>"}}

``id`` and ``name`` are left out when the student gave neither (nor set
``CONVLAB_STUDENT_ID`` / ``CONVLAB_STUDENT_NAME``); ``submitted`` is the UTC
time of collecting. The file is written on the student's machine, so the
grader trusts nothing in it beyond its shape (:func:`parse_identity`): short
strings without control characters and a time with its time zone. In
particular ``submitted`` is the student's clock: a roster and the time your
learning platform recorded are what settle who handed in what, and when.
"""

import hashlib
import json
from datetime import datetime, timezone

IDENTITY_FILE = "submission.json"
# Longest accepted value of each field, in characters; a larger file is not read at all.
LIMITS = {"id": 64, "name": 200, "submitted": 40}
MAX_BYTES = 64 * 1024


class IdentityError(ValueError):
    """A student id, name or ``submission.json`` that is not well formed."""


def check_text(what, value, limit):
    """``value`` stripped, if it is a string of 1 to ``limit`` printable characters.

    Parameters
    ----------
    what : str
        How the value is named in the error (``--student-id``, ``"name" in submission.json``).
    value : object
    limit : int

    Raises
    ------
    IdentityError
        ``value`` is not a string, is empty, too long, or holds a control character.
    """
    if not isinstance(value, str):
        raise IdentityError(f"{what} must be a string, not {type(value).__name__}")
    text = value.strip()
    if not text:
        raise IdentityError(f"{what} is empty")
    if len(text) > limit:
        raise IdentityError(f"{what} has {len(text)} characters; at most {limit} are allowed")
    if not text.isprintable():
        raise IdentityError(f"{what} holds a control character (a newline, a tab, ...)")
    return text


def parse_time(what, value):
    """The time of an ISO 8601 ``value`` that names its time zone (``...+01:00`` or ``...Z``), in UTC.

    Raises
    ------
    IdentityError
        Not a string, not ISO 8601, or without a time zone.
    """
    text = check_text(what, value, LIMITS["submitted"])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise IdentityError(f"{what} {text!r} is not an ISO 8601 time (e.g. 2026-12-01T23:59:00+01:00)") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise IdentityError(f"{what} {text!r} has no time zone; add one, e.g. {text}+00:00")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise IdentityError(f"{what} {text!r} is out of range") from None


def describe(files, student_id=None, name=None, now=None, labels=("--student-id", "--name")):
    """The content of ``submission.json`` for a submission of ``files``.

    Parameters
    ----------
    files : dict
        ``{path: bytes}`` of the files handed in.
    student_id, name : str or None
        Left out of the result when None.
    now : datetime or None
        The time of collecting (default: now), stored in UTC.
    labels : (str, str)
        How ``student_id`` and ``name`` are named in an error (an option or a variable).

    Returns
    -------
    dict
        ``{"id"?, "name"?, "submitted", "files": {path: sha256 hex}}``.

    Raises
    ------
    IdentityError
        ``student_id`` or ``name`` is not a short printable string.
    """
    record = {}
    if student_id is not None:
        record["id"] = check_text(labels[0], student_id, LIMITS["id"])
    if name is not None:
        record["name"] = check_text(labels[1], name, LIMITS["name"])
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    record["submitted"] = moment.isoformat(timespec="seconds")
    record["files"] = {path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())}
    return record


def parse_identity(data):
    """The identity in the bytes of a ``submission.json``: ``{"id", "name", "submitted"}``.

    Only these three fields are read, each validated; a missing one is None.
    ``submitted`` comes back in UTC. Every other field (``files`` too) is
    ignored: nothing the student's machine wrote is trusted further.

    Raises
    ------
    IdentityError
        The data is too large, not UTF-8 JSON, not an object, or a field is malformed.
    """
    if len(data) > MAX_BYTES:
        raise IdentityError(f"{IDENTITY_FILE} has {len(data)} bytes; at most {MAX_BYTES} are read")
    try:
        content = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise IdentityError(f"{IDENTITY_FILE} is not UTF-8 JSON ({type(err).__name__})") from None
    if not isinstance(content, dict):
        raise IdentityError(f"{IDENTITY_FILE} holds a {type(content).__name__}, not an object")
    identity = {"id": None, "name": None, "submitted": None}
    for field in ("id", "name"):
        if content.get(field) is not None:
            identity[field] = check_text(f'"{field}" in {IDENTITY_FILE}', content[field], LIMITS[field])
    if content.get("submitted") is not None:
        moment = parse_time(f'"submitted" in {IDENTITY_FILE}', content["submitted"])
        identity["submitted"] = moment.isoformat(timespec="seconds")
    return identity

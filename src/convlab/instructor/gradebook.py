"""From grade records to what students and learning platforms get: feedback, roster, summary.csv.

A grade record is what :func:`convlab.instructor.grade.grade` returns per submission::

    {"submission": "alice",
     "student": {"id": "s123", "name": "Alice A.", "submitted": "2026-12-01T10:00:00+00:00"} or None,
     "score": 17.0, "max_score": 20.0, "fingerprint": "...", "grader": "...",
     "tests": [{"name": "conv.forward", "status": "fail", "points": 4.0, "max_points": 5.0, "output": "...",
                "tests": [{"name": "tests/test_layers.py::test_x", "status": "pass", "points": 1.0,
                           "max_points": 1.0, "visibility": "visible", "output": "..."}, ...]}, ...]}

one entry of ``tests`` per exercise, in the assignment's order, each with one
entry per test. A test's ``visibility`` says what a student may learn of it:

- ``visible``: its name, status, points and output;
- ``after_due_date``: its name, status and points; its output once released;
- ``hidden``: nothing but its share of the exercise's points.

A missing or unknown visibility counts as ``hidden``.

``student`` comes from the submission's ``submission.json``
(:func:`read_identity`), which the student's own machine wrote: the
``submitted`` time there is the student's clock. A roster (:func:`read_roster`)
decides which student a submission belongs to whenever one is given.
"""

import csv
import io
import os
import re
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from convlab.runs.files import atomic_write_text
from convlab.submit.identity import IDENTITY_FILE, MAX_BYTES, IdentityError, parse_identity, parse_time

VISIBILITIES = ("visible", "after_due_date", "hidden")
# A path of two or more components, e.g. /home/alice/course/x.py or /tmp/grades/: shown as its last one.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+@~-]+/)+[\w.+@~-]*")
# Environment values shorter than this are too common to be secrets (``1``, ``C.UTF-8``) and are left alone.
_SHORTEST_SECRET = 8


class GradebookError(RuntimeError):
    """A roster, a ``--due`` time or the grades cannot be used as given."""


# --- what a student may see -------------------------------------------------------------------------


def _last_component(match):
    """The basename of a matched absolute path (its last non-empty component)."""
    parts = [part for part in match.group(0).split("/") if part]
    return parts[-1] if parts else ""


def scrub(text, environ=None):
    """``text`` without the grader's environment values and absolute paths.

    Each value of ``environ`` (default: this process's environment) of at least
    eight characters is replaced by ``$NAME``; every absolute path of two or
    more components (``/home/...``, ``/tmp/...``, ``/work/...``, ``/root/...``,
    site-packages, ...) by its last component.

    Parameters
    ----------
    text : str
    environ : mapping or None

    Returns
    -------
    str
    """
    environ = os.environ if environ is None else environ
    values = sorted(((value, name) for name, value in environ.items() if len(value) >= _SHORTEST_SECRET),
                    key=lambda pair: -len(pair[0]))
    for value, name in values:  # longest first, so a value that contains another goes whole
        text = text.replace(value, f"${name}")
    return _ABSOLUTE_PATH.sub(_last_component, text)


def visibility(test):
    """A test's visibility: ``visible``, ``after_due_date`` or ``hidden`` (also for a missing or unknown one)."""
    shown = test.get("visibility")
    return shown if shown in VISIBILITIES else "hidden"


def visible_output(test, released=False, environ=None):
    """The output of ``test`` that its student may read, :func:`scrub`-bed; ``""`` when none may be read.

    A ``visible`` test's output is shown; an ``after_due_date`` one's only when
    ``released``; a hidden one's never.
    """
    shown = visibility(test)
    if shown == "visible" or (shown == "after_due_date" and released):
        return scrub(str(test.get("output") or ""), environ)
    return ""


def _points(value):
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def student_feedback(record, released=False, environ=None):
    """What the student may see of a grade record.

    Parameters
    ----------
    record : dict
        A grade record (see the module's docstring).
    released : bool
        Whether the outputs of ``after_due_date`` tests may be shown (after the due date).
    environ : mapping or None
        The environment whose values are scrubbed from outputs (default: this process's).

    Returns
    -------
    dict
        ``{"score", "max_score", "tests": [exercise, ...]}``, an exercise being
        ``{"name", "status", "points", "max_points", "output", "tests": [...]}``
        whose tests are its visible and after-due-date ones, each
        ``{"name", "status", "points", "max_points", "visibility", "output"}``.
        Hidden tests count in the exercise's points and are not listed. The
        exercise's ``output`` is rebuilt from the listed tests alone, and
        every output and name is :func:`scrub`-bed.
    """
    exercises = []
    for exercise in record.get("tests", []):
        shown, hidden_points, hidden_max = [], 0, 0
        for test in exercise.get("tests", []):
            if visibility(test) == "hidden":
                hidden_points += test.get("points", 0)
                hidden_max += test.get("max_points", 0)
                continue
            shown.append({
                "name": scrub(str(test.get("name", "")), environ),
                "status": test.get("status"), "points": test.get("points"), "max_points": test.get("max_points"),
                "visibility": visibility(test), "output": visible_output(test, released, environ),
            })
        lines = [f"{t['status']:>12}  {_points(t['points'])}/{_points(t['max_points'])}  {t['name']}" for t in shown]
        if hidden_max:
            lines.append(f"{'':>12}  {_points(hidden_points)}/{_points(hidden_max)}  hidden tests")
        details = [f"--- {t['name']}\n{t['output']}" for t in shown if t["status"] != "pass" and t["output"]]
        exercises.append({
            "name": exercise.get("name"), "status": exercise.get("status"),
            "points": exercise.get("points"), "max_points": exercise.get("max_points"),
            "output": "\n".join(lines + details[:3]), "tests": shown,
        })
    return {"score": record.get("score"), "max_score": record.get("max_score"), "tests": exercises}


# --- who handed in what --------------------------------------------------------------------------------


def read_identity(submission):
    """The student identity a submission carries in its ``submission.json``, validated.

    Parameters
    ----------
    submission : path
        A submission folder or zip.

    Returns
    -------
    (dict or None, str or None)
        ``({"id", "name", "submitted"}, None)`` (absent fields are None), or
        ``(None, reason)`` when there is no ``submission.json`` or it is
        malformed, too large, or (in a folder) not a regular file. Never raises
        for anything in the submission.
    """
    path = Path(submission)
    try:
        if path.is_dir():
            target = path / IDENTITY_FILE
            info = os.lstat(target)
            if not stat.S_ISREG(info.st_mode):
                return None, f"{IDENTITY_FILE} is not a regular file (a link or a folder is not read)"
            if info.st_size > MAX_BYTES:
                return None, f"{IDENTITY_FILE} has {info.st_size} bytes; at most {MAX_BYTES} are read"
            # no link followed, no wait on a pipe put there after the check above
            handle = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
            with os.fdopen(handle, "rb") as stream:
                if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                    return None, f"{IDENTITY_FILE} is not a regular file (a link or a folder is not read)"
                data = stream.read(MAX_BYTES + 1)
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if IDENTITY_FILE not in archive.namelist():
                    return None, f"the zip has no {IDENTITY_FILE}"
                with archive.open(IDENTITY_FILE) as stream:
                    data = stream.read(MAX_BYTES + 1)
        else:
            return None, f"{path.name} is neither a folder nor a zip file"
        return parse_identity(data), None
    except FileNotFoundError:
        return None, f"there is no {IDENTITY_FILE}"
    except IdentityError as err:
        return None, str(err)
    except (OSError, zipfile.BadZipFile, zlib.error, RuntimeError, ValueError, EOFError) as err:
        return None, f"{IDENTITY_FILE} cannot be read ({type(err).__name__})"


def read_roster(path):
    """The class list: a CSV whose header has ``id`` and ``submission`` (and maybe ``name``, ``email``).

    Parameters
    ----------
    path : path
        The CSV file (UTF-8, a byte-order mark allowed; other columns are ignored).

    Returns
    -------
    list of dict
        ``{"id", "submission", "name", "email"}`` per student, in file order;
        a missing optional column or cell is ``""``.

    Raises
    ------
    GradebookError
        Naming the file (and line): unreadable, no header, ``id`` or
        ``submission`` missing from the header or empty on a line, an id or a
        submission given twice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise GradebookError(f"roster {path}: cannot be read ({err})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise GradebookError(f"roster {path}: empty; it needs a header line with the columns id and submission")
    columns = [cell.strip().lower() for cell in header]
    missing = [column for column in ("id", "submission") if column not in columns]
    if missing:
        raise GradebookError(f"roster {path}, line 1: no column {' and no column '.join(missing)} in the header "
                             f"({', '.join(header)})")
    students, ids, submissions = [], {}, {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(columns, (cell.strip() for cell in row)))
        student = {field: cells.get(field, "") for field in ("id", "submission", "name", "email")}
        for field, seen in (("id", ids), ("submission", submissions)):
            if not student[field]:
                raise GradebookError(f"roster {path}, line {line}: the {field} is empty")
            if student[field] in seen:
                raise GradebookError(f"roster {path}, line {line}: {field} {student[field]!r} is already on "
                                     f"line {seen[student[field]]}")
            seen[student[field]] = line
        students.append(student)
    return students


def parse_due(text):
    """The due time ``--due`` names: ISO 8601 with its time zone, e.g. ``2026-12-01T23:59+01:00``.

    Returns
    -------
    datetime.datetime
        Aware, in UTC.

    Raises
    ------
    GradebookError
        Naming ``--due``: not ISO 8601, or no time zone.
    """
    try:
        return parse_time("--due", text)
    except IdentityError as err:
        raise GradebookError(str(err)) from None


# --- summary.csv -----------------------------------------------------------------------------------------


def _hours_late(submitted, due):
    """Hours from ``due`` to the ISO time ``submitted`` (0 when on time), or None when unknown."""
    if due is None or not submitted:
        return None
    try:
        moment = parse_time("submitted", submitted)
    except IdentityError:
        return None
    return max(0.0, (moment - due).total_seconds() / 3600)


def _cell(text):
    """A text cell that a spreadsheet will not run as a formula (``=``, ``+``, ``-``, ``@`` get a ``'``)."""
    text = "" if text is None else str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _rows(records, roster):
    """``([student_id, name, submission, record or None], ...)`` of the summary, and its problems.

    Roster rows first, in the roster's order, then the graded submissions not
    on it. An id claimed by a submission's ``submission.json`` that another
    row has (a roster student's, or another submission's claim) is not
    believed: that row is keyed by its submission name instead.
    """
    listed = roster or []
    by_submission = {record["submission"]: record for record in records}
    rows = [[student["id"], student.get("name", ""), student["submission"], by_submission.get(student["submission"])]
            for student in listed]
    on_roster = {student["submission"] for student in listed}
    problems = []
    for record in records:
        if record["submission"] in on_roster:
            continue
        if roster is not None:
            problems.append(f"submission {record['submission']} is not on the roster")
        identity = record.get("student") or {}
        rows.append([identity.get("id") or record["submission"], identity.get("name") or "", record["submission"],
                     record])
    counts = Counter(row[0] for row in rows)
    for row in rows[len(listed):]:
        if counts[row[0]] > 1 and row[0] != row[2]:
            problems.append(f"submission {row[2]} claims the student id {row[0]!r}, which another row has: "
                            "keyed by its submission name instead")
            row[0] = row[2]
    owners = {}
    for student_id, _, submission, _ in rows:
        if student_id in owners:
            raise GradebookError(f"submissions {owners[student_id]} and {submission} both have the student id "
                                 f"{student_id!r}; give a roster that says whose each submission is")
        owners[student_id] = submission
    return rows, problems


def write_summary(records, path, roster=None, due=None):
    """Write ``summary.csv``: one row per student, ready for a learning platform's import.

    Parameters
    ----------
    records : iterable or mapping of dict
        Grade records (a mapping's values are taken).
    path : path
        The CSV to write; replaced atomically (a temporary file, then :func:`os.replace`).
    roster : list of dict or None
        From :func:`read_roster`. A student is then matched by submission
        name, and the roster's id and name win over the submission's own.
        Roster students without a submission get a row with score 0 and
        status ``missing``; graded submissions not on the roster follow them.
    due : datetime or None
        An aware due time (:func:`parse_due`): the ``late`` column then holds
        hours late (0 when on time, empty when the submitted time is unknown).

    Returns
    -------
    list of str
        Problems to show the instructor: submissions not on the roster, and
        submissions whose claimed student id another row has (such a row is
        keyed by its submission name instead). Empty when all is well.

    Raises
    ------
    GradebookError
        Two rows still have the same student id (a roster id equal to another
        row's submission name), or ``due`` has no time zone. Nothing is
        written then.

    Notes
    -----
    Columns: ``student_id, name, submission, score, max_score, submitted, late``,
    then ``<exercise> points`` and ``<exercise> status`` per exercise. The
    student id is the roster's, else the submission's ``student.id``, else the
    submission's name. Text cells that a spreadsheet would read as a formula
    get a leading ``'``.
    """
    if due is not None and (due.tzinfo is None or due.utcoffset() is None):
        raise GradebookError("the due time has no time zone")
    records = list(records.values()) if isinstance(records, Mapping) else list(records)
    exercises, max_points = [], {}
    for record in records:
        for exercise in record.get("tests", []):
            if exercise["name"] not in max_points:
                exercises.append(exercise["name"])
                max_points[exercise["name"]] = exercise.get("max_points", 0)
    rows, problems = _rows(records, roster)
    header = ["student_id", "name", "submission", "score", "max_score", "submitted", "late"]
    header += [f"{exercise} {what}" for exercise in exercises for what in ("points", "status")]
    total = sum(max_points.values())
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for student_id, name, submission, record in rows:
        if record is None:
            cells = [_cell(student_id), _cell(name), _cell(submission), "0", _points(total), "", ""]
            cells += ["0", "missing"] * len(exercises)
        else:
            submitted = (record.get("student") or {}).get("submitted") or ""
            late = _hours_late(submitted, due)
            cells = [_cell(student_id), _cell(name or (record.get("student") or {}).get("name") or ""),
                     _cell(submission), _points(record["score"]), _points(record["max_score"]), _cell(submitted),
                     "" if late is None else _points(round(late, 2))]
            graded = {exercise["name"]: exercise for exercise in record.get("tests", [])}
            for exercise in exercises:
                found = graded.get(exercise)
                cells += [_points(found["points"]), found["status"]] if found else ["0", "missing"]
        writer.writerow(cells)
    atomic_write_text(path, buffer.getvalue())
    return problems

"""Grading on Gradescope: the autograder zip, and results in Gradescope's schema.

Gradescope builds one image per assignment from the instructor's autograder
zip: it unpacks the zip into ``/autograder/source`` and runs ``setup.sh``
there as root. For every submission it starts a fresh container from that
image, puts the student's files in ``/autograder/submission``, runs
``/autograder/run_autograder`` (a copy of the zip's) and reads
``/autograder/results/results.json``.

:func:`build_autograder` writes such a zip for the exercises ``--assign``
names::

    setup.sh          apt-get installs Python, venv, bubblewrap, git and build tools; a venv;
                      pip install of the course with its instructor extra
    run_autograder    python -m convlab.instructor grade /autograder/submission ...
                      --gradescope /autograder/results/results.json
    course/           the course's sources (what git lists; no .git, _build, .venv or datasets)
    bundle/           the grader's bundle, as ``release --bundle`` writes it

``CONVLAB_AUTOGRADER_ROOT`` replaces ``/autograder`` in both scripts (to try
them in a fake layout). :func:`to_gradescope` turns a grade record into
``results.json``. Gradescope's base image must have Python 3.11 or newer
(Ubuntu 24.04); ``setup.sh`` stops with a clear error otherwise.
"""

import json
import stat
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from convlab.instructor.gradebook import scrub, student_feedback, visibility, visible_output
from convlab.instructor.release import release, repository_files
from convlab.runs.files import atomic_write_text, write_atomically

# Folders of a course that never go into the autograder: git's, built HTML, environments, data.
EXCLUDED_FOLDERS = frozenset({".git", "_build", ".venv", "datasets", "__pycache__"})
# Zip entries get this time, so the same course gives the same zip.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once per assignment, as root, in /autograder/source, to build the image
# every submission is graded in. It needs a base image whose python3 is 3.11 or newer (Ubuntu 24.04).
set -euo pipefail
ROOT="${CONVLAB_AUTOGRADER_ROOT:-/autograder}"
COURSE="$ROOT/source/course"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# bubblewrap isolates the student's code; git lists the course's files; the rest builds the kernels
apt-get install -y --no-install-recommends \\
    python3 python3-venv python3-dev bubblewrap git build-essential ca-certificates
python3 -c 'import sys; sys.exit("error: convlab needs Python 3.11 or newer; choose a newer base image '\\
'(Ubuntu 24.04) in the autograder settings" if sys.version_info < (3, 11) else 0)'
# the course kit works on a git clone of the course
git -C "$COURSE" init -q
git -C "$COURSE" add -A
python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install --upgrade pip
"$ROOT/venv/bin/python" -m pip install "$COURSE[instructor]"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission, in a fresh container built by setup.sh.
set -euo pipefail
ROOT="${CONVLAB_AUTOGRADER_ROOT:-/autograder}"
export PATH="$ROOT/venv/bin:$PATH"
mkdir -p "$ROOT/results"
cd "$ROOT"
python -m convlab.instructor grade "$ROOT/submission" --bundle "$ROOT/source/bundle" --out /tmp/grades \\
    --course "$ROOT/source/course" --gradescope "$ROOT/results/results.json" --no-progress
"""


class AutograderError(RuntimeError):
    """The autograder zip cannot be written as asked."""


# --- results.json ----------------------------------------------------------------------------------------


def to_gradescope(record, due=None, now=None, environ=None):
    """A grade record in the schema of Gradescope's ``results.json``.

    Parameters
    ----------
    record : dict
        A grade record (see :mod:`convlab.instructor.gradebook`).
    due : datetime or None
        The aware due time. The outputs of ``after_due_date`` tests are
        included only when it is given and has passed (``now``, default the
        current time), as :func:`~convlab.instructor.gradebook.student_feedback`
        would release them; Gradescope itself shows those tests only after
        its own due date.
    now : datetime or None
    environ : mapping or None
        Whose values are scrubbed from outputs (default: this process's environment).

    Returns
    -------
    dict
        ``{"score", "output", "visibility": "visible", "stdout_visibility": "hidden",
        "tests": [{"name", "score", "max_score", "status", "output", "visibility"}]}``:
        one test entry per graded test, named ``<exercise>: <test>``, with
        status ``passed`` or ``failed`` and Gradescope's visibility (the
        record's; a hidden test keeps an empty output, and counts in the score).
    """
    released = due is not None and (now or datetime.now(timezone.utc)) >= due
    feedback = student_feedback(record, released=released, environ=environ)
    tests = []
    for exercise in record.get("tests", []):
        for test in exercise.get("tests", []):
            tests.append({
                "name": f"{exercise.get('name')}: {scrub(str(test.get('name', '')), environ)}",
                "score": test.get("points", 0), "max_score": test.get("max_points", 0),
                "status": "passed" if test.get("status") == "pass" else "failed",
                "output": visible_output(test, released, environ), "visibility": visibility(test),
            })
    lines = [f"{e['name']}: {e['points']:g}/{e['max_points']:g} {e['status']}" for e in feedback["tests"]]
    return {
        "score": record.get("score", 0),
        "output": "\n".join([f"total: {record.get('score', 0):g}/{record.get('max_score', 0):g}"] + lines),
        "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
    }


def write_results(record, path, due=None):
    """Write :func:`to_gradescope` of ``record`` to ``path`` as JSON, atomically."""
    atomic_write_text(path, json.dumps(to_gradescope(record, due), indent=2) + "\n")


# --- autograder.zip ----------------------------------------------------------------------------------------


def _is_autograder_zip(path):
    """Whether ``path`` is a zip with ``setup.sh`` and ``run_autograder`` at its root (an earlier output)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {"setup.sh", "run_autograder"} <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def course_files(course):
    """The course's files that go into the autograder: relative paths, sorted.

    What git lists (:func:`~convlab.instructor.release.repository_files`),
    without the folders of :data:`EXCLUDED_FOLDERS` and without earlier
    autograder zips.
    """
    return [path for path in repository_files(course)
            if not EXCLUDED_FOLDERS & set(PurePosixPath(path).parts)
            and not (path.endswith(".zip") and _is_autograder_zip(Path(course) / path))]


def _add(archive, name, data, mode):
    """Add ``data`` as the regular file ``name`` with permission bits ``mode``."""
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.create_system = 3  # Unix, so that unzip restores the permission bits
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def check_out(out):
    """Refuse, naming ``--out``, a zip path that is a folder or whose folder does not exist.

    Raises
    ------
    AutograderError
    """
    out = Path(out)
    if out.is_dir():
        raise AutograderError(f"--out {out} is a folder; name the zip to write, e.g. {out / 'autograder.zip'}")
    if not out.parent.is_dir():
        raise AutograderError(f"--out {out}: the folder {out.parent} does not exist")


def build_autograder(course, patterns, out):
    """Write Gradescope's autograder zip for the exercises matching ``patterns``.

    Parameters
    ----------
    course : path
        The course repository.
    patterns : str
        Comma-separated globs of exercise ids, as for ``release --assign``.
    out : path
        The zip to write (replaced atomically if it exists).

    Returns
    -------
    dict
        ``{"manifest": the assignment's manifest, "files": number of course files}``.

    Raises
    ------
    AutograderError
        ``out`` is a folder or its folder does not exist (:func:`check_out`, first).
    ReleaseError
        From :func:`~convlab.instructor.release.release`: a bad pattern or a leak.
    """
    course, out = Path(course).resolve(), Path(out)
    check_out(out)
    files = course_files(course)
    with tempfile.TemporaryDirectory() as work:
        manifest = release(course, patterns, Path(work) / "release", bundle=Path(work) / "bundle")
        bundle = Path(work) / "bundle"

        def write(handle):
            with zipfile.ZipFile(handle, "w") as archive:
                _add(archive, "setup.sh", SETUP_SH, 0o755)
                _add(archive, "run_autograder", RUN_AUTOGRADER, 0o755)
                for path in files:
                    source = course / path
                    _add(archive, f"course/{path}", source.read_bytes(), stat.S_IMODE(source.stat().st_mode))
                for source in sorted(p for p in bundle.rglob("*") if p.is_file()):
                    _add(archive, f"bundle/{source.relative_to(bundle).as_posix()}", source.read_bytes(), 0o644)

        write_atomically(out, write)
    return {"manifest": manifest, "files": len(files)}

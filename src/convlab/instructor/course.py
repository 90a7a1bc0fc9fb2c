"""Which course repository the kit works on, whichever way convlab was installed.

The kit reads the instructor's repository (solution blocks, chapters, public
and hidden tests) as files, so it needs that repository's folder, not the
installed package: ``--course DIR``, or else the git repository the command
is run in (its top level). Installed from a wheel or with ``pip install .``,
the package lives in site-packages, far from any course.

A course folder is a git work tree (the kit lists its files with ``git
ls-files``) that holds the package's sources ``src/convlab/`` and the hidden
tests ``tests/hidden/``. A student's released tree has no hidden tests, so
it is not mistaken for the course.
"""

import subprocess
from pathlib import Path

# What makes a folder a course: the package's sources and the hidden tests.
COURSE_MARKS = ("src/convlab/__init__.py", "tests/hidden")


class CourseError(RuntimeError):
    """No course repository where the kit was asked to work."""


def _git_top_level(directory):
    """The top level of the git work tree that holds ``directory``, or None outside one."""
    try:
        run = subprocess.run(["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True)
    except FileNotFoundError:
        raise CourseError("git is not installed; the course kit lists the course's files with git") from None
    return Path(run.stdout.strip()).resolve() if run.returncode == 0 and run.stdout.strip() else None


def find_course(course=None, cwd=None):
    """The root folder of the course repository to work on.

    Parameters
    ----------
    course : path or None
        ``--course DIR``: the course's folder itself. None: the top level of
        the git repository that holds ``cwd``.
    cwd : path or None
        Where the command runs (default: the current directory).

    Returns
    -------
    pathlib.Path
        The course's root, resolved.

    Raises
    ------
    CourseError
        ``course`` is not a folder or not in a git work tree; ``cwd`` is in no
        git repository; the folder found lacks ``src/convlab/`` or
        ``tests/hidden/``. The message says which, and what to do.
    """
    if course is not None:
        root = Path(course).expanduser()
        if not root.is_dir():
            raise CourseError(f"--course {course}: no such folder")
        root = root.resolve()
        if _git_top_level(root) is None:
            raise CourseError(f"--course {course} is not in a git repository; the kit works on a "
                              "clone of the course (git clone it, or git init and commit it)")
        where = f"--course {course}"
    else:
        here = Path.cwd() if cwd is None else Path(cwd)
        root = _git_top_level(here)
        if root is None:
            raise CourseError(f"{here} is not inside a course repository (no git repository here); "
                              "run the kit in a clone of the course or pass --course DIR")
        where = f"the git repository {root} (around the current folder)"
    missing = [mark for mark in COURSE_MARKS if not (root / mark).exists()]
    if missing:
        raise CourseError(f"{where} is not a convlab course: it has no {' and no '.join(missing)}; "
                          "run the kit in a clone of the course or pass --course DIR")
    return root

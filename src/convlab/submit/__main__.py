"""``python -m convlab.submit check | collect``: test an assignment, then pack it for handing in."""

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from convlab.submit import assignment
from convlab.submit.identity import IDENTITY_FILE, IdentityError, describe


def _repository():
    """The root of the student's repository: the directory that holds ``src/convlab``."""
    return Path(__file__).resolve().parents[3]


def check(extra):
    """Run the public tests of the assigned exercises; returns pytest's exit code."""
    released = assignment()
    if released is None:
        sys.exit("error: no assignment.json next to convlab.submit: this is not a released assignment")
    root = _repository()
    print(f"public tests of {len(released['exercises'])} exercises: {', '.join(released['exercises'])}")
    env = dict(os.environ, CONVLAB_ASSIGNED_ONLY="1")
    code = subprocess.call([sys.executable, "-m", "pytest", "tests", "-q", "--tb=short", "-p", "no:cacheprovider",
                            *extra], cwd=root, env=env)
    print("\nThese are the public tests only. Hidden tests (other shapes, dtypes, strides and\n"
          "paddings, inputs left unmodified, no calls into the fast kernels) run at grading.")
    return code


def collect(out, student_id=None, name=None, labels=("--student-id", "--name")):
    """Zip the assignment's files and their ``submission.json`` into ``out``; fails naming every missing file.

    ``student_id`` and ``name`` go into ``submission.json`` when given (see
    :mod:`convlab.submit.identity`), with the time of collecting and each file's SHA-256;
    ``labels`` name where they came from in an error.
    """
    released = assignment()
    if released is None:
        sys.exit("error: no assignment.json next to convlab.submit: this is not a released assignment")
    root = _repository()
    missing = [f for f in released["files"] if not (root / f).is_file()]
    if missing:
        sys.exit("error: cannot collect, these files of the assignment are missing:\n  " + "\n  ".join(missing))
    contents = {path: (root / path).read_bytes() for path in released["files"]}
    try:
        identity = describe(contents, student_id, name, labels=labels)
    except IdentityError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in released["files"]:
            archive.writestr(zipfile.ZipInfo.from_file(root / path, path), contents[path], zipfile.ZIP_DEFLATED)
        archive.writestr(IDENTITY_FILE, json.dumps(identity, indent=2) + "\n")
    count = len(released["files"])
    print(f"wrote {out} with {count} file{'s' if count != 1 else ''}: {', '.join(released['files'])}")
    if "id" in identity or "name" in identity:
        who = ", ".join(f"{field} {identity[field]}" for field in ("id", "name") if field in identity)
        print(f"handed in as {who} ({IDENTITY_FILE}, collected {identity['submitted']})")
    return 0


def _option_or_variable(value, option, variable):
    """``(value, option)`` when the option was given, else ``($variable or None, variable)``."""
    if value is not None:
        return value, option
    return os.environ.get(variable) or None, variable


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convlab.submit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("check", help="run the public tests of the assigned exercises")
    run.add_argument("pytest_args", nargs="*", help="passed on to pytest (e.g. -x)")
    pack = commands.add_parser("collect", help="zip the files to submit")
    pack.add_argument("--out", default="submission.zip", help="the zip to write (default: submission.zip)")
    pack.add_argument("--student-id", metavar="ID",
                      help="your student id, recorded in the zip's submission.json (default: $CONVLAB_STUDENT_ID)")
    pack.add_argument("--name", help="your name, recorded in the zip's submission.json (default: $CONVLAB_STUDENT_NAME)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.pytest_args)
    student_id, id_label = _option_or_variable(args.student_id, "--student-id", "CONVLAB_STUDENT_ID")
    name, name_label = _option_or_variable(args.name, "--name", "CONVLAB_STUDENT_NAME")
    return collect(args.out, student_id, name, labels=(id_label, name_label))


if __name__ == "__main__":
    sys.exit(main())

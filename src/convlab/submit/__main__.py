"""``python -m convlab.submit check | collect``: test an assignment, then pack it for handing in."""

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from convlab.submit import assignment


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


def collect(out):
    """Zip the assignment's files into ``out``; fails naming every missing file."""
    released = assignment()
    if released is None:
        sys.exit("error: no assignment.json next to convlab.submit: this is not a released assignment")
    root = _repository()
    missing = [f for f in released["files"] if not (root / f).is_file()]
    if missing:
        sys.exit("error: cannot collect, these files of the assignment are missing:\n  " + "\n  ".join(missing))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in released["files"]:
            archive.write(root / name, name)
    count = len(released["files"])
    print(f"wrote {out} with {count} file{'s' if count != 1 else ''}: {', '.join(released['files'])}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convlab.submit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("check", help="run the public tests of the assigned exercises")
    run.add_argument("pytest_args", nargs="*", help="passed on to pytest (e.g. -x)")
    pack = commands.add_parser("collect", help="zip the files to submit")
    pack.add_argument("--out", default="submission.zip", help="the zip to write (default: submission.zip)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.pytest_args)
    return collect(args.out)


if __name__ == "__main__":
    sys.exit(main())

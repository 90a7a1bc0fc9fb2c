"""``python -m convlab.instructor``: check, release, solve and grade assignments, or grade them on Gradescope.

Every command works on a course repository: ``--course DIR``, or else the git
repository it is run in (see :mod:`convlab.instructor.course`).
"""

import argparse
import sys
import time
from pathlib import Path

try:
    from convlab.instructor import grade as grading
    from convlab.instructor import gradebook, gradescope, integrity, isolation
    from convlab.instructor import release as releasing
    from convlab.instructor.course import CourseError, find_course
    from convlab.instructor.markers import MarkerError
except ModuleNotFoundError as missing:  # the kit's own dependencies come with the instructor extra
    print(f"error: the course kit needs {missing.name}, which is not installed; install convlab with its "
          "instructor extra: pip install 'convlab[instructor]' (or -e '.[instructor]' in the course)",
          file=sys.stderr)
    sys.exit(2)


def cmd_check(args):
    problems = releasing.check(args.course)
    exercises = releasing.find_exercises(args.course)
    tests = releasing.find_graded_tests(args.course)
    for exercise, places in exercises.items():
        graded = [t for t in tests if t["exercise"] == exercise]
        functions = ", ".join(sorted({p["function"] for p in places}))
        print(f"{exercise:<26} {functions:<50} {len(graded)} test functions")
    if problems:
        print("\n".join(["", "problems:"] + [f"  {p}" for p in problems]))
        return 1
    print(f"ok: {len(exercises)} exercises, markers balanced, every exercise graded, every mark's exercise exists")
    return 0


def cmd_release(args):
    problems = releasing.check(args.course)
    if problems:
        print("error: `check` found problems:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    manifest = releasing.release(args.course, args.assign, args.out, args.bundle)
    print(f"released {len(manifest['exercises'])} exercises: {', '.join(manifest['exercises'])}")
    print(f"student files to hand in: {', '.join(manifest['files'])}")
    print(f"leak scan: clean (no marker, no line of an assigned solution)")
    print(f"student tree: {args.out}")
    if args.bundle:
        print(f"grader bundle: {args.bundle}")
    return 0


def cmd_solve(args):
    restored = releasing.solve(args.course, args.tree)
    print(f"solutions put back in {len(restored)} files" + "".join(f"\n  {p}" for p in restored))
    return 0


def cmd_grade(args):
    if args.gradescope and len(args.submissions) != 1:
        print(f"error: --gradescope writes the results.json of one submission; {len(args.submissions)} were given",
              file=sys.stderr)
        return 2
    if args.gradescope and not args.gradescope.parent.is_dir():
        print(f"error: --gradescope {args.gradescope}: the folder {args.gradescope.parent} does not exist",
              file=sys.stderr)
        return 2
    try:
        roster = gradebook.read_roster(args.roster) if args.roster else None
        due = gradebook.parse_due(args.due) if args.due else None
        integrity.load_key(args.key_file)
    except (gradebook.GradebookError, integrity.IntegrityError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if isolation.fallback_warning():
        print(isolation.fallback_warning(), file=sys.stderr)
    start = time.monotonic()
    results, already, problems = grading.grade(args.submissions, args.bundle, args.out, jobs=args.jobs,
                                               timeout=args.timeout, memory_mb=args.memory,
                                               progress=not args.no_progress, course=args.course,
                                               key_file=args.key_file, roster=roster, due=due)
    print(grading.table(results))
    for problem in problems:
        print(f"note: {problem}")
    skipped = f" ({len(already)} graded before, not again)" if already else ""
    print(f"graded {len(results) - len(already)} submissions in {time.monotonic() - start:.0f} s{skipped}; "
          f"records, feedback/ and summary.csv in {args.out}")
    if args.gradescope:
        gradescope.write_results(next(iter(results.values())), args.gradescope, due=due)
        print(f"Gradescope's results: {args.gradescope}")
    return 0


def cmd_gradescope(args):
    try:
        gradescope.check_out(args.out)
    except gradescope.AutograderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    problems = releasing.check(args.course)
    if problems:
        print("error: `check` found problems:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    built = gradescope.build_autograder(args.course, args.assign, args.out)
    exercises = built["manifest"]["exercises"]
    print(f"autograder for {len(exercises)} exercises: {', '.join(exercises)}")
    print(f"with setup.sh, run_autograder, {built['files']} course files and the grader's bundle: {args.out}")
    print("upload it as the assignment's autograder (base image: Ubuntu 24.04 or newer, for Python 3.11+)")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convlab.instructor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course", type=Path, metavar="DIR",
                        help="the course repository (default: the git repository of the current folder)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", parents=[common], help="markers balanced, ids unique, every exercise graded by a test")
    release = commands.add_parser("release", parents=[common], help="write a student's tree (and a grader's bundle)")
    release.add_argument("--assign", required=True, help="comma-separated globs of exercise ids, e.g. 'conv.*,pool.*,spatial_bn.forward'")
    release.add_argument("--out", required=True, type=Path, help="new directory for the student's tree")
    release.add_argument("--bundle", type=Path, help="new directory for the grader's bundle (hidden tests, manifest)")
    solve = commands.add_parser("solve", parents=[common], help="put the solutions back into a released tree")
    solve.add_argument("tree", type=Path)
    grade = commands.add_parser("grade", parents=[common], help="grade submissions (directories or zips)")
    grade.add_argument("submissions", nargs="+", type=Path)
    grade.add_argument("--bundle", required=True, type=Path, help="the grader's bundle written by release")
    grade.add_argument("--out", required=True, type=Path, help="directory for the JSON files and summary.csv")
    grade.add_argument("--jobs", type=int, default=1, help="exercises graded at once (default 1)")
    grade.add_argument("--timeout", type=float, default=20, help="seconds one call into a submission's function may take (default 20); "
                       "a whole test may take 6 times that plus a minute")
    grade.add_argument("--memory", type=int, default=2048, help="memory cap per test process in MB (default 2048)")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade.add_argument("--roster", type=Path, metavar="CSV",
                       help="the class list (columns id, submission, optional name): summary.csv follows it")
    grade.add_argument("--due", metavar="TIME", help="the due time, ISO 8601 with a time zone "
                       "(2026-12-01T23:59+01:00): summary.csv gets the hours late")
    grade.add_argument("--key-file", type=Path, metavar="FILE",
                       help="the grader's signing key (default ~/.config/convlab/grading.key, made on first use)")
    grade.add_argument("--gradescope", type=Path, metavar="FILE",
                       help="also write this one submission's results in Gradescope's results.json schema")
    autograder = commands.add_parser("gradescope", parents=[common], help="write a Gradescope autograder zip")
    autograder.add_argument("--assign", required=True, help="comma-separated globs of exercise ids, as for release")
    autograder.add_argument("--out", required=True, type=Path, help="the zip to write, e.g. autograder.zip")
    args = parser.parse_args(argv)
    if getattr(args, "jobs", 1) < 1 or getattr(args, "timeout", 1) <= 0 or getattr(args, "memory", 256) < 256:
        parser.error("--jobs must be >= 1, --timeout > 0 and --memory >= 256")
    try:
        args.course = find_course(args.course)
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        return {"check": cmd_check, "release": cmd_release, "solve": cmd_solve, "grade": cmd_grade,
                "gradescope": cmd_gradescope}[args.command](args)
    except (releasing.ReleaseError, grading.GradeError, MarkerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

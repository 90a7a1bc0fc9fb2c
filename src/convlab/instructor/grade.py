"""Grade submissions so that a bad one cannot break its own grading, or anyone else's.

The pristine tree is the instructor's course repository (its tests and
reference sources) together with the installed convlab built from it, kernels
built once. For each submission and each exercise, a fresh subprocess (one thread,
a memory cap, a per-test timeout) runs that exercise's tests, public and
hidden, on the reference package with the submission's code for that
exercise spliced in (:mod:`convlab.instructor.splice`); only whitelisted
files are read from a submission, and nothing is written into the tree.

A test's status is ``pass``, ``fail``, ``timeout``, ``crash`` (the process
died: a segfault, ``os._exit``, the memory cap) or ``import-error`` (the
exercise's code is missing, does not parse, or fails at import). After a
crash the exercise's remaining tests run in a new process, so a crash costs
only the tests that reached it.
"""

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

import convlab
from convlab.instructor.course import find_course
from convlab.instructor.sandbox import tail
from convlab.instructor.splice import SpliceError, splice

STATUS_ORDER = ("import-error", "timeout", "crash", "fail", "pass")
# The naive layers' module, the oracle that never uses the fast path: its exercises are graded
# with the fast layers and kernels made to raise (convlab.instructor.guard).
NAIVE_MODULE_FILE = "src/convlab/layers.py"
# The sources whose installed copy must be the course's: the reference the submissions are spliced into.
_SOURCE_SUFFIXES = (".py", ".pyx", ".pxd", ".pxi", ".h")


class GradeError(RuntimeError):
    """The grading cannot start (bad submission paths, bundle or tree)."""


def read_submission(path, files):
    """The whitelisted ``files`` of a submission directory or zip: ``{path: text or None}``."""
    path = Path(path)
    found = {}
    if path.is_dir():
        for name in files:
            target = path / name
            found[name] = target.read_text(encoding="utf-8", errors="replace") if target.is_file() else None
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for name in files:
                found[name] = archive.read(name).decode("utf-8", errors="replace") if name in names else None
    else:
        raise GradeError(f"submission {path} is neither a directory nor a zip file")
    return found


def _module_name(path):
    """``src/convlab/layers.py`` -> ``convlab.layers``."""
    return ".".join(Path(path).relative_to("src").with_suffix("").parts)


def installed_differences(course):
    """The package sources of ``course`` that the installed convlab does not have, byte for byte.

    Grading imports the installed package and splices each submission into
    the course's sources: both must be the same code, or a submission would be
    graded against another reference than the one the tests were written for.

    Returns
    -------
    list of str
        Paths (relative to the course) that differ or are missing; empty if none.
    """
    source, installed = Path(course) / "src" / "convlab", Path(convlab.__file__).resolve().parent
    if installed == source.resolve():
        return []
    differ = []
    for path in sorted(source.rglob("*")):
        if path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts and path.is_file():
            copy = installed / path.relative_to(source)
            if not copy.is_file() or copy.read_bytes() != path.read_bytes():
                differ.append(path.relative_to(course).as_posix())
    return differ


def collect_tests(bundle, exercises, course):
    """The graded tests, by exercise: ``{id: [(nodeid, points), ...]}``, public ones first.

    Collected once (pytest ``--collect-only`` in a subprocess) from the course's
    ``tests/`` and the bundle's hidden tests.
    """
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "marks.json"
        script = (
            "import json, sys, pytest\n"
            "class Marks:\n"
            "    found = []\n"
            "    def pytest_collection_modifyitems(self, items):\n"
            "        for item in items:\n"
            "            for mark in item.iter_markers('exercise'):\n"
            "                test = '::'.join([str(item.path)] + item.nodeid.split('::')[1:])\n"
            "                self.found.append((test, mark.args[0], mark.kwargs.get('points', 1)))\n"
            "plugin = Marks()\n"
            "code = pytest.main(sys.argv[2:], plugins=[plugin])\n"
            "json.dump(plugin.found, open(sys.argv[1], 'w'))\n"
            "sys.exit(code)\n"
        )
        files = [str(p) for p in sorted((course / "tests").glob("test_*.py")) if "mark.exercise" in p.read_text()]
        files.append(str(Path(bundle).resolve() / "tests" / "hidden"))
        run = subprocess.run(
            [sys.executable, "-c", script, str(out), "--collect-only", "-q", "-p", "no:cacheprovider",
             "--rootdir", str(course), "-c", str(course / "pyproject.toml"), *files],
            cwd=work, capture_output=True, text=True, env=_sandbox_env(),
        )
        if run.returncode != 0:
            raise GradeError(f"collecting the graded tests failed:\n{tail(run.stdout + run.stderr)}")
        marks = json.loads(out.read_text())
    tests = {e: [] for e in exercises}
    for nodeid, exercise, points in marks:
        if exercise in tests:
            tests[exercise].append((nodeid, points))
    empty = [e for e, t in tests.items() if not t]
    if empty:
        raise GradeError(f"no test grades {', '.join(empty)}")
    return tests


def _display(nodeid, course):
    """A test's name without the machine's paths: ``tests/test_layers.py::...`` or ``hidden/test_....py::...``."""
    path, _, rest = nodeid.partition("::")
    path = Path(path)
    shown = path.relative_to(course) if path.is_relative_to(course) else Path(path.parent.name) / path.name
    return f"{shown.as_posix()}::{rest}"


def _without_machine_paths(text, spliced, course):
    """``text`` with the grader's paths made relative: the course's, the spliced modules' and the bundle's."""
    for path, shown in spliced.items():
        text = text.replace(path, shown)
    return re.sub(r"/\S*/hidden/(test_\w+\.py)", r"hidden/\1", text.replace(f"{course}/", ""))


def _sandbox_env():
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[name] = "1"
    # no auto-loaded pytest plugins (nbval and others cost seconds per process); the sandbox asks for its own
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0", MPLBACKEND="Agg", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    return env


def _run(work, overlay, nodeids, guard, timeout, memory_mb, course):
    """One sandbox process on ``nodeids``: (events, returncode, stderr, killed)."""
    results = Path(work) / "events.jsonl"
    results.unlink(missing_ok=True)
    spec = {"overlay": overlay, "nodeids": nodeids, "guard": guard, "timeout": timeout,
            "results": str(results), "memory_mb": memory_mb, "rootdir": str(course), "config": str(course / "pyproject.toml")}
    spec_path = Path(work) / "spec.json"
    spec_path.write_text(json.dumps(spec))
    process = subprocess.Popen(
        [sys.executable, "-m", "convlab.instructor.sandbox", str(spec_path)], cwd=work,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_sandbox_env(),
        start_new_session=True,
    )
    killed = False
    try:
        output, _ = process.communicate(timeout=timeout * len(nodeids) + 60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
        killed = True
    events = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    return events, process.returncode, output, killed


def grade_exercise(submission, exercise, places, tests, reference, work, timeout=20, memory_mb=2048, course=None):
    """Grade one exercise of one submission.

    Parameters
    ----------
    submission : dict
        ``{path: text or None}`` from :func:`read_submission`.
    exercise : str
    places : list of dict
        ``{"file", "function"}`` of the exercise, from the manifest.
    tests : list of (str, float)
        Node ids and points of the exercise's tests.
    reference : dict
        ``{path: text}`` of the pristine modules.
    work : path
        Scratch directory of this grading.
    timeout : float
        Seconds per test.
    memory_mb : int
        Address-space cap of the sandbox process.
    course : path or None
        The course repository (default: see :func:`convlab.instructor.course.find_course`).

    Returns
    -------
    dict
        ``{"name", "status", "points", "max_points", "output", "tests": [...]}``.
    """
    course = find_course(course)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    records = {nodeid: {"name": _display(nodeid, course), "max_points": points, "points": 0, "status": None, "output": ""}
               for nodeid, points in tests}
    overlay, problem = {}, None
    for file in sorted({p["file"] for p in places}):
        names = sorted({p["function"].split(".")[0] for p in places if p["file"] == file})
        if submission.get(file) is None:
            problem = f"{file} is missing from the submission"
            break
        try:
            text = splice(reference[file], submission[file], names, file)
        except SpliceError as err:
            problem = str(err)
            break
        target = work / (_module_name(file) + ".py")
        target.write_text(text, encoding="utf-8")
        overlay[_module_name(file)] = str(target)
    guard = all(p["file"] == NAIVE_MODULE_FILE for p in places)
    remaining = [nodeid for nodeid, _ in tests] if problem is None else []
    while remaining:
        events, code, output, killed = _run(work, overlay, remaining, guard, timeout, memory_mb, course)
        failures = [e for e in events if e["event"] in ("import-error", "collect-error")]
        if failures:
            problem = failures[0]["output"]
            break
        started = [e["nodeid"] for e in events if e["event"] == "start"]
        for event in events:
            if event["event"] == "report" and event["nodeid"] in records:
                record = records[event["nodeid"]]
                if event["outcome"] == "passed" and record["status"] is None:
                    record["status"] = "pass"
                elif event["outcome"] == "failed":
                    record["status"] = "timeout" if event["timeout"] else "fail"
                    record["output"] = event["output"]
                elif event["outcome"] == "skipped":
                    record["status"] = "fail"
                    record["output"] = "skipped"
        unfinished = [n for n in started if records[n]["status"] is None]
        for nodeid in unfinished:
            how = (f"killed after {timeout * len(remaining) + 60:g} s" if killed
                   else f"the process ended (exit code {code}) during this test")
            records[nodeid]["status"] = "timeout" if killed else "crash"
            records[nodeid]["output"] = f"{how}; its output ends:\n{tail(output)}"
        if not started:
            problem = f"the test process ended before running a test (exit code {code}):\n{tail(output)}"
            break
        remaining = [n for n in remaining if n not in started]
        hung = next((n for n in started if records[n]["status"] == "timeout"), None)
        if hung:
            for nodeid in remaining:
                records[nodeid].update(status="timeout", output=f"not run: {hung} timed out before it")
            break
    if problem is not None:
        for record in records.values():
            if record["status"] is None:
                record.update(status="import-error", output=problem)
    places_shown = {}
    for file in {p["file"] for p in places}:  # line numbers are those of the spliced module
        places_shown[str(work / (_module_name(file) + ".py"))] = f"{file} (spliced)"
        places_shown[_module_name(file) + ".py"] = f"{file} (spliced)"
    for record in records.values():
        record["output"] = _without_machine_paths(record["output"], places_shown, course)
        record["status"] = record["status"] or "fail"
        record["points"] = record["max_points"] if record["status"] == "pass" else 0
    tests_out = list(records.values())
    status = min((r["status"] for r in tests_out), key=STATUS_ORDER.index)
    lines = [f"{r['status']:>12}  {r['points']:g}/{r['max_points']:g}  {r['name']}" for r in tests_out]
    details = [f"--- {r['name']}\n{r['output']}" for r in tests_out if r["status"] != "pass" and r["output"]]
    return {
        "name": exercise, "status": status,
        "points": sum(r["points"] for r in tests_out), "max_points": sum(r["max_points"] for r in tests_out),
        "output": "\n".join(lines + details[:3]), "tests": tests_out,
    }


def _fingerprint(submission, manifest, graders):
    """Hash of what decides a grade: the submission's files, the assignment and the graders' files."""
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode())
    digest.update(graders)
    for name in sorted(submission):
        digest.update(name.encode() + b"\0" + (submission[name] or "\0missing").encode())
    return digest.hexdigest()


def grade(submissions, bundle, out, jobs=1, timeout=20, memory_mb=2048, progress=True, course=None):
    """Grade ``submissions`` into ``out``; returns ``({name: result}, names of those already graded)``.

    Writes ``out/<name>.json`` per submission (``score``, ``max_score`` and
    ``tests[{name, status, points, max_points, output}]``, one entry per
    exercise) and ``out/summary.csv``. A submission whose JSON already exists
    for the same files, assignment, tests and reference is not graded again.
    ``course`` is the course repository (default: see
    :func:`convlab.instructor.course.find_course`); the installed convlab must
    be built from it (:func:`installed_differences`).
    """
    course = find_course(course)
    bundle, out = Path(bundle), Path(out)
    manifest_path = bundle / "assignment.json"
    if not manifest_path.is_file():
        raise GradeError(f"--bundle {bundle} has no assignment.json (make one with `release ... --bundle DIR`)")
    manifest = json.loads(manifest_path.read_text())
    names = {}
    for path in submissions:
        name = Path(path).name.removesuffix(".zip")
        if name in names:
            raise GradeError(f"two submissions are named {name!r}: {names[name]} and {path}")
        if not Path(path).exists():
            raise GradeError(f"submission {path} does not exist")
        names[name] = path
    reference = {}
    for places in manifest["exercises"].values():
        for place in places:
            source = course / place["file"]
            reference[place["file"]] = source.read_text(encoding="utf-8")
            if f"def {place['function'].split('.')[-1]}" not in reference[place["file"]]:
                raise GradeError(f"the course {course} has no {place['function']} in {place['file']}")
    differ = installed_differences(course)
    if differ:
        shown = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
        raise GradeError(f"the installed convlab ({Path(convlab.__file__).parent}) is not built from the course "
                         f"{course}: {shown} differ; install the course (pip install -e {course}) before grading")
    out.mkdir(parents=True, exist_ok=True)
    graders = hashlib.sha256()  # a changed test or reference solution means grading again
    for path in sorted((bundle / "tests").rglob("*.py")) + sorted((course / "tests").glob("test_*.py")):
        graders.update(path.read_bytes())
    for file in sorted(reference):
        graders.update(reference[file].encode())
    results, todo, already = {}, [], []
    for name, path in names.items():
        files = read_submission(path, manifest["files"])
        fingerprint = _fingerprint(files, manifest, graders.digest())
        previous = out / f"{name}.json"
        if previous.is_file() and json.loads(previous.read_text()).get("fingerprint") == fingerprint:
            results[name] = json.loads(previous.read_text())
            already.append(name)
            continue
        todo.append((name, files, fingerprint))
    tests = collect_tests(bundle, manifest["exercises"], course) if todo else {}
    jobs_list = [(name, files, e) for name, files, _ in todo for e in manifest["exercises"]]
    graded = {}
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(max(1, jobs)) as pool, \
            tqdm(total=len(jobs_list), desc="grading", unit="exercise", disable=not progress,
                 file=sys.stderr) as bar:
        def one(job):
            name, files, exercise = job
            result = grade_exercise(files, exercise, manifest["exercises"][exercise], tests[exercise], reference,
                                    Path(scratch) / name / exercise, timeout, memory_mb, course)
            bar.update(1)
            return job, result
        for (name, _, exercise), result in pool.map(one, jobs_list):
            graded.setdefault(name, {})[exercise] = result
    for name, files, fingerprint in todo:
        exercises = [graded[name][e] for e in manifest["exercises"]]
        results[name] = {
            "score": sum(e["points"] for e in exercises), "max_score": sum(e["max_points"] for e in exercises),
            "tests": [{k: e[k] for k in ("name", "status", "points", "max_points", "output")} for e in exercises],
            "fingerprint": fingerprint,
        }
        (out / f"{name}.json").write_text(json.dumps(results[name], indent=2) + "\n")
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submission", "score", "max_score"] + [f"{e} {k}" for e in manifest["exercises"]
                                                               for k in ("points", "status")])
        for name in sorted(results):
            row = [name, f"{results[name]['score']:g}", f"{results[name]['max_score']:g}"]
            for test in results[name]["tests"]:
                row += [f"{test['points']:g}", test["status"]]
            writer.writerow(row)
    return {name: results[name] for name in sorted(results)}, already


def table(results):
    """The grades as a text table: one row per submission, ``points/max status`` per exercise."""
    if not results:
        return "no submissions"
    exercises = [t["name"] for t in next(iter(results.values()))["tests"]]
    header = ["submission"] + exercises + ["total"]
    rows = [header]
    for name, result in results.items():
        cells = [f"{t['points']:g}/{t['max_points']:g} {t['status']}" for t in result["tests"]]
        rows.append([name] + cells + [f"{result['score']:g}/{result['max_score']:g}"])
    widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)

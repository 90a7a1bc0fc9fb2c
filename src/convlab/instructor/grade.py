"""Grade submissions so that no submission can fool the grader, break its own grading or anyone else's.

The threat model: a student controls every line of the submitted files, so
their code runs at import and inside every graded function, and may want the
points without the work. So student code never runs in the grader's process
or in the process that runs the tests:

- For each submission, a package is built from the released tree (the
  assigned exercises stubbed, no solution, no hidden test, no instructor kit)
  with the submission's functions spliced in (:mod:`convlab.instructor.splice`).
- For each exercise, a trusted *judge* process (:mod:`convlab.instructor.judge`)
  runs the exercise's public and hidden tests on the reference package; the
  exercise's functions are proxies to a *worker* process
  (:mod:`convlab.instructor.worker`) that holds only the submission's package,
  started in a sandbox (:mod:`convlab.instructor.isolation`: bubblewrap where
  it works, process limits elsewhere) and killed with everything it started at
  the end. Arrays cross as ``.npy`` bytes, never pickle (:mod:`convlab.instructor.wire`).
  A naive layer's worker has no fast layers or kernels to import.
- Hidden tests draw their inputs from a secret seed made anew for every grading.
- Grade files are written here, after every worker of the submission is dead,
  signed with the grader's key (:mod:`convlab.instructor.integrity`); a file
  the grader did not write is never trusted.

A test's status is ``pass``, ``fail``, ``timeout``, ``crash`` (the worker
died: a segfault, ``os._exit``, the memory cap) or ``import-error`` (the
exercise's code is missing, does not parse, or fails at import).
"""

import csv
import hashlib
import importlib.machinery
import json
import os
import queue
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy
from tqdm import tqdm

import convlab
from convlab.instructor import gradebook, integrity, isolation
from convlab.instructor import release as releasing
from convlab.instructor.course import find_course
from convlab.instructor.judge import StudentImportError, Worker, WorkerCrashed, WorkerTimeout, tail, test_seconds
from convlab.instructor.markers import release_text
from convlab.instructor.splice import SpliceError, splice
from convlab.runs.files import atomic_write_text

STATUS_ORDER = ("import-error", "timeout", "crash", "fail", "pass")
# The naive layers' modules, the oracles that never use the fast path: their exercises are graded
# in a worker that has no fast layers or kernels to import.
NAIVE_MODULE_FILES = ("src/convlab/layers.py", "src/convlab/conv_family.py")
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
    """The graded tests, by exercise: ``{id: [(nodeid, points, visibility), ...]}``, public ones first.

    Collected once (pytest ``--collect-only`` in a subprocess) from the course's
    ``tests/`` and the bundle's hidden tests. A test's visibility is its mark's
    ``visibility=`` argument, else ``visible`` for a public test and
    ``after_due_date`` for a hidden one (its name and result are shown once
    grades are released, never its source).
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
            "                self.found.append((test, mark.args[0], mark.kwargs.get('points', 1),\n"
            "                                   mark.kwargs.get('visibility')))\n"
            "plugin = Marks()\n"
            "code = pytest.main(sys.argv[2:], plugins=[plugin])\n"
            "json.dump(plugin.found, open(sys.argv[1], 'w'))\n"
            "sys.exit(code)\n"
        )
        files = [str(p) for p in sorted((course / "tests").glob("test_*.py")) if "mark.exercise" in p.read_text()]
        hidden = Path(bundle).resolve() / "tests" / "hidden"
        files.append(str(hidden))
        run = subprocess.run(
            [sys.executable, "-c", script, str(out), "--collect-only", "-q", "-p", "no:cacheprovider",
             "--rootdir", str(course), "-c", str(course / "pyproject.toml"), *files],
            cwd=work, capture_output=True, text=True, env=_judge_env(),
        )
        if run.returncode != 0:
            raise GradeError(f"collecting the graded tests failed:\n{tail(run.stdout + run.stderr)}")
        marks = json.loads(out.read_text())
    tests = {e: [] for e in exercises}
    for nodeid, exercise, points, visibility in marks:
        if visibility is None:
            visibility = "after_due_date" if Path(nodeid.partition("::")[0]).is_relative_to(hidden) else "visible"
        if visibility not in gradebook.VISIBILITIES:
            raise GradeError(f"{_display(nodeid, course)}: visibility must be one of {', '.join(gradebook.VISIBILITIES)}, "
                             f"not {visibility!r}")
        if exercise in tests:
            tests[exercise].append((nodeid, points, visibility))
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


def _without_machine_paths(text, course, roots):
    """``text`` with the grader's paths made relative: the course's, the bundle's and the workers' packages'."""
    for root in roots:
        text = text.replace(f"{root}/", "")
    return re.sub(r"/\S*/hidden/(test_\w+\.py)", r"hidden/\1", text.replace(f"{course}/", ""))


def _judge_env(pycache=None):
    """The environment of the trusted processes (the workers get a scrubbed one of their own).

    ``pycache``: a scratch folder where the judges share their compiled (and
    assertion-rewritten) test modules, so that only the first compiles them;
    nothing is written into the course. None: no bytecode written at all.
    """
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[name] = "1"
    # no auto-loaded pytest plugins (nbval and others cost seconds per process); the judge asks for its own
    env.update(PYTHONHASHSEED="0", MPLBACKEND="Agg", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


# ---------------------------------------------------------------- the workers' packages


def _readable(path):
    """Make ``path`` (a file or folder tree) readable by every user: a worker may run as ``nobody``."""
    path = Path(path)
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        mode = item.stat().st_mode
        item.chmod(mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
                   | ((stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) if item.is_dir() else 0))


def released_package(course, manifest, folder):
    """Write ``folder/convlab``: the package as the students received it, without its kernels and instructor kit.

    Returns
    -------
    dict
        ``{file: released text}`` of the files that submissions replace.
    """
    assigned = set(manifest["exercises"]).__contains__
    source = Path(course) / "src"
    texts = {}
    for path in sorted((source / "convlab").rglob("*.py")):
        where = path.relative_to(course).as_posix()
        if "__pycache__" in path.parts or releasing._instructor_only(where) or "/instructor/" in where:
            continue
        text = release_text(path.read_text(encoding="utf-8"), assigned, where)
        target = folder / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        texts[where] = text
    return texts


def kernels_folder(folder):
    """Copy the installed package's compiled kernels into ``folder``; a worker that may use them gets this path."""
    folder.mkdir(parents=True, exist_ok=True)
    fast = Path(convlab.__file__).resolve().parent / "_fast"
    for path in fast.iterdir():
        if path.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            shutil.copy2(path, folder / path.name)
    return folder


def submission_package(submission, manifest, released, texts, folder):
    """Write ``folder/convlab``: the released package with the submission's functions spliced in.

    Parameters
    ----------
    submission : dict
        ``{path: text or None}`` from :func:`read_submission`.
    released : path
        The folder that :func:`released_package` wrote.
    texts : dict
        ``{file: released text}``.

    Returns
    -------
    dict
        ``{exercise: problem}`` for the exercises whose code could not be
        spliced (missing file or function, syntax error); their stubs stay.
    """
    shutil.copytree(released, folder)
    problems = {}
    for file in manifest["files"]:
        text = texts[file]
        for exercise, places in manifest["exercises"].items():
            names = sorted({p["function"].split(".")[0] for p in places if p["file"] == file})
            if not names:
                continue
            if submission.get(file) is None:
                problems[exercise] = f"{file} is missing from the submission"
                continue
            try:
                text = splice(text, submission[file], names, file)
            except SpliceError as err:
                problems[exercise] = str(err)
        (folder / Path(file).relative_to("src")).write_text(text, encoding="utf-8")
    _readable(folder)
    return problems


def _forwards(places, course):
    """``(module, name)`` of the reference forward passes whose caches feed the exercise's backward passes."""
    functions = {(_module_name(p["file"]), p["function"]) for p in places}
    found = []
    for place in places:
        name = place["function"]
        partner = name.replace("backward", "forward")
        if partner != name and "." not in name and (_module_name(place["file"]), partner) not in functions \
                and re.search(rf"^def {partner}\(", (course / place["file"]).read_text(encoding="utf-8"), re.M):
            found.append((_module_name(place["file"]), partner))
    return found


# ---------------------------------------------------------------- one exercise


def grade_exercise(exercise, places, tests, package, problem, work, setup, timeout=20, memory_mb=2048, slot=0):
    """Grade one exercise of one submission in a judge process.

    Parameters
    ----------
    exercise : str
    places : list of dict
        ``{"file", "function"}`` of the exercise, from the manifest.
    tests : list of (str, float, str)
        Node ids, points and visibilities of the exercise's tests.
    package : path
        The submission's package folder (:func:`submission_package`).
    problem : str or None
        Why the exercise's code could not be spliced, if it could not.
    work : path
        Scratch folder of this exercise (trusted: no worker sees it).
    setup : dict
        ``course``, ``boot``, ``kernels``, ``seed`` and ``roots`` (paths to hide) of the grading.
    timeout : float
        Seconds one call into the submission's code may take (a test's many
        calls together may take up to :func:`convlab.instructor.judge.test_seconds`).
    memory_mb : int
        Address-space cap of the worker.
    slot : int
        Which of the gradings that run at the same time this is: its workers
        get a user id of their own (when grading as root).

    Returns
    -------
    dict
        ``{"name", "status", "points", "max_points", "output", "tests": [...]}``.
    """
    course = setup["course"]
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    records = {nodeid: {"name": _display(nodeid, course), "status": None, "points": 0, "max_points": points,
                        "visibility": visibility, "output": ""} for nodeid, points, visibility in tests}
    naive = all(p["file"] in NAIVE_MODULE_FILES for p in places)
    if problem is None:
        results = work / "events.jsonl"
        spec = {
            "functions": sorted({(_module_name(p["file"]), p["function"]) for p in places}),
            "forwards": _forwards(places, course), "nodeids": [n for n, _, _ in tests], "timeout": timeout,
            "seed": setup["seed"], "results": str(results), "rootdir": str(course),
            "config": str(course / "pyproject.toml"),
            "worker": {"python": sys.executable, "boot": str(setup["boot"]),
                       "paths": [str(package), setup["site"]], "kernels": None if naive else str(setup["kernels"]),
                       "modules": sorted({_module_name(p["file"]) for p in places}), "memory_mb": memory_mb,
                       "uid": isolation.worker_uid(slot),
                       "binds": [str(package), str(setup["boot"])] + ([] if naive else [str(setup["kernels"])])},
        }
        (work / "spec.json").write_text(json.dumps(spec))
        run = subprocess.run([sys.executable, "-m", "convlab.instructor.judge", str(work / "spec.json")], cwd=work,
                             capture_output=True, text=True, env=_judge_env(setup.get("pycache")),
                             timeout=test_seconds(timeout) * len(tests) + 120)
        events = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        failures = [e for e in events if e["event"] in ("import-error", "collect-error")]
        if failures:
            problem = failures[0]["output"]
        for event in events:
            if event["event"] == "report" and event["nodeid"] in records:
                record = records[event["nodeid"]]
                if record["status"] in (None, "pass"):
                    record.update(status=event["status"], output=event["output"])
        started = [e["nodeid"] for e in events if e["event"] == "start"]
        if not events or (not failures and not any(e["event"] == "finished" for e in events)):
            problem = problem or f"the grader's test process failed (exit code {run.returncode}):\n" \
                                 f"{tail(run.stdout + run.stderr)}"
        hung = next((n for n in started if records[n]["status"] == "timeout"), None)
        for nodeid, record in records.items():
            if record["status"] is None and hung and problem is None:
                record.update(status="timeout", output=f"not run: {_display(hung, course)} timed out before it")
    for record in records.values():
        if record["status"] is None:
            record.update(status="import-error" if problem is not None else "fail",
                          output=problem if problem is not None else "not run")
        record["output"] = _without_machine_paths(record["output"], course, setup["roots"])
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


def grader_version(course, bundle, reference_files):
    """A hash of everything on the grader's side that decides a grade: the tests, the reference, the kit."""
    digest = hashlib.sha256(convlab.__version__.encode())
    kit = Path(__file__).resolve().parent
    paths = sorted((Path(bundle) / "tests").rglob("*.py")) + sorted((Path(course) / "tests").glob("*.py")) \
        + sorted(kit.glob("*.py")) + [Path(course) / f for f in sorted(reference_files)]
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _scratch_root():
    """A private scratch folder whose subfolders workers may enter (by name) but not list."""
    root = Path(tempfile.mkdtemp(prefix="convlab-grade-"))
    root.chmod(0o711)
    return root


def grade(submissions, bundle, out, jobs=1, timeout=20, memory_mb=2048, progress=True, course=None, key_file=None,
          roster=None, due=None):
    """Grade ``submissions`` into ``out``; returns ``({name: record}, names of those already graded, problems)``.

    Writes, once every worker of a submission is dead, ``out/<name>.json``
    (the instructor's record, signed: ``score``, ``max_score``, ``student``
    and ``tests``, one entry per exercise with its tests; see
    :mod:`convlab.instructor.gradebook`), ``out/feedback/<name>.json`` (what
    the student may see) and ``out/summary.csv`` (one row per student). A
    submission whose record exists, carries this grader's signature and was
    made from the same files by the same grader is not graded again; any other
    record is graded anew.

    Parameters
    ----------
    course : path or None
        The course repository (default: see :func:`convlab.instructor.course.find_course`);
        the installed convlab must be built from it (:func:`installed_differences`).
    key_file : path or None
        The grader's key (default: see :func:`convlab.instructor.integrity.load_key`).
    roster : list of dict or None
        From :func:`convlab.instructor.gradebook.read_roster`.
    due : datetime or None
        The aware due time, for the summary's ``late`` column.
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
    key = integrity.load_key(key_file)
    out.mkdir(parents=True, exist_ok=True)
    version = grader_version(course, bundle, reference)
    results, todo, already = {}, [], []
    for name, path in names.items():
        files = read_submission(path, manifest["files"])
        fingerprint = _fingerprint(files, manifest, version.encode())
        previous = _previous_record(out / f"{name}.json", key)
        if previous is not None and previous.get("fingerprint") == fingerprint:
            results[name] = previous
            already.append(name)
            continue
        todo.append((name, files, fingerprint))
    tests = collect_tests(bundle, manifest["exercises"], course) if todo else {}
    scratch = _scratch_root()
    try:
        setup = {"course": course, "seed": secrets.randbits(63), "site": str(Path(numpy.__file__).resolve().parents[1]),
                 "pycache": scratch / "pycache"}
        if todo:
            setup["boot"] = _boot_folder(scratch / secrets.token_hex(8))
            setup["kernels"] = kernels_folder(scratch / secrets.token_hex(8))
            _readable(setup["kernels"])
            released = scratch / "released"
            texts = released_package(course, manifest, released)
            _readable(released)
            _check_the_sandbox(setup, released, memory_mb)
        packages = {}
        for name, files, _ in todo:
            package = scratch / secrets.token_hex(8)
            packages[name] = (package, submission_package(files, manifest, released, texts, package))
        setup["roots"] = [str(p) for p, _ in packages.values()] + [str(scratch)]
        jobs_list = [(name, e) for name, _, _ in todo for e in manifest["exercises"]]
        graded, slots = {}, queue.SimpleQueue()
        for slot in range(max(1, jobs)):
            slots.put(slot)
        with ThreadPoolExecutor(max(1, jobs)) as pool, \
                tqdm(total=len(jobs_list), desc="grading", unit="exercise", disable=not progress,
                     file=sys.stderr) as bar:
            def one(job):
                name, exercise = job
                package, problems = packages[name]
                slot = slots.get()
                try:
                    result = grade_exercise(exercise, manifest["exercises"][exercise], tests[exercise], package,
                                            problems.get(exercise), Path(tempfile.mkdtemp(dir=scratch)), setup,
                                            timeout, memory_mb, slot)
                finally:
                    slots.put(slot)
                bar.update(1)
                return job, result
            for (name, exercise), result in pool.map(one, jobs_list):
                graded.setdefault(name, {})[exercise] = result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, files, fingerprint in todo:
        exercises = [graded[name][e] for e in manifest["exercises"]]
        record = {
            "submission": name, "student": gradebook.read_identity(names[name])[0],
            "score": sum(e["points"] for e in exercises), "max_score": sum(e["max_points"] for e in exercises),
            "tests": exercises, "fingerprint": fingerprint, "grader": version,
        }
        record["hmac"] = integrity.sign(key, record)
        results[name] = record
        atomic_write_text(out / f"{name}.json", json.dumps(record, indent=2) + "\n")
    (out / "feedback").mkdir(exist_ok=True)
    for name, record in results.items():
        atomic_write_text(out / "feedback" / f"{name}.json",
                          json.dumps(gradebook.student_feedback(record), indent=2) + "\n")
    problems = gradebook.write_summary(results, out / "summary.csv", roster=roster, due=due)
    return {name: results[name] for name in sorted(results)}, already, problems


def _check_the_sandbox(setup, package, memory_mb):
    """Start one worker on the released package before grading: a sandbox that cannot run here is an error
    naming why, not a zero for every student."""
    worker = Worker({"python": sys.executable, "boot": str(setup["boot"]), "paths": [str(package), setup["site"]],
                     "kernels": str(setup["kernels"]), "modules": ["convlab.layers"], "memory_mb": memory_mb,
                     "binds": [str(package), str(setup["boot"]), str(setup["kernels"])], "uid": isolation.worker_uid(0)})
    try:
        worker.start()
    except (isolation.IsolationError, WorkerCrashed, WorkerTimeout, StudentImportError) as err:
        raise GradeError(f"student code cannot be run in a sandbox here ({isolation.method()}): "
                         f"{' '.join(str(err).split())[:500]}") from None
    finally:
        worker.stop()


def _boot_folder(folder):
    """The worker's own two modules, copied where a worker may read them."""
    folder.mkdir()
    kit = Path(__file__).resolve().parent
    for name in ("worker.py", "wire.py"):
        shutil.copy2(kit / name, folder / name)
    _readable(folder)
    return folder


def _previous_record(path, key):
    """The record at ``path`` if this grader wrote it (its signature checks out under ``key``), else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return record if integrity.verify(key, record) else None


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

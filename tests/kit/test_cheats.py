"""Planted cheats: submissions that implement nothing and try to get the marks anyway (issue 25).

Each folder of ``tests/kit/cheats`` holds one cheat's code (``cheat.py``, which
says what it tries); ``cheats/prelude.py`` holds what they share. A cheat's
submission is made at test time from the released tree's three handed-in
files: each exercise's stub becomes ``return _cheat("<function>", locals())``,
and the prelude, the cheat and a call of its import-time part are appended.
So a cheat does no honest work: whatever it scores, it scored by cheating.

All cheats, an honest solved submission and the untouched released files are
graded once, together (``--jobs 2 --timeout 10``), with a token in the
grader's environment, a listener on 127.0.0.1, and the course copied into the
test's scratch folder, the one folder the cheats that write or delete may
touch (see the fence in ``prelude.py``). Expected:

- every cheat scores 0, and still 0 when ``grade`` runs again;
- no feedback holds the token, a hidden test's line, a solution's line or
  the grader's paths;
- the honest and the untouched records equal those of a grading without the
  cheats; the course, the bundle and every submission are byte-identical
  afterwards; the grade files do not change in the 8 s after grading;
- no process of any cheat is left (each cheat's marker string is searched in
  every process's command line and name); the listener saw no connection;
  no file of a gigabyte or more is left.

The whole grading takes a few minutes; its time is printed.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from convlab.instructor import release as releasing

ROOT = Path(__file__).resolve().parents[2]
CHEATS_DIR = Path(__file__).resolve().parent / "cheats"
CHEATS = sorted(p.name for p in CHEATS_DIR.iterdir() if (p / "cheat.py").is_file())
SUBMITTED = ("src/convlab/layers.py", "src/convlab/conv_family.py", "src/convlab/layer_utils.py",
             "src/convlab/classifiers/three_layer_convnet.py")
HONEST = ("solved", "untouched")
FENCE = "CONVLAB-CHEATS-FENCE"  # the prelude's safety fence
TOKEN = "secret-token-xyz"
STUB_RAISE = re.compile(r'^(?P<indent>[ \t]*)raise NotImplementedError\("[^"]*: implement (?P<function>[\w.]+)"\)[ \t]*$',
                        re.MULTILINE)
# Hang guard only (the whole run of a grader that waits for a cheat's child would take far longer).
GRADE_HANG_GUARD_S = 1800


def marker(cheat):
    """The string a cheat's processes carry in their command line or name: ``cvlcheat07`` for ``07-daemon``."""
    return f"cvlcheat{cheat[:2]}"


def make_submission(tree, cheat, out, port):
    """The handed-in files of ``cheat``: the released stubs calling ``_cheat``, plus prelude and cheat code."""
    code = "".join([
        f"\n\n# ---- planted cheat {cheat} ----\n_CV_MARKER = {marker(cheat)!r}\n\n\n",
        (CHEATS_DIR / "prelude.py").read_text(),
        "\n\n",
        (CHEATS_DIR / cheat / "cheat.py").read_text().replace("__LISTEN_PORT__", str(port)),
        "\n\n_CHEAT_STARTED = _cheat_at_import()\n",
    ])
    for file in SUBMITTED:
        text = STUB_RAISE.sub(lambda m: f'{m["indent"]}return _cheat("{m["function"]}", locals())',
                              (tree / file).read_text())
        target = out / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + code)


def copy_submitted(tree, out):
    for file in SUBMITTED:
        (out / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree / file, out / file)


def instructor(verb, *args, course, cwd, env, timeout=None):
    """``python -m convlab.instructor VERB --course COURSE ARGS``, its CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "convlab.instructor", verb, "--course", str(course), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def file_hashes(folder):
    """``{relative path: sha256}`` of every file under ``folder`` (byte caches left out)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def marked_processes():
    """``{cheat: [pid, ...]}`` of the live processes that carry a cheat's marker (zombies left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            text = (entry / "cmdline").read_bytes().decode(errors="replace") + " " + (entry / "comm").read_text()
        except OSError:
            continue
        for cheat in CHEATS:
            if marker(cheat) in text:
                found.setdefault(cheat, []).append(int(entry.name))
    return found


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts, in a thread."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections, self.stopping = [], threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                connection, address = self.socket.accept()
            except OSError:
                continue
            self.connections.append(address)
            connection.close()

    def close(self):
        self.stopping.set()
        self.thread.join()
        self.socket.close()


def grade_records(folder, names):
    return {name: json.loads((folder / f"{name}.json").read_text()) if (folder / f"{name}.json").is_file() else None
            for name in names}


def feedback_texts(folder, name):
    """Everything the grader wrote for submission ``name`` (its JSON, and any feedback file named after it)."""
    return {p.name: p.read_text(errors="replace") for p in sorted(Path(folder).rglob(f"*{name}*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Release everything, make the submissions, grade them without and then with the cheats."""
    work = tmp_path_factory.mktemp("cheats")
    (work / FENCE).write_text("the planted cheats write and delete only inside this folder\n")
    course = work / "course"  # a copy: a cheat that escapes damages the copy, not the clone
    shutil.copytree(ROOT, course, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", "_build", "__pycache__", ".pytest_cache", "*.so"))
    (work / "tmp").mkdir()
    # the grader's scratch and grading key in the fenced folder too
    env = dict(os.environ, TMPDIR=str(work / "tmp"), XDG_CONFIG_HOME=str(work / "config"), CANVAS_API_TOKEN=TOKEN,
               OMP_NUM_THREADS="1")
    released = instructor("release", "--assign", "*", "--out", "release", "--bundle", "grading",
                          course=course, cwd=work, env=env)
    assert released.returncode == 0, released.stdout + released.stderr
    tree, submissions = work / "release", work / "submissions"
    shutil.copytree(tree, work / "solved-tree")
    solved = instructor("solve", work / "solved-tree", course=course, cwd=work, env=env)
    assert solved.returncode == 0, solved.stderr
    copy_submitted(work / "solved-tree", submissions / "solved")
    copy_submitted(tree, submissions / "untouched")
    listener = Listener()
    for cheat in CHEATS:
        make_submission(tree, cheat, submissions / cheat, listener.port)
    honest = [submissions / name for name in HONEST]
    everyone = honest + [submissions / cheat for cheat in CHEATS]
    grade_args = ("--bundle", "grading", "--jobs", 2, "--timeout", 10, "--no-progress")
    baseline = instructor("grade", *honest, "--out", "baseline", *grade_args, course=course, cwd=work, env=env)
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr
    protected = {"course": course, "bundle": work / "grading", "release": tree, "submissions": submissions,
                 "baseline": work / "baseline"}
    before = {key: file_hashes(folder) for key, folder in protected.items()}
    try:
        start = time.monotonic()
        run = instructor("grade", *everyone, "--out", "grades", *grade_args, course=course, cwd=work, env=env,
                         timeout=GRADE_HANG_GUARD_S)
        seconds = time.monotonic() - start
        print(f"grading {len(CHEATS)} cheats and {len(HONEST)} honest submissions took {seconds:.0f} s")
        just_after = marked_processes()
        results = grade_records(work / "grades", HONEST + tuple(CHEATS))
        grades_then = file_hashes(work / "grades")
        time.sleep(8)
        grades_later = file_hashes(work / "grades")
        rerun = instructor("grade", *everyone, "--out", "grades", *grade_args, course=course, cwd=work, env=env,
                           timeout=GRADE_HANG_GUARD_S)
        results_rerun = grade_records(work / "grades", HONEST + tuple(CHEATS))
        left = marked_processes()
    finally:
        listener.close()
        for pids in marked_processes().values():  # clean up what a failing grader left running
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
    after = {key: file_hashes(folder) for key, folder in protected.items()}
    huge = [str(p) for p in work.rglob("*") if p.is_file() and p.stat().st_size >= 2**30]
    return {"work": work, "course": course, "tree": tree, "run": run, "seconds": seconds, "rerun": rerun,
            "results": results, "results_rerun": results_rerun, "baseline": grade_records(work / "baseline", HONEST),
            "just_after": just_after, "left": left, "grades_then": grades_then, "grades_later": grades_later,
            "before": before, "after": after, "connections": listener.connections, "huge": huge}


def test_grading_ends_with_a_table(graded):
    run = graded["run"]
    print(run.stdout)
    print(f"grading took {graded['seconds']:.0f} s")
    assert run.returncode == 0, run.stdout + run.stderr
    assert graded["rerun"].returncode == 0, graded["rerun"].stdout + graded["rerun"].stderr


def test_the_honest_submission_scores_full_marks_and_the_untouched_tree_zero(graded):
    solved, untouched = graded["results"]["solved"], graded["results"]["untouched"]
    assert solved["score"] == solved["max_score"] > 0, solved
    assert untouched["score"] == 0, untouched


@pytest.mark.parametrize("cheat", CHEATS)
def test_a_cheat_scores_zero(graded, cheat):
    for key in ("results", "results_rerun"):
        result = graded[key][cheat]
        assert result is not None and result["score"] == 0, (key, result)


@pytest.mark.parametrize("cheat", CHEATS)
def test_no_secret_in_a_cheats_feedback(graded, cheat):
    work, course = graded["work"], graded["course"]
    released = {line.strip() for p in graded["tree"].rglob("*") if p.is_file() and p.suffix in (".py", ".md", ".ipynb")
                for line in p.read_text(errors="replace").splitlines()}
    hidden = {line.strip() for p in (work / "grading").rglob("*.py") for line in p.read_text().splitlines()
              if len(line.strip()) >= 30} - released
    files = releasing.repository_files(course)
    exercises = releasing.find_exercises(course)
    solution = releasing._secret_lines(course, files, exercises, set(exercises))
    texts = feedback_texts(work / "grades", cheat)
    assert texts, f"no feedback written for {cheat}"
    for name, text in texts.items():
        assert TOKEN not in text, name
        assert not [line for line in hidden if line in text], name
        assert not [line for line in solution if line in text], name
        for path in (str(work), str(ROOT), sys.prefix):
            assert path not in text, (name, path)


def test_the_gradebook_is_what_it_would_be_without_the_cheats(graded):
    for name in HONEST:
        assert graded["results"][name] == graded["baseline"][name], name
    rows = {}
    for folder in ("grades", "baseline"):
        lines = (graded["work"] / folder / "summary.csv").read_text().splitlines()
        rows[folder] = {line.split(",")[0]: line for line in lines[1:] if line.split(",")[0] in HONEST}
    assert rows["grades"] == rows["baseline"]


def test_course_bundle_and_submissions_are_byte_identical(graded):
    for key in graded["before"]:
        before, after = graded["before"][key], graded["after"][key]
        assert sorted(set(after) - set(before)) == [], (key, "new files")
        assert sorted(set(before) - set(after)) == [], (key, "files gone")
        assert sorted(p for p in before if before[p] != after[p]) == [], (key, "files changed")


def test_grade_files_do_not_change_after_grading(graded):
    assert graded["grades_then"] == graded["grades_later"]


def test_no_process_of_a_cheat_is_left(graded):
    assert graded["just_after"] == {}, "right after grading"
    assert graded["left"] == {}, "after the re-run"


def test_no_connection_reached_the_listener(graded):
    assert graded["connections"] == []


def test_no_huge_file_is_left(graded):
    assert graded["huge"] == []

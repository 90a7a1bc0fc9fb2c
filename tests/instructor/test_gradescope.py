"""Gradescope: results.json from a grade record, and the autograder zip tried in a fake /autograder."""

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from convlab.instructor import __main__ as instructor
from convlab.instructor.gradescope import course_files, to_gradescope

TOKEN = "canvas-7f3a9c1e5b"
HIDDEN_SOURCE = "assert conv(x, stride=3).shape == (2, 4, 5, 5)"
RECORD = {
    "submission": "submission", "student": None, "score": 3.0, "max_score": 7.0, "fingerprint": "f" * 64,
    "grader": "0.1.0",
    "tests": [
        {"name": "a.forward", "status": "fail", "points": 3.0, "max_points": 6.0, "output": f"all: {HIDDEN_SOURCE}",
         "tests": [
             {"name": "tests/test_layers.py::test_forward", "status": "pass", "points": 1.0, "max_points": 1.0,
              "visibility": "visible", "output": ""},
             {"name": "tests/test_layers.py::test_forward_shapes", "status": "fail", "points": 0.0,
              "max_points": 1.0, "visibility": "visible",
              "output": f"/home/prof/course/src/convlab/layers.py:3: ValueError {TOKEN}"},
             {"name": "hidden/test_hidden_layers.py::test_forward_strides", "status": "timeout", "points": 0.0,
              "max_points": 2.0, "visibility": "after_due_date", "output": f">   {HIDDEN_SOURCE}"},
             {"name": "hidden/test_hidden_layers.py::test_forward_secret", "status": "pass", "points": 2.0,
              "max_points": 2.0, "visibility": "hidden", "output": f"{HIDDEN_SOURCE} /tmp/grader/x.py"},
         ]},
        {"name": "a.backward", "status": "import-error", "points": 0.0, "max_points": 1.0, "output": "no",
         "tests": [{"name": "tests/test_layers.py::test_backward", "status": "import-error", "points": 0.0,
                    "max_points": 1.0, "visibility": "visible", "output": "SyntaxError: invalid syntax"}]},
    ],
}


def test_results_follow_gradescope_schema_one_entry_per_test(monkeypatch):
    monkeypatch.setenv("CANVAS_API_TOKEN", TOKEN)
    results = to_gradescope(RECORD)
    assert set(results) == {"score", "output", "visibility", "stdout_visibility", "tests"}
    assert (results["score"], results["visibility"], results["stdout_visibility"]) == (3.0, "visible", "hidden")
    assert results["output"] == "total: 3/7\na.forward: 3/6 fail\na.backward: 0/1 import-error"
    assert [(t["name"], t["score"], t["max_score"], t["status"], t["visibility"]) for t in results["tests"]] == [
        ("a.forward: tests/test_layers.py::test_forward", 1.0, 1.0, "passed", "visible"),
        ("a.forward: tests/test_layers.py::test_forward_shapes", 0.0, 1.0, "failed", "visible"),
        ("a.forward: hidden/test_hidden_layers.py::test_forward_strides", 0.0, 2.0, "failed", "after_due_date"),
        ("a.forward: hidden/test_hidden_layers.py::test_forward_secret", 2.0, 2.0, "passed", "hidden"),
        ("a.backward: tests/test_layers.py::test_backward", 0.0, 1.0, "failed", "visible"),
    ]
    assert sum(t["score"] for t in results["tests"]) == results["score"]
    assert [t["output"] for t in results["tests"]] == [
        "", "layers.py:3: ValueError $CANVAS_API_TOKEN", "", "", "SyntaxError: invalid syntax"]
    text = json.dumps(results)
    assert HIDDEN_SOURCE not in text and TOKEN not in text and "/home/" not in text and "/tmp/" not in text
    for test in results["tests"]:
        assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}


def test_after_due_date_outputs_are_included_once_the_due_time_has_passed():
    due = datetime(2026, 12, 1, 23, 0, tzinfo=timezone.utc)
    before = to_gradescope(RECORD, due=due, now=datetime(2026, 12, 1, 22, 0, tzinfo=timezone.utc))
    after = to_gradescope(RECORD, due=due, now=datetime(2026, 12, 2, 0, 0, tzinfo=timezone.utc))
    assert before["tests"][2]["output"] == ""
    assert after["tests"][2]["output"] == f">   {HIDDEN_SOURCE}"
    assert after["tests"][3]["output"] == ""  # hidden stays hidden


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def course(tmp_path):
    """A small course: one exercise, a public and a hidden test, and folders that must not ship."""
    root = tmp_path / "course"
    files = {
        "src/convlab/__init__.py": "",
        "src/convlab/submit/__init__.py": "",
        "src/convlab/layers.py": ("def forward(x):\n    # BEGIN SOLUTION a.forward\n    y = [value * 2 for value in x]"
                                  "\n    # END SOLUTION\n    return y\n"),
        "tests/test_layers.py": ("import pytest\n\n\n@pytest.mark.exercise('a.forward', points=2)\n"
                                 "def test_forward():\n    pass\n"),
        "tests/hidden/test_hidden_layers.py": ("import pytest\n\n\n@pytest.mark.exercise('a.forward', points=3)\n"
                                               "def test_forward_hidden():\n    pass\n"),
        "pyproject.toml": "[project]\nname = 'convlab'\n",
        "scripts/run.sh": "#!/bin/sh\n",
        "datasets/cifar-10-batches-py/data_batch_1": "pixels",
        "book/_build/html/index.html": "<html>",
        ".venv/bin/python": "#!/bin/sh\n",
        "src/convlab/__pycache__/layers.cpython-311.pyc": "bytes",
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "scripts/run.sh").chmod(0o755)
    git("init", "-q", cwd=root)
    return root


def unpack(archive_path, folder):
    """Unpack as Gradescope does (``unzip``): with the permission bits stored in the zip."""
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            target = Path(archive.extract(info, folder))
            target.chmod(info.external_attr >> 16 & 0o777)


def test_the_autograder_zip_holds_both_scripts_the_course_and_the_bundle(course, tmp_path, capsys):
    out = tmp_path / "autograder.zip"
    assert instructor.main(["gradescope", "--assign", "a.*", "--out", str(out), "--course", str(course)]) == 0
    assert "autograder for 1 exercises: a.forward" in capsys.readouterr().out
    with zipfile.ZipFile(out) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    assert sorted(infos) == [
        "bundle/assignment.json", "bundle/tests/hidden/test_hidden_layers.py",
        "course/pyproject.toml", "course/scripts/run.sh", "course/src/convlab/__init__.py",
        "course/src/convlab/layers.py", "course/src/convlab/submit/__init__.py",
        "course/tests/hidden/test_hidden_layers.py", "course/tests/test_layers.py",
        "run_autograder", "setup.sh"]
    modes = {name: stat.S_IMODE(info.external_attr >> 16) for name, info in infos.items()}
    assert modes["setup.sh"] == modes["run_autograder"] == modes["course/scripts/run.sh"] == 0o755
    assert modes["course/tests/test_layers.py"] == 0o644
    # an earlier autograder zip inside the course is not packed into the next one
    shutil.copy(out, course / "autograder.zip")
    assert "autograder.zip" not in course_files(course)


def test_gradescope_refuses_a_bad_out_in_one_line_before_any_work(course, tmp_path, capsys):
    for out, message in ((tmp_path / "missing" / "a.zip", "does not exist"), (tmp_path, "is a folder")):
        assert instructor.main(["gradescope", "--assign", "a.*", "--out", str(out), "--course", str(course)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --out {out}") and message in err and err.count("\n") == 1


def stub(folder, name, body):
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def autograder_root(course, tmp_path):
    """A fake /autograder: the zip unpacked into source/, run_autograder copied up, a submission."""
    out = tmp_path / "autograder.zip"
    assert instructor.main(["gradescope", "--assign", "a.*", "--out", str(out), "--course", str(course)]) == 0
    root = tmp_path / "autograder"
    unpack(out, root / "source")
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission" / "src/convlab").mkdir(parents=True)
    (root / "submission" / "src/convlab/layers.py").write_text("def forward(x):\n    return x\n")
    return root


def test_setup_sh_installs_the_tools_and_the_course_with_its_instructor_extra(autograder_root, tmp_path):
    root = autograder_root
    assert os.access(root / "source" / "setup.sh", os.X_OK)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    log = tmp_path / "calls.log"
    stub(stubs, "apt-get", f'echo "apt-get $*" >> {log}\n')
    # python3 makes a venv whose python records what it is asked to do; anything else runs the real one
    stub(stubs, "python3", f'if [ "$1" = -m ] && [ "$2" = venv ]; then\n'
                           f'  mkdir -p "$3/bin"; printf \'#!/bin/sh\\necho "venv-python $*" >> {log}\\n\' > "$3/bin/python"\n'
                           f'  chmod +x "$3/bin/python"; echo "python3 $*" >> {log}; exit 0\nfi\n'
                           f'exec {sys.executable} "$@"\n')
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "CONVLAB_AUTOGRADER_ROOT": str(root), "HOME": str(tmp_path)}
    run = subprocess.run([root / "source" / "setup.sh"], cwd=root / "source", env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "apt-get update"
    installed = calls[1].split()
    assert installed[:4] == ["apt-get", "install", "-y", "--no-install-recommends"]
    assert {"python3", "python3-venv", "bubblewrap", "git", "build-essential"} <= set(installed)
    assert calls[2:] == [f"python3 -m venv {root}/venv", "venv-python -m pip install --upgrade pip",
                         f"venv-python -m pip install {root}/source/course[instructor]"]
    listed = subprocess.run(["git", "ls-files"], cwd=root / "source" / "course", capture_output=True, text=True)
    assert "src/convlab/layers.py" in listed.stdout.split()  # the kit's course is a git work tree


def test_run_autograder_grades_the_submission_into_results_json(autograder_root, tmp_path, monkeypatch):
    root = autograder_root
    assert os.access(root / "run_autograder", os.X_OK)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    argv_file = tmp_path / "argv.json"
    stub(stubs, "python", f"exec {sys.executable} -c 'import json, sys; json.dump(sys.argv[1:], "
                          f"open(\"{argv_file}\", \"w\"))' \"$@\"\n")
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "CONVLAB_AUTOGRADER_ROOT": str(root), "HOME": str(tmp_path)}
    run = subprocess.run([root / "run_autograder"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    argv = json.loads(argv_file.read_text())
    assert argv == ["-m", "convlab.instructor", "grade", f"{root}/submission", "--bundle", f"{root}/source/bundle",
                    "--out", "/tmp/grades", "--course", f"{root}/source/course",
                    "--gradescope", f"{root}/results/results.json", "--no-progress"]
    assert (root / "results").is_dir()
    # the same command line, parsed by the real command, grading faked: results.json in Gradescope's schema
    git("init", "-q", cwd=root / "source" / "course")  # as setup.sh does
    calls = []

    def fake_grade(submissions, bundle, out, **options):
        calls.append((submissions, bundle, out, options))
        return {"submission": RECORD}, [], []

    monkeypatch.setattr(instructor.grading, "grade", fake_grade)
    assert instructor.main(argv[2:]) == 0
    [(submissions, bundle, out, options)] = calls
    assert submissions == [root / "submission"] and bundle == root / "source" / "bundle" and not options["progress"]
    assert options["course"] == (root / "source" / "course").resolve()
    results = json.loads((root / "results" / "results.json").read_text())
    assert results == json.loads(json.dumps(to_gradescope(RECORD)))


def test_grade_refuses_gradescope_output_for_more_than_one_submission_before_grading(course, tmp_path, monkeypatch,
                                                                                     capsys):
    monkeypatch.setattr(instructor.grading, "grade", lambda *a, **k: pytest.fail("graded"))
    argv = ["grade", "alice", "bob", "--bundle", "b", "--out", "o", "--course", str(course)]
    assert instructor.main(argv + ["--gradescope", str(tmp_path / "results.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --gradescope writes the results.json of one submission; 2") and err.count("\n") == 1
    assert instructor.main(["grade", "alice", "--bundle", "b", "--out", "o", "--course", str(course),
                            "--gradescope", str(tmp_path / "nowhere" / "results.json")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err

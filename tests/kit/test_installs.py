"""The course kit and a student's tree, installed as their users install them, in fresh virtual environments.

1. The README's ``release`` example, run as printed from the root of a clone of the course.
2. A student's environment made exactly as the released ``SUBMIT.md`` says (its ``pip install``
   line, in a new venv without system site-packages): every module a released chapter imports is
   there, a released chapter runs until the stub of its assigned exercise, and the public tests run.
3. The kit from a wheel of the course installed in a fresh venv (with the ``instructor`` extra):
   ``check`` works on the course it is run in or named by ``--course``, and outside a course the
   command ends with one error line and status 2.

The course is a ``git clone`` of this repository, so it holds what is committed. The two installs
each compile the kernels (about a minute and a half on one core), so they are made at the same
time, once per session. ``CONVLAB_KIT_WHEEL=path`` uses a wheel built before
(e.g. the portability stage's) instead of building one. pip uses its usual configuration and
cache; ``PIP_NO_COMPILE`` only skips writing bytecode at install time.
"""

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELEASE_EXAMPLE = re.compile(r"^python -m convlab\.instructor release .*?(?=\s+#|$)", re.MULTILINE)


def _run(command, cwd, env=None, timeout=900):
    """``subprocess.run`` of ``command`` (text output captured), failing the test if it fails."""
    run = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, f"{' '.join(map(str, command))} (in {cwd}) failed:\n{(run.stdout + run.stderr)[-4000:]}"
    return run


def _pip_env():
    return dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_COMPILE="1", OMP_NUM_THREADS="1")


def _fresh_venv(path):
    """A new virtual environment at ``path`` (no system site-packages); returns its python."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return Path(path) / "bin" / "python"


def readme_release_command():
    """The README's ``python -m convlab.instructor release ...`` example, as printed."""
    found = RELEASE_EXAMPLE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(found) == 1, found
    return found[0].strip()


def submit_install_command(tree):
    """The ``pip install ...`` line of a released tree's ``SUBMIT.md``."""
    lines = [line.strip() for line in (Path(tree) / "SUBMIT.md").read_text(encoding="utf-8").splitlines()
             if line.strip().startswith("pip install")]
    assert len(lines) == 1, lines
    return lines[0]


def _student_install(tree, where):
    """A venv made as ``SUBMIT.md`` says, with ``pip`` run from the venv, in the student's tree."""
    python = _fresh_venv(where)
    words = shlex.split(submit_install_command(tree))
    _run([python, "-m", *words], cwd=tree, env=_pip_env())
    return python


def _wheel_install(course, where):
    """A venv with a wheel of ``course`` and its ``instructor`` extra (the wheel built here unless given)."""
    wheel = os.environ.get("CONVLAB_KIT_WHEEL")
    if wheel:
        wheel = Path(wheel)
        assert wheel.is_file(), f"CONVLAB_KIT_WHEEL={wheel}: no such file"
    else:  # the build tools (setuptools, Cython, NumPy) of this environment; nothing downloaded
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
              "-w", Path(where) / "dist", course], cwd=where, env=_pip_env())
        (wheel,) = (Path(where) / "dist").glob("convlab-*.whl")
    python = _fresh_venv(Path(where) / "venv")
    _run([python, "-m", "pip", "install", "-q", f"{wheel}[instructor]"], cwd=where, env=_pip_env())
    return python


@pytest.fixture(scope="module")
def installs(tmp_path_factory):
    """A clone of the course, the README's release in it, and the two fresh installs (made at once)."""
    work = tmp_path_factory.mktemp("installs")
    course = work / "course"
    _run(["git", "clone", "-q", ROOT, course], cwd=work)
    example = readme_release_command()
    release = subprocess.run([sys.executable, *shlex.split(example)[1:]], cwd=course, capture_output=True, text=True)
    assert release.returncode == 0, f"{example}\n{release.stdout}{release.stderr}"
    tree = course / shlex.split(example)[shlex.split(example).index("--out") + 1]
    (work / "wheel").mkdir()
    with ThreadPoolExecutor(2) as pool:
        student = pool.submit(_student_install, tree, work / "student-venv")
        wheel = pool.submit(_wheel_install, course, work / "wheel")
        student_python, wheel_python = student.result(), wheel.result()
    return {"work": work, "course": course, "example": example, "release": release.stdout, "tree": tree,
            "student": student_python, "wheel": wheel_python}


def test_the_readme_release_example_runs_as_printed(installs):
    assert "leak scan: clean" in installs["release"]
    assert (installs["tree"] / "SUBMIT.md").is_file()


def _imported_modules(chapter):
    """Top-level names of the modules a chapter's code cells import."""
    names = set()
    for cell in json.loads(Path(chapter).read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


RUN_CHAPTER = """
import json, sys
import nbclient, nbformat
notebook = nbformat.read(sys.argv[1], as_version=4)
client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                 resources={"metadata": {"path": sys.argv[2]}})
try:
    client.execute()
    print(json.dumps(None))
except nbclient.exceptions.CellExecutionError as err:
    print(json.dumps({"ename": err.ename, "evalue": err.evalue}))
"""


def test_a_student_venv_made_as_submit_md_says_has_what_the_chapters_import(installs):
    tree, python = installs["tree"], installs["student"]
    chapters = sorted((tree / "book").glob("*.ipynb"))
    assert chapters
    modules = sorted(set().union(*map(_imported_modules, chapters)))
    assert "skimage" in modules and "convlab" in modules
    missing = _run([python, "-c", "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] "
                    "if importlib.util.find_spec(m) is None))", *modules], cwd=tree).stdout.split()
    assert missing == [], f"{submit_install_command(tree)} does not install {missing}"
    where = _run([python, "-c", "import convlab.layers; print(convlab.layers.__file__)"], cwd="/").stdout.strip()
    assert Path(where) == tree / "src" / "convlab" / "layers.py"


def test_a_released_chapter_runs_in_the_student_venv_until_its_assigned_stub(installs):
    tree, python = installs["tree"], installs["student"]
    chapter = tree / "book" / "01-convolution.ipynb"       # imports scikit-image in its first cell
    run = _run([python, "-c", RUN_CHAPTER, chapter, chapter.parent], cwd=tree, env=_pip_env())
    error = json.loads(run.stdout.strip().splitlines()[-1])
    assert error is not None and error["ename"] == "NotImplementedError", error
    assert error["evalue"].startswith("conv.forward: implement conv_forward_naive"), error


def test_the_public_tests_run_in_the_student_venv(installs):
    tree, python = installs["tree"], installs["student"]
    run = subprocess.run([python, "-m", "convlab.submit", "check"], cwd=tree, env=_pip_env(),
                         capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-3000:]                       # the stubs fail, nothing else
    assert "public tests of 4 exercises: conv.backward, conv.forward, pool.backward, pool.forward" in output
    assert re.search(r"\n\d+ failed, \d+ skipped, \d+ deselected in ", output), output[-3000:]
    assert "\nERROR " not in output and "ModuleNotFoundError" not in output, output[-3000:]


def test_the_kit_from_a_wheel_in_a_fresh_venv(installs, tmp_path):
    python, course = installs["wheel"], installs["course"]
    where = _run([python, "-c", "import convlab; print(convlab.__file__)"], cwd=tmp_path).stdout.strip()
    assert "site-packages" in where and not Path(where).is_relative_to(course), where
    named = _run([python, "-m", "convlab.instructor", "check", "--course", course], cwd=tmp_path)
    here = _run([python, "-m", "convlab.instructor", "check"], cwd=course / "book")
    for run in (named, here):
        assert run.stdout.rstrip().endswith("every mark's exercise exists"), run.stdout
    # grade's precondition: the installed package is the course's code, file for file
    same = _run([python, "-c", "import sys; from convlab.instructor.grade import installed_differences; "
                 "print(installed_differences(sys.argv[1]))", course], cwd=tmp_path)
    assert same.stdout.strip() == "[]", same.stdout
    outside = subprocess.run([python, "-m", "convlab.instructor", "check"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert outside.returncode == 2 and outside.stdout == ""
    assert outside.stderr == (f"error: {tmp_path} is not inside a course repository (no git repository here); "
                              "run the kit in a clone of the course or pass --course DIR\n")

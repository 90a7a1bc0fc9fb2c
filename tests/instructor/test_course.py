"""The course the kit works on: ``--course DIR`` or the git repository it runs in, whatever the install."""

import subprocess
import sys
from pathlib import Path

import pytest

from convlab.instructor.course import CourseError, find_course

ROOT = Path(__file__).resolve().parents[2]


def _git_init(path):
    subprocess.run(["git", "init", "-q", str(path)], check=True)


def _course(path):
    """A folder with the marks of a course: the package's sources and hidden tests, in a git repository."""
    _git_init(path)
    (path / "src" / "convlab").mkdir(parents=True)
    (path / "src" / "convlab" / "__init__.py").write_text("")
    (path / "tests" / "hidden").mkdir(parents=True)
    return path


def test_the_course_is_the_git_repository_around_the_current_folder_or_the_one_named(tmp_path):
    course = _course(tmp_path / "course")
    (course / "book").mkdir()
    assert find_course(cwd=course / "book") == course.resolve()
    assert find_course(course) == course.resolve()
    assert find_course(str(course)) == course.resolve()


def test_outside_a_course_the_error_says_where_and_what_to_do(tmp_path):
    with pytest.raises(CourseError, match=r"is not inside a course repository \(no git repository here\); "
                                          r"run the kit in a clone of the course or pass --course DIR"):
        find_course(cwd=tmp_path)
    with pytest.raises(CourseError, match="--course .*missing: no such folder"):
        find_course(tmp_path / "missing")
    with pytest.raises(CourseError, match="--course .* is not in a git repository"):
        find_course(tmp_path)
    # a student's released tree (no hidden tests), even once git-initialised, is not the course
    student = tmp_path / "student"
    _git_init(student)
    (student / "src" / "convlab").mkdir(parents=True)
    (student / "src" / "convlab" / "__init__.py").write_text("")
    with pytest.raises(CourseError, match=r"is not a convlab course: it has no tests/hidden;"):
        find_course(cwd=student)


@pytest.mark.parametrize("verb", [["check"], ["solve", "release"], ["release", "--assign", "*", "--out", "r"],
                                  ["grade", "s", "--bundle", "b", "--out", "g"]])
def test_every_verb_outside_a_course_ends_with_one_error_line_and_status_2(tmp_path, verb):
    run = subprocess.run([sys.executable, "-m", "convlab.instructor", *verb], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"error: {tmp_path} is not inside a course")
    assert not (tmp_path / "r").exists() and not (tmp_path / "g").exists()


def test_the_kit_runs_on_the_course_named_by_course_from_anywhere(tmp_path):
    run = subprocess.run([sys.executable, "-m", "convlab.instructor", "check", "--course", str(ROOT)],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip().endswith("every mark's exercise exists")


def test_grading_needs_the_installed_convlab_to_be_built_from_the_course(tmp_path):
    from convlab.instructor.grade import installed_differences

    assert installed_differences(ROOT) == []            # this repository, installed in place
    package = tmp_path / "src" / "convlab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_bytes((ROOT / "src/convlab/__init__.py").read_bytes())
    (package / "layers.py").write_text((ROOT / "src/convlab/layers.py").read_text() + "\n# changed\n")
    (package / "new_module.py").write_text("")
    assert installed_differences(tmp_path) == ["src/convlab/layers.py", "src/convlab/new_module.py"]


def test_without_the_instructor_extra_the_kit_says_which_package_is_missing(tmp_path):
    # nbformat stands for any dependency of the kit that a plain `pip install convlab` leaves out
    hide = ("import runpy, sys; sys.modules['nbformat'] = None; sys.argv = ['convlab.instructor', 'check']; "
            "runpy.run_module('convlab.instructor', run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", hide], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == ("error: the course kit needs nbformat, which is not installed; install convlab with "
                          "its instructor extra: pip install 'convlab[instructor]' (or -e '.[instructor]' in "
                          "the course)\n")


def test_the_kit_lists_every_module_it_has():
    """The module list in ``convlab.instructor``'s docstring is checked against the package itself."""
    import pkgutil
    import re

    import convlab.instructor

    listed = set(re.findall(r"^(\w+) {2,}", convlab.instructor.__doc__, re.M))
    present = {m.name for m in pkgutil.iter_modules(convlab.instructor.__path__)} - {"__main__"}
    assert listed == present

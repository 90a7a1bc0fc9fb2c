"""Release helpers: choosing exercises, the table of contents, and the leak scan."""

import pytest

from convlab.instructor.release import ReleaseError, _release_toc, leak_scan, select


def test_select_takes_globs_and_refuses_one_that_matches_nothing():
    exercises = ["conv.forward", "conv.backward", "pool.forward"]
    assert select(exercises, "conv.*, pool.forward") == ["conv.backward", "conv.forward", "pool.forward"]
    with pytest.raises(ReleaseError, match="'pool.backwards' matches no exercise"):
        select(exercises, "conv.*,pool.backwards")


def test_toc_loses_the_entries_of_pages_that_are_not_released():
    toc = "chapters:\n  - file: book/01-convolution\n  - file: book/instructors\n"
    assert _release_toc(toc, ["book/instructors.md"]) == "chapters:\n  - file: book/01-convolution\n"


def test_toc_loses_a_part_whose_pages_are_all_not_released():
    toc = ("root: book/intro\n"
           "parts:\n"
           "  - caption: Chapters\n"
           "    numbered: true\n"
           "    chapters:\n"
           "      - file: book/01-convolution\n"
           "  - caption: For instructors\n"
           "    chapters:\n"
           "      - file: book/instructors\n"
           "  - caption: Appendices\n"
           "    chapters:\n"
           "      - file: book/sweeps\n")
    assert _release_toc(toc, ["book/instructors.md"]) == (
        "root: book/intro\n"
        "parts:\n"
        "  - caption: Chapters\n"
        "    numbered: true\n"
        "    chapters:\n"
        "      - file: book/01-convolution\n"
        "  - caption: Appendices\n"
        "    chapters:\n"
        "      - file: book/sweeps\n")


def test_leak_scan_finds_markers_and_solution_lines_also_in_notebook_outputs(tmp_path):
    (tmp_path / "clean.py").write_text("x = 1\n")
    (tmp_path / "marked.py").write_text("    # BEGIN SOLUTION conv.forward\n")
    (tmp_path / "copied.md").write_text("Here it is:\n\n    out[n, :, i, j] = np.sum(w * window)\n")
    (tmp_path / "chapter.ipynb").write_text(
        '{"cells": [{"cell_type": "code", "execution_count": 1, "id": "a", "metadata": {}, "source": "show()",'
        ' "outputs": [{"output_type": "stream", "name": "stdout", "text": "out[n, :, i, j] = np.sum(w * window)\\n"}]}],'
        ' "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    leaks = leak_scan(tmp_path, {"out[n, :, i, j] = np.sum(w * window)"})
    assert sorted(leak.split(":")[0] for leak in leaks) == ["chapter.ipynb", "copied.md", "marked.py"]


def test_a_release_refused_for_a_shared_line_names_the_unassigned_exercise_to_add(tmp_path):
    # Two exercises share a line (as the convolution's and the pooling's window loops do): the
    # unassigned one keeps its solution, so that line would show; the refusal says what to assign.
    import subprocess

    from convlab.instructor.release import release

    subprocess.run(["git", "init", "-q", str(tmp_path / "course")], check=True)
    source = tmp_path / "course" / "src" / "convlab" / "layers.py"
    (source.parent / "submit").mkdir(parents=True)
    (source.parent / "submit" / "__init__.py").write_text("")
    source.write_text("def forward(x):\n    # BEGIN SOLUTION a.forward\n    for i in range(len(x)):\n"
                      "        x[i] += 1\n    # END SOLUTION\n\n\ndef backward(x):\n"
                      "    # BEGIN SOLUTION a.backward\n    for i in range(len(x)):\n        x[i] -= 1\n"
                      "    # END SOLUTION\n")
    with pytest.raises(ReleaseError, match=r"(?s)solution line 'for i in range\(len\(x\)\):'.*"
                                           r"in the solutions of a\.backward, .*--assign 'a\.forward,a\.backward'"):
        release(tmp_path / "course", "a.forward", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(release(tmp_path / "course", "a.forward,a.backward", tmp_path / "out")["exercises"]) == [
        "a.backward", "a.forward"]


def test_an_earlier_release_and_bundle_inside_the_course_are_not_part_of_it(tmp_path):
    # `release --out release --bundle grading` run at the course's root writes both inside the
    # repository; a later release copied them (hidden tests included) into the student's tree.
    import subprocess

    from convlab.instructor.release import repository_files

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for path in ("src/convlab/layers.py", "tests/hidden/test_hidden_layers.py",
                 "release/src/convlab/layers.py", "release/src/convlab/submit/assignment.json",
                 "grading/assignment.json", "grading/tests/hidden/test_hidden_layers.py",
                 "notes/assignment.json"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    assert repository_files(tmp_path) == ["notes/assignment.json", "src/convlab/layers.py",
                                          "tests/hidden/test_hidden_layers.py"]

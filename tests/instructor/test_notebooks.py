"""Chapters as assignments: inline markers in cells, the solution and instructor tags, cleared outputs."""

import nbformat
import pytest

from convlab.instructor.markers import MarkerError
from convlab.instructor.notebooks import notebook_texts, release_notebook, solve_notebook


def chapter():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# A chapter\n\nA correct answer gives an error below 1e-9."),
        nbformat.v4.new_code_cell("from demo import double\n# BEGIN SOLUTION demo.double\ny = double(3)\n# END SOLUTION\nprint(y)",
                                  outputs=[nbformat.v4.new_output("stream", text="6\n")], execution_count=1),
        nbformat.v4.new_code_cell("z = 7 * 6", metadata={"tags": ["solution"], "exercise": "demo.cell"}),
        nbformat.v4.new_code_cell("secret = 42", metadata={"tags": ["instructor"]}),
        nbformat.v4.new_code_cell("w = 1", metadata={"tags": ["solution"]}),
    ]
    return nbformat.writes(notebook) + "\n"


CHAPTER = chapter()  # once: new cells get random ids


def test_release_stubs_cells_drops_instructor_cells_and_clears_outputs():
    released = nbformat.reads(release_notebook(chapter(), {"demo.double", "demo.cell"}.__contains__), 4)
    sources = [cell.source for cell in released.cells]
    assert len(released.cells) == 4
    assert sources[0].startswith("# A chapter") and "1e-9" in sources[0]  # prose kept
    assert 'raise NotImplementedError("demo.double: implement this cell")' in sources[1]
    assert "y = double(3)" not in sources[1] and sources[1].endswith("print(y)")
    assert 'raise NotImplementedError("demo.cell: implement this cell")' in sources[2]
    assert "cell: implement this cell" in sources[3]  # a solution cell without an id is always stubbed
    assert all("secret" not in s for s in sources)
    code = [cell for cell in released.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_unassigned_solution_cell_keeps_its_code():
    released = nbformat.reads(release_notebook(chapter(), {"demo.double"}.__contains__), 4)
    assert released.cells[2].source == "z = 7 * 6"


def test_solve_gives_back_the_chapter_and_refuses_changed_prose():
    assigned = {"demo.double", "demo.cell"}.__contains__
    released = release_notebook(CHAPTER, assigned)
    assert solve_notebook(released, CHAPTER, assigned) == CHAPTER
    with pytest.raises(MarkerError, match="changed outside"):
        solve_notebook(released.replace("A chapter", "Another chapter"), CHAPTER, assigned)


def test_leak_scan_sees_outputs():
    assert "6\n" in list(notebook_texts(chapter()))

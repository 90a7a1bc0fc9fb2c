"""Chapters as assignments: release a notebook for students, and put it back.

In a chapter's code cells the markers of :mod:`convlab.instructor.markers`
work as in a module. Two cell tags act on whole cells:

* ``solution``: the cell's code is the answer; released, it becomes a stub
  (metadata ``"exercise": "<id>"`` ties it to an exercise, and then it is
  stubbed only when that exercise is assigned; without an id it always is);
* ``instructor``: the cell is dropped from the student's copy.

Every released code cell has its outputs cleared; markdown cells (the prose,
with the magnitudes a correct answer gives) are kept as written.
"""

import json

import nbformat

from convlab.instructor.markers import MarkerError, release_text, skeleton, stub_text


def _tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def read(text):
    """A notebook node from the JSON text of a notebook (nbformat 4)."""
    return nbformat.reads(text, as_version=4)


def write(notebook):
    """JSON text of ``notebook`` in Jupyter's own layout (one-space indent, final newline)."""
    return nbformat.writes(notebook) + "\n"


def released_cells(notebook, assigned, where):
    """The student's cells of ``notebook``: a list of new cells, outputs cleared."""
    cells = []
    for number, cell in enumerate(notebook.cells):
        tags = _tags(cell)
        if "instructor" in tags:
            continue
        cell = nbformat.from_dict(json.loads(json.dumps(cell)))
        if cell.cell_type == "code":
            exercise = cell.metadata.get("exercise")
            if "solution" in tags and (exercise is None or assigned(exercise)):
                cell.source = stub_text(exercise or "cell", "this cell", "").rstrip("\n")
            else:
                cell.source = release_text(cell.source, assigned, f"{where} cell {number}")
            cell.outputs = []
            cell.execution_count = None
        elif "solution" in tags:
            raise MarkerError(f"{where} cell {number}: the 'solution' tag is for code cells")
        cells.append(cell)
    return cells


def release_notebook(text, assigned, where="<notebook>"):
    """The student's copy of a notebook.

    Parameters
    ----------
    text : str
        JSON text of the instructor's notebook.
    assigned : callable
        ``assigned(exercise_id) -> bool``.
    where : str
        Names the notebook in error messages.

    Returns
    -------
    str
        JSON text of the released notebook.
    """
    notebook = read(text)
    notebook.cells = released_cells(notebook, assigned, where)
    return write(notebook)


def _shape(notebook_text):
    """What a student may not change: each cell's type and source outside the banners."""
    return [(cell.cell_type, skeleton(cell.source)) for cell in read(notebook_text).cells]


def solve_notebook(released, source, assigned, where="<notebook>"):
    """The instructor's notebook ``source``, after checking ``released`` was made from it.

    Raises
    ------
    MarkerError
        If ``released`` differs from the release of ``source`` outside the banners.
    """
    if _shape(released) != _shape(release_notebook(source, assigned, where)):
        raise MarkerError(f"{where} was changed outside its exercises' banners; cannot put the solutions back")
    return source


def notebook_texts(text):
    """Every string a reader could see in a notebook: cell sources and outputs."""
    notebook = read(text)
    for cell in notebook.cells:
        yield cell.source
        for output in cell.get("outputs", []):
            for key in ("text", "traceback"):
                value = output.get(key, "")
                yield "\n".join(value) if isinstance(value, list) else value
            for value in output.get("data", {}).values():
                if isinstance(value, str):
                    yield value

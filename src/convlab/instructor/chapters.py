"""Re-execute a released chapter and say where it stopped.

A stubbed chapter is expected to run until its first call into a stub, and
to stop there with that stub's ``NotImplementedError("<id>: implement ...")``;
a chapter that calls no stub must run to its end.
"""

import re

import nbclient
import nbformat

_STUB_ERROR = re.compile(r"^(?P<id>[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+): implement ")


def run_chapter(path, cwd, timeout=600, env=None):
    """Execute the notebook at ``path`` in a fresh kernel, cell by cell, until one fails.

    Parameters
    ----------
    path : path
        The notebook.
    cwd : path
        Working directory of the kernel (the chapter's folder).
    timeout : float
        Seconds per cell.
    env : dict or None
        Environment of the kernel (``None``: this process's).

    Returns
    -------
    dict
        ``{"cells": cells run, "error": None}`` when every cell ran, else
        ``"error": {"ename", "evalue", "exercise"}`` with ``exercise`` the id of
        the stub that raised, or None if the error was anything else.
    """
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    ran = 0
    with client.setup_kernel(env=env, cwd=str(cwd)):
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except nbclient.exceptions.CellExecutionError as err:
                stub = _STUB_ERROR.match(err.evalue or "") if err.ename == "NotImplementedError" else None
                return {"cells": ran, "error": {"ename": err.ename, "evalue": err.evalue,
                                                "exercise": stub["id"] if stub else None}}
            ran += 1
    return {"cells": ran, "error": None}

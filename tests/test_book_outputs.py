"""The committed chapters show what they draw.

nbval re-executes the chapters and compares their text outputs, but it does
not notice a figure that was never displayed (for example a Figure made
outside pyplot, which ``plt.show()`` does not know about). This test reads the
stored outputs: every code cell that calls ``plt.show()`` must have stored an
image.
"""

import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))


def plotting_cells(path):
    notebook = json.loads(path.read_text())
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code" and "plt.show()" in "".join(cell["source"]):
            yield index, cell


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_every_plotting_cell_stores_an_image(path):
    missing = [index for index, cell in plotting_cells(path)
               if not any("image/png" in output.get("data", {}) for output in cell["outputs"])]
    assert not missing, f"{path.name}: cells {missing} call plt.show() but stored no image"


def test_there_are_chapters():
    assert len(CHAPTERS) >= 7

"""For students: check an assignment with its public tests, and collect the files to hand in.

``python -m convlab.submit check`` runs the public tests of the assigned
exercises; ``python -m convlab.submit collect`` zips the files to submit. The
assignment (its exercises and files) is ``assignment.json`` next to this file,
written when the instructor released the assignment.
"""

import json
from pathlib import Path

MANIFEST = Path(__file__).with_name("assignment.json")


def assignment():
    """The released assignment: ``{"exercises": {id: [{"file", "function"}]}, "files": [...]}``, or None."""
    if not MANIFEST.is_file():
        return None
    return json.loads(MANIFEST.read_text(encoding="utf-8"))

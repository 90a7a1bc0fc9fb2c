"""The convolution family gives away none of the course's convolution exercises.

A student assigned ``conv.forward`` / ``conv.backward`` gets a release whose
``conv_family.py`` keeps its solutions (the family's exercises are not
assigned). Had the family computed convolutions of its own, the student
could hand in ``conv_general_forward_naive`` (dilation = groups = 1) or
``conv_transpose_forward_naive`` (the input gradient) and collect the
points. Built from the course's naive convolution, every family
convolution stops at the student's stub instead. Checked on a released
``layers.py`` (the markers' own stubbing), in a fresh interpreter.
"""

import subprocess
import sys
from pathlib import Path

import pytest

import convlab
from convlab.instructor.markers import release_text

PACKAGE = Path(convlab.__file__).parent

CALLS = """
import numpy as np
from convlab import conv_family as cf
rng = np.random.default_rng(0)
x, w, b = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((4, 4, 3, 3)), np.zeros(4)
param = {"stride": 1, "pad": 1}
attempts = {
    "general forward": lambda: cf.conv_general_forward_naive(x, w, b, param),
    "general backward": lambda: cf.conv_general_backward_naive(x, (x, w, b, param)),
    "transposed forward": lambda: cf.conv_transpose_forward_naive(x, w, b, param),
    "transposed backward": lambda: cf.conv_transpose_backward_naive(x, (x, w, b, param)),
}
for name, attempt in attempts.items():
    try:
        attempt()
        print(name, "computed")
    except NotImplementedError as error:
        print(name, "stopped:", str(error).split(":")[0])
"""


@pytest.mark.parametrize("assigned, expected", [
    ({"conv.forward"}, {"general forward": "conv.forward", "general backward": "computed",
                        "transposed forward": "computed", "transposed backward": "conv.forward"}),
    ({"conv.backward"}, {"general forward": "computed", "general backward": "conv.backward",
                         "transposed forward": "conv.backward", "transposed backward": "conv.backward"}),
])
def test_with_the_course_convolution_stubbed_the_family_stops_too(tmp_path, assigned, expected):
    tree = tmp_path / "convlab"
    tree.mkdir()
    for name in ("__init__.py", "validation.py", "conv_family.py"):
        (tree / name).write_text((PACKAGE / name).read_text())
    (tree / "layers.py").write_text(release_text((PACKAGE / "layers.py").read_text(),
                                                 lambda exercise: exercise in assigned))
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + CALLS],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    outcome = {}
    for line in result.stdout.splitlines():      # "general forward stopped: conv.forward"
        words = line.split()
        outcome[" ".join(words[:2])] = words[-1]
    assert outcome == expected

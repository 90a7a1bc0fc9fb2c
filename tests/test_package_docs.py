"""The package's lists of its own modules are checked against the package itself.

Two places name every module of :mod:`convlab` for a reader: the "Modules"
section of the package's docstring (``src/convlab/__init__.py``) and the
layout in the README. Both are checked, at the granularity a reader sees:
the top-level modules and subpackages, found with :func:`pkgutil.iter_modules`
(which reads the folder and imports nothing). A module added, removed or
renamed without its line fails here, naming it.
"""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import convlab

PACKAGE = Path(convlab.__file__).parent
README = PACKAGE.parent.parent / "README.md"


def _present():
    """``{name: is_package}`` for every top-level module and subpackage of convlab (``_fast`` too)."""
    return {m.name: m.ispkg for m in pkgutil.iter_modules(convlab.__path__) if m.name != "__main__"}


def _docstring_modules():
    """The names in the "Modules" section of convlab's docstring (``name   description`` lines)."""
    section = convlab.__doc__.split("Modules\n-------\n", 1)[1]
    return re.findall(r"^(\w+) {2,}", section, re.M)


def _readme_layout():
    """``[(entry, description)]`` for ``src/convlab/``'s entries of the README's layout block.

    An entry is ``name.py`` or ``name/`` (several on one line are separated
    by ``", "``); its description runs on over the indented lines below it.
    The kernels' folder has a line of its own, ``src/convlab/_fast/``.
    """
    text = README.read_text(encoding="utf-8")
    block = text.split("## Layout\n", 1)[1].split("```\n", 2)[1]
    entries, inside = [], False
    for line in block.splitlines():
        top = re.match(r"src/convlab/(\w+/)?\s", line)
        if top:
            inside = True
            if top.group(1):
                entries.append([top.group(1), line[top.end():]])
            continue
        if not line.startswith(" "):
            inside = False
            continue
        item = re.match(r"  (\w+(?:\.py|/)(?:, \w+(?:\.py|/))*)(?: {2,}(.*))?$", line)
        if inside and item:
            entries.extend([name, item.group(2) or ""] for name in item.group(1).split(", "))
        elif inside and entries:
            entries[-1][1] += " " + line.strip()
    return [tuple(entry) for entry in entries]


def test_the_package_docstring_lists_every_public_module_once():
    listed = _docstring_modules()
    assert len(listed) == len(set(listed)), f"listed twice: {sorted({n for n in listed if listed.count(n) > 1})}"
    public = {name for name in _present() if not name.startswith("_")}
    assert sorted(public - set(listed)) == [], "modules missing from convlab's docstring"
    assert sorted(set(listed) - public) == [], "convlab's docstring lists modules that do not exist"


def test_the_readme_layout_lists_every_module_once():
    names = [name for name, _ in _readme_layout()]
    assert len(names) == len(set(names)), f"listed twice: {sorted({n for n in names if names.count(n) > 1})}"
    present = {name + ("/" if is_package else ".py") for name, is_package in _present().items()}
    assert sorted(present - set(names)) == [], "modules missing from the README's layout"
    assert sorted(set(names) - present) == [], "the README's layout lists modules that do not exist"


def test_the_files_the_readme_names_inside_a_subpackage_exist():
    for entry, description in _readme_layout():
        if entry.endswith("/"):
            for file_name in re.findall(r"\b(\w+\.py)\b", description):
                assert (PACKAGE / entry / file_name).is_file(), f"README: {entry}{file_name} does not exist"


@pytest.mark.parametrize("former, new, names", [
    ("convlab.classifiers.cnn", "convlab.classifiers.three_layer_convnet", ["ThreeLayerConvNet"]),
    ("convlab.classifiers.convnet", "convlab.classifiers.airbench_convnet", ["ConvNet", "whitening_filters"]),
])
def test_a_former_model_module_says_where_its_model_went(former, new, names):
    with pytest.raises(ImportError) as raised:
        importlib.import_module(former)
    message = str(raised.value)
    assert former in message and new in message and all(name in message for name in names)
    assert all(hasattr(importlib.import_module(new), name) for name in names)

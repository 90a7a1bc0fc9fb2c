"""The package's modules import each other only in the directions its design allows.

Read from the source with :mod:`ast` (every ``import``, also inside
functions), so nothing is imported to check it. The floors and their rules
are drawn in ``docs/architecture.md``; each rule is one test here:

* :mod:`convlab.layers` is the oracle and imports nothing of convlab's;
  :mod:`convlab.modern_layers` imports only it;
* :mod:`convlab.fast_layers` (the package) is the only door to the Cython
  kernels in :mod:`convlab._fast`;
* the Solver, its update rules and schedules, and the data loading know no
  model class;
* the run files (checkpoints, a run's folder) know no model and nothing
  above them;
* the command lines build their models from :mod:`convlab.recipes`;
* the course kit sits on top: nothing else imports it, and its grading
  worker never imports the grader.
"""

import ast
from pathlib import Path

import pytest

import convlab

PACKAGE = Path(convlab.__file__).parent


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    """Every Python module of the package outside ``_fast``, by dotted name."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "_fast" not in p.parts}


def _imports(name, path):
    """The dotted names of everything the module ``name`` imports (relative ones resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = _modules()


def _importers_of(prefix):
    return sorted(name for name, path in MODULES.items()
                  if any(i == prefix or i.startswith(prefix + ".") for i in _imports(name, path)))


def _convlab_imports(name):
    return {i for i in _imports(name, MODULES[name]) if i.split(".")[0] == "convlab"}


def _in_package(name, package):
    return name == package or name.startswith(package + ".")


def test_the_modules_are_found():
    assert {"convlab.layers", "convlab.modern_layers", "convlab.fast_layers", "convlab.fast_layers.simd",
            "convlab.solver", "convlab.classifiers.airbench_convnet"} <= set(MODULES)


def test_only_fast_layers_imports_the_kernels():
    """Apart from the course kit's two modules that keep them *out* of a naive answer's reach: the guard
    (which lists the kernel modules to disable) and the grading worker (which adds them only where allowed)."""
    importers = _importers_of("convlab._fast")
    assert "convlab.fast_layers" in importers
    assert [name for name in importers if not _in_package(name, "convlab.fast_layers")] == [
        "convlab.instructor.guard", "convlab.instructor.worker"]


def test_the_naive_layers_import_nothing_of_convlab():
    assert not _convlab_imports("convlab.layers")


def test_the_modern_layers_import_only_the_course_layers():
    imports = _convlab_imports("convlab.modern_layers")
    assert "convlab.layers" in imports
    assert {i for i in imports if not _in_package(i, "convlab.layers")} == set()


@pytest.mark.parametrize("name", ["convlab.solver", "convlab.optim", "convlab.schedules",
                                  "convlab.data_utils"])
def test_training_and_data_know_no_model(name):
    models = {i for i in _imports(name, MODULES[name]) if i.startswith("convlab.classifiers")}
    assert not models, f"{name} imports {sorted(models)}"


@pytest.mark.parametrize("name", ["convlab.train", "convlab.ensemble"])
def test_the_command_lines_build_their_models_through_the_recipes(name):
    imports = _imports(name, MODULES[name])
    assert "convlab.recipes" in imports
    assert not {i for i in imports if i.startswith("convlab.classifiers")}


#: The floor of a run's files, below the Solver: today's modules, and the package that replaces them.
RUN_FILES = sorted(name for name in MODULES
                   if name in ("convlab.checkpoint", "convlab.run_dir") or _in_package(name, "convlab.runs"))
#: What the run files must not know: the models, and every floor above them.
ABOVE_RUNS = ("convlab.classifiers", "convlab.recipes", "convlab.solver", "convlab.train", "convlab.ensemble",
              "convlab.sweep", "convlab.profiling", "convlab.instructor")


def test_the_run_files_are_found():
    assert RUN_FILES


@pytest.mark.parametrize("name", RUN_FILES)
def test_the_run_files_know_no_model(name):
    above = {i for i in _convlab_imports(name) if any(_in_package(i, floor) for floor in ABOVE_RUNS)}
    assert not above, f"{name} imports {sorted(above)}"


def test_nothing_outside_the_course_kit_imports_it():
    assert [name for name in _importers_of("convlab.instructor")
            if not _in_package(name, "convlab.instructor")] == []


def test_the_grading_worker_never_imports_the_grader():
    """The worker runs the student's code: it imports no module of the kit (its ``wire`` is a copy beside
    it), and of convlab's only the kernels' package, to point it at the kernels where they are allowed."""
    assert _convlab_imports("convlab.instructor.worker") == {"convlab._fast"}

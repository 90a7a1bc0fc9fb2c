"""The package's modules import each other only in the directions its design allows.

Read from the source with :mod:`ast` (every ``import``, also inside
functions), so nothing is imported to check it. The floors and their rules
are drawn in ``docs/architecture.md``; each rule is one test here:

* :mod:`convlab.layers` is the oracle and imports nothing of convlab's;
  :mod:`convlab.modern_layers` imports only it, :mod:`convlab.conv_family`
  only it and :mod:`convlab.validation`;
* :mod:`convlab.fast_layers` (the package) is the only door to the Cython
  kernels in :mod:`convlab._fast`;
* the models know no training, and the Solver, its update rules and
  schedules, and the data loading know no model class;
* the run files (:mod:`convlab.runs`: checkpoints, a run's folder) know no
  model and nothing above them: no solver, model, recipe, layer or kernel;
* the Solver does not import the command line or the recipes built on it;
* the command lines build their models from :mod:`convlab.recipes`;
* the course kit sits on top: nothing else imports it, and its grading
  worker never imports the grader;
* :mod:`convlab.summary` (a network's cost from its spec) imports nothing
  of convlab's, :mod:`convlab.architectures` only it;
* the book uses only names the package has (this one test imports the
  modules the chapters name, without running the chapters).
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
    assert {"convlab.layers", "convlab.modern_layers", "convlab.conv_family", "convlab.fast_layers", "convlab.fast_layers.simd",
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


def test_the_architecture_sizes_stand_alone():
    """summary is arithmetic on specs, no layer or model; architectures imports only summary."""
    assert not _convlab_imports("convlab.summary")
    assert {i.rpartition(".")[0] if i.count(".") > 1 else i
            for i in _convlab_imports("convlab.architectures")} == {"convlab.summary"}


def test_the_convolution_family_imports_only_the_course_layers_and_validation():
    imports = _convlab_imports("convlab.conv_family")
    assert "convlab.layers" in imports
    allowed = ("convlab.layers", "convlab.validation")
    assert {i for i in imports if not any(_in_package(i, module) for module in allowed)} == set()


@pytest.mark.parametrize("name", ["convlab.solver", "convlab.optim", "convlab.schedules",
                                  "convlab.data_utils"])
def test_training_and_data_know_no_model(name):
    models = {i for i in _imports(name, MODULES[name]) if i.startswith("convlab.classifiers")}
    assert not models, f"{name} imports {sorted(models)}"


MODELS = sorted(name for name in MODULES if name.startswith("convlab.classifiers."))
#: The training floor and everything above it, which a model must not know.
TRAINING_AND_ABOVE = ("convlab.solver", "convlab.optim", "convlab.schedules", "convlab.checkpoint",
                      "convlab.run_dir", "convlab.runs", "convlab.recipes", "convlab.train", "convlab.ensemble",
                      "convlab.sweep", "convlab.profiling", "convlab.instructor")


@pytest.mark.parametrize("name", MODELS)
def test_the_models_know_no_training(name):
    above = {i for i in _convlab_imports(name) if any(_in_package(i, floor) for floor in TRAINING_AND_ABOVE)}
    assert not above, f"{name} imports {sorted(above)}"


# What the runs package may import of convlab: itself, and the package's root (its version).
_BELOW_RUNS = ("convlab.runs",)


def test_the_runs_package_is_found():
    assert {"convlab.runs", "convlab.runs.files", "convlab.runs.checkpoint",
            "convlab.runs.model_file", "convlab.runs.history", "convlab.runs.folder"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("convlab.runs")))
def test_runs_imports_nothing_of_convlab_above_it(name):
    """No solver, model, recipe, layer or kernel: runs knows files, not what is in them."""
    above = {i for i in _imports(name, MODULES[name])
             if i.startswith("convlab.") and not i.startswith(_BELOW_RUNS)
             and i != "convlab.__version__"}
    assert not above, f"{name} imports {sorted(above)}"


def test_the_solver_does_not_import_the_command_line_or_the_recipes():
    imports = _imports("convlab.solver", MODULES["convlab.solver"])
    assert not {i for i in imports
                if i.split(".")[:2] in (["convlab", "train"], ["convlab", "recipes"])}


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


def _book_uses():
    """``(notebook, module, name)`` for every convlab name a chapter's code cells use.

    ``from convlab.x import y`` uses ``y`` of ``convlab.x``; ``from convlab import x`` (or
    ``import convlab.x as x``) followed by ``x.y`` uses ``y`` of ``convlab.x``; ``import convlab.x``
    uses the module itself (``name`` None).
    """
    import json

    found = []
    for notebook in sorted((PACKAGE.parent.parent / "book").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
        tree = ast.parse(code, notebook.name)
        modules = {}   # a name bound to a convlab module -> that module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "convlab":
                for alias in node.names:
                    found.append((notebook.name, node.module, alias.name))
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "convlab":
                        found.append((notebook.name, alias.name, None))
                        if alias.asname:
                            modules[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules):
                found.append((notebook.name, modules[node.value.id], node.attr))
    return found


def test_the_book_uses_only_names_the_package_has():
    """The book stands on the package: every convlab name a chapter imports or reads off an imported
    module exists (checked by importing, without running the chapters)."""
    import importlib

    uses = _book_uses()
    assert ("07-experiments.ipynb", "convlab.modern_layers", "gelu_forward") in uses
    missing = []
    for notebook, module, name in sorted(set(uses), key=str):
        try:
            imported = importlib.import_module(module)
        except ImportError:   # ``from convlab import x`` where x is a function, not a module
            imported = None
        if imported is None or (name is not None and not hasattr(imported, name)):
            try:
                importlib.import_module(f"{module}.{name}" if name else module)
            except ImportError:
                missing.append(f"{notebook}: {module}.{name}")
    assert not missing


def test_the_architecture_page_points_at_every_rule_and_only_at_real_ones():
    """``docs/architecture.md`` names, for each floor's rule, the test here that checks it."""
    import re
    import sys

    page = (PACKAGE.parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_\w+)`", page))
    rules = {name for name in dir(sys.modules[__name__]) if name.startswith("test_")} - {
        "test_the_modules_are_found", "test_the_run_files_are_found",
        "test_the_architecture_page_points_at_every_rule_and_only_at_real_ones"}
    assert sorted(named - rules) == [], "the page names tests that do not exist"
    assert sorted(rules - named) == [], "rules tested here that the page does not explain"

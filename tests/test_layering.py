"""The package's modules import each other only in the directions its design allows.

Read from the source with :mod:`ast` (every ``import``, also inside
functions), so nothing is imported to check it:

* :mod:`convlab.layers` is the oracle and imports nothing of convlab's;
* :mod:`convlab.fast_layers` is the only door to the Cython kernels in
  :mod:`convlab._fast`;
* the Solver, its update rules and schedules, and the data loading know no
  model class;
* :mod:`convlab.runs` (a run's files) is below the Solver: it imports nothing
  of convlab above it -- no solver, model, recipe, layer or kernel;
* the Solver does not import the command line or the recipes built on it;
* the command lines build their models from :mod:`convlab.recipes`.
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


def test_the_modules_are_found():
    assert {"convlab.layers", "convlab.fast_layers", "convlab.solver",
            "convlab.classifiers.airbench_convnet"} <= set(MODULES)


def test_only_fast_layers_imports_the_kernels():
    """Apart from the course kit's two modules that keep them *out* of a naive answer's reach: the guard
    (which lists the kernel modules to disable) and the grading worker (which adds them only where allowed)."""
    assert _importers_of("convlab._fast") == ["convlab.fast_layers", "convlab.instructor.guard",
                                              "convlab.instructor.worker"]


def test_the_naive_layers_import_nothing_of_convlab():
    assert not {i for i in _imports("convlab.layers", MODULES["convlab.layers"])
                if i.split(".")[0] == "convlab"}


@pytest.mark.parametrize("name", ["convlab.solver", "convlab.optim", "convlab.schedules",
                                  "convlab.data_utils"])
def test_training_and_data_know_no_model(name):
    models = {i for i in _imports(name, MODULES[name]) if i.startswith("convlab.classifiers")}
    assert not models, f"{name} imports {sorted(models)}"


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


def test_the_former_module_names_still_import():
    from convlab import fast_layers
    from convlab.classifiers import airbench_convnet, cnn, convnet, three_layer_convnet

    assert cnn.ThreeLayerConvNet is three_layer_convnet.ThreeLayerConvNet
    assert convnet.ConvNet is airbench_convnet.ConvNet
    assert convnet.whitening_filters is airbench_convnet.whitening_filters
    assert convnet.max_pool_floor_forward is fast_layers.max_pool_floor_forward_fast

"""``model.npz``: a trained model's parameters, its state and the recipe that built it.

Written by ``python -m convlab.train`` at the end of a run, read back by
:func:`convlab.recipes.load_trained_model` (which rebuilds the model from the
recipe: this module knows no model) and checked by
:class:`convlab.runs.folder.RunFolder` before a finished run is believed.

Format
------
One uncompressed ``.npz`` file (nothing pickled):

- ``params/<name>``: the model's parameters;
- ``state/<key>``: its ``state_dict()`` (batch-norm statistics, ...), if it has one;
- ``recipe``: a 0-d string array holding the recipe as JSON.

:func:`check_arrays` is the package's one check of saved arrays against a
model's (the same names, shapes and dtypes); the Solver checks its
checkpoints with it too.
"""

import json
import os
import zipfile

import numpy as np

from convlab.runs.files import atomic_savez

__all__ = ["write", "problem", "read", "check_arrays"]


def write(path, params, state, recipe):
    """Write ``model.npz`` atomically.

    Parameters
    ----------
    path : str or path
    params : dict of str -> ndarray
        The parameters, stored as ``params/<name>``.
    state : dict of str -> ndarray or None
        The model's ``state_dict()``, stored as ``state/<key>`` (None: no state).
    recipe : dict
        JSON-serialisable (tuples become lists).
    """
    arrays = {f"params/{k}": v for k, v in params.items()}
    if state is not None:
        arrays.update({f"state/{k}": v for k, v in state.items()})
    arrays["recipe"] = np.array(json.dumps(recipe, default=list))
    atomic_savez(path, arrays)


def problem(path):
    """Why the ``model.npz`` at ``path`` cannot be read (every array, CRC checked), or None.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    str or None
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "recipe" not in archive.files:
                return "it has no recipe entry"
            for key in archive.files:
                archive[key]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        return f"{type(error).__name__}: {error}"
    return None


def read(path):
    """Read a ``model.npz`` written by :func:`write`.

    Parameters
    ----------
    path : str or path
        The file, or the run folder that holds it.

    Returns
    -------
    params : dict of str -> ndarray
    state : dict of str -> ndarray
        Empty if the model had no state.
    recipe : dict
        As stored (lists where the recipe had tuples).
    path : str
        The file read.

    Raises
    ------
    ValueError
        Naming the file: it is missing, damaged, or has no recipe.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.npz")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        recipe = json.loads(str(arrays.pop("recipe")))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist: is this the folder of a finished "
                         "`python -m convlab.train` run?") from None
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read {path} ({type(error).__name__}: {error}); it is damaged "
                         "or not a model.npz written by `python -m convlab.train`") from None
    if not isinstance(recipe, dict):
        raise ValueError(f"{path}: its recipe entry is not a recipe")
    params = {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}
    state = {k[len("state/"):]: v for k, v in arrays.items() if k.startswith("state/")}
    return params, state, recipe, path


def check_arrays(source, section, saved, needed):
    """ValueError unless ``saved`` has exactly the keys of ``needed``, each with its shape and dtype.

    A float64 array where the model has float32 would silently change every
    number computed after it; a missing or extra entry means another model.

    Parameters
    ----------
    source : str
        Where ``saved`` comes from, for the message (``"checkpoint run/x.npz"``).
    section : str
        Which part of the file, for the message (``"params"``, ``"best_state"``).
    saved : dict of str -> ndarray
    needed : dict of str -> array_like
        The model's entries.
    """
    if set(saved) != set(needed):
        raise ValueError(f"{source} has {section}/* entries {sorted(saved)} but the model "
                         f"needs {sorted(needed)}")
    for key, mine in needed.items():
        value, mine = np.asarray(saved[key]), np.asarray(mine)
        if value.shape != mine.shape or value.dtype != mine.dtype:
            raise ValueError(f"{section} entry {key!r} has shape {value.shape} and dtype "
                             f"{value.dtype} in {source} but shape {mine.shape} and dtype "
                             f"{mine.dtype} in the model")

"""The Solver's checkpoint file: its format, the Solver's state in it, and finding the latest one.

:class:`convlab.solver.Solver` decides what its state is
(:meth:`~convlab.solver.Solver.state_dict`) and whether a state fits it
(:meth:`~convlab.solver.Solver.load_state_dict`); this module lays that state
out in a file (:func:`write_state`, :func:`read_state`), writes it atomically
and reads it back checked.

Checkpoint format
-----------------
One uncompressed ``.npz`` file (read it with
``np.load(path, allow_pickle=False)``; nothing is pickled):

- ``meta``: a 0-d string array holding JSON: format name and version, epoch,
  iteration, batch size, number of training examples, update-rule name, the
  base learning rate, the scalar entries of every parameter's optimizer config,
  all histories, ``best_val_acc``, the EMA decay, and the generator state
  ``rng.bit_generator.state``;
- ``params/<name>``: the model parameters;
- ``model_state/<key>``: ``model.state_dict()``, if the model has one;
- ``optim/<name>/<key>``: the array entries (velocities, moments, caches) of
  the optimizer config of parameter ``<name>``;
- ``best/<name>``: the best parameters so far;
- ``best_state/<key>``: the model state (``state_dict``) that went with them,
  if the model has one;
- ``ema/<name>``: the moving average of the parameters, when ``ema_decay`` is set;
- ``ema_state/<key>``: the moving average of the model's floating-point state
  (``state_dict``), when ``ema_decay`` is set and the model has state.

The file is written with :func:`convlab.runs.files.write_atomically`, so a
crash never leaves a half-written checkpoint under the final name.
"""

import json
import os
import zipfile

import numpy as np

from convlab.runs.files import atomic_savez

__all__ = ["FORMAT", "VERSION", "save", "load", "load_meta", "check_finite",
           "find_latest_checkpoint", "write_state", "read_state"]

#: The ``format`` and ``version`` entries of every checkpoint's ``meta``.
FORMAT = "convlab-solver-checkpoint"
VERSION = 2

# The Solver's scalar state, in the order the meta stores it (``param_names``,
# ``has_model_state`` and ``optim_scalars`` are derived from the arrays).
_SCALARS = ("epoch", "iteration", "num_epochs", "batch_size", "num_train", "update_rule",
            "base_learning_rate")
_HISTORIES = ("loss_history", "lr_history", "train_acc_history", "val_acc_history",
              "epoch_time_history")
# The entries of a checkpoint's meta that a Solver's state needs.
_META_KEYS = _SCALARS + ("param_names", "has_model_state", "optim_scalars", "best_val_acc",
                         "ema_decay") + _HISTORIES + ("rng",)


def save(path, arrays, meta):
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : str or path
        The file name, used as given (``.npz`` is not appended).
    arrays : dict of str -> ndarray
        The sections of the format (``params/<name>``, ...).
    meta : dict
        JSON-serialisable; stored after the format name and version.
    """
    arrays = dict(arrays)
    arrays["meta"] = np.array(json.dumps({"format": FORMAT, "version": VERSION, **meta}))
    atomic_savez(path, arrays)


def load(path):
    """Read a checkpoint written by :func:`save`.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    arrays : dict of str -> ndarray
        Every entry but ``meta``.
    meta : dict

    Raises
    ------
    ValueError
        If the file is missing, damaged, not a checkpoint, or of another
        format version.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        # missing, truncated, not a zip file, or no JSON 'meta' entry
        raise ValueError(f"cannot read checkpoint {path} ({type(error).__name__}: {error}); "
                         "it is missing, damaged or not written by Solver.save_checkpoint") from error
    _check_format(path, meta)
    return arrays, meta


def load_meta(path):
    """The ``meta`` dict of a checkpoint written by :func:`save`, without reading its arrays.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    meta : dict

    Raises
    ------
    ValueError
        As :func:`load`.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read checkpoint {path} ({type(error).__name__}: {error}); "
                         "it is missing, damaged or not written by Solver.save_checkpoint") from error
    _check_format(path, meta)
    return meta


def check_finite(path, arrays):
    """ValueError, naming ``path`` and the entry, if a floating-point array holds NaN or infinity.

    A run whose weights (or optimizer state, or moving averages) are not
    finite has diverged, or its file is damaged; continuing it would train
    on NaN without a word.

    Parameters
    ----------
    path : str or path
        The checkpoint the arrays come from (for the message).
    arrays : dict of str -> ndarray
        As :func:`load` returns them.
    """
    for key, value in arrays.items():
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.inexact) and not np.all(np.isfinite(value)):
            raise ValueError(f"checkpoint {os.fspath(path)} holds NaN or infinite values in "
                             f"{key}: the run it saves had diverged, or the file is damaged; "
                             "it cannot be resumed")


def _check_format(path, meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{path} is not a version-{VERSION} convlab checkpoint")


def find_latest_checkpoint(checkpoint_name):
    """The checkpoint with the highest epoch written under the prefix ``checkpoint_name``.

    Parameters
    ----------
    checkpoint_name : str or path
        The ``checkpoint_name`` given to :class:`convlab.solver.Solver`.

    Returns
    -------
    path : str or None
        ``f"{checkpoint_name}_epoch_{e}.npz"`` for the largest ``e`` found, or
        None if there is none.
    """
    prefix = os.fspath(checkpoint_name)
    directory = os.path.dirname(prefix) or "."
    stem = os.path.basename(prefix) + "_epoch_"
    best = None
    if not os.path.isdir(directory):
        return None
    for entry in os.listdir(directory):
        if entry.startswith(stem) and entry.endswith(".npz"):
            number = entry[len(stem):-len(".npz")]
            if number.isdigit() and (best is None or int(number) > best):
                best = int(number)
    return None if best is None else f"{prefix}_epoch_{best}.npz"


# ----------------------------------------------------------------------
# The Solver's state in the file
# ----------------------------------------------------------------------

def write_state(path, state):
    """Write a Solver's state (:meth:`convlab.solver.Solver.state_dict`) as a checkpoint.

    Everything is checked before anything is written.

    Parameters
    ----------
    path : str or path
        The file name, used as given (``.npz`` is not appended).
    state : dict
        ``params``, ``optim`` (name -> config dict), ``best``, ``best_state``:
        dicts of arrays; ``model_state``, ``ema``, ``ema_state``: dicts of
        arrays or None; the scalars, histories and ``rng`` state listed in the
        module docstring; optionally ``run_info``.

    Raises
    ------
    ValueError
        If an optimizer config entry is neither an array nor a JSON scalar,
        or a model state entry is not numeric.
    """
    arrays = {f"params/{k}": np.asarray(v) for k, v in state["params"].items()}
    if state["model_state"] is not None:
        for key, value in state["model_state"].items():
            value = np.asarray(value)
            if value.dtype == object:
                raise ValueError(f"model.state_dict()[{key!r}] is not a numeric array")
            arrays[f"model_state/{key}"] = value
    optim_scalars = {}
    for name, config in state["optim"].items():
        scalars = {}
        for key, value in config.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim/{name}/{key}"] = value
            else:
                scalars[key] = _json_scalar(f"optim_configs[{name!r}][{key!r}]", value)
        optim_scalars[name] = scalars
    for section in ("best", "best_state", "ema", "ema_state"):
        for key, value in (state[section] or {}).items():
            arrays[f"{section}/{key}"] = value
    meta = {key: state[key] for key in _SCALARS}
    meta.update(param_names=list(state["params"]),
                has_model_state=state["model_state"] is not None,
                optim_scalars=optim_scalars, best_val_acc=state["best_val_acc"],
                ema_decay=state["ema_decay"])
    meta.update({key: state[key] for key in _HISTORIES})
    meta["rng"] = state["rng"]
    if state.get("run_info") is not None:
        meta["run_info"] = state["run_info"]
    save(path, arrays, meta)


def read_state(path):
    """Read a checkpoint written by :func:`write_state` back into a Solver's state.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    state : dict
        As :func:`write_state` takes it: ``model_state`` is None for a model
        without state; ``ema`` is None without ``ema_decay``, ``ema_state``
        also for a model without state.

    Raises
    ------
    ValueError
        Naming the file: it is missing, damaged, of another format, holds
        NaN or infinity, or lacks entries of the meta.
    """
    path = os.fspath(path)
    arrays, meta = load(path)
    check_finite(path, arrays)
    missing = [key for key in _META_KEYS if key not in meta]
    if missing:
        raise ValueError(f"checkpoint {path} lacks the meta entries {missing}; it is damaged "
                         "or not written by Solver.save_checkpoint")

    def section(prefix):
        return {key[len(prefix) + 1:]: value for key, value in arrays.items()
                if key.startswith(prefix + "/")}

    has_state, has_ema = meta["has_model_state"], meta["ema_decay"] is not None
    state = {key: meta[key] for key in _SCALARS + ("best_val_acc", "ema_decay") + _HISTORIES}
    state.update(
        params=section("params"), model_state=section("model_state") if has_state else None,
        optim={name: {**scalars, **section(f"optim/{name}")}
               for name, scalars in meta["optim_scalars"].items()},
        best=section("best"), best_state=section("best_state"),
        ema=section("ema") if has_ema else None,
        ema_state=section("ema_state") if has_ema and has_state else None,
        rng=meta["rng"], run_info=meta.get("run_info"))
    return state


def _json_scalar(what, value):
    """Convert a config entry to a JSON-compatible scalar, or raise ValueError."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, float)):
        return value
    raise ValueError(f"cannot store {what} = {value!r} in a checkpoint; "
                     "config entries must be arrays, numbers, strings, booleans or None")

"""``history.json``: a run's record, epoch by epoch, and its final results.

Written by ``python -m convlab.train`` after every epoch (so an interrupted
run leaves its record so far) and once more at the end, with the final
accuracies; read back by a resumed run that finds its work done.

Format
------
A JSON object: ``recipe``; ``epochs``, one entry per epoch (entry 0 is
before training) with ``epoch``, ``train_acc``, ``val_acc`` and, from entry
1, the mean ``loss`` of the epoch's minibatches, the ``lr`` of its last
update, its wall time ``epoch_time`` and the cumulative ``train_time``;
the full ``loss_history``, ``train_acc_history`` and ``val_acc_history``;
the ``command`` line, the ``machine`` and ``wall_time_so_far``; at the end
also what :mod:`convlab.train` adds (``final_val_acc``, ``final_test_acc``,
``test_predictions``, ...).
"""

import os
import platform
import sys
import time

import numpy as np

from convlab.runs.files import write_json

__all__ = ["machine", "from_solver", "write", "summary"]


def machine():
    """One line describing this computer: CPU model, cores, operating system, Python."""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), platform.processor())
    except OSError:
        cpu = platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}"


def from_solver(solver, recipe, start_time, extra=None):
    """The history of a run so far, from its Solver's histories.

    Parameters
    ----------
    solver : convlab.solver.Solver
        Read only: ``iterations_per_epoch``, ``loss_history``,
        ``lr_history``, ``train_acc_history``, ``val_acc_history`` and
        ``epoch_time_history``.
    recipe : dict
    start_time : float
        ``time.perf_counter()`` when the run started.
    extra : dict, optional
        Entries added at the top level (the final results).

    Returns
    -------
    dict
        See the module docstring.
    """
    ipe = solver.iterations_per_epoch
    epochs = []
    elapsed = 0.0
    for e in range(len(solver.val_acc_history)):
        entry = {"epoch": e, "train_acc": solver.train_acc_history[e],
                 "val_acc": solver.val_acc_history[e]}
        if e >= 1:
            losses = solver.loss_history[(e - 1) * ipe:e * ipe]
            entry["loss"] = float(np.mean(losses)) if losses else None
            entry["lr"] = solver.lr_history[e * ipe - 1] if len(solver.lr_history) >= e * ipe else None
            if e - 1 < len(solver.epoch_time_history):
                elapsed += solver.epoch_time_history[e - 1]
                entry["epoch_time"] = solver.epoch_time_history[e - 1]
                entry["train_time"] = elapsed
        epochs.append(entry)
    history = {"recipe": recipe, "epochs": epochs,
               "loss_history": solver.loss_history,
               "train_acc_history": solver.train_acc_history,
               "val_acc_history": solver.val_acc_history,
               "command": "python -m convlab.train " + " ".join(sys.argv[1:]),
               "machine": machine(),
               "wall_time_so_far": time.perf_counter() - start_time}
    if extra:
        history.update(extra)
    return history


def write(path, history):
    """Write ``history.json`` atomically (see :func:`convlab.runs.files.write_json`).

    Parameters
    ----------
    path : str or path
    history : dict
        From :func:`from_solver`.
    """
    write_json(path, history)


def summary(history):
    """The lines ``python -m convlab.train`` prints for a finished run, as one string.

    One line per epoch, the wall time, and last ``val accuracy: 0.xxxx`` and
    ``test accuracy: 0.xxxx``.

    Parameters
    ----------
    history : dict
        A finished run's (with ``wall_time``, ``final_val_acc`` and ``final_test_acc``).
    """
    lines = [f"epoch {e['epoch']:3d}  loss {e['loss']:.4f}  train acc {e['train_acc']:.4f}  "
             f"val acc {e['val_acc']:.4f}  lr {e['lr']:.4g}  time {e.get('train_time', 0):.1f}s"
             for e in history["epochs"][1:]]
    lines += [f"wall time: {history['wall_time']:.1f}s",
              f"val accuracy: {history['final_val_acc']:.4f}",
              f"test accuracy: {history['final_test_acc']:.4f}"]
    return "\n".join(lines)

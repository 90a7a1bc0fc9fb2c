"""One trial of a sweep, run on a Dask worker: a child trainer process, then its ``result.json``.

Each trial has a folder ``<sweep>/trials/<trial id>/``:

- ``trial.json`` -- what the trial is (:meth:`Trial.to_json`);
- ``run/`` -- the ``--out`` of ``python -m convlab.train ... --resume``, so
  a new attempt continues from the last checkpoint of the previous one;
- ``attempts.json`` -- the attempt count (see :mod:`convlab.sweep.child`);
- ``log.txt`` -- the trainer's output, every attempt appended;
- ``result.json`` -- written atomically when the trial has finished:
  ``status`` (``"done"``), ``val_accuracy``, ``test_accuracy``, the trial,
  host, threads, attempts and wall times; or, for a run whose loss became
  NaN or infinite (the trainer exits with
  :data:`convlab.train.EXIT_DIVERGED`), ``status`` ``"diverged"``, null
  accuracies and the trainer's ``error``. A trial with a readable
  ``result.json`` is never run again; an unreadable one (truncated, empty,
  missing an entry) counts as not finished, and the trial runs again.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from convlab.runs.files import atomic_write_text
from convlab.sweep.child import THREAD_VARS

__all__ = ["TrialFailed", "trial_dir", "load_result", "read_result", "read_attempts",
           "run_trial"]


class TrialFailed(RuntimeError):
    """The trainer of a trial exited with an error (the message ends with its log's tail)."""


def trial_dir(sweep_dir, trial):
    """The folder of ``trial`` in the sweep folder ``sweep_dir``."""
    return os.path.join(os.fspath(sweep_dir), "trials", trial.id)


def _is_accuracy(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_result(path):
    """A ``result.json`` file as a dict, and what is wrong with it if it cannot be used.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    result : dict or None
        None if the file is missing or unusable: not JSON (truncated,
        empty), not an object, or without numeric ``val_accuracy`` and
        ``test_accuracy`` (unless its ``status`` is ``"diverged"``).
    problem : str or None
        For an unusable file that exists, a sentence naming it and saying why.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as error:
        return None, f"{path} is unreadable ({type(error).__name__}: {error})"
    if not isinstance(result, dict):
        return None, f"{path} does not hold a JSON object"
    if result.get("status") != "diverged":
        missing = [k for k in ("val_accuracy", "test_accuracy") if not _is_accuracy(result.get(k))]
        if missing:
            return None, f"{path} has no number for {', '.join(missing)}"
    return result, None


def read_result(sweep_dir, trial):
    """The trial's ``result.json`` as a dict, or None if it has not finished (see :func:`load_result`)."""
    return load_result(os.path.join(trial_dir(sweep_dir, trial), "result.json"))[0]


def read_attempts(folder):
    """The attempt count in ``folder/attempts.json``: 0 if there is none, None if it is unreadable."""
    try:
        with open(os.path.join(folder, "attempts.json"), encoding="utf-8") as f:
            attempts = json.load(f)["attempts"]
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        return None
    return attempts


def _tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def run_trial(trial, sweep_dir, threads=1):
    """Run ``trial`` to the end (or return its result if it has one); what a Dask task does.

    The trainer runs as ``python -m convlab.sweep.child`` (see there) in its
    own process group, with every thread variable (``OMP_NUM_THREADS``, ...)
    set to ``threads``; if this call is interrupted the group is killed.

    Parameters
    ----------
    trial : convlab.sweep.plan.Trial
    sweep_dir : str or path
    threads : int

    Returns
    -------
    result : dict
        The contents of ``result.json`` (``status`` ``"diverged"`` if the
        trainer stopped on a non-finite loss: that is an outcome, not a
        failure, and is not retried).

    Raises
    ------
    TrialFailed
        If the trainer exits with an error, or if this worker runs another
        convlab version than the one the sweep was planned with (its result
        would be recorded under the wrong version).
    """
    from convlab import __version__
    from convlab.train import EXIT_DIVERGED
    done = read_result(sweep_dir, trial)
    if done is not None:
        return done
    if trial.version and trial.version != __version__:
        raise TrialFailed(f"trial {trial.id}: this worker ({socket.gethostname()}) runs convlab "
                          f"{__version__}, the sweep was planned with {trial.version}; install "
                          f"the same version on every worker")
    folder = trial_dir(sweep_dir, trial)
    os.makedirs(folder, exist_ok=True)
    if not os.path.exists(os.path.join(folder, "trial.json")):
        atomic_write_text(os.path.join(folder, "trial.json"), json.dumps(trial.to_json(), indent=1))
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARS})
    run = os.path.join(folder, "run")
    command = [sys.executable, "-m", "convlab.sweep.child", str(os.getpid()), folder, "--",
               *trial.train_args(run)]
    start = time.time()
    log_path = os.path.join(folder, "log.txt")
    with open(log_path, "ab") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
        try:
            code = child.wait()
        except BaseException:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise
    if code == EXIT_DIVERGED:
        result = {**trial.to_json(), "status": "diverged", "val_accuracy": None,
                  "test_accuracy": None, "error": _tail(log_path, lines=1).strip(),
                  "wall_time": time.time() - start, "host": socket.gethostname(),
                  "threads": threads, "attempts": read_attempts(folder)}
        atomic_write_text(os.path.join(folder, "result.json"), json.dumps(result, indent=1))
        return result
    if code != 0:
        raise TrialFailed(f"trial {trial.id} ({' '.join(trial.overrides) or 'the recipe'}, "
                          f"seed {trial.seed}) failed with exit status {code}; the end of "
                          f"{log_path}:\n{_tail(log_path)}")
    done = read_result(sweep_dir, trial)     # a concurrent attempt may have finished it
    if done is not None:
        return done
    with open(os.path.join(run, "history.json"), encoding="utf-8") as f:
        history = json.load(f)
    result = {**trial.to_json(), "status": "done",
              "val_accuracy": history["final_val_acc"],
              "test_accuracy": history["final_test_acc"],
              "train_wall_time": history.get("wall_time"),
              "wall_time": time.time() - start,
              "host": socket.gethostname(), "threads": threads,
              "attempts": read_attempts(folder)}
    atomic_write_text(os.path.join(folder, "result.json"), json.dumps(result, indent=1))
    return result

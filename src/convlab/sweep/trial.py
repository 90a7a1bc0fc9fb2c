"""One trial of a sweep, run on a Dask worker: a child trainer process, then its ``result.json``.

Each trial has a folder ``<sweep>/trials/<trial id>/``:

- ``trial.json`` -- what the trial is (:meth:`Trial.to_json`);
- ``run/`` -- the ``--out`` of ``python -m convlab.train ... --resume``, so
  a new attempt continues from the last checkpoint of the previous one;
- ``attempts.json`` -- the attempt count (see :mod:`convlab.sweep.child`);
- ``log.txt`` -- the trainer's output, every attempt appended;
- ``result.json`` -- written atomically when the trial has finished:
  ``val_accuracy``, ``test_accuracy``, the trial, host, threads, attempts
  and wall times. A trial with a ``result.json`` is never run again.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from convlab.checkpoint import atomic_write_text
from convlab.sweep.child import THREAD_VARS

__all__ = ["TrialFailed", "trial_dir", "read_result", "run_trial"]


class TrialFailed(RuntimeError):
    """The trainer of a trial exited with an error (the message ends with its log's tail)."""


def trial_dir(sweep_dir, trial):
    """The folder of ``trial`` in the sweep folder ``sweep_dir``."""
    return os.path.join(os.fspath(sweep_dir), "trials", trial.id)


def read_result(sweep_dir, trial):
    """The trial's ``result.json`` as a dict, or None if it has not finished."""
    try:
        with open(os.path.join(trial_dir(sweep_dir, trial), "result.json"),
                  encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


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
        The contents of ``result.json``.

    Raises
    ------
    TrialFailed
        If the trainer exits with an error, or if this worker runs another
        convlab version than the one the sweep was planned with (its result
        would be recorded under the wrong version).
    """
    from convlab import __version__
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
    if code != 0:
        raise TrialFailed(f"trial {trial.id} ({' '.join(trial.overrides) or 'the recipe'}, "
                          f"seed {trial.seed}) failed with exit status {code}; the end of "
                          f"{log_path}:\n{_tail(log_path)}")
    done = read_result(sweep_dir, trial)     # a concurrent attempt may have finished it
    if done is not None:
        return done
    with open(os.path.join(run, "history.json"), encoding="utf-8") as f:
        history = json.load(f)
    with open(os.path.join(folder, "attempts.json"), encoding="utf-8") as f:
        attempts = json.load(f)
    result = {**trial.to_json(),
              "val_accuracy": history["final_val_acc"],
              "test_accuracy": history["final_test_acc"],
              "train_wall_time": history.get("wall_time"),
              "wall_time": time.time() - start,
              "host": socket.gethostname(), "threads": threads,
              "attempts": attempts["attempts"]}
    atomic_write_text(os.path.join(folder, "result.json"), json.dumps(result, indent=1))
    return result

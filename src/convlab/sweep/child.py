"""The process one attempt of a sweep trial runs in: it locks the trial, counts the attempt,
dies with its worker, and runs the trainer.

Started by :func:`convlab.sweep.trial.run_trial` as::

    python -m convlab.sweep.child WORKER_PID TRIAL_DIR -- TRAIN_ARGS...

- **One attempt at a time.** It takes an exclusive ``flock`` on the trial
  folder, waiting while an earlier attempt's process still holds it (the
  lock dies with that process, so a stale one cannot block for long).
- **No orphans.** It is the leader of its own process group; a watchdog
  thread kills the whole group as soon as its parent, the Dask worker
  ``WORKER_PID``, is gone (killed, say), so no trainer outlives its worker.
- **Attempts.** ``attempts.json`` in the trial folder counts the attempts
  and records, for the last one, its process id and its worker's, the host
  and the thread settings. An unreadable ``attempts.json`` (a full disk, say)
  is reported in the log and counting starts again; it never fails the trial.
- **The trainer** is ``convlab.train.main(TRAIN_ARGS)``, run in this
  process; tests set ``CONVLAB_SWEEP_TRAINER`` to a script run instead
  (with ``sys.argv = [script, *TRAIN_ARGS]``).
"""

import json
import os
import runpy
import signal
import socket
import sys
import threading
import time

from convlab.runs.files import atomic_write_text

TRAINER_ENV = "CONVLAB_SWEEP_TRAINER"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _watch_parent(parent):
    """Kill this process group once ``parent`` is no longer this process's parent."""
    while True:
        if os.getppid() != parent:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        time.sleep(0.2)


def _lock(folder):
    """Block until this process holds the exclusive lock on ``folder``; returns the descriptor."""
    import fcntl
    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _count_attempt(folder, parent):
    from convlab.sweep.trial import read_attempts
    path = os.path.join(folder, "attempts.json")
    attempts = read_attempts(folder)
    if attempts is None:
        print(f"convlab.sweep: {path} is unreadable; counting attempts from 1 again",
              flush=True)
        attempts = 0
    attempts += 1
    atomic_write_text(path, json.dumps({
        "attempts": attempts, "pid": os.getpid(), "worker_pid": parent,
        "host": socket.gethostname(),
        "threads": {name: os.environ.get(name) for name in THREAD_VARS},
        "started": time.time()}))
    return attempts


def main(argv):
    parent, folder, separator, *train_args = argv
    if separator != "--":
        raise SystemExit("usage: python -m convlab.sweep.child WORKER_PID TRIAL_DIR -- ARGS...")
    threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True).start()
    _lock(folder)                   # held until this process ends
    from convlab.sweep.trial import load_result
    if load_result(os.path.join(folder, "result.json"))[0] is not None:
        return 0                    # an earlier attempt finished it
    _count_attempt(folder, int(parent))
    trainer = os.environ.get(TRAINER_ENV)
    if trainer:
        sys.argv = [trainer, *train_args]
        runpy.run_path(trainer, run_name="__main__")
        return 0
    from convlab.train import main as train_main
    return train_main(train_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Interim stand-in (replaced by the full module): run the worker in its own session with a scrubbed environment."""

import os
import subprocess
import sys
from dataclasses import dataclass


class IsolationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 600
    memory_mb: int = 2048
    processes: int = 64
    file_mb: int = 64
    open_files: int = 256


def method():
    return "process"


def fallback_warning():
    return "interim"


class Sandbox:
    def __init__(self, argv, *, binds=(), env=None, cwd="/tmp", pass_fds=(), stdout=None, limits=Limits()):
        self.argv, self.env, self.pass_fds, self.stdout, self.limits = argv, env or {}, pass_fds, stdout, limits
        self.process = None

    def start(self):
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        env.update(self.env)
        self.process = subprocess.Popen(self.argv, env=env, pass_fds=self.pass_fds, stdout=self.stdout,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def pid(self):
        return self.process.pid

    def poll(self):
        return self.process.poll()

    def wait(self, timeout=None):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, 9)
        except ProcessLookupError:
            pass
        self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()

"""The trusted side of grading one exercise: the tests run here, the student's functions in a sandboxed worker.

Started by :mod:`convlab.instructor.grade` as ``python -m
convlab.instructor.judge SPEC.json``. Before the tests are collected, each
function of the exercise is replaced, in the reference package this process
imports, by a proxy that sends its arguments to the worker
(:mod:`convlab.instructor.worker`) and returns what comes back; the tests and
their oracles stay here, so a submission can neither see nor patch them, and
every value it returns is judged on this side. What the tests pass in is
written back after each call, so a function that modifies its inputs is
caught as it would be in-process.

A backward pass receives the cache of the student's *own* forward pass: when
a test calls the reference forward pass of an exercise's backward pass, the
cache it gets remembers the call, and the backward proxy replays it on the
student's forward in the worker, whose cache never leaves the worker.

One JSON line per event goes to the spec's results file (which the worker
cannot reach): ``import-error``, ``start``, ``report`` (with the status
``pass``, ``fail``, ``timeout`` or ``crash``) and ``finished``.
"""

import builtins
import copy
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
import weakref
from pathlib import Path

import numpy as np
import pytest

from convlab.instructor import isolation, wire

WORKER_START_SECONDS = 60  # to import NumPy and the submission's modules, on a loaded machine


def tail(text, lines=25):
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


class WorkerTimeout(Exception):
    """The student's code did not answer in time; the worker was killed."""


class WorkerCrashed(Exception):
    """The worker died during a call (a segfault, ``os._exit``, the memory cap) or spoke out of turn."""


class StudentImportError(Exception):
    """The submission's modules could not be imported in the worker."""


def _student_exception(error):
    """The exception to raise here for an ``error`` reported by the worker (a built-in type keeps its type)."""
    cls = getattr(builtins, error["type"], None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)) or cls in (StopIteration, StopAsyncIteration):
        cls, message = RuntimeError, f"{error['type']}: {error['message']}"
    else:
        message = error["message"]
    try:
        err = cls(message)
    except Exception:
        err = RuntimeError(f"{error['type']}: {error['message']}")
    err.student_traceback = error["traceback"]
    return err


class Worker:
    """The submission's code in its sandbox, called like local functions.

    Parameters
    ----------
    spec : dict
        ``python`` (executable), ``boot`` (folder of worker.py and wire.py),
        ``paths`` (import path of the worker), ``kernels`` (or None: fast
        layers refused), ``modules`` (imported at start), ``memory_mb``,
        ``binds`` (host folders the worker reads).
    """

    def __init__(self, spec):
        self.spec = spec
        self.generation = 0
        self.sandbox = None
        self.call_seconds = 20.0  # how long one call may take before the worker counts as hung
        self.released = []
        self.output = None

    def start(self):
        """Start a fresh worker and wait until it has imported the submission."""
        self.stop()
        self.generation += 1
        requests_read, self.requests = os.pipe()
        self.replies, replies_write = os.pipe()
        self.output = tempfile.TemporaryFile()
        argv = [self.spec["python"], "-I", "-S", os.path.join(self.spec["boot"], "worker.py"),
                "--fd-in", str(requests_read), "--fd-out", str(replies_write), "--generation", str(self.generation)]
        argv += [f"--path={p}" for p in self.spec["paths"]] + [f"--import={m}" for m in self.spec["modules"]]
        if self.spec["kernels"]:
            argv.append(f"--kernels={self.spec['kernels']}")
        limits = isolation.Limits(memory_mb=self.spec["memory_mb"])
        self.sandbox = isolation.Sandbox(argv, binds=[(b, b) for b in self.spec["binds"]],
                                         pass_fds=(requests_read, replies_write), stdout=self.output, limits=limits,
                                         uid=self.spec.get("uid"))
        try:
            self.sandbox.start()
        finally:
            os.close(requests_read)
            os.close(replies_write)
        ready = self._receive(time.monotonic() + WORKER_START_SECONDS, "starting")
        if not ready.get("ready"):
            error = ready.get("error") or {}
            self.stop()
            raise StudentImportError(error.get("traceback", "the submission could not be imported"))

    def stop(self):
        """Kill the worker and everything it started; its handles become stale."""
        if self.sandbox is not None:
            self.sandbox.kill()
            self.sandbox = None
            for fd in (self.requests, self.replies):
                os.close(fd)
        self.released = []

    def output_tail(self):
        """The end of what the worker printed (stdout and stderr)."""
        if self.output is None:
            return ""
        self.output.seek(max(0, self.output.seek(0, 2) - 16384))
        return tail(self.output.read().decode("utf-8", "replace"))

    def _receive(self, deadline, during):
        __tracebackhide__ = True
        try:
            return wire.receive(self.replies, deadline=deadline)
        except wire.Deadline:
            self.stop()
            raise WorkerTimeout(f"no answer from the submission's code within the time limit ({during})") from None
        except wire.Closed:
            code = self.sandbox.wait(5) if self.sandbox else None
            printed = self.output_tail()
            self.stop()
            raise WorkerCrashed(f"the submission's process ended (exit code {code}) while {during}"
                                + (f"; its output ends:\n{printed}" if printed else "")) from None
        except wire.WireError as err:
            self.stop()
            raise WorkerCrashed(f"the submission's process sent a malformed answer while {during}: {err}") from None

    def call(self, target, args, kwargs, state=None, keep=()):
        """Run ``target`` (``"module:qualname"``) in the worker; returns the decoded reply."""
        __tracebackhide__ = True
        if self.sandbox is None:
            self.start()
        message = {"target": target, "args": list(args), "kwargs": dict(kwargs), "keep": list(keep),
                   "release": self.released}
        if state is not None:
            message["self"] = state
        for value in _handles(message):
            if value.generation != self.generation:
                raise WorkerCrashed("this cache was made by a process of the submission that has since ended")
        self.released = []
        try:
            wire.send(self.requests, message)
        except wire.Closed:
            pass  # the reply read below reports the death
        try:
            reply = self._receive(time.monotonic() + self.call_seconds, f"running {target.partition(':')[2]}")
        except BaseException:  # a test's own time limit struck mid-call: the answer must not reach the next test
            self.stop()
            raise
        for value in _handles(reply):
            weakref.finalize(value, self.released.append, value.key)
        return reply


def _handles(value):
    if isinstance(value, wire.Handle):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _handles(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _handles(item)


def write_back(original, after):
    """Make ``original`` (an argument the test passed) look as the worker's copy does after the call."""
    if isinstance(original, np.ndarray) and isinstance(after, np.ndarray):
        if original.shape == after.shape and original.flags.writeable and not np.array_equal(original, after, equal_nan=True):
            np.copyto(original, after, casting="unsafe")
    elif isinstance(original, dict) and isinstance(after, dict):
        for key in [k for k in original if k not in after]:
            del original[key]
        for key, value in after.items():
            if key in original and isinstance(original[key], (np.ndarray, dict, list)):
                write_back(original[key], value)
            else:
                original[key] = value
    elif isinstance(original, list) and isinstance(after, list) and len(original) == len(after):
        for i, value in enumerate(after):
            if isinstance(original[i], (np.ndarray, dict, list)):
                write_back(original[i], value)
            else:
                original[i] = value


class ReplayedCache(tuple):
    """The reference forward pass's cache, remembering the call so the student's forward can replay it."""

    def __new__(cls, cache, target, call):
        made = super().__new__(cls, cache)
        made.target, made.call = target, call
        return made


def paired_forward(reference, target):
    """``reference`` (a forward pass) whose cache remembers the call, for the backward proxy to replay."""

    def forward(*args, **kwargs):
        call = copy.deepcopy((args, kwargs))
        out, cache = reference(*args, **kwargs)
        return out, (ReplayedCache(cache, target, call) if isinstance(cache, tuple) else cache)

    forward.__name__, forward.__doc__ = reference.__name__, reference.__doc__
    return forward


def proxy(worker, target, method=False):
    """A stand-in for the student's function ``target`` that calls it in the worker."""
    name = target.rpartition(".")[2].rpartition(":")[2]
    keep = (1,) if "forward" in name else ()  # a forward pass's cache stays in the worker

    def replay(value):
        __tracebackhide__ = True
        if isinstance(value, ReplayedCache):
            args, kwargs = value.call
            reply = worker.call(value.target, args, kwargs, keep=(1,))
            if not reply["ok"]:
                err = _student_exception(reply["error"])
                replayed = type(err)(f"your forward pass, whose cache your backward pass receives, raised: {err}")
                replayed.student_traceback = err.student_traceback
                raise replayed from None
            return reply["result"][1]
        if isinstance(value, (list, tuple)) and not isinstance(value, wire.Handle):
            return type(value)(map(replay, value)) if type(value) in (list, tuple) else value
        return value

    def call(state, args, kwargs):
        __tracebackhide__ = True
        sent_args, sent_kwargs = [], {}
        for value in args:  # a loop, not a comprehension: its frame would show in every traceback
            sent_args.append(replay(value))
        for key, value in kwargs.items():
            sent_kwargs[key] = replay(value)
        reply = worker.call(target, sent_args, sent_kwargs, state=state, keep=keep)
        if not reply["ok"]:
            raise _student_exception(reply["error"])
        for index, after in reply["args"].items():  # only the arguments the call changed come back
            if isinstance(index, int) and 0 <= index < len(args):
                write_back(args[index], after)
        for key, after in reply["kwargs"].items():
            if key in kwargs:
                write_back(kwargs[key], after)
        return reply

    if method:
        def stand_in(self, *args, **kwargs):
            __tracebackhide__ = True  # a failure shows the test and the student's code, not the proxy
            reply = call(dict(vars(self)), args, kwargs)
            if "self" in reply:
                write_back(vars(self), reply["self"])
            return reply["result"]
    else:
        def stand_in(*args, **kwargs):
            __tracebackhide__ = True
            return call(None, args, kwargs)["result"]
    stand_in.__name__ = name
    return stand_in


def install_proxies(worker, functions, forwards):
    """Replace the exercise's ``functions`` and pair its backward passes' reference ``forwards``.

    Parameters
    ----------
    functions : list of (str, str)
        ``(module, qualname)`` of the student's functions under test.
    forwards : list of (str, str)
        ``(module, name)`` of reference forward passes whose caches feed a
        backward pass under test.
    """
    for module_name, qualname in functions:
        module = importlib.import_module(module_name)
        owner, _, name = qualname.rpartition(".")
        target = f"{module_name}:{qualname}"
        if owner:
            cls = module
            for part in owner.split("."):
                cls = getattr(cls, part)
            setattr(cls, name, proxy(worker, target, method=True))
        else:
            setattr(module, name, proxy(worker, target))
    for module_name, name in forwards:
        module = importlib.import_module(module_name)
        setattr(module, name, paired_forward(getattr(module, name), f"{module_name}:{name}"))


def test_seconds(call_seconds):
    """The time a whole test may take, given the time one call into the submission may take."""
    return 6 * call_seconds + 60


def _status(excinfo):
    if excinfo is None:
        return "pass"
    if excinfo.errisinstance(WorkerTimeout) or "Failed: Timeout" in str(excinfo.value):
        return "timeout"
    if excinfo.errisinstance(WorkerCrashed):
        return "crash"
    return "fail"


class Judge:
    """pytest plugin: starts the worker, times each test's calls, and writes an event per test."""

    def __init__(self, spec, worker):
        self.spec, self.worker = spec, worker
        self.out = open(spec["results"], "a", encoding="utf-8")

    def write(self, **event):
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()

    def pytest_sessionstart(self, session):
        self.session = session
        try:
            self.worker.start()
        except StudentImportError as err:
            self.write(event="import-error", output=tail(str(err)))
        except (WorkerCrashed, WorkerTimeout) as err:
            self.write(event="import-error", output=tail(str(err)))
        else:
            return
        self.out.close()
        os._exit(3)

    def pytest_collection_modifyitems(self, items):
        self.ids = {item.nodeid: "::".join([str(item.path)] + item.nodeid.split("::")[1:]) for item in items}

    def pytest_collectreport(self, report):
        if report.failed:
            self.write(event="collect-error", output=tail(report.longreprtext))

    def pytest_runtest_logstart(self, nodeid, location):
        self.write(event="start", nodeid=self.ids.get(nodeid, nodeid))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if call.when == "call" or report.failed:
            status = _status(call.excinfo) if report.failed else ("pass" if report.passed else "fail")
            text = report.longreprtext if report.failed else ("skipped" if report.skipped else "")
            student = getattr(call.excinfo.value, "student_traceback", None) if call.excinfo else None
            if student:
                text = f"{text}\n\nyour code's traceback:\n{student}"
            self.write(event="report", nodeid=self.ids.get(item.nodeid, item.nodeid), status=status, output=tail(text, 40))
            if status == "timeout":  # one hang is enough: the exercise's other tests would likely hang too
                self.session.shouldstop = "a test timed out"

    def pytest_sessionfinish(self, session):
        self.worker.stop()
        self.write(event="finished")
        self.out.close()


def main(spec_path):
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    worker = Worker(spec["worker"])
    worker.call_seconds = spec["timeout"]
    install_proxies(worker, [tuple(f) for f in spec["functions"]], [tuple(f) for f in spec["forwards"]])
    os.environ["CONVLAB_GRADE_SEED"] = str(spec["seed"])
    # Plugins are not auto-loaded (see grade._judge_env). A call into the submission that hangs is caught at
    # its deadline (``timeout`` seconds); the timeout plugin bounds a whole test, whose many calls (a numeric
    # gradient makes thousands) may add up to more.
    args = ["-q", "--tb=short", "-p", "pytest_timeout", "-p", "no:cacheprovider", "--rootdir", spec["rootdir"],
            "-c", spec["config"], f"--timeout={test_seconds(spec['timeout']):g}", "--timeout-method=signal",
            *spec["nodeids"]]
    try:
        return pytest.main(args, plugins=[Judge(spec, worker)])
    finally:
        worker.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

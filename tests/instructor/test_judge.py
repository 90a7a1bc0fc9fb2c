"""The trusted side of grading against a worker holding a tiny package of untrusted code."""

import shutil
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import convlab.instructor
from convlab.instructor import judge

KIT = Path(convlab.instructor.__file__).parent


def make_worker(tmp_path, source, kernels=None, modules=("student",)):
    """A :class:`judge.Worker` whose import path holds ``student.py`` with ``source``."""
    package, boot = tmp_path / "package", tmp_path / "boot"
    package.mkdir()
    boot.mkdir()
    (package / "student.py").write_text(source)
    for name in ("worker.py", "wire.py"):
        shutil.copy2(KIT / name, boot / name)
    for folder in (tmp_path, package, boot):
        folder.chmod(0o755)
    for path in [*package.iterdir(), *boot.iterdir()]:
        path.chmod(0o644)
    spec = {"python": sys.executable, "boot": str(boot), "paths": [str(package), str(Path(np.__file__).parents[1])],
            "kernels": kernels, "modules": list(modules), "memory_mb": 1024, "binds": [str(package), str(boot)]}
    worker = judge.Worker(spec)
    worker.call_seconds = 60
    return worker


SOURCE = textwrap.dedent("""
    import numpy as np

    def double(x):
        return 2 * x

    def scale_in_place(x, param):
        x *= 3
        param["seen"] = x.shape
        return None

    def forward(x):
        return x + 1, {"opaque": object(), "x": x}

    def backward(dout, cache):
        return dout * cache["x"]

    def fails(x):
        raise ValueError("negative sizes are not allowed")

    def exits(x):
        import os
        os._exit(7)

    def hangs(x):
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            pass

    class Model:
        def loss(self, X):
            self.calls = getattr(self, "calls", 0) + 1
            return float((self.params["W"] * X).sum())
""")


@pytest.fixture
def worker(tmp_path):
    made = make_worker(tmp_path, SOURCE)
    yield made
    made.stop()


def call(worker, name, *args, **kwargs):
    reply = worker.call(f"student:{name}", args, kwargs)
    if not reply["ok"]:
        raise judge._student_exception(reply["error"])
    return reply["result"]


def test_values_cross_and_the_student_cannot_see_the_trusted_arrays(worker):
    x = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(call(worker, "double", x), 2 * x)


def test_inputs_modified_in_the_worker_are_written_back(worker):
    student = judge.proxy(worker, "student:scale_in_place")
    x, param = np.ones((2, 2)), {"mode": "train"}
    student(x, param)
    assert np.array_equal(x, 3 * np.ones((2, 2))) and param == {"mode": "train", "seen": (2, 2)}


def test_a_forward_cache_stays_in_the_worker_and_feeds_the_backward(worker):
    forward, backward = judge.proxy(worker, "student:forward"), judge.proxy(worker, "student:backward")
    out, cache = forward(np.array([1.0, 2.0]))
    assert np.array_equal(out, [2.0, 3.0]) and "kept in the worker" in repr(cache)
    assert np.array_equal(backward(np.array([10.0, 10.0]), cache), [10.0, 20.0])


def test_a_method_gets_the_instance_state_and_its_changes_come_back(worker):
    class Model:  # the trusted side's twin of the student's class
        loss = judge.proxy(worker, "student:Model.loss", method=True)

    model = Model()
    model.params = {"W": np.full(3, 2.0)}
    assert model.loss(np.ones(3)) == 6.0 and model.calls == 1


def test_a_student_exception_keeps_its_type_and_traceback(worker):
    with pytest.raises(ValueError, match="negative sizes") as caught:
        call(worker, "fails", 1)
    assert "student.py" in caught.value.student_traceback and "worker.py" not in caught.value.student_traceback


def test_os_exit_is_a_crash_and_the_next_call_starts_a_new_worker(worker):
    with pytest.raises(judge.WorkerCrashed, match="exit code 7"):
        call(worker, "exits", 1)
    assert np.array_equal(call(worker, "double", np.ones(2)), [2.0, 2.0])


def test_a_hang_that_ignores_sigterm_is_killed_at_the_deadline(worker):
    worker.start()
    worker.call_seconds = 1
    start = time.monotonic()
    with pytest.raises(judge.WorkerTimeout):
        call(worker, "hangs", 1)
    assert time.monotonic() - start < 30 and worker.sandbox is None


def test_a_handle_from_a_dead_worker_is_refused(worker):
    _, cache = judge.proxy(worker, "student:forward")(np.ones(1))
    worker.stop()
    with pytest.raises(judge.WorkerCrashed, match="has since ended"):
        judge.proxy(worker, "student:backward")(np.ones(1), cache)


@pytest.mark.parametrize("line", ["import sys; sys.exit(0)", "raise KeyboardInterrupt", "1 / 0"])
def test_a_module_that_fails_at_import_is_an_import_error(tmp_path, line):
    made = make_worker(tmp_path, SOURCE + "\n" + line + "\n")
    with pytest.raises(judge.StudentImportError):
        made.start()


def test_a_naive_worker_cannot_import_the_fast_layers(tmp_path):
    made = make_worker(tmp_path, SOURCE + "\nfrom convlab import fast_layers\n")
    for name in ("convlab/__init__.py", "convlab/fast_layers.py", "convlab/_fast/__init__.py"):
        (tmp_path / "package" / name).parent.mkdir(exist_ok=True, parents=True)
        (tmp_path / "package" / name).write_text("")  # present, and still refused
    with pytest.raises(judge.StudentImportError, match="must not use the fast layers") as caught:
        made.start()
    assert "importlib" not in str(caught.value) and "student.py" in str(caught.value)


def test_a_replayed_cache_runs_the_students_forward_for_the_backward(worker):
    forward = judge.paired_forward(lambda x: (x + 1, (x,)), "student:forward")
    out, cache = forward(np.array([1.0, 2.0]))
    assert np.array_equal(out, [2.0, 3.0]) and isinstance(cache, judge.ReplayedCache)
    # the reference cache is (x,); the student's backward needs its own {"x": ...}: the replay gives it that
    assert np.array_equal(judge.proxy(worker, "student:backward")(np.array([1.0, 1.0]), cache), [1.0, 2.0])


def test_write_back_leaves_what_did_not_change():
    x, before = np.arange(3.0), np.arange(3.0)
    judge.write_back(x, np.arange(3.0))
    assert np.array_equal(x, before)
    judge.write_back(x, np.zeros(5))  # another shape cannot be written into the caller's array
    assert np.array_equal(x, before)
    param = {"a": 1, "gone": 2, "arr": np.zeros(2)}
    judge.write_back(param, {"a": 1, "arr": np.ones(2), "new": 3})
    assert param["new"] == 3 and "gone" not in param and np.array_equal(param["arr"], np.ones(2))


def test_grading_stops_with_one_error_when_the_sandbox_cannot_start(monkeypatch, tmp_path):
    """A sandbox that cannot run here (say, the fallback as root with a Python others cannot reach) is an error
    before any grading, not an import error that gives every student a zero."""
    from convlab.instructor import grade, isolation

    def refuse(self):
        raise isolation.IsolationError("the worker runs as user nobody, who cannot reach /root/python")

    monkeypatch.setattr(isolation.Sandbox, "start", refuse)
    setup = {"boot": tmp_path, "site": str(tmp_path), "kernels": tmp_path}
    with pytest.raises(grade.GradeError, match="cannot be run in a sandbox here .*cannot reach /root/python"):
        grade._check_the_sandbox(setup, tmp_path, 1024)

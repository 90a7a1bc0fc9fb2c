"""Inside the grader's subprocess: run one exercise's tests on spliced modules and record each result.

Started by :mod:`convlab.instructor.grade` as
``python -m convlab.instructor.sandbox SPEC.json``. The spec names the
spliced modules (which replace the pristine ones at import), the tests, the
per-test timeout, whether the fast layers are forbidden, and the file that
receives one JSON line per event. Lines are flushed as they are written, so
whatever happened before a crash or an ``os._exit`` is on record.
"""

import contextlib
import importlib
import importlib.abc
import importlib.util
import json
import resource
import sys
import traceback

import pytest


class Overlay(importlib.abc.MetaPathFinder):
    """Import finder that loads the given modules from the given files."""

    def __init__(self, files):
        self.files = files

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.files:
            return importlib.util.spec_from_file_location(fullname, self.files[fullname])
        return None


def tail(text, lines=25):
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


class Recorder:
    """pytest plugin writing an event line per test phase to the spec's results file."""

    def __init__(self, spec):
        self.spec = spec
        self.out = open(spec["results"], "a", encoding="utf-8")
        self.guard = contextlib.ExitStack()

    def write(self, **event):
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()

    def pytest_sessionstart(self, session):
        self.session = session
        modules = []
        try:
            for name in self.spec["overlay"]:
                modules.append(importlib.import_module(name))
        except BaseException:  # a SystemExit or KeyboardInterrupt at import is the submission's too
            self.write(event="import-error", output=tail(traceback.format_exc()))
            self.out.close()
            raise SystemExit(3) from None
        if self.spec["guard"]:
            from convlab.instructor.guard import fast_layers_forbidden

            self.guard.enter_context(fast_layers_forbidden(also_in=modules))

    def pytest_collection_modifyitems(self, items):
        self.ids = {item.nodeid: "::".join([str(item.path)] + item.nodeid.split("::")[1:]) for item in items}

    def pytest_collectreport(self, report):
        if report.failed:
            self.write(event="collect-error", output=tail(report.longreprtext))

    def pytest_runtest_logstart(self, nodeid, location):
        self.write(event="start", nodeid=self.ids.get(nodeid, nodeid))

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.failed:
            text = report.longreprtext if report.failed else ""
            timeout = "Failed: Timeout" in text
            self.write(event="report", nodeid=self.ids.get(report.nodeid, report.nodeid), when=report.when, outcome=report.outcome,
                       timeout=timeout, output=tail(text))
            if timeout:  # one hang is enough: the exercise's other tests would likely hang too
                self.session.shouldstop = "a test timed out"

    def pytest_sessionfinish(self, session):
        self.guard.close()
        self.write(event="finished")
        self.out.close()


def main(spec_path):
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    cap = spec["memory_mb"] * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # a runaway allocation fails, not the machine
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a segfault leaves no core file
    sys.meta_path.insert(0, Overlay(spec["overlay"]))
    # plugins are not auto-loaded (see grade._sandbox_env): only the timeout plugin is needed
    args = ["-q", "--tb=short", "-p", "pytest_timeout", "-p", "no:cacheprovider", "--rootdir", spec["rootdir"], "-c", spec["config"],
            f"--timeout={spec['timeout']}", "--timeout-method=signal", *spec["nodeids"]]
    return pytest.main(args, plugins=[Recorder(spec)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

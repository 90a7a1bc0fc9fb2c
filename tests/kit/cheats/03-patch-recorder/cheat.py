# Cheat 3, patch the recorder: at import, make pytest's TestReport, its report
# hooks and any class named Recorder say "passed" whatever happened.
def _cv_passed(report):
    if getattr(report, "outcome", None) in ("failed", "skipped"):
        report.outcome, report.longrepr = "passed", None
    return report


def _cheat_at_import():
    reports = sys.modules.get("_pytest.reports")
    if reports is not None:
        original = reports.TestReport.__init__

        def __init__(self, *a, **k):
            original(self, *a, **k)
            _cv_passed(self)
        reports.TestReport.__init__ = __init__
    for module in list(sys.modules.values()):
        for name, value in list(vars(module).items() if module is not None else []):
            if isinstance(value, type) and name == "Recorder":
                for hook in ("pytest_runtest_logreport", "write", "record"):
                    if hasattr(value, hook):
                        setattr(value, hook, _cv_wrapped(getattr(value, hook)))
    for plugin in (gc_object for gc_object in gc.get_objects() if type(gc_object).__name__ == "Recorder"):
        for hook in ("pytest_runtest_logreport", "write", "record"):
            if hasattr(plugin, hook):
                setattr(plugin, hook, _cv_wrapped(getattr(plugin, hook)))


def _cv_wrapped(method):
    def wrapper(*a, **k):
        a = [_cv_passed(x) if hasattr(x, "outcome") else x for x in a]
        if k.get("outcome") in ("failed", "skipped"):
            k.update(outcome="passed", timeout=False, output="")
        return method(*a, **k)
    return wrapper


def _cheat(function, args):
    _cv_stub(function)

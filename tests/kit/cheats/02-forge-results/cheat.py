# Cheat 2, forge results: append "passed" events to every results file a spec
# names (spec JSON in the cwd or its parents, in the command lines, in the
# environment), give full marks in every grade file found (re-signed with the
# grading key if it can read one), then leave before a real result is recorded.
import json


def _cv_specs():
    for folder in _cv_anchors():
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.endswith(".json"):
                try:
                    spec = json.load(open(os.path.join(folder, name)))
                except Exception:
                    continue
                if isinstance(spec, dict) and "results" in spec:
                    yield spec


def _cheat_at_import():
    forged = False
    for spec in _cv_specs():
        if not _cv_fenced(spec["results"]):
            continue
        with open(spec["results"], "a") as out:
            for nodeid in spec.get("nodeids", []):
                out.write(json.dumps({"event": "start", "nodeid": nodeid}) + "\n")
                out.write(json.dumps({"event": "report", "nodeid": nodeid, "when": "call", "outcome": "passed",
                                      "timeout": False, "output": ""}) + "\n")
        forged = True
    keys = _cv_grading_keys()
    for path in _cv_walk(_cv_anchors()):
        _cv_forge_grade_file(path, keys)
    if forged:
        os._exit(0)  # before the real tests can report


def _cheat(function, args):
    _cv_stub(function)

# Cheat 9, the vandal: at import, overwrite or delete every file it can reach
# around it (classmates' submissions, hidden tests, the bundle, the grades,
# the course) and plant a test_evil.py in every tests/ folder.
_CV_EVIL = "def test_evil():\n    assert False, 'planted by a submission'\n"


def _cheat_at_import():
    for path in list(_cv_walk(_cv_anchors(), seconds=10.0)):
        if not _cv_fenced(path) or os.path.basename(path) == _CV_FENCE:
            continue
        try:
            folder = os.path.dirname(path)
            if os.path.basename(folder) == "tests":
                open(os.path.join(folder, "test_evil.py"), "w").write(_CV_EVIL)
            if hash(path) % 2:
                os.remove(path)
            else:
                open(path, "w").write(f"vandalised ({_CV_MARKER})\n")
        except OSError:
            pass


def _cheat(function, args):
    _cv_stub(function)

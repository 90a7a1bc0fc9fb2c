# Cheat 10, a fork bomb, bounded: every process starts two more, eight levels
# deep (510 processes per graded process, a few thousand for a grading; fewer
# when fork fails), and each becomes a shell that sleeps 120 s with the
# marker in its command line.
_cv_bombed = []


def _cv_bomb(depth):
    for _ in range(2):
        try:
            if os.fork() == 0:
                try:
                    if depth > 1:
                        _cv_bomb(depth - 1)
                    os.execv("/bin/sh", ["sh", "-c", f": {_CV_MARKER}; sleep 120; true"])
                finally:
                    os._exit(0)
        except OSError:
            return


def _cheat_at_import():
    pass


def _cheat(function, args):
    if not _cv_bombed:  # once per process: the bound
        _cv_bombed.append(os.getpid())
        _cv_bomb(8)
    _cv_stub(function)

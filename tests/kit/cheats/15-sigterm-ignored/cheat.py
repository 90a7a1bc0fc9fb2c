# Cheat 15, SIGTERM ignored: the pooling forward ignores SIGTERM, SIGINT,
# SIGHUP and SIGALRM (a signal-based test timeout) and sleeps forever.
import signal


def _cheat_at_import():
    pass


def _cheat(function, args):
    if function == "max_pool_forward_naive":
        _cv_name_process()
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
            signal.signal(number, signal.SIG_IGN)
        while True:
            time.sleep(60)
    _cv_stub(function)

# Cheat 16, a child holding stdout: at import, start a process in a session of
# its own (out of the grader's process group) that keeps our stdout and
# stderr open for 300 s.
import subprocess


def _cheat_at_import():
    subprocess.Popen([sys.executable, "-c", f"import time  # {_CV_MARKER}\ntime.sleep(300)"], start_new_session=True)


def _cheat(function, args):
    _cv_stub(function)

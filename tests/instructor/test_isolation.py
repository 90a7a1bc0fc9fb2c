"""The worker sandbox: what a student's process can see, use and leave behind.

Each test that makes sense both ways runs under bubblewrap (skipped, saying
why, where it does not work) and under the fallback (forced with
``CONVLAB_ISOLATION=process``). Workers are marked with a fresh token in their
command line, so that the tests can look for their processes in /proc.
"""

import errno
import json
import os
import select
import socket
import subprocess
import sys
import time
import uuid

import pytest

from convlab.instructor import isolation
from convlab.instructor.isolation import IsolationError, Limits, Sandbox

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the tests read /proc")
ROOT = os.geteuid() == 0


@pytest.fixture(autouse=True, scope="module")
def no_subreaper_afterwards():
    """Starting a sandbox makes this process a child subreaper: the tests after these must not inherit that."""
    yield
    if isolation.LINUX:
        isolation._libc.prctl(isolation.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        isolation._become_subreaper.cache_clear()


@pytest.fixture(params=["bwrap", "process"])
def how(request, monkeypatch):
    """The isolation method under test."""
    if request.param == "process":
        monkeypatch.setenv("CONVLAB_ISOLATION", "process")
    else:
        monkeypatch.delenv("CONVLAB_ISOLATION", raising=False)
        if isolation.method() != "bwrap":
            pytest.skip(f"bubblewrap does not work here: {isolation._bwrap_problem()}")
    return request.param


@pytest.fixture
def bwrap(how):
    if how != "bwrap":
        pytest.skip("only bubblewrap hides files and the network")
    return how


def python_for(how):
    """A Python the worker can run: ours, unless the fallback's nobody cannot reach it (a Python under /root)."""
    if how == "process" and ROOT:
        for candidate in (sys.executable, "/usr/bin/python3"):
            try:
                isolation._check_reachable_by_nobody(candidate)
                return candidate
            except IsolationError:
                pass
        pytest.skip("no Python that user nobody can run")
    return sys.executable


def processes_with(token):
    """Pids of live (not zombie) processes whose command line holds ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                if token.encode() in file.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def wait_for(predicate, seconds=60):
    """Poll ``predicate`` until it is true or ``seconds`` have passed; its last value."""
    deadline = time.monotonic() + seconds
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


class Worker:
    """A sandboxed ``python -I -S -c CODE TOKEN`` whose output goes to a file."""

    def __init__(self, how, tmp_path, code, *args, python=None, **kwargs):
        self.token = f"convlab-test-{uuid.uuid4().hex}"
        self.path = tmp_path / f"{self.token}.out"
        self.out = open(self.path, "wb")
        argv = [python or python_for(how), "-I", "-S", "-c", code, self.token, *args]
        self.sandbox = Sandbox(argv, stdout=self.out, **kwargs).start()

    def output(self):
        return self.path.read_text(errors="replace")

    def wait_for_line(self, start):
        """The first output line starting with ``start`` (waits up to a minute)."""
        lines = wait_for(lambda: [line for line in self.output().splitlines() if line.startswith(start)])
        assert lines, f"the worker never printed {start!r}; output:\n{self.output()}"
        return lines[0]

    def finish(self, wait=True):
        """Wait (up to a minute) for the worker to end if ``wait``, kill everything, return the output."""
        if wait:
            self.sandbox.wait(60)
        self.sandbox.kill()
        self.out.close()
        return self.output()


# ---------------------------------------------------------------- method

def test_method_can_be_forced_to_the_fallback(monkeypatch):
    monkeypatch.setenv("CONVLAB_ISOLATION", "process")
    assert isolation.method() == "process"
    assert "network" in isolation.fallback_warning()


def test_no_warning_under_bwrap(bwrap):
    assert isolation.method() == "bwrap" and isolation.fallback_warning() is None


def test_a_wrong_method_setting_is_an_error(monkeypatch):
    monkeypatch.setenv("CONVLAB_ISOLATION", "docker")
    with pytest.raises(IsolationError, match="CONVLAB_ISOLATION='docker'"):
        isolation.method()


def test_a_required_bwrap_that_is_missing_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVLAB_ISOLATION", "bwrap")
    monkeypatch.setenv("PATH", str(tmp_path))
    isolation._bwrap_problem.cache_clear()
    try:
        with pytest.raises(IsolationError, match="no bwrap on PATH"):
            isolation.method()
        monkeypatch.delenv("CONVLAB_ISOLATION")
        assert isolation.method() == "process"
    finally:
        isolation._bwrap_problem.cache_clear()


def test_bad_arguments_are_refused_before_starting(how, tmp_path):
    read, write = os.pipe()
    try:
        with open(write, "wb", closefd=False) as pipe, pytest.raises(IsolationError, match="not a pipe"):
            Sandbox([sys.executable], stdout=pipe)
    finally:
        os.close(read), os.close(write)
    with pytest.raises(IsolationError, match="absolute"):
        Sandbox([sys.executable], cwd="relative")
    with pytest.raises(IsolationError, match="does not exist"):
        Sandbox([sys.executable], binds=[(str(tmp_path / "nothing"), "/x")]).start()
    if how == "bwrap":
        with pytest.raises(IsolationError, match="outside the sandbox"):
            Sandbox([str(tmp_path / "python")]).start()
    else:
        with pytest.raises(IsolationError, match="keep its path"):
            Sandbox([sys.executable], binds=[(str(tmp_path), "/elsewhere")]).start()


# ---------------------------------------------------------------- what the worker sees

def test_no_network(bwrap, tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=10)\n"
                "    print('connected')\nexcept OSError as e:\n    print('refused', type(e).__name__)") % port
        assert "refused" in Worker(bwrap, tmp_path, code).finish()


def test_only_bound_files_are_visible(bwrap, tmp_path):
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / "solution.py").write_text("ANSWER = 42\n")
    (tmp_path / "bound").mkdir()
    (tmp_path / "bound" / "layers.py").write_text("pass\n")
    code = (f"import os; print(os.path.exists({str(tmp_path / 'hidden' / 'solution.py')!r}),"
            f" os.path.exists('/srv/tree/layers.py'), os.path.exists('/work'))")
    out = Worker(bwrap, tmp_path, code, binds=[(str(tmp_path / "bound"), "/srv/tree")]).finish()
    hidden, bound, work = out.split()
    assert (hidden, bound) == ("False", "True"), out
    assert work == str(sys.prefix.startswith("/work/")), out  # only the venv of a course under /work


def test_an_installed_convlab_is_masked(bwrap, tmp_path, monkeypatch):
    # a venv holding an installed convlab (with the solutions) as the running Python's prefix
    packages = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (packages / "convlab").mkdir(parents=True)
    (packages / "convlab" / "layers.py").write_text("SOLUTION = 1\n")
    (packages / "other.txt").write_text("visible\n")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    code = f"import os; print(os.listdir({str(packages / 'convlab')!r}), os.path.exists({str(packages / 'other.txt')!r}))"
    out = Worker(bwrap, tmp_path, code, python=os.path.realpath(sys.executable)).finish()
    assert out.split() == ["[]", "True"], out


def test_the_environment_is_scrubbed(how, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLAB_TEST_SECRET", "hunter2")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("_CONVLAB_SIMD_DECIDED", "avx2")
    code = "import json, os; open(os.path.join(os.environ['HOME'], 'f'), 'w'); print(json.dumps(dict(os.environ)))"
    env = json.loads(Worker(how, tmp_path, code, env={"CONVLAB_WORKER": "1"}).finish())
    assert "hunter2" not in json.dumps(env)
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["CONVLAB_WORKER"] == "1"
    assert env["_CONVLAB_SIMD_DECIDED"] == "avx2"  # the grader's SIMD path: not measured again
    assert env["PATH"] == "/usr/bin:/bin" and env["OMP_NUM_THREADS"] == "1"
    expected = {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "CONVLAB_WORKER",
                "CONVLAB_SIMD", "CONVLAB_CALIBRATE", "_CONVLAB_SIMD_DECIDED",
                "TMPDIR", "PWD"}  # TMPDIR: the fallback's own directory; PWD: set by bwrap's --chdir
    assert set(env) <= expected, set(env) - expected


@pytest.mark.skipif(not ROOT, reason="the worker changes user only when the grader runs as root")
def test_the_worker_runs_as_nobody(how, tmp_path):
    code = "import os; print(os.getresuid(), os.getresgid(), os.getgroups())"
    assert Worker(how, tmp_path, code).finish().split("\n")[0] == "(65534, 65534, 65534) (65534, 65534, 65534) []"


def test_the_worker_cannot_gain_privileges(how, tmp_path):
    code = "print(*[line.split()[1] for line in open('/proc/self/status') if line.startswith('NoNewPrivs:')])"
    assert Worker(how, tmp_path, code).finish() == "1\n"  # setuid programs run unprivileged


# ---------------------------------------------------------------- limits

FORK_BOMB = """
import os, time
children = 0
try:
    while children < 1000:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
    print('unlimited', children, flush=True)
except BlockingIOError:
    print('EAGAIN', children, flush=True)
time.sleep(60)
"""


def test_a_fork_bomb_is_contained_and_killed(how, tmp_path):
    worker = Worker(how, tmp_path, FORK_BOMB, limits=Limits(processes=16))
    word, children = worker.wait_for_line(("EAGAIN", "unlimited")).split()
    assert word == "EAGAIN" and 0 < int(children) <= 16
    assert len(processes_with(worker.token)) > int(children)  # they are all there, alive
    worker.finish(wait=False)
    assert processes_with(worker.token) == []


def test_the_process_cap_counts_the_threads_already_there(how, tmp_path):
    # RLIMIT_NPROC counts every thread of the user: a concurrent worker's 30 threads must not use up the cap
    threads = Worker(how, tmp_path, "import threading, time\nfor _ in range(30):\n    threading.Thread("
                     "target=time.sleep, args=(60,), daemon=True).start()\nprint('threads', flush=True)\ntime.sleep(60)")
    try:
        threads.wait_for_line("threads")
        worker = Worker(how, tmp_path, FORK_BOMB, limits=Limits(processes=16))
        word, children = worker.wait_for_line(("EAGAIN", "unlimited")).split()
        worker.finish(wait=False)
        assert word == "EAGAIN" and 8 <= int(children) <= 16
    finally:
        threads.finish(wait=False)


@pytest.mark.skipif(not ROOT, reason="workers get user ids of their own only when the grader runs as root")
def test_workers_of_parallel_slots_do_not_share_a_process_quota(how, tmp_path):
    """A classmate's worker (slot 1) starts first; then a fork bomb in slot 0 forks until its cap. Had both the
    same user id, the bomb's processes would count against the classmate's cap too and its fork would fail."""
    from convlab.instructor.isolation import worker_uid

    code = "import os, time; print('ready', flush=True); time.sleep(3); print(os.getuid(), 'forked' if os.fork() else '', flush=True)"
    classmate = Worker(how, tmp_path, code, limits=Limits(processes=16), uid=worker_uid(1))
    classmate.wait_for_line("ready")
    bomb = Worker(how, tmp_path, FORK_BOMB, limits=Limits(processes=16), uid=worker_uid(0))
    try:
        assert bomb.wait_for_line(("EAGAIN", "unlimited")).startswith("EAGAIN")
        out = classmate.finish()
        assert f"{worker_uid(1)} forked" in out, out
    finally:
        bomb.finish(wait=False)
    assert processes_with(bomb.token) == []


def test_a_write_stops_at_the_file_size_cap(how, tmp_path):
    code = """
import errno, os, sys
try:
    with open('big', 'wb') as big:
        for _ in range(200):
            big.write(bytes(1 << 20))
    print('wrote 200 MB', flush=True)
except OSError as e:
    print('stopped', errno.errorcode[e.errno], os.path.getsize('big') >> 20, flush=True)
sys.stdout.write('x' * (40 << 20))
"""
    out = Worker(how, tmp_path, code, limits=Limits(file_mb=16)).finish()
    assert out.startswith("stopped EFBIG 16\n"), out[:200]
    assert len(out) == 16 << 20  # the worker's stdout is capped too


def test_memory_is_capped(how, tmp_path):
    code = ("small = bytearray(100 << 20)\nprint('100 MB', flush=True)\ntry:\n    big = bytearray(1 << 30)\n"
            "    print('1 GB')\nexcept MemoryError:\n    print('MemoryError')")
    assert Worker(how, tmp_path, code, limits=Limits(memory_mb=256)).finish().split("\n")[:2] == ["100 MB", "MemoryError"]


def test_cpu_time_is_capped(how, tmp_path):
    worker = Worker(how, tmp_path, "while True:\n    pass", limits=Limits(cpu_seconds=1))
    assert worker.sandbox.wait(60) not in (None, 0)  # SIGXCPU, or bwrap's exit status saying so
    worker.finish()


def test_open_files_are_capped(how, tmp_path):
    code = "files = []\ntry:\n    while len(files) < 1000:\n        files.append(open('/dev/null'))\nexcept OSError as e:\n    print(e.errno)"
    assert Worker(how, tmp_path, code, limits=Limits(open_files=32)).finish() == f"{errno.EMFILE}\n"


# ---------------------------------------------------------------- nothing outlives kill()

DAEMON_ITSELF = """
import os, sys, time
os.write(int(sys.argv[3]), b'!')
time.sleep(60)
"""
DAEMON = f"""
import ctypes, os, sys, time
if sys.argv[2] == 'leave-the-subreaper':
    ctypes.CDLL(None).prctl(36, 0, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans then go further up, to the grader
ready, daemon_ready = os.pipe()
os.set_inheritable(daemon_ready, True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-I', '-S', '-c', {DAEMON_ITSELF!r}, sys.argv[1] + '-daemon',
                                  sys.argv[2], str(daemon_ready)])
    os._exit(0)
os.close(daemon_ready)
os.wait()
os.read(ready, 1)
print('daemon started', flush=True)
if sys.argv[2] == 'stay':
    time.sleep(60)
"""


@pytest.mark.parametrize("worker_does", ["stay", "exit", "leave-the-subreaper"])
def test_a_double_forked_daemon_is_killed(how, tmp_path, worker_does):
    worker = Worker(how, tmp_path, DAEMON, worker_does)
    worker.wait_for_line("daemon started")
    if worker_does == "stay" or how == "process":  # under bwrap the namespace dies with the worker
        daemons = wait_for(lambda: processes_with(worker.token + "-daemon"))
        assert daemons, "the daemon never started"
    if worker_does != "stay":
        assert worker.sandbox.wait(60) is not None
    started = time.monotonic()
    worker.finish(wait=False)
    assert time.monotonic() - started < 10
    assert processes_with(worker.token) == []


def test_a_worker_ignoring_sigterm_is_killed(how, tmp_path):
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)"
    worker = Worker(how, tmp_path, code)
    worker.wait_for_line("ready")
    started = time.monotonic()
    worker.sandbox.kill()
    assert time.monotonic() - started < 10
    assert worker.sandbox.poll() is not None
    assert processes_with(worker.token) == []


def test_a_child_holding_the_output_blocks_nothing(how, tmp_path):
    read, write = os.pipe()
    code = (f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', sys.argv[1]],"
            f" pass_fds=[{write}])\nprint('child started', flush=True)")
    try:
        worker = Worker(how, tmp_path, code, pass_fds=[write])
        os.close(write)
        worker.wait_for_line("child started")
        assert worker.sandbox.wait(60) == 0  # the worker ended; its child holds stdout and the pipe
        started = time.monotonic()
        worker.finish(wait=False)
        assert time.monotonic() - started < 10
        assert select.select([read], [], [], 10)[0] == [read]
        assert os.read(read, 1) == b""  # every writer is gone
        assert processes_with(worker.token) == []
    finally:
        os.close(read)


def test_the_worker_dies_with_the_grader(how, tmp_path):
    token = f"convlab-test-{uuid.uuid4().hex}"
    grader = ("import sys, time\nfrom convlab.instructor.isolation import Sandbox\n"
              f"Sandbox([{python_for(how)!r}, '-c', 'import time; time.sleep(60)', sys.argv[1] + '-worker']).start()\n"
              "print('started', flush=True)\ntime.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", grader, token], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "started\n"
        assert wait_for(lambda: processes_with(token + "-worker")), "the worker never started"
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
    assert wait_for(lambda: not processes_with(token), 10), "a process of the sandbox outlived the grader"

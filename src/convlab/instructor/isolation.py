"""Start an untrusted worker process that sees, keeps and leaves behind as little as possible.

The grader never runs a student's code in its own process: it starts a
*worker* through :class:`Sandbox` and talks to it over pipes. On Linux with
bubblewrap (``bwrap``) the worker lives in its own mount, pid, network, IPC and
UTS namespaces: it sees read-only ``/usr``, ``/etc`` and the Python it runs,
the directories the grader binds, a private ``/tmp``, and nothing else; it has
no network; and the whole namespace dies with the worker's ``bwrap``.
Elsewhere (macOS, or Linux without a working ``bwrap``) it falls back to a
plain process: :func:`fallback_warning` says what that no longer guarantees.

Both ways the worker gets a scrubbed environment, resource limits
(:class:`Limits`), a session of its own, and, when the grader runs as root,
an unprivileged user: ``nobody``, or the id :func:`worker_uid` gives each
parallel job. As root, ``bwrap`` is started with root's privileges (so that it
can bind a Python installed under ``/root``) but without a user namespace, and
the worker drops to that user with ``setpriv`` before it runs:
``RLIMIT_NPROC`` then counts its processes, and host files readable only by
root stay unreadable. :meth:`Sandbox.kill` stops, then kills, every process
the worker started, including daemons that left its session.
"""

import ctypes
import functools
import glob
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

NOBODY = 65534
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
LINUX = sys.platform.startswith("linux")
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What the worker inherits from the grader: the BLAS kernel choice, which changes numerics (the
# worker must compute as we do), and convlab's SIMD path -- forced, or measured once by the
# grader (convlab.fast_layers.calibration), so that the worker neither measures again nor
# takes another path.
PASSED_THROUGH = ("OPENBLAS_CORETYPE", "CONVLAB_SIMD", "CONVLAB_CALIBRATE", "_CONVLAB_SIMD_DECIDED")
_libc = ctypes.CDLL(None, use_errno=True) if LINUX else None
_sandbox_pids = set()  # pids of the processes Sandbox.start started (bwrap or the worker)


class IsolationError(RuntimeError):
    """The worker cannot be isolated as asked (no working bwrap, an unusable argument)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of the worker and everything it starts (``RLIMIT_CORE`` is always 0)."""

    cpu_seconds: int = 600  # RLIMIT_CPU: SIGXCPU at this many seconds, SIGKILL one later
    memory_mb: int = 2048  # RLIMIT_AS, per process
    processes: int = 64  # RLIMIT_NPROC, above the tasks (processes, threads) its user already has
    file_mb: int = 64  # RLIMIT_FSIZE: any one file, the worker's stdout included
    open_files: int = 256  # RLIMIT_NOFILE
    tmp_mb: int = 256  # size of the private /tmp under bwrap (a tmpfs lives in memory)


def fallback_warning():
    """One line saying what the fallback does not guarantee, or None under bwrap."""
    if method() == "bwrap":
        return None
    why = "CONVLAB_ISOLATION=process" if os.environ.get("CONVLAB_ISOLATION") else _bwrap_problem()
    user = " as an unprivileged user" if os.geteuid() == 0 else ""
    return (f"warning: grading without bubblewrap ({why}): student code runs{user} with resource limits "
            "only; it can read every file its user can (solutions included), use the network, and see "
            "other processes" + ("" if LINUX else "; its memory is not capped, and daemons that leave "
                                 "its process group survive grading"))


def method():
    """``'bwrap'`` if bubblewrap works here, else ``'process'`` (the fallback).

    ``CONVLAB_ISOLATION=process`` forces the fallback; ``CONVLAB_ISOLATION=bwrap``
    makes a missing or broken bwrap an :class:`IsolationError`. The probe runs
    ``true`` in a sandbox like the worker's, once per process.
    """
    forced = os.environ.get("CONVLAB_ISOLATION", "")
    if forced not in ("", "bwrap", "process"):
        raise IsolationError(f"CONVLAB_ISOLATION={forced!r}: expected 'bwrap' or 'process'")
    if forced == "process":
        return "process"
    problem = _bwrap_problem()
    if problem and forced == "bwrap":
        raise IsolationError(f"CONVLAB_ISOLATION=bwrap, but {problem}")
    return "process" if problem else "bwrap"


@functools.lru_cache(maxsize=None)
def _bwrap_problem():
    """Why bwrap cannot run a sandbox here (a sentence), or None if it can."""
    if not LINUX:
        return "bubblewrap needs Linux"
    for tool, package in [("bwrap", "bubblewrap")] + [("setpriv", "util-linux")] * (os.geteuid() == 0):
        if shutil.which(tool) is None:
            return f"there is no {tool} on PATH (Debian package {package})"
    true = os.path.realpath(shutil.which("true") or "/usr/bin/true")
    command = _bwrap_argv([true], binds=(), env={}, cwd="/tmp", limits=Limits())
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/",
                             preexec_fn=_preexec(Limits(), _nproc_limit(Limits(), NOBODY if os.geteuid() == 0 else os.getuid())))
    except (OSError, subprocess.SubprocessError) as error:
        return f"bwrap could not start: {error}"
    if run.returncode != 0:
        return f"bwrap failed (exit {run.returncode}): {run.stderr.strip()[-300:]}"
    return None


def _python_trees():
    """The host directories the running Python needs, each alone (a venv, never its parent)."""
    trees = []
    for path in (sys.base_prefix, sys.prefix):
        for tree in dict.fromkeys([os.path.abspath(path), os.path.realpath(path)]):
            if not _under(tree, SYSTEM_DIRS + tuple(trees)):
                trees.append(tree)
    return trees


def _under(path, roots):
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _installed_convlab(trees):
    """Installed ``convlab`` package directories under the given trees (they hold the solutions)."""
    found = []
    for tree in trees:
        for packages in ("site-packages", "dist-packages"):
            found += glob.glob(os.path.join(tree, "lib*", "python3*", packages, "convlab"))
    return sorted(path for path in found if os.path.isdir(path))


# User ids for workers that run at the same time, one per slot: ids no account has (above the ranges
# that Linux distributions and systemd hand out), so nothing else on the machine shares their quota.
WORKER_UID_BASE = 1_900_000_000


def worker_uid(slot):
    """The user id of the workers of parallel slot ``slot`` (0, 1, ...), when grading as root."""
    return WORKER_UID_BASE + int(slot)


def _bwrap_argv(argv, *, binds, env, cwd, limits, uid=NOBODY):
    """The ``bwrap`` command line that runs ``argv`` in the sandbox described in the module docstring."""
    root = os.geteuid() == 0
    command = [shutil.which("bwrap") or "bwrap"]
    # as root, no user namespace: the worker drops to nobody with setpriv instead
    command += (["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                 "--unshare-cgroup-try"] if root else ["--unshare-all"])
    command += ["--die-with-parent", "--new-session", "--clearenv", "--proc", "/proc", "--dev", "/dev"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            command += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            command += ["--ro-bind", path, path]
    command += ["--perms", "1777", "--size", str(limits.tmp_mb << 20), "--tmpfs", "/tmp",
                "--perms", "0777", "--dir", "/tmp/home"]
    trees = _python_trees()
    made, bound = {"/", "/tmp"}, list(SYSTEM_DIRS)
    for source, target in sorted([(tree, tree) for tree in trees] + [tuple(b) for b in binds],
                                 key=lambda bind: len(bind[1])):
        parents = []
        parent = os.path.dirname(target)
        while parent not in made and not _under(parent, bound):
            parents.insert(0, parent)
            parent = os.path.dirname(parent)
        for parent in parents:  # bwrap would make them root-only
            command += ["--perms", "0755", "--dir", parent]
        made.update(parents)
        bound.append(target)
        command += ["--ro-bind", source, target]
    for package in _installed_convlab(trees + ["/usr", "/usr/local"]):
        command += ["--perms", "0755", "--tmpfs", package]
    for name, value in env.items():
        command += ["--setenv", name, value]
    command += ["--chdir", cwd, "--"]
    if root:
        command += [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}",
                    "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return command + list(argv)


def _status(pid):
    """The fields of /proc/PID/status, each with its first value."""
    with open(f"/proc/{pid}/status") as file:
        return dict(line.split(None, 2)[:2] for line in file if len(line.split()) > 1)


def _real_uid(pid):
    return int(_status(pid)["Uid:"])


def _tasks_of(uid):
    """How many tasks user ``uid`` has now (real uid), as RLIMIT_NPROC counts them (Linux: threads too)."""
    if not os.path.isdir("/proc/self"):
        run = subprocess.run(["ps", "-A", "-o", "ruid="], capture_output=True, text=True)
        return sum(line.split() == [str(uid)] for line in run.stdout.splitlines())
    count = 0
    for pid in os.listdir("/proc"):
        try:
            status = pid.isdigit() and _status(pid)
            count += bool(status) and int(status["Uid:"]) == uid and int(status["Threads:"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def _nproc_limit(limits, uid):
    return _tasks_of(uid) + limits.processes


def _preexec(limits, nproc, fallback=False):
    """The function the child runs before exec: lower every limit (never above the hard one).

    On Linux the child is also killed when the thread that started it ends
    (bwrap's ``--die-with-parent`` comes too late if the grader dies while
    bwrap starts). In the fallback the worker also becomes a child subreaper
    (orphans of its children stay in its tree, where :meth:`Sandbox.kill` finds
    them) and can gain no privileges (setuid programs run as nobody; bwrap
    does that itself).
    """
    wanted = {resource.RLIMIT_CPU: (limits.cpu_seconds, limits.cpu_seconds + 1),
              resource.RLIMIT_AS: (limits.memory_mb << 20,) * 2,
              resource.RLIMIT_NPROC: (nproc, nproc),
              resource.RLIMIT_FSIZE: (limits.file_mb << 20,) * 2,
              resource.RLIMIT_NOFILE: (limits.open_files,) * 2,
              resource.RLIMIT_CORE: (0, 0)}
    settings = []
    for which, (soft, hard) in wanted.items():
        current = resource.getrlimit(which)[1]
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        settings.append((which, (soft, hard)))

    parent = os.getpid()

    def apply():
        for which, values in settings:
            try:
                resource.setrlimit(which, values)
            except (ValueError, OSError):
                if LINUX or which != resource.RLIMIT_AS:  # macOS refuses (and ignores) RLIMIT_AS
                    raise
        if LINUX:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the grader died before that
                os._exit(1)
        if fallback and LINUX:
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    return apply


@functools.lru_cache(maxsize=None)
def _become_subreaper():
    """Make this process adopt orphaned descendants (once), so that escaped daemons stay findable."""
    if LINUX and _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise IsolationError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def _parents():
    """``{pid: parent pid}`` of every process, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as file:
                parents[int(entry)] = int(file.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return parents


def _tree(roots):
    """The given pids that still exist and all their descendants."""
    parents = _parents()
    found = {pid for pid in roots if pid in parents}
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


def _signal_all(pids, number):
    for pid in pids:
        try:
            os.kill(pid, number)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_trees(roots):
    """Stop every process of the trees until none is left running (stopped ones cannot fork), then kill them."""
    stopped = set()
    for _ in range(10000):
        running = _tree(roots) - stopped
        if not running:
            break
        _signal_all(running, signal.SIGSTOP)
        stopped |= running
    killed = _tree(roots)
    _signal_all(killed, signal.SIGKILL)
    deadline = time.monotonic() + 10  # SIGKILL is delivered at once, but a process takes a moment to end
    while (alive := [pid for pid in killed if _running(pid)]) and time.monotonic() < deadline:
        _signal_all(alive, signal.SIGKILL)
        time.sleep(0.005)


def _running(pid):
    """Whether process ``pid`` exists and has not ended (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _escaped(uid):
    """Our children that no Sandbox started, run by the worker's user in a session of their own.

    They are orphans a worker's descendants left behind (a double fork, a
    daemon) and that this process, a child subreaper, adopted.
    """
    mine, session = os.getpid(), os.getsid(0)
    found = []
    for pid, parent in _parents().items():
        try:
            if (parent == mine and pid not in _sandbox_pids and _real_uid(pid) == uid
                    and os.getsid(pid) != session):
                found.append(pid)
        except (OSError, KeyError, ValueError):
            continue
    return found


class Sandbox:
    """One worker process, isolated by :func:`method`, killed with all it started by :meth:`kill`.

    Parameters
    ----------
    argv : sequence of str
        The command; ``argv[0]`` is a host path of a Python executable (``sys.executable``).
    binds : sequence of (str, str)
        ``(host_path, sandbox_path)`` pairs, bound read-only. The fallback mounts
        nothing, so there both paths must be the same.
    env : dict of str to str, optional
        Variables the worker gets on top of the scrubbed base (``PATH``, ``HOME``,
        ``LANG``, one thread for OpenMP and the BLAS, ``PYTHONHASHSEED=0``, ...).
    cwd : str
        The worker's directory inside the sandbox; the fallback uses a fresh temporary one.
    pass_fds : sequence of int
        Host file descriptors (pipes) the worker inherits at the same numbers.
    stdout : file object, optional
        An open host file (not a pipe) receiving the worker's stdout and stderr;
        ``None`` discards them. Its size is capped by ``limits.file_mb``.
    limits : Limits
    uid : int, optional
        The user id the worker runs as when grading as root (default: nobody,
        65534). RLIMIT_NPROC counts per user, so workers that run at the same
        time are given different ids (:func:`worker_uid`): one worker's fork
        bomb then cannot starve another of processes. Ignored when not root.
    """

    def __init__(self, argv, *, binds=(), env=None, cwd="/tmp", pass_fds=(), stdout=None, limits=Limits(), uid=None):
        if not argv or not all(isinstance(arg, str) for arg in argv):
            raise IsolationError(f"argv must be a non-empty list of strings, not {argv!r}")
        if any(not isinstance(k, str) or not isinstance(v, str) or "=" in k or "\0" in k + v
               for k, v in (env or {}).items()):
            raise IsolationError(f"env must map variable names to strings, not {env!r}")
        if stdout is not None and stat.S_ISFIFO(os.fstat(stdout.fileno()).st_mode):
            raise IsolationError("stdout must be a file, not a pipe: a child holding a pipe could block the grader")
        for path in [cwd] + [inside for _, inside in binds]:
            if not isinstance(path, str) or not os.path.isabs(path):
                raise IsolationError(f"sandbox paths must be absolute: {path!r}")
        self.argv, self.binds, self.env, self.cwd = list(argv), [tuple(b) for b in binds], dict(env or {}), cwd
        self.pass_fds, self.stdout, self.limits = tuple(pass_fds), stdout, limits
        self.method = None
        self._popen = self._tmp = None
        if uid is not None and not (isinstance(uid, int) and 0 < uid < 2**32 - 1):
            raise IsolationError(f"uid must be a positive user id, not {uid!r}")
        self._uid = (NOBODY if uid is None else uid) if os.geteuid() == 0 else os.getuid()

    def start(self):
        """Start the worker; returns the sandbox. Bad arguments raise :class:`IsolationError` first."""
        if self._popen is not None:
            raise IsolationError("this Sandbox was already started")
        self.method = method()
        for host, _ in self.binds:
            if not os.path.exists(host):
                raise IsolationError(f"bind source {host} does not exist")
        command, kwargs = self._bwrap() if self.method == "bwrap" else self._process()
        _become_subreaper()
        try:
            self._popen = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=self.stdout or subprocess.DEVNULL,
                stderr=subprocess.STDOUT, pass_fds=self.pass_fds, start_new_session=True, **kwargs)
        except (OSError, subprocess.SubprocessError) as error:
            self._cleanup()
            raise IsolationError(f"could not start the worker {self.argv[0]}: {error}") from None
        _sandbox_pids.add(self._popen.pid)
        if self.method == "bwrap":
            self._wait_for_the_command()
        return self

    def _wait_for_the_command(self, seconds=10):
        """Return once bwrap runs the command (or ended, or ``seconds`` passed).

        bwrap's pid 1 binds its life to the outer bwrap only after it has started
        the command: a grader that died before would leave it running.
        """
        deadline = time.monotonic() + seconds
        while (len(_tree([self._popen.pid])) < 3 and self._popen.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.002)

    def _bwrap(self):
        """The command and Popen arguments that start the worker under bwrap."""
        inside = SYSTEM_DIRS + tuple(_python_trees()) + tuple(host for host, _ in self.binds)
        if not _under(os.path.realpath(self.argv[0]), inside):
            raise IsolationError(f"argv[0] {self.argv[0]} is outside the sandbox (not under /usr, "
                                 "the running Python's prefixes, or a bind)")
        command = _bwrap_argv(self.argv, binds=self.binds, cwd=self.cwd, limits=self.limits,
                              env=self._environment("/tmp/home"), uid=self._uid)
        return command, dict(cwd="/", env={"PATH": "/usr/bin:/bin"},
                             preexec_fn=_preexec(self.limits, _nproc_limit(self.limits, self._uid)))

    def _process(self):
        """The command and Popen arguments that start the worker as a plain process (the fallback)."""
        root = os.geteuid() == 0
        for host, inside in self.binds:
            if os.path.abspath(host) != os.path.abspath(inside):
                raise IsolationError(f"bind {host} -> {inside}: without bwrap nothing is mounted, "
                                     "so a bind must keep its path")
            if root:
                _check_reachable_by_nobody(host)
        if root:
            _check_reachable_by_nobody(self.argv[0])
        self._tmp = tempfile.mkdtemp(prefix="convlab-worker-")
        home = os.path.join(self._tmp, "home")
        os.mkdir(home)
        kwargs = dict(cwd=self._tmp, env=dict(self._environment(home), TMPDIR=self._tmp),
                      preexec_fn=_preexec(self.limits, _nproc_limit(self.limits, self._uid), fallback=True))
        if root:
            for path in (self._tmp, home):
                os.chown(path, self._uid, self._uid)
            kwargs.update(user=self._uid, group=self._uid, extra_groups=[])
        return self.argv, kwargs

    def _environment(self, home):
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env.update({name: os.environ[name] for name in PASSED_THROUGH if name in os.environ})
        env.update(self.env)
        return env

    def _started(self):
        if self._popen is None:
            raise IsolationError("the Sandbox is not started")
        return self._popen

    @property
    def pid(self):
        """The pid of the started process (``bwrap``'s under bwrap)."""
        return self._started().pid

    def poll(self):
        """The exit status if the worker has ended, else None (like ``Popen.poll``)."""
        return self._started().poll()

    def wait(self, timeout=None):
        """Wait for the worker to end; its exit status, or None if still running after ``timeout`` seconds."""
        try:
            return self._started().wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        """Kill the worker and everything it started, reap them, and remove the fallback's directory.

        The worker's process tree is stopped, then killed (SIGKILL: a worker
        ignoring SIGTERM changes nothing); under bwrap that ends its pid
        namespace. Then every orphan this process adopted as a child subreaper
        and that runs as the worker's user in a session of its own (a daemon
        some worker left behind) is killed too: without root, a process the
        grader itself started with a new session, not through Sandbox, would
        count as one. Idempotent.
        """
        if self._popen is None:
            return
        pid = self._popen.pid
        if self._popen.returncode is None:  # not reaped yet: its pid still names it and its group
            if LINUX:
                _kill_trees([pid])
        if self._popen.returncode is None or not LINUX:
            try:
                os.killpg(pid, signal.SIGKILL)  # its process group (all there is to find on macOS)
            except (ProcessLookupError, PermissionError):
                pass
        self._popen.wait()
        _sandbox_pids.discard(pid)
        while LINUX and (escaped := _escaped(self._uid)):
            _kill_trees(escaped)
            for orphan in escaped:
                try:
                    os.waitpid(orphan, 0)
                except ChildProcessError:
                    pass
        self._cleanup()

    def _cleanup(self):
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self.start() if self._popen is None else self

    def __exit__(self, *exc):
        self.kill()


def _check_reachable_by_nobody(path):
    """Raise IsolationError unless user nobody can reach ``path`` (x on every parent, 'other' bits)."""
    real = os.path.realpath(path)
    parent = os.path.dirname(real)
    while True:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            raise IsolationError(f"the worker runs as user nobody, who cannot reach {path} ({parent} "
                                 "is not searchable by others): install Python elsewhere or use bwrap")
        if parent == "/":
            return
        parent = os.path.dirname(parent)

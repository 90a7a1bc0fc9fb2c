"""Which SIMD path is fastest here, measured: calibration at first use, cached per CPU.

CPUID says which paths a CPU *can* run (:func:`convlab.fast_layers.simd_paths`,
widest first), not which one is fastest: a Zen 4 core runs AVX-512 but
executes each 512-bit multiply-add as two 256-bit halves, and a training
step there is faster on the ``avx2`` path than on ``avx512`` (see the
book's performance appendix). So the first
time a fast layer runs (or :func:`convlab.fast_layers.build_info` is asked),
unless the path is forced, the kernels' path is chosen by a short
measurement:

* the work: the direct convolution kernels' forward pass and filter
  gradient (the two that use the ``avx512`` path's wide tiles), float32, on
  one thread, on two representative stride-1 3x3 layers (64 -> 64 channels
  on a batch of four 16 x 16 maps, 128 -> 128 on 8 x 8 maps): a *trial* is
  one pass over both, a few milliseconds on a vector path;
* every vector path the CPU runs (not ``plain``, the readable reference,
  which no automatic choice takes) takes a trial in turn, round after round
  (so a burst of load elsewhere on the machine hits all of them alike); a path
  whose first trial takes more than :data:`DROP_FACTOR` times the best one
  so far is out, and the rounds stop at :data:`ROUNDS` or, after
  :data:`MIN_ROUNDS`, when the time budget :data:`BUDGET_SECONDS` is spent;
  each path's time is its best trial, timed by the thread's CPU time where
  that clock is precise (so that waiting for the other processes of a busy
  machine does not count);
* the CPUID default (the widest path) stays unless another path is faster
  by more than :data:`MARGIN` (5 %), so that noise cannot flip the choice
  between two paths that are equally fast.

The choice is cached, as a small JSON file, per CPU model (``/proc/cpuinfo``'s
model name and a hash of its flags, or what :mod:`platform` knows), convlab
version, compiler and set of available paths, in the user's cache directory
(:func:`cache_dir`), so calibration runs once per machine and installation.
The file is written atomically (a temporary file, then ``os.replace``); a
cache that cannot be read or written is ignored with one warning
(:class:`CalibrationCacheWarning`), and the process calibrates for itself.

Once decided, the path is also put in this process's environment
(``_CONVLAB_SIMD_DECIDED``), so that worker processes started from it (Dask,
``multiprocessing``'s spawn and forkserver) take the same path without
measuring again; a child made by ``fork()`` inherits the decision itself.

The environment decides first:

=======================  ======================================================
``CONVLAB_SIMD=name``    forces a path (see :mod:`convlab._fast`): no calibration
``CONVLAB_CALIBRATE=0``  no calibration: the CPUID default, as before convlab
                         measured (``1``, the default, calibrates)
``CONVLAB_CACHE_DIR``    the cache directory (default: :func:`cache_dir`)
=======================  ======================================================

:func:`convlab.fast_layers.set_simd_path` later overrides the choice for the
process, as before. Only the SIMD path is calibrated: the convolution
algorithm (direct or Winograd) keeps the fixed rule of
:func:`convlab.fast_layers.winograd_pays`, since, unlike the paths among
themselves, it changes the last bits of the results, and a run records only
its SIMD path (see :mod:`convlab.runs.folder`).
"""

import hashlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

from convlab._fast import _runtime, choose_simd_path
from convlab._fast import conv as _conv

__all__ = ["simd_choice", "recalibrate", "cache_dir", "CalibrationCacheWarning"]

#: Another path replaces the CPUID default only if its time is below ``default / (1 + MARGIN)``.
MARGIN = 0.05
#: A path whose first trial is this many times slower than the best one so far is measured no further.
DROP_FACTOR = 2.0
#: Rounds of trials (each path's time is its best trial): at least MIN_ROUNDS, at most ROUNDS.
MIN_ROUNDS, ROUNDS = 3, 20
#: No new round starts, after MIN_ROUNDS, once calibration has taken this long.
BUDGET_SECONDS = 0.15

#: The representative layers, (N, C, F, H = W): stride 1, 3x3 filters, pad 1, float32.
SHAPES = ((4, 64, 64, 16), (4, 128, 128, 8))

_FORMAT = "convlab-simd-calibration"
_VERSION = 1
_INHERITED = "_CONVLAB_SIMD_DECIDED"   # the decision, for worker processes started from this one

_choice = None            # the decision (a dict, see simd_choice), once made
_warned = False           # at most one cache warning per process
_deciding = threading.Lock()   # two threads' first layers do not both calibrate


class CalibrationCacheWarning(UserWarning):
    """The calibration cache could not be read or written; this process measured for itself."""


def cache_dir():
    """The directory that holds the calibration cache.

    ``$CONVLAB_CACHE_DIR`` if set; else, on Windows, ``%LOCALAPPDATA%\\convlab``;
    else ``$XDG_CACHE_HOME/convlab`` (an absolute ``XDG_CACHE_HOME`` only, as
    the XDG specification says) or ``~/.cache/convlab``.

    Returns
    -------
    str
    """
    explicit = os.environ.get("CONVLAB_CACHE_DIR", "")
    if explicit:
        return explicit
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return os.path.join(os.environ["LOCALAPPDATA"], "convlab")
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, "convlab")
    return os.path.join(os.path.expanduser("~"), ".cache", "convlab")


def _cpu_model():
    """``(model name, hash of the CPU's feature flags)``, from ``/proc/cpuinfo`` where there is one,
    else from :mod:`platform` (with an empty hash)."""
    model, flags = None, ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if model is None and key in ("model name", "hardware", "cpu model"):
                    model = value.strip()
                elif not flags and key in ("flags", "features"):
                    flags = " ".join(sorted(value.split()))
                if model is not None and flags:
                    break                                   # the first CPU says it for all
    except OSError:
        pass
    if not model:
        model = platform.processor() or platform.machine() or "unknown CPU"
    digest = hashlib.sha256(flags.encode()).hexdigest()[:16] if flags else ""
    return f"{model} ({platform.system()} {platform.machine()})", digest


def _cache_key(available):
    """What a cached choice is valid for: this CPU, this convlab and build, these paths."""
    from convlab import __version__

    compiled = _runtime.compiled_with()
    cpu, flags = _cpu_model()
    return {"cpu": cpu, "cpu_flags": flags, "convlab": __version__, "compiler": compiled["compiler"],
            "avx512_on_avx2": compiled["avx512_on_avx2"], "simd_paths": list(available)}


def _key_digest(key):
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _cache_file(key):
    return os.path.join(cache_dir(), f"simd-{_key_digest(key)}.json")


def _warn_once(message):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, CalibrationCacheWarning, stacklevel=3)


def _calibration_wanted():
    """False if ``CONVLAB_CALIBRATE`` switches calibration off; ValueError if it says neither."""
    raw = os.environ.get("CONVLAB_CALIBRATE", "1")
    value = raw.strip().lower()
    if value in ("1", "on", "yes", "true", ""):
        return True
    if value in ("0", "off", "no", "false"):
        return False
    raise ValueError(f"CONVLAB_CALIBRATE={raw!r}: use 1 (measure which SIMD path is fastest, the "
                     f"default) or 0 (take the widest path this CPU runs)")


def _forced():
    """The value of ``CONVLAB_SIMD`` if it names a path (not ``auto``), else None."""
    raw = os.environ.get("CONVLAB_SIMD", "")
    return raw if raw.strip().lower() not in ("", "auto") else None


def _representative_work():
    """The layers of :data:`SHAPES` as ``(x, w, b, out)`` arrays, allocated and touched once."""
    rng = np.random.default_rng(0)
    work = []
    for N, C, F, H in SHAPES:
        x = rng.standard_normal((N, C, H, H), dtype=np.float32)
        w = rng.standard_normal((F, C, 3, 3), dtype=np.float32)
        work.append((x, w, np.zeros(F, np.float32), np.zeros((N, F, H, H), np.float32)))
    return work


def _trial_clock():
    """The clock a trial is timed with: this thread's CPU time where it is precise (Linux, macOS),
    so that time spent waiting while other processes run is not counted; else the wall clock."""
    try:
        if time.get_clock_info("thread_time").resolution <= 1e-6:
            return time.thread_time
    except (AttributeError, OSError, ValueError):
        pass
    return time.perf_counter


def _time_trial(path, work):
    """Seconds for one trial on SIMD path ``path``: the direct kernels' forward pass and filter
    gradient of every layer of ``work`` (from :func:`_representative_work`), on one thread (the
    calling one)."""
    _runtime.set_simd_path(path)
    clock = _trial_clock()
    start = clock()
    for x, w, b, out in work:
        _conv.conv_forward(x, w, b, out, 1, 1, 1, num_threads=1)
        _conv.conv_backward_weights(x, out, 3, 3, 1, 1, num_threads=1)
    return clock() - start


def choose_fastest(times, default):
    """The path to take, given each measured path's best time in seconds.

    Parameters
    ----------
    times : dict of str to float
        Best trial time per path; ``default`` must be among them.
    default : str
        The CPUID default, kept unless another path is faster by more than :data:`MARGIN`.

    Returns
    -------
    str
    """
    fastest = min(times, key=times.get)
    return fastest if times[fastest] * (1 + MARGIN) < times[default] else default


def _measure(candidates):
    """Each candidate path's best trial time, and the one trial of each path dropped as too slow.

    Parameters
    ----------
    candidates : list of str
        The paths to measure, the CPUID default first.

    Returns
    -------
    times, dropped : dict of str to float
        Seconds per path; a path is in one of the two.
    """
    work = _representative_work()
    best, dropped = {}, {}
    start = time.perf_counter()
    try:
        for round_ in range(ROUNDS):
            if round_ >= MIN_ROUNDS and time.perf_counter() - start > BUDGET_SECONDS:
                break
            for path in candidates:
                if path in dropped:
                    continue
                seconds = _time_trial(path, work)
                if round_ == 0 and best and seconds > DROP_FACTOR * min(best.values()):
                    dropped[path] = seconds
                else:
                    best[path] = min(seconds, best.get(path, seconds))
    finally:
        _runtime.set_simd_path(candidates[0])
    return best, dropped


def _candidates(available, default):
    """The paths calibration measures: the vector paths of ``available``, ``default`` first."""
    return [default] + [p for p in available if p not in (default, "plain")]


def _calibrate(candidates):
    """Measure ``candidates`` (the default first) and choose; returns the choice's fields."""
    started = time.perf_counter()
    measured, dropped = _measure(candidates)
    return {"simd_path": choose_fastest(measured, candidates[0]), "default": candidates[0],
            "times_ms": {p: round(t * 1e3, 3) for p, t in measured.items()},
            "dropped_ms": {p: round(t * 1e3, 3) for p, t in dropped.items()},
            "calibration_ms": round((time.perf_counter() - started) * 1e3, 1)}


def _path_times(times, available, empty=False):
    """Whether ``times`` is a dict of milliseconds (non-negative numbers) for paths of ``available``."""
    return (isinstance(times, dict) and (empty or bool(times))
            and all(p in available and isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0
                    for p, t in times.items()))


def _read_cache(path, key, available):
    """The cached choice in ``path`` for ``key``, or None (missing; a damaged file warns once)."""
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        _warn_once(f"convlab: ignored the SIMD calibration cache {path} "
                   f"({getattr(error, 'strerror', None) or error}); measuring again")
        return None
    if (not isinstance(stored, dict) or stored.get("format") != _FORMAT or stored.get("version") != _VERSION
            or stored.get("key") != key or stored.get("simd_path") not in available
            or stored.get("default") not in available
            or not _path_times(stored.get("times_ms"), available)
            or not _path_times(stored.get("dropped_ms"), available, empty=True)):
        _warn_once(f"convlab: ignored the SIMD calibration cache {path} (not a calibration of this "
                   f"CPU and installation); measuring again")
        return None
    return {k: stored.get(k) for k in ("simd_path", "default", "times_ms", "dropped_ms", "calibration_ms",
                                       "measured_at")}


def _write_cache(path, key, choice):
    """Write ``choice`` to ``path`` atomically; True if written (else one warning)."""
    record = {"format": _FORMAT, "version": _VERSION, "key": key,
              **{k: choice[k] for k in ("simd_path", "default", "times_ms", "dropped_ms", "calibration_ms",
                                        "measured_at")}}
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".",
                                   suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, path)
        return True
    except OSError as error:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        _warn_once(f"convlab: cannot write the SIMD calibration cache {path} "
                   f"({error.strerror or error}); every process will measure again "
                   f"(set CONVLAB_CACHE_DIR to a writable directory, or CONVLAB_CALIBRATE=0)")
        return False


def _inherited(key, available):
    """The path a parent process decided for this key, if it left one in the environment."""
    digest, _, path = os.environ.get(_INHERITED, "").partition(":")
    return path if digest == _key_digest(key) and path in available else None


def _decide(recalibrate=False):
    """Make the decision (see the module's docstring) and set the kernels' path to it."""
    available = _runtime.simd_paths()
    default = choose_simd_path(available)          # CONVLAB_SIMD, else the widest path
    forced = _forced()
    base = {"simd_path": default, "default": available[0], "times_ms": None, "dropped_ms": None,
            "calibration_ms": None, "measured_at": None, "cache_file": None}
    if forced is not None:
        choice = dict(base, how=f"forced by CONVLAB_SIMD={forced}")
    elif not _calibration_wanted():
        choice = dict(base, how="CPUID default (CONVLAB_CALIBRATE=0)")
    elif len(_candidates(available, default)) == 1:
        choice = dict(base, how="CPUID default (the only vector path)")
    else:
        key = _cache_key(available)
        path = _cache_file(key)
        inherited = None if recalibrate else _inherited(key, available)
        cached = None if recalibrate or inherited else _read_cache(path, key, available)
        if inherited:
            choice = dict(base, simd_path=inherited, how="inherited from the parent process")
        elif cached:
            choice = dict(base, **cached, how="cached", cache_file=path)
        else:
            measured = _calibrate(_candidates(available, default))
            measured["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            choice = dict(base, **measured, how="calibrated")
            if _write_cache(path, key, choice):
                choice["cache_file"] = path
        os.environ[_INHERITED] = f"{_key_digest(key)}:{choice['simd_path']}"
    _runtime.set_simd_path(choice["simd_path"])
    return choice


def _ensure_decided():
    """Decide the SIMD path if no decision was made yet (cheap after the first call)."""
    global _choice
    if _choice is None:
        with _deciding:
            if _choice is None:
                _choice = _decide()


def _path_set_explicitly(name):
    """Record that :func:`convlab.fast_layers.set_simd_path` chose ``name``: no calibration overrides it."""
    global _choice
    previous = _choice or {}
    _choice = {"simd_path": name, "default": _runtime.simd_paths()[0], "how": "set by set_simd_path",
               **{k: previous.get(k) for k in ("times_ms", "dropped_ms", "calibration_ms", "measured_at",
                                                "cache_file")}}


def simd_choice():
    """How the kernels' SIMD path was chosen (deciding it now if not yet done).

    Returns
    -------
    dict
        ``simd_path`` (the path chosen), ``how`` (``"calibrated"``,
        ``"cached"``, ``"inherited from the parent process"``,
        ``"forced by CONVLAB_SIMD=..."``, ``"CPUID default
        (CONVLAB_CALIBRATE=0)"``, ``"CPUID default (the only vector path)"``
        or ``"set by set_simd_path"``), ``default`` (the CPUID default: the
        widest path this CPU runs), ``times_ms``
        (each measured path's best trial in milliseconds, or None if nothing
        was measured), ``dropped_ms`` (the one trial of each path dropped as
        too slow), ``calibration_ms`` (how long the calibration took),
        ``measured_at`` (UTC) and ``cache_file`` (the cache file read or
        written, or None).
    """
    _ensure_decided()
    return dict(_choice)


def recalibrate():
    """Measure again, rewrite the cache and take the new choice (not when a path is forced).

    Returns
    -------
    dict
        The new :func:`simd_choice`.

    Raises
    ------
    ValueError
        If ``CONVLAB_SIMD`` forces a path or ``CONVLAB_CALIBRATE`` switches
        calibration off (naming the variable), or ``CONVLAB_CALIBRATE`` is invalid.
    """
    global _choice
    if _forced() is not None:
        raise ValueError(f"CONVLAB_SIMD={_forced()} forces the SIMD path; unset it to calibrate")
    if not _calibration_wanted():
        raise ValueError("CONVLAB_CALIBRATE=0 switches calibration off; unset it to calibrate")
    with _deciding:
        _choice = _decide(recalibrate=True)
    return dict(_choice)

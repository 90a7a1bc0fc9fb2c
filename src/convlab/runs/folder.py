"""A training run's output folder: its fingerprint, its manifest, and the files the run owns.

:mod:`convlab.train` writes everything a run produces into one folder
(``--out``). This module decides whether a new invocation may use that
folder, so that a result is never silently changed by files another run
left behind:

- A **fingerprint** says what a run computes: the recipe after overrides,
  the seed, the sizes of the data splits and the convlab version. It is kept
  in the folder's **manifest** ``run.json`` and in every checkpoint's
  ``meta`` (as ``run_info``). It also records the machine's **numerics**
  (:func:`numerics`): the kernels' SIMD path and threads and the BLAS, which
  decide the last bits of every result but not what the run is. (This
  module knows no kernel: the caller passes in what the kernels report,
  :func:`convlab.build_info`.)
- A **fresh** run refuses a folder that holds another run's files, unless
  told to ``overwrite`` them (then only the files a run writes are deleted).
- A **resumed** run refuses a folder whose fingerprint differs from its own,
  naming every entry that differs; a folder with nothing in it starts afresh.
  Other numerics than those its latest checkpoint was computed with do not
  stop it: :attr:`RunFolder.numerics_changes` names them (the command line
  warns that the continuation will not be bit-identical), and a *strict*
  resume refuses them. A checkpoint written before convlab recorded its
  numerics counts as unknown: it resumes without a warning, and a strict
  resume refuses it, since it cannot be shown to match.
- A run that **finished** (the manifest says ``complete``, written after
  ``model.npz`` and ``history.json``) is not trained or evaluated again: its
  stored history is the answer. Printing it needs no write access, so it
  works on read-only storage. A ``model.npz`` that cannot be read makes the
  run unfinished: it is evaluated again from its last checkpoint (or, with
  none, refused naming the file).
- A checkpoint to resume from is read whole before any data is loaded: a
  damaged one (a flipped bit fails its CRC), or one holding NaN or infinity,
  is refused naming the file.
- One run at a time: the folder itself is locked (an advisory ``flock`` on
  it, where the system has one) while a run uses it, and the temporary files a killed run left
  (``*.tmp``, see :func:`convlab.runs.files.write_atomically`) are removed
  when the next one takes the lock.

Manifest format
---------------
``run.json``: ``{"format": "convlab-run", "version": 1, "status":
"running"|"complete", "fingerprint": {...}}``, written atomically.
"""

import contextlib
import json
import os
import re
import tempfile

import threadpoolctl

from convlab.runs import checkpoint, model_file
from convlab.runs.files import atomic_write_text

__all__ = ["MANIFEST", "fingerprint", "numerics", "differences", "numerics_differences",
           "owned_files", "check_writable", "RunFolder"]

MANIFEST = "run.json"
_FORMAT = "convlab-run"
_VERSION = 1

# The files a run writes (and --overwrite may delete); anything else in the
# folder is the user's and is left alone.
_OWNED = re.compile(r"^(run\.json|model\.npz|history\.json|checkpoint_epoch_\d+\.npz)$")
_OWNED_TMP = re.compile(r"^(run\.json|model\.npz|history\.json|checkpoint_epoch_\d+\.npz)"
                        r"\.[^.]+\.tmp$")


# The fingerprint's entry that describes the machine rather than the run.
_NUMERICS = "numerics"


def numerics(kernels):
    """What decides the last bits of this machine's results: kernels, threads and BLAS.

    Parameters
    ----------
    kernels : dict
        What the fast kernels report about themselves (:func:`convlab.build_info`):
        at least ``simd_path`` and ``threads``.

    Returns
    -------
    dict
        ``simd_path`` (the kernels' path), ``threads`` (how many threads a
        kernel may use) and ``blas``: one
        ``{"internal_api", "architecture", "version", "threads"}`` per BLAS
        library loaded (threadpoolctl's ``threadpool_info``; ``architecture``
        is the kernel family OpenBLAS chose for this CPU, e.g. ``"Haswell"``).
    """
    blas = sorted(({"internal_api": lib.get("internal_api"), "architecture": lib.get("architecture"),
                    "version": lib.get("version"), "threads": lib.get("num_threads")}
                   for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"),
                  key=json.dumps)
    return {"simd_path": kernels["simd_path"], "threads": kernels["threads"], "blas": blas}


def fingerprint(recipe, seed, num_train, num_val, num_test, machine):
    """What a run computes, as plain JSON values, and the numerics it computes with.

    Parameters
    ----------
    recipe : dict
        The recipe after overrides (:func:`convlab.recipes.resolve_recipe`).
    seed, num_train, num_val, num_test : int
    machine : dict
        The numerics the run computes with (:func:`numerics`).

    Returns
    -------
    dict
        ``recipe``, ``seed``, ``num_train``, ``num_val``, ``num_test``,
        ``convlab_version`` and ``numerics``; tuples become lists (as JSON
        stores them).
    """
    from convlab import __version__
    return json.loads(json.dumps({
        "recipe": recipe, "seed": seed, "num_train": num_train, "num_val": num_val,
        "num_test": num_test, "convlab_version": __version__,
        _NUMERICS: machine}))


def _run_identity(fingerprint):
    """A fingerprint without its numerics: what must match for a run to be the same run."""
    return {k: v for k, v in fingerprint.items() if k != _NUMERICS} if isinstance(fingerprint, dict) else {}


def differences(stored, current):
    """The entries in which two fingerprints differ, one readable line each.

    Parameters
    ----------
    stored, current : dict
        From :func:`fingerprint` (recipe entries are compared one by one).

    Returns
    -------
    list of str
        E.g. ``["seed: 0 in the folder, 1 now", "recipe entry epochs: 3 in
        the folder, 5 now"]``; empty if they match. The numerics are not
        compared (see :func:`numerics_differences`): the same run may continue
        on another machine.
    """
    lines = []

    def compare(label, a, b):
        if a != b:
            lines.append(f"{label}: {json.dumps(a)} in the folder, {json.dumps(b)} now")

    stored, current = _run_identity(stored), _run_identity(current)
    keys = [k for k in current if k != "recipe"] + [k for k in stored if k not in current]
    old_recipe, new_recipe = stored.get("recipe") or {}, current.get("recipe") or {}
    for key in sorted(set(old_recipe) | set(new_recipe)):
        compare(f"recipe entry {key}", old_recipe.get(key), new_recipe.get(key))
    for key in keys:
        compare(key, stored.get(key), current.get(key))
    return lines


def _blas_text(blas):
    return ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
                     f"{b.get('threads')} threads)" for b in blas) or "none"


def numerics_differences(stored, current):
    """How the numerics of two fingerprints differ, one readable line each.

    Parameters
    ----------
    stored, current : dict
        From :func:`fingerprint`.

    Returns
    -------
    list of str or None
        E.g. ``["SIMD path avx2 in the folder, portable now"]``; empty if they
        match; None if ``stored`` records no numerics (written before convlab
        recorded them): unknown.
    """
    old = stored.get(_NUMERICS) if isinstance(stored, dict) else None
    if not isinstance(old, dict):
        return None
    new = current[_NUMERICS]
    lines = []
    if old.get("simd_path") != new["simd_path"]:
        lines.append(f"SIMD path {old.get('simd_path')} in the folder, {new['simd_path']} now")
    if old.get("threads") != new["threads"]:
        lines.append(f"kernel threads {old.get('threads')} in the folder, {new['threads']} now")
    if old.get("blas") != new["blas"]:
        lines.append(f"BLAS {_blas_text(old.get('blas') or [])} in the folder, {_blas_text(new['blas'])} now")
    return lines


def owned_files(out):
    """The names of the files a run writes that are present in ``out``, sorted.

    Parameters
    ----------
    out : str or path

    Returns
    -------
    list of str
    """
    if not os.path.isdir(out):
        return []
    return sorted(name for name in os.listdir(out) if _OWNED.match(name))


def _lock_folder(out):
    """An open descriptor of the folder ``out``, exclusively flock-ed; None where there is no flock.

    Raises ValueError if another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:             # Windows: no flock; one run at a time is up to the user
        return None
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(f"--out {out}: another run is using this folder right now") from None
    return fd


def check_writable(out):
    """ValueError unless the folder ``out`` can be created (if missing) and written to.

    Tries it: a temporary file is created and removed in ``out``, or in the
    deepest of its parents that exists (permission bits do not tell, e.g.
    for root or on a read-only file system). Nothing is left behind.

    Parameters
    ----------
    out : str or path
    """
    out = os.fspath(out)
    probe = os.path.abspath(out)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        if os.path.islink(probe):
            raise ValueError(f"--out {out}: {probe} is a symbolic link to "
                             f"{os.readlink(probe)}, which does not exist")
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(f"--out {out}: {probe} is a file, not a folder")
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".convlab-probe-")
    except OSError as error:
        raise ValueError(f"--out {out}: cannot write to {probe} ({error.strerror})") from None
    os.close(fd)
    os.unlink(name)


class RunFolder:
    """The output folder of one run, checked and locked (a context manager).

    Parameters
    ----------
    out : str or path
        The folder; created if missing.
    fingerprint : dict
        This run's, from :func:`fingerprint`.
    resume : bool
        Continue the run in ``out`` if there is one (else start afresh).
    overwrite : bool
        Delete another run's files in ``out`` and start afresh.
    strict : bool
        With ``resume``: refuse to continue a checkpoint computed with other
        numerics than this machine's (:func:`numerics_differences`), or with
        unknown ones.

    Attributes
    ----------
    state : {'fresh', 'resume', 'complete'}
        Set on entering: start a new run, continue from ``latest_checkpoint``,
        or nothing to do (``history`` holds the finished run's history).
    latest_checkpoint : str or None
    history : dict or None
    numerics_changes : list of str
        When ``state`` is ``'resume'``: how this machine's numerics differ from
        those of the latest checkpoint (empty if they match or are unknown).

    Raises
    ------
    ValueError
        On entering: ``out`` cannot be written to; it holds another run's
        files (without ``resume`` or ``overwrite``); its fingerprint (or that
        of its latest checkpoint) differs from this run's; with ``strict``,
        its numerics differ or are unknown; another run holds its lock;
        ``resume`` and ``overwrite`` are both set.
    """

    def __init__(self, out, fingerprint, resume=False, overwrite=False, strict=False):
        if resume and overwrite:
            raise ValueError("--resume and --overwrite contradict each other; choose one")
        if strict and not resume:
            raise ValueError("--strict-resume applies to --resume; add --resume")
        self.out = os.fspath(out)
        self.fingerprint = fingerprint
        self.resume = resume
        self.overwrite = overwrite
        self.strict = strict
        self.numerics_changes = []
        self.state = None
        self.latest_checkpoint = None
        self.history = None
        self._fd = None

    def check_writable(self):
        """ValueError unless ``out`` can be created and written to (see :func:`check_writable`).

        With ``resume``, a folder whose manifest says the run is complete
        passes unchecked: only its stored results will be read (entering
        checks again once the state is known).
        """
        if not self._says_complete():
            check_writable(self.out)

    def _says_complete(self):
        """Whether, resuming, the manifest in ``out`` says the run finished (not yet verified)."""
        if not self.resume:
            return False
        try:
            with open(os.path.join(self.out, MANIFEST), encoding="utf-8") as f:
                return json.load(f).get("status") == "complete"
        except (OSError, ValueError, AttributeError):
            return False

    def __enter__(self):
        self.check_writable()
        if not os.path.isdir(self.out):
            try:
                os.makedirs(self.out, exist_ok=True)
            except OSError as error:
                raise ValueError(f"--out {self.out}: cannot write there "
                                 f"({error.strerror})") from None
        self._fd = _lock_folder(self.out)
        try:
            self._remove_orphans()
            self._decide()
            if self.state != "complete":
                check_writable(self.out)
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc):
        self._release()

    def _release(self):
        if self._fd is not None:
            os.close(self._fd)          # closing drops the flock
            self._fd = None

    def _remove_orphans(self):
        for name in os.listdir(self.out):
            if _OWNED_TMP.match(name):
                # on read-only storage they stay (and a finished run is only read)
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.out, name))

    def _decide(self):
        present = owned_files(self.out)
        if not present:
            self.state = "fresh"
            return
        if not self.resume:
            if not self.overwrite:
                shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
                raise ValueError(f"--out {self.out} already holds a training run ({shown}); "
                                 "pass --resume to continue it or --overwrite to replace it")
            for name in present:
                os.unlink(os.path.join(self.out, name))
            self.state = "fresh"
            return
        manifest = self._read_manifest()
        stored = manifest.get("fingerprint") if manifest else None
        latest = checkpoint.find_latest_checkpoint(os.path.join(self.out, "checkpoint"))
        if latest is not None:
            arrays, meta = checkpoint.load(latest)     # every array: a flipped bit fails its CRC
            checkpoint.check_finite(latest, arrays)
            if "run_info" not in meta:
                raise ValueError(f"--resume: {latest} records no run fingerprint (an older "
                                 "convlab wrote it), so it cannot be matched to this run; "
                                 "use --overwrite to start afresh")
            if stored is not None and _run_identity(meta["run_info"]) != _run_identity(stored):
                raise ValueError(f"--resume: {latest} belongs to another run than "
                                 f"{os.path.join(self.out, MANIFEST)}; use --overwrite to "
                                 "start afresh")
            stored = meta["run_info"]
        if stored is None:
            raise ValueError(f"--resume: {self.out} holds {', '.join(present)} but no manifest "
                             f"({MANIFEST}) or checkpoint to match this run against; use "
                             "--overwrite to start afresh")
        diff = differences(stored, self.fingerprint)
        if diff:
            raise ValueError(f"--resume: the run in {self.out} differs from this one in "
                             + "; ".join(diff)
                             + ". Resume it with its own options, or use another --out")
        if manifest and manifest.get("status") == "complete":
            history = self._read_json("history.json")
            model = os.path.join(self.out, "model.npz")
            problem = model_file.problem(model) if os.path.exists(model) else "missing"
            if history is not None and problem is None:
                self.state, self.history = "complete", history
                return
            if problem not in (None, "missing") and latest is None:
                raise ValueError(f"--resume: {model} is damaged ({problem}) and there is no "
                                 "checkpoint to evaluate the run again from; use --overwrite "
                                 "to start afresh")
        if latest is None:
            self.state = "fresh"
        else:
            self.state, self.latest_checkpoint = "resume", latest
            self._compare_numerics(stored)

    def _compare_numerics(self, stored):
        """Set ``numerics_changes`` for continuing a checkpoint whose fingerprint is ``stored``."""
        changes = numerics_differences(stored, self.fingerprint)
        if self.strict and changes is None:
            raise ValueError(f"--strict-resume: {self.latest_checkpoint} records no SIMD path, BLAS "
                             "or thread count (an older convlab wrote it), so a bit-identical "
                             "continuation cannot be promised; resume without --strict-resume")
        if self.strict and changes:
            raise ValueError(f"--strict-resume: {self.latest_checkpoint} was computed with other "
                             "numerics than this machine's (" + "; ".join(changes) + "), so the "
                             "continuation would not be bit-identical; resume it where it ran, "
                             "or without --strict-resume")
        self.numerics_changes = changes or []

    def _read_json(self, name):
        try:
            with open(os.path.join(self.out, name), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise ValueError(f"--resume: cannot read {os.path.join(self.out, name)} "
                             f"({error}); use --overwrite to start afresh") from None

    def _read_manifest(self):
        manifest = self._read_json(MANIFEST)
        if manifest is None:
            return None
        if (not isinstance(manifest, dict) or manifest.get("format") != _FORMAT
                or manifest.get("version") != _VERSION):
            raise ValueError(f"--resume: {os.path.join(self.out, MANIFEST)} is not a "
                             f"version-{_VERSION} convlab run manifest; use --overwrite to "
                             "start afresh")
        return manifest

    def write_manifest(self, status):
        """Write ``run.json`` with ``status`` ('running' or 'complete'), atomically."""
        atomic_write_text(os.path.join(self.out, MANIFEST), json.dumps(
            {"format": _FORMAT, "version": _VERSION, "status": status,
             "fingerprint": self.fingerprint}, indent=1))

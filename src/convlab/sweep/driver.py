"""A sweep: its trials sent to Dask workers, a progress bar over them, a report at the end.

A sweep folder holds one plan (``sweep.json``): a run with other options
into a used folder is refused, naming what differs, and two sweeps started
at once into one folder cannot both write their plan. Everything that can be
checked -- options, the plan, the scheduler -- is checked before the folder
is created or a trial starts.
"""

import contextlib
import dataclasses
import json
import os
import tempfile

from tqdm.auto import tqdm

from convlab.runs.files import FILE_MODE, atomic_write_text
from convlab.sweep.plan import canonical_value, expand
from convlab.sweep.trial import load_result, read_attempts, read_result, run_trial, trial_dir

__all__ = ["Sweep", "Report", "status", "read_plan"]


@dataclasses.dataclass
class Report:
    """What :meth:`Sweep.run` did.

    Attributes
    ----------
    results : list of dict
        The ``result.json`` of every finished trial, in the sweep's order
        (diverged ones included).
    failed : list of (Trial, str)
        Trials that failed after their retries, with the error.
    skipped : int
        Trials that had finished before this run and were not run again.
    diverged : list of dict
        The results of the trials whose loss became NaN or infinite.
    damaged : list of str
        Unreadable ``result.json`` files found, one sentence each naming the
        file; their trials ran again.
    unrecorded : list of str
        Failures whose ``failure.txt`` could not be written (a full disk,
        say); ``status`` shows those trials as pending.
    """

    results: list
    failed: list
    skipped: int
    diverged: list = dataclasses.field(default_factory=list)
    damaged: list = dataclasses.field(default_factory=list)
    unrecorded: list = dataclasses.field(default_factory=list)


class Sweep:
    """A grid (or random sample) of recipe overrides times seeds, trained on Dask workers.

    Parameters
    ----------
    recipe : str
    grid : list of (key, list of str)
        From :func:`convlab.sweep.plan.parse_grid` (values are taken in
        their :func:`~convlab.sweep.plan.canonical_value` spelling, so
        ``"0.10"`` and ``"0.1"`` are one value).
    seeds : list of int
    out : str or path
        The sweep folder: ``sweep.json`` (the plan) and ``trials/<id>/``.
    overrides : sequence of "key=value" str
        ``--set`` values every trial shares.
    epochs : int or None
    num_train, num_val, num_test : int
        As ``python -m convlab.train`` takes them, shared by every trial.
    random, sample_seed : int or None, int
        See :func:`convlab.sweep.plan.expand`.
    retries : int
        How often a failed trial is tried again (a killed worker's trial is
        re-run by Dask anyway, resuming from its checkpoint).
    workers, threads_per_trial : int
        The in-process cluster made when no client or scheduler is given:
        ``workers`` worker processes, each running one trial at a time with
        ``threads_per_trial`` threads.
    scheduler, scheduler_file : str or None
        Address (``tcp://host:8786``) or scheduler file of a running Dask
        cluster to use instead.
    progress : bool

    Raises
    ------
    ValueError
        For a bad option or a grid point that is not a valid recipe, an
        entry set both by ``grid`` and by ``overrides`` or ``epochs``, a
        missing scheduler file or a malformed scheduler address, more than
        :data:`convlab.sweep.plan.MAX_TRIALS` trials, or an ``out`` that
        holds another sweep's plan; checked on construction, before anything
        runs.

    Notes
    -----
    The in-process cluster starts its workers with ``spawn``, which imports
    the calling script again in each worker: in a script, call :meth:`run`
    under ``if __name__ == "__main__":`` (a notebook needs nothing).
    """

    def __init__(self, recipe, grid=(), seeds=(0,), out="sweeps/sweep", overrides=(),
                 epochs=None, num_train=49000, num_val=1000, num_test=10000, random=None,
                 sample_seed=0, retries=1, workers=2, threads_per_trial=1, scheduler=None,
                 scheduler_file=None, progress=True):
        from convlab import __version__
        from convlab.train import check_run
        for name, value, low in (("retries", retries, 0), ("workers", workers, 1),
                                 ("threads_per_trial", threads_per_trial, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"--{name.replace('_', '-')}: expected an integer >= {low}, "
                                 f"got {value!r}")
        if scheduler and scheduler_file:
            raise ValueError("--scheduler and --scheduler-file: give one or the other")
        if not seeds:
            raise ValueError("--seeds: at least one seed is needed")
        if scheduler_file and not os.path.isfile(scheduler_file):
            raise ValueError(f"--scheduler-file {scheduler_file}: no such file (a running "
                             "`dask scheduler --scheduler-file FILE` writes it)")
        if scheduler:
            _check_address(scheduler)
        grid = [(key, [canonical_value(str(v)) for v in values]) for key, values in grid]
        for key, values in grid:
            if len(set(values)) != len(values):
                raise ValueError(f"--grid {key}: a value is given twice in {values}")
        overrides = [_canonical_override(item) for item in overrides]
        for key, _ in grid:
            if key == "epochs" and epochs is not None:
                raise ValueError(f"--grid epochs and --epochs {epochs} both set the number of "
                                 "epochs; give one or the other")
            shared = [item for item in overrides if item.partition("=")[0] == key]
            if shared:
                raise ValueError(f"--grid {key} and --set {shared[0]} both set {key}; give one "
                                 "or the other")
        self.out = os.fspath(out)
        fixed = ([] if epochs is None else ["--epochs", str(epochs)])
        fixed += ["--num-train", str(num_train), "--num-val", str(num_val),
                  "--num-test", str(num_test)]
        for item in overrides:
            fixed += ["--set", item]
        self.trials = expand(recipe, list(grid), list(seeds), tuple(fixed), random, sample_seed,
                             __version__)
        # Every trial's options are checked now, as convlab.train would check them.
        for trial in self.trials:
            if trial.seed != self.trials[0].seed:
                continue
            try:
                check_run(recipe, epochs, max(seeds), self.out, overrides=[*overrides,
                          *trial.overrides], num_train=num_train, num_val=num_val,
                          num_test=num_test)
            except ValueError as error:
                where = " ".join(trial.overrides)
                raise ValueError(f"grid point {where}: {error}" if where else str(error)) from None
        self.plan = {"recipe": recipe, "grid": [[k, list(v)] for k, v in grid],
                     "seeds": list(seeds), "fixed": fixed, "random": random,
                     "sample_seed": sample_seed, "version": __version__,
                     "trials": [{"id": t.id, "point": dict(t.point), "seed": t.seed}
                                for t in self.trials]}
        self.retries, self.workers, self.threads = retries, workers, threads_per_trial
        self.scheduler, self.scheduler_file = scheduler, scheduler_file
        self.progress = progress
        self._check_plan()

    def _check_plan(self):
        """ValueError if ``out`` holds the plan of another sweep (or an unreadable one)."""
        path = os.path.join(self.out, "sweep.json")
        try:
            with open(path, encoding="utf-8") as f:
                stored = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            raise ValueError(f"--out {self.out}: cannot read {path} ({error}); is it a sweep "
                             "folder?") from None
        if not isinstance(stored, dict):
            raise ValueError(f"--out {self.out}: {path} is not a sweep plan")
        differ = [f"{key}: {json.dumps(stored.get(key))} in the folder, "
                  f"{json.dumps(value)} now"
                  for key, value in self.plan.items() if key != "trials" and stored.get(key) != value]
        if differ:
            raise ValueError(f"--out {self.out} holds another sweep ({'; '.join(differ)}); "
                             "continue it with its own options, or use another --out")

    def _write_plan(self):
        """Create ``out`` and write ``sweep.json``, unless it holds this plan already.

        The plan is linked into place, which fails if the file exists, so
        that of two sweeps started at once into one folder only one writes
        its plan; the other is then refused by :meth:`_check_plan`.
        """
        path = os.path.join(self.out, "sweep.json")
        if os.path.exists(path):        # this plan (or another, refused): nothing to write
            self._check_plan()
            return
        os.makedirs(self.out, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.out, prefix=".sweep.json.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(self.plan, indent=1))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, FILE_MODE)
            try:
                os.link(tmp, path)
            except FileExistsError:
                self._check_plan()
            except OSError:             # a file system without hard links
                if not os.path.exists(path):
                    os.replace(tmp, path)
                self._check_plan()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _client(self):
        """A Dask client (and the cluster it owns, or None) as the options ask.

        Raises ValueError, naming the scheduler, if it does not answer within
        Dask's connect timeout (``distributed.comm.timeouts.connect``, 30 s).
        """
        from dask.distributed import Client, LocalCluster
        if self.scheduler or self.scheduler_file:
            where = (f"--scheduler {self.scheduler}" if self.scheduler else
                     f"--scheduler-file {self.scheduler_file}")
            try:
                if self.scheduler:
                    return Client(self.scheduler), None
                return Client(scheduler_file=self.scheduler_file), None
            except (OSError, TimeoutError, ValueError, TypeError, KeyError) as error:
                raise ValueError(f"{where}: no Dask scheduler answered "
                                 f"({type(error).__name__}: {error})") from None
        try:
            import bokeh  # noqa: F401  (the dashboard needs it)
            dashboard = "127.0.0.1:0"
        except ImportError:
            dashboard = None
        try:
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=dashboard, host="127.0.0.1")
        except RuntimeError as error:
            raise RuntimeError(
                f"the sweep's {self.workers} worker processes could not start ({error}). If "
                "you called Sweep.run() from a script, call it under "
                "'if __name__ == \"__main__\":' -- the workers import the script again") from error
        return Client(cluster), cluster

    def run(self, client=None):
        """Run every trial that has not finished; returns a :class:`Report`.

        Parameters
        ----------
        client : dask.distributed.Client or None
            Default: one made from the constructor's options (an in-process
            cluster unless a scheduler is named), closed at the end.

        Raises
        ------
        ValueError
            Before the folder is created or a trial starts: ``out`` holds
            another sweep's plan or cannot be written, or the named scheduler
            does not answer.

        Notes
        -----
        The report is made before anything is written about the failed
        trials: their ``failure.txt`` files are written after, as far as the
        disk allows (see ``Report.unrecorded``).
        """
        self._check_plan()
        todo, damaged = [], []
        for trial in self.trials:
            result, problem = load_result(os.path.join(trial_dir(self.out, trial),
                                                       "result.json"))
            if result is None:
                todo.append(trial)
            if problem:
                damaged.append(f"{problem}; the trial runs again")
        skipped = len(self.trials) - len(todo)
        failed = []
        own = client is None and bool(todo)
        if own:
            client, cluster = self._client()
        try:
            try:
                self._write_plan()
            except OSError as error:
                raise ValueError(f"--out {self.out}: cannot write the sweep's plan there "
                                 f"({error.strerror or error})") from None
            if todo:
                failed = self._submit(client, todo)
        finally:
            if own:
                client.close()
                if cluster is not None:
                    cluster.close()
        results = [r for r in (read_result(self.out, t) for t in self.trials) if r is not None]
        report = Report(results, failed, skipped,
                        diverged=[r for r in results if r.get("status") == "diverged"],
                        damaged=damaged)
        for trial, error in failed:
            try:
                atomic_write_text(os.path.join(trial_dir(self.out, trial), "failure.txt"), error)
            except OSError as write_error:
                report.unrecorded.append(f"trial {trial.id}: cannot write failure.txt "
                                         f"({write_error.strerror or write_error})")
        return report

    def _submit(self, client, todo):
        from dask.distributed import as_completed
        # Dask warns (with a table) when the client, scheduler and workers run
        # different versions of Dask, its dependencies, convlab or NumPy; each
        # trial then refuses a worker with another convlab version itself.
        client.get_versions(check=True, packages=["convlab", "numpy"])
        link = getattr(client, "dashboard_link", None)
        if link and self.progress and client.scheduler_info().get("services", {}).get("dashboard"):
            print(f"Dask dashboard: {link}")
        futures = {client.submit(run_trial, t, os.path.abspath(self.out), self.threads,
                                 key=f"trial-{t.id}", retries=self.retries, pure=False): t
                   for t in todo}
        failed = []
        bar = tqdm(total=len(todo), desc="trials", unit="trial", disable=not self.progress)
        try:
            for future in as_completed(futures):
                if future.status == "error":
                    failed.append((futures[future], str(future.exception())))
                bar.update(1)
                running = sum(len(keys) for keys in client.processing().values())
                bar.set_postfix(done=bar.n - len(failed), running=running, failed=len(failed),
                                refresh=True)
        finally:
            bar.close()
        return failed


def _locked(folder):
    """Whether an attempt's process holds the trial folder's lock (that is, is running)."""
    try:
        import fcntl
    except ImportError:
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def status(sweep_dir):
    """The state of every planned trial of the sweep in ``sweep_dir``.

    Returns
    -------
    rows : list of dict
        ``id``, ``point``, ``seed``, ``state`` ('done', 'diverged',
        'running', 'failed' or 'pending'; a trial with an unreadable
        ``result.json`` is not done) and ``attempts`` (None if its
        ``attempts.json`` is unreadable), in the plan's order.

    Raises
    ------
    ValueError
        Naming ``sweep.json`` if it is missing or unreadable.
    """
    sweep_dir = os.fspath(sweep_dir)
    plan = read_plan(sweep_dir)
    rows = []
    for trial in plan["trials"]:
        folder = os.path.join(sweep_dir, "trials", trial["id"])
        attempts = read_attempts(folder)
        result, _ = load_result(os.path.join(folder, "result.json"))
        if result is not None:
            state = "diverged" if result.get("status") == "diverged" else "done"
        elif os.path.isdir(folder) and _locked(folder):
            state = "running"
        elif os.path.exists(os.path.join(folder, "failure.txt")):
            state = "failed"
        else:
            state = "pending"
        rows.append({**trial, "state": state, "attempts": attempts})
    return rows


def read_plan(sweep_dir):
    """The plan (``sweep.json``) of the sweep in ``sweep_dir``.

    Raises
    ------
    ValueError
        Naming the file: missing, unreadable, or not a plan with trials.
    """
    path = os.path.join(os.fspath(sweep_dir), "sweep.json")
    try:
        with open(path, encoding="utf-8") as f:
            plan = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{sweep_dir} holds no sweep.json: is it a sweep folder?") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} ({type(error).__name__}: {error})") from None
    if (not isinstance(plan, dict) or not isinstance(plan.get("trials"), list)
            or not isinstance(plan.get("grid", []), list)
            or not all(isinstance(t, dict) and {"id", "point", "seed"} <= set(t)
                       for t in plan["trials"])):
        raise ValueError(f"{path} is not a sweep plan (no list of trials with id, point "
                         "and seed)")
    return plan


def _canonical_override(item):
    """A ``key=value`` override with its value in :func:`~convlab.sweep.plan.canonical_value` spelling."""
    key, sep, value = item.partition("=")
    return f"{key}={canonical_value(value)}" if sep and key else item


def _check_address(address):
    """ValueError unless ``address`` looks like a Dask scheduler address (``tcp://host:port``)."""
    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import backends
    try:
        if not isinstance(address, str) or any(c.isspace() for c in address):
            raise ValueError("it contains spaces")
        scheme, location = parse_address(address if "://" in address else f"tcp://{address}")
        if scheme not in backends:
            raise ValueError(f"Dask knows no protocol {scheme!r}; it knows "
                             f"{', '.join(sorted(backends))}")
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(location)
            if not host or port is None:
                raise ValueError("no host or port")
    except (ValueError, TypeError) as error:
        raise ValueError(f"--scheduler {address!r} is not a Dask scheduler address such as "
                         f"tcp://host:8786 ({error})") from None

"""A sweep: its trials sent to Dask workers, a progress bar over them, a report at the end."""

import dataclasses
import json
import os

from tqdm.auto import tqdm

from convlab.checkpoint import atomic_write_text
from convlab.sweep.plan import expand
from convlab.sweep.trial import read_result, run_trial, trial_dir

__all__ = ["Sweep", "Report", "status"]


@dataclasses.dataclass
class Report:
    """What :meth:`Sweep.run` did.

    Attributes
    ----------
    results : list of dict
        The ``result.json`` of every finished trial, in the sweep's order.
    failed : list of (Trial, str)
        Trials that failed after their retries, with the error.
    skipped : int
        Trials that had finished before this run and were not run again.
    """

    results: list
    failed: list
    skipped: int


class Sweep:
    """A grid (or random sample) of recipe overrides times seeds, trained on Dask workers.

    Parameters
    ----------
    recipe : str
    grid : list of (key, list of str)
        From :func:`convlab.sweep.plan.parse_grid`.
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
        For a bad option or a grid point that is not a valid recipe; checked
        on construction, before anything runs.

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

    def _client(self):
        """A Dask client (and the cluster it owns, or None) as the options ask."""
        from dask.distributed import Client, LocalCluster
        if self.scheduler:
            return Client(self.scheduler), None
        if self.scheduler_file:
            return Client(scheduler_file=self.scheduler_file), None
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
        """
        os.makedirs(self.out, exist_ok=True)
        atomic_write_text(os.path.join(self.out, "sweep.json"), json.dumps(self.plan, indent=1))
        todo = [t for t in self.trials if read_result(self.out, t) is None]
        skipped = len(self.trials) - len(todo)
        failed = []
        if todo:
            own = client is None
            if own:
                client, cluster = self._client()
            try:
                failed = self._submit(client, todo)
            finally:
                if own:
                    client.close()
                    if cluster is not None:
                        cluster.close()
        for trial, error in failed:
            atomic_write_text(os.path.join(trial_dir(self.out, trial), "failure.txt"), error)
        results = [r for r in (read_result(self.out, t) for t in self.trials) if r is not None]
        return Report(results, failed, skipped)

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
        ``id``, ``point``, ``seed``, ``state`` ('done', 'running', 'failed'
        or 'pending') and ``attempts``, in the plan's order.
    """
    sweep_dir = os.fspath(sweep_dir)
    try:
        with open(os.path.join(sweep_dir, "sweep.json"), encoding="utf-8") as f:
            plan = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{sweep_dir} holds no sweep.json: is it a sweep folder?") from None
    rows = []
    for trial in plan["trials"]:
        folder = os.path.join(sweep_dir, "trials", trial["id"])
        attempts = 0
        if os.path.exists(os.path.join(folder, "attempts.json")):
            with open(os.path.join(folder, "attempts.json"), encoding="utf-8") as f:
                attempts = json.load(f)["attempts"]
        if os.path.exists(os.path.join(folder, "result.json")):
            state = "done"
        elif os.path.isdir(folder) and _locked(folder):
            state = "running"
        elif os.path.exists(os.path.join(folder, "failure.txt")):
            state = "failed"
        else:
            state = "pending"
        rows.append({**trial, "state": state, "attempts": attempts})
    return rows

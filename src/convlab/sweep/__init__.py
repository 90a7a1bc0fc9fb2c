"""Hyperparameter sweeps on Dask: a grid of recipe overrides times seeds, one trial per run.

A sweep trains every combination of ``--grid`` values with every seed, each
trial a ``python -m convlab.train ... --resume`` child process on a Dask
worker, and summarises the results per grid point with error bars::

    python -m convlab.sweep run --recipe quick --grid activation=relu,gelu --seeds 0-2 \\
        --out sweeps/act --set tta=0 --epochs 3
    python -m convlab.sweep status sweeps/act
    python -m convlab.sweep aggregate sweeps/act --metric test_accuracy --format md

By default the trials run on an in-process ``LocalCluster`` (``--workers``
processes, ``--threads-per-trial`` threads each); ``--scheduler ADDRESS`` or
``--scheduler-file FILE`` sends them to a running cluster instead (started
with ``dask scheduler`` and ``dask worker``, or by dask-jobqueue on SLURM/PBS,
or on Kubernetes). Every worker must see the sweep folder at the same path
(a shared file system), and have the same convlab version.

Re-running a sweep skips finished trials (those with a ``result.json``); a
trial whose worker died is re-run by Dask and resumes from its last
checkpoint. See :mod:`convlab.sweep.plan`, :mod:`~convlab.sweep.trial`,
:mod:`~convlab.sweep.child`, :mod:`~convlab.sweep.driver` and
:mod:`~convlab.sweep.aggregate`. Needs the ``sweep`` extra
(``pip install "convlab[sweep]"``: ``dask`` and ``distributed``).
"""

from convlab.sweep.aggregate import aggregate, format_table
from convlab.sweep.driver import Report, Sweep, status
from convlab.sweep.plan import Trial, expand, parse_grid, parse_seeds

__all__ = ["Sweep", "Report", "Trial", "status", "aggregate", "format_table", "expand",
           "parse_grid", "parse_seeds"]

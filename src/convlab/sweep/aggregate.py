"""A sweep's results summarised per grid point: n, mean, sample std, min, max, missing seeds.

A trial whose loss became NaN or infinite (``status`` ``"diverged"`` in its
``result.json``) has no accuracy: it is not counted in ``n`` and not missing
either, but listed under ``diverged_seeds`` (a column the tables show when a
trial diverged).
"""

import csv
import io
import json
import math
import os

__all__ = ["METRICS", "aggregate", "format_table"]

METRICS = ("test_accuracy", "val_accuracy", "wall_time")


def _load(sweep_dir):
    """The plan of the sweep in ``sweep_dir`` and the results of its finished trials, by id.

    An unreadable ``result.json`` counts as not finished (see
    :func:`convlab.sweep.trial.load_result`).
    """
    from convlab.sweep.driver import read_plan
    from convlab.sweep.trial import load_result
    plan = read_plan(sweep_dir)
    results = {}
    for trial in plan["trials"]:
        result, _ = load_result(os.path.join(sweep_dir, "trials", trial["id"], "result.json"))
        if result is not None:
            results[trial["id"]] = result
    return plan, results


def aggregate(sweep_dir, metric="test_accuracy", by=None):
    """One row per grid point (or per value of the ``by`` keys) over the seeds.

    Parameters
    ----------
    sweep_dir : str or path
        A folder written by :meth:`convlab.sweep.Sweep.run`.
    metric : {'test_accuracy', 'val_accuracy', 'wall_time'}
    by : list of str or None
        Grid keys to group by; default all of the grid's keys.

    Returns
    -------
    rows : list of dict
        In the order of the plan, each with the ``by`` keys (values as given
        on the command line), ``n`` (finished trials), ``mean``, ``std``
        (sample standard deviation, ``ddof=1``; None for n < 2), ``min``,
        ``max`` (None for n = 0), ``missing_seeds`` (planned seeds of the
        group with an unfinished trial) and ``diverged_seeds`` (seeds of the
        group whose trial diverged).

    Raises
    ------
    ValueError
        For an unknown metric or grouping key, or a folder without a sweep.
    """
    sweep_dir = os.fspath(sweep_dir)
    if metric not in METRICS:
        raise ValueError(f"--metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    plan, results = _load(sweep_dir)
    keys = [k for k, _ in plan["grid"]]
    by = keys if by is None else list(by)
    unknown = [k for k in by if k not in keys]
    if unknown:
        raise ValueError(f"--by: {', '.join(unknown)} is not a grid key; the grid's keys are "
                         f"{', '.join(keys) or '(none)'}")
    groups = {}                      # group -> (values, missing, diverged seeds), in plan order
    for trial in plan["trials"]:
        group = tuple(trial["point"][k] for k in by)
        values, missing, diverged = groups.setdefault(group, ([], [], []))
        result = results.get(trial["id"])
        if result is None:
            if trial["seed"] not in missing:
                missing.append(trial["seed"])
        elif result.get("status") == "diverged":
            if trial["seed"] not in diverged:
                diverged.append(trial["seed"])
        else:
            values.append(float(result[metric]))
    rows = []
    for group, (values, missing, diverged) in groups.items():
        n = len(values)
        mean = sum(values) / n if n else None
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n >= 2 else None
        rows.append({**dict(zip(by, group)), "n": n, "mean": mean, "std": std,
                     "min": min(values) if n else None, "max": max(values) if n else None,
                     "missing_seeds": sorted(missing), "diverged_seeds": sorted(diverged)})
    return rows


def format_table(rows, by, fmt="md", scale=1.0, digits=2):
    """The rows of :func:`aggregate` as a Markdown table, CSV or JSON text.

    Parameters
    ----------
    rows : list of dict
    by : list of str
        The grouping keys (the first columns). A ``diverged_seeds`` column
        follows ``missing_seeds`` when a row has one.
    fmt : {'md', 'csv', 'json'}
    scale : float
        Multiplies mean, std, min and max in the Markdown table (100 shows
        accuracies in percent); CSV and JSON keep the raw values.
    digits : int
        Decimals in the Markdown table.

    Returns
    -------
    str
    """
    if fmt == "json":
        return json.dumps(rows, indent=1)
    seed_columns = ["missing_seeds"]
    if any(row.get("diverged_seeds") for row in rows):
        seed_columns.append("diverged_seeds")
    columns = [*by, "n", "mean", "std", "min", "max", *seed_columns]
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([" ".join(map(str, row[c])) if c in seed_columns else
                             ("" if row[c] is None else row[c]) for c in columns])
        return text.getvalue()
    if fmt != "md":
        raise ValueError(f"--format: expected md, csv or json, got {fmt!r}")

    def number(value):
        return "–" if value is None else f"{value * scale:.{digits}f}"

    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if c in by else "---:" for c in columns) + "|"]
    for row in rows:
        cells = [str(row[k]) for k in by] + [str(row["n"])]
        cells += [number(row[c]) for c in ("mean", "std", "min", "max")]
        cells += [", ".join(map(str, row[c])) or "–" for c in seed_columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

"""The sweep command line: ``python -m convlab.sweep run|status|aggregate`` (see :mod:`convlab.sweep`)."""

import argparse
import sys

from convlab.sweep import Sweep, aggregate, format_table, parse_grid, parse_seeds, status


def _parser():
    parser = argparse.ArgumentParser(prog="python -m convlab.sweep",
                                     description="Hyperparameter sweeps on Dask.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or continue) a sweep")
    run.add_argument("--recipe", default="quick")
    run.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                     help="values of one recipe entry to try (repeatable; ';' separates "
                          "values that contain commas)")
    run.add_argument("--seeds", default="0", help="e.g. 0-4 or 0,3,7 (default 0)")
    run.add_argument("--out", required=True, help="the sweep folder")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="a recipe entry every trial shares (repeatable)")
    run.add_argument("--epochs", type=int, default=None)
    run.add_argument("--num-train", type=int, default=49000)
    run.add_argument("--num-val", type=int, default=1000)
    run.add_argument("--num-test", type=int, default=10000)
    run.add_argument("--random", type=int, default=None, metavar="N",
                     help="run N grid points drawn at random instead of all")
    run.add_argument("--sample-seed", type=int, default=0)
    run.add_argument("--retries", type=int, default=1)
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--threads-per-trial", type=int, default=1)
    where = run.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://host:8786")
    where.add_argument("--scheduler-file", default=None, metavar="FILE")
    run.add_argument("--no-progress", action="store_true")
    show = commands.add_parser("status", help="the state of every trial")
    show.add_argument("out")
    summary = commands.add_parser("aggregate", help="mean and spread over seeds per grid point")
    summary.add_argument("out")
    summary.add_argument("--metric", default="test_accuracy")
    summary.add_argument("--by", default=None, help="grid keys to group by, comma-separated")
    summary.add_argument("--format", default="md", choices=("md", "csv", "json"))
    summary.add_argument("--percent", action="store_true",
                         help="show accuracies in percent (Markdown only)")
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        try:
            sweep = Sweep(args.recipe, parse_grid(args.grid), parse_seeds(args.seeds), args.out,
                          args.set, args.epochs, args.num_train, args.num_val, args.num_test,
                          args.random, args.sample_seed, args.retries, args.workers,
                          args.threads_per_trial, args.scheduler, args.scheduler_file,
                          progress=not args.no_progress)
            report = sweep.run()
        except ValueError as error:
            parser.error(str(error))
        except KeyboardInterrupt:
            print(f"{parser.prog}: interrupted; finished trials are kept: run the same command "
                  "again to continue the sweep", file=sys.stderr)
            return 130
        for problem in report.damaged:
            print(f"note: {problem}", file=sys.stderr)
        diverged = f", {len(report.diverged)} diverged" if report.diverged else ""
        print(f"{len(report.results)} of {len(sweep.trials)} trials done "
              f"({report.skipped} before this run), {len(report.failed)} failed{diverged}")
        for result in report.diverged:
            print(f"diverged: trial {result['id']} (seed {result['seed']}): "
                  f"{result.get('error', '')}", file=sys.stderr)
        for trial, error in report.failed:
            print(f"failed: {error}", file=sys.stderr)
        for problem in report.unrecorded:
            print(f"warning: {problem}; `status` shows the trial as pending", file=sys.stderr)
        return 1 if report.failed else 0
    try:
        if args.command == "status":
            rows = status(args.out)
            for row in rows:
                point = " ".join(f"{k}={v}" for k, v in row["point"].items()) or "(recipe)"
                attempts = "?" if row["attempts"] is None else row["attempts"]
                print(f"{row['id']}  {row['state']:8s} attempts {attempts}  "
                      f"seed {row['seed']}  {point}")
            states = ("done", "diverged", "running", "failed", "pending")
            counts = {s: sum(r["state"] == s for r in rows) for s in states
                      if s != "diverged" or any(r["state"] == s for r in rows)}
            print(", ".join(f"{n} {s}" for s, n in counts.items()))
            return 0
        by = None if args.by is None else [k for k in args.by.split(",") if k]
        rows = aggregate(args.out, args.metric, by)
        keys = [k for k in rows[0] if k not in ("n", "mean", "std", "min", "max",
                                                 "missing_seeds", "diverged_seeds")] if rows else []
        sys.stdout.write(format_table(rows, keys, args.format,
                                      scale=100.0 if args.percent else 1.0,
                                      digits=2 if args.percent else 4))
        return 0
    except ValueError as error:
        parser.error(str(error))


if __name__ == "__main__":
    sys.exit(main())

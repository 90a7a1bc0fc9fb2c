"""Train a CIFAR-10 classifier from the command line.

Usage::

    python -m convlab.train --recipe quick [--epochs N] [--seed S] [--out DIR]
                            [--resume | --overwrite] [--set KEY=VALUE ...]

A *recipe* is a named set of choices -- model, optimizer, schedule,
augmentation, test-time augmentation -- listed in
:data:`convlab.recipes.RECIPES`. ``--set key=value`` overrides single entries
(for ablations, e.g. ``--set activation=relu``);
``--num-train``/``--num-val``/``--num-test`` shrink the data (for smoke
tests); ``--profile`` times one training step part by part instead
(:func:`convlab.profiling.profile_step`).

Everything the run produces goes to ``--out`` (default ``runs/<recipe>``),
each file written atomically (:mod:`convlab.runs`): the Solver checkpoint
``checkpoint_epoch_<e>.npz`` after every epoch (``--resume`` continues from
the latest one, exactly); ``model.npz``, the trained parameters and model
state, plus the recipe; ``history.json``, the per-epoch record and the final
accuracies; ``run.json``, the manifest: the run's fingerprint (recipe after
overrides, seed, data sizes, convlab version) and whether it is complete.

A result is never silently changed by another run's files: a fresh run refuses
a folder that holds a run unless given ``--overwrite``; ``--resume`` refuses a
run whose fingerprint differs (naming what differs), and prints a finished
run's stored results. Every option is checked before any data is loaded.

Exit status: 0 when the run finished; 2 with one ``error: ...`` line for a
bad option, a folder or checkpoint that cannot be used (damaged, or holding
NaN), or data that cannot be found or downloaded; :data:`EXIT_DIVERGED` (3)
with one ``error: ...`` line when the training loss became NaN or infinite
(:class:`convlab.solver.DivergedError`); 130 after Ctrl-C, with one line
saying how to resume.

The last two lines printed are ``val accuracy: 0.xxxx`` and ``test accuracy:
0.xxxx``. Data comes from :func:`convlab.data_utils.get_CIFAR10_data` (so
``CONVLAB_DATA`` works): the first 49,000 training images train, the next
1,000 validate, and the 10,000 test images test.
"""

import argparse
import contextlib
import os
import shlex
import sys
import time

import numpy as np

import convlab
from convlab.augment import predict_tta
from convlab.data_utils import CIFAR10Error
from convlab.profiling import format_profile, profile_step
from convlab.recipes import (RECIPES, build_model, build_solver, check_builds, load_data,
                             resolve_recipe)
from convlab.runs import history as run_history
from convlab.runs import model_file
from convlab.runs.files import write_json
from convlab.runs.folder import RunFolder, check_writable, fingerprint, numerics
from convlab.solver import DivergedError

__all__ = ["check_run", "run", "evaluate", "main", "EXIT_DIVERGED"]

#: The exit status of ``python -m convlab.train`` when the training loss became
#: NaN or infinite (a sweep records such a trial as diverged, not failed).
EXIT_DIVERGED = 3


class _ResumeError(ValueError):
    """The checkpoint to resume from does not fit the run (raised before training starts)."""


def evaluate(model, X, y, tta=0, batch_size=500):
    """Accuracy of ``model`` on ``(X, y)`` with test-time augmentation level ``tta``."""
    scores = predict_tta(model.loss, X, level=tta, batch_size=batch_size)
    return float(np.mean(np.argmax(scores, axis=1) == y)), scores


_TRAIN_IMAGES, _TEST_IMAGES = 50000, 10000      # CIFAR-10's; validation is cut from training


def _count(option, value, minimum, maximum):
    """``value`` as an int in [minimum, maximum], else ValueError naming ``option``."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
            or not minimum <= value <= maximum):
        raise ValueError(f"{option}: expected an integer from {minimum} to {maximum}, "
                         f"got {value!r}")
    return int(value)


def check_run(recipe_name, epochs=None, seed=0, out=None, resume=False, overwrite=False,
              overrides=(), num_train=49000, num_val=1000, num_test=10000, strict_resume=False):
    """Check every option of a run before anything is loaded or written.

    Parameters are those of :func:`run`; ``strict_resume`` refuses to resume
    a checkpoint computed with other (or unknown) numerics than this
    machine's (see :class:`convlab.runs.folder.RunFolder`).

    Returns
    -------
    recipe : dict
        The recipe after overrides.
    folder : convlab.runs.folder.RunFolder
        The output folder, checked to be writable but not yet entered.

    Raises
    ------
    ValueError
        Naming the option: an unknown recipe or a bad ``--set`` value (see
        :func:`convlab.recipes.resolve_recipe`), a seed or data size out of
        range, a recipe that builds no working model, an output folder that
        cannot be written, ``--resume`` with ``--overwrite``.
    """
    recipe = resolve_recipe(recipe_name, overrides, epochs)
    seed = _count("--seed", seed, 0, 2**32 - 1)
    num_train = _count("--num-train", num_train, 1, _TRAIN_IMAGES - 1)
    num_val = _count("--num-val", num_val, 1, _TRAIN_IMAGES - num_train)
    num_test = _count("--num-test", num_test, 1, _TEST_IMAGES)
    check_builds(recipe_name, recipe, seed)
    out = os.fspath(out) if out is not None else os.path.join("runs", recipe_name)
    machine = numerics(convlab.build_info())        # runs knows no kernel: it is told
    folder = RunFolder(out, fingerprint(recipe, seed, num_train, num_val, num_test, machine),
                       resume=resume, overwrite=overwrite, strict=strict_resume)
    folder.check_writable()
    return recipe, folder


def run(recipe_name, epochs=None, seed=0, out=None, resume=False, overrides=(),
        num_train=49000, num_val=1000, num_test=10000, progress=True, data=None,
        overwrite=False):
    """Train a recipe end to end; returns the history dict (see the module docstring).

    Parameters
    ----------
    recipe_name : str
    epochs : int or None
        Overrides the recipe's.
    seed : int
    out : str or None
        Output folder (default ``runs/<recipe_name>``).
    resume : bool
        Continue the run in ``out`` from its latest checkpoint (or start it,
        if ``out`` holds none). A run that already finished is not run
        again: its stored history is returned, with ``"already_complete":
        True``. A folder holding a run with another fingerprint (recipe,
        seed, data sizes, convlab version) is refused.
    overrides : sequence of "key=value" str
    num_train, num_val, num_test : int
    progress : bool
    data : dict or None
        The data as :func:`convlab.recipes.load_data` returns it (default:
        loaded here); its sizes replace ``num_train``, ``num_val``, ``num_test``.
    overwrite : bool
        Replace another run's files in ``out`` (without it, such a folder is refused).

    Returns
    -------
    history : dict

    Raises
    ------
    ValueError
        From :func:`check_run` and the run's folder, before any data is loaded.
    """
    start = time.perf_counter()
    if data is not None:            # the run's fingerprint records the sizes it trains on
        num_train, num_val, num_test = (len(data[k]) for k in ("y_train", "y_val", "y_test"))
    recipe, folder = check_run(recipe_name, epochs, seed, out, resume, overwrite, overrides,
                               num_train, num_val, num_test)
    with folder:
        return _complete_or_train(recipe, folder, seed, num_train, num_val, num_test, progress,
                                  data, start)


def _complete_or_train(recipe, folder, seed, num_train, num_val, num_test, progress, data,
                       start):
    """The stored history of a finished run, or train, evaluate and write the outputs of a
    checked one and return its history (see :func:`run`)."""
    if folder.state == "complete":
        return dict(folder.history, already_complete=True)
    out = folder.out
    if data is None:
        data = load_data(num_train, num_val, num_test)
    model = build_model(recipe, seed, data["X_train"])
    solver = build_solver(model, data, recipe, seed, out, progress=progress)
    solver.run_info = folder.fingerprint
    if folder.state == "resume":
        try:
            solver.resume(folder.latest_checkpoint)
        except ValueError as error:
            raise _ResumeError(f"--resume: {error}") from None
    # only now: missing data, or a checkpoint that does not fit, leaves the folder as it was
    folder.write_manifest("running")
    hist_path = os.path.join(out, "history.json")
    solver.epoch_callbacks.append(
        lambda s: run_history.write(hist_path, run_history.from_solver(s, recipe, start)))
    solver.train()          # ends with the final (averaged) weights: see build_solver
    val_acc, _ = evaluate(model, data["X_val"], data["y_val"], tta=recipe["tta"])
    test_acc, test_scores = evaluate(model, data["X_test"], data["y_test"], tta=recipe["tta"])
    model_file.write(os.path.join(out, "model.npz"), model.params,
                     model.state_dict() if hasattr(model, "state_dict") else None, recipe)
    history = run_history.from_solver(solver, recipe, start, extra={
        "final_val_acc": val_acc, "final_test_acc": test_acc, "tta": recipe["tta"],
        "num_train": int(len(data["y_train"])), "num_val": int(len(data["y_val"])),
        "num_test": int(len(data["y_test"])), "seed": seed, "wall_time": time.perf_counter() - start,
        "test_predictions": np.argmax(test_scores, 1).tolist(),
        "resumed": folder.state == "resume"})
    run_history.write(hist_path, history)
    folder.write_manifest("complete")
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convlab.train", description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="quick", choices=sorted(RECIPES))
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output directory (default runs/RECIPE)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its latest checkpoint (start it if "
                             "there is none; a finished run is not run again)")
    parser.add_argument("--strict-resume", action="store_true",
                        help="with --resume: refuse to continue a checkpoint computed with another "
                             "SIMD path, BLAS or thread count (the continuation would not be "
                             "bit-identical)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace another run's files in --out (without it such a folder "
                             "is refused)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe entry (repeatable)")
    for option, default in (("--num-train", 49000), ("--num-val", 1000), ("--num-test", 10000)):
        parser.add_argument(option, type=int, default=default)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--profile", action="store_true",
                        help="time one training step part by part (random data) and exit")
    args = parser.parse_args(argv)
    if args.profile:
        return _profile(parser, args)
    start = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            try:
                recipe, folder = check_run(args.recipe, args.epochs, args.seed, args.out,
                                           args.resume, args.overwrite, args.set, args.num_train,
                                           args.num_val, args.num_test, args.strict_resume)
                stack.enter_context(folder)
            except ValueError as error:
                parser.error(str(error))
            if folder.numerics_changes:
                print(f"warning: --resume: {folder.latest_checkpoint} was computed with other "
                      f"numerics ({'; '.join(folder.numerics_changes)}); the continuation will "
                      "not be bit-identical (--strict-resume refuses)", file=sys.stderr)
            history = _complete_or_train(recipe, folder, args.seed, args.num_train,
                                         args.num_val, args.num_test, not args.no_progress,
                                         None, start)
    except (CIFAR10Error, _ResumeError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except DivergedError as error:
        print(f"{parser.prog}: error: {error}; the run in {folder.out} stopped there "
              "(its checkpoints are of finished epochs only)", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        given = sys.argv[1:] if argv is None else list(argv)
        again = [a for a in given if a != "--overwrite"]
        again += [] if "--resume" in again else ["--resume"]
        print(f"{parser.prog}: interrupted; continue the run from its last checkpoint with: "
              f"python -m convlab.train {shlex.join(again)}", file=sys.stderr)
        return 130
    if history.get("already_complete"):
        print(f"the run in {folder.out} is already complete; its results:")
    print(run_history.summary(history))
    return 0


def _profile(parser, args):
    """``--profile``: time one training step part by part, print the table, maybe save it."""
    try:
        if resolve_recipe(args.recipe, args.set)["model"] != "convnet":
            convnets = sorted(n for n, r in RECIPES.items() if r["model"] == "convnet")
            raise ValueError(f"--profile needs a ConvNet recipe ({', '.join(convnets)}), "
                             f"not {args.recipe!r}")
        if args.out:
            check_writable(args.out)
        rows, total = profile_step(args.recipe, args.set)
    except ValueError as error:
        parser.error(str(error))
    print(format_profile(args.recipe, rows, total))
    if args.out:
        write_json(os.path.join(args.out, "profile.json"), dict(
            recipe=args.recipe, overrides=args.set, step_seconds=total,
            parts=[{"part": p, "seconds": t, "gflop": g} for p, t, g in rows],
            command="python -m convlab.train " + " ".join(sys.argv[1:]),
            machine=run_history.machine()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

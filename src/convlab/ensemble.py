"""Model ensembles: average the class probabilities of several trained models.

Networks trained from different random seeds make partly independent
mistakes, so the average of their predicted probabilities is right more often
than each of them. The cost is linear: ``k`` models take ``k`` times the
training and the prediction time.

Usage::

    python -m convlab.ensemble RUN_DIR [RUN_DIR ...] [--num-test N] [--out FILE]

where each ``RUN_DIR`` holds the ``model.npz`` that ``python -m convlab.train``
wrote (read by :func:`convlab.recipes.load_trained_model`). It prints the test accuracy of every member and of the ensemble.

Every member sees the test images preprocessed as its own run saw them: the
mean and scale come from that run's training split (its ``num_train``, read
from its ``history.json`` or ``run.json``), so a member's accuracy does not
depend on which runs it is listed with, or in which order.
"""

import argparse
import json
import os
import sys

import numpy as np

from convlab.augment import predict_tta
from convlab.data_utils import CIFAR10Error
from convlab.recipes import load_data, load_trained_model
from convlab.runs.files import atomic_write_text
from convlab.runs.folder import check_writable

__all__ = ["training_size", "ensemble_probabilities", "main"]


def training_size(path):
    """The number of training images the run that saved ``path`` trained on.

    Parameters
    ----------
    path : str
        A run directory or its ``model.npz``.

    Returns
    -------
    int
        ``num_train`` from the run's ``history.json``, else from its
        ``run.json``, else 49000 (the command line's default).

    Raises
    ------
    ValueError
        If the recorded value is not a positive integer.
    """
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    for name, get in (("history.json", lambda d: d.get("num_train")),
                      ("run.json", lambda d: (d.get("fingerprint") or {}).get("num_train"))):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                value = get(json.load(f))
        except (OSError, ValueError, AttributeError):
            continue
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 50000:
            raise ValueError(f"{os.path.join(folder, name)}: num_train {value!r} is not a "
                             "number of training images")
        return value
    return 49000


def _softmax(scores):
    shifted = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    return p / p.sum(axis=1, keepdims=True)


def ensemble_probabilities(models, X, tta=0, batch_size=500):
    """Average predicted class probabilities of ``models`` on ``X``.

    Parameters
    ----------
    models : sequence of objects with ``loss(X)`` returning scores (N, K)
    X : ndarray of shape (N, C, H, W)
    tta : {0, 1, 2}
        Test-time augmentation level for every member.

    Returns
    -------
    mean_probs : ndarray of shape (N, K)
    member_probs : list of ndarray of shape (N, K)
    """
    if not models:
        raise ValueError("models must hold at least one model")
    members = [_softmax(predict_tta(m.loss, X, level=tta, batch_size=batch_size)) for m in models]
    return np.mean(members, axis=0), members


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convlab.ensemble",
                                     description="Test accuracy of an ensemble of trained runs.")
    parser.add_argument("runs", nargs="+", help="run directories (with model.npz)")
    parser.add_argument("--num-test", type=int, default=10000)
    parser.add_argument("--tta", type=int, default=None,
                        help="test-time augmentation level (default: the first recipe's)")
    parser.add_argument("--out", default=None, help="write the accuracies to this JSON file")
    args = parser.parse_args(argv)
    # Everything is checked, and every model read, before the data is loaded.
    try:
        if not 1 <= args.num_test <= 10000:
            raise ValueError(f"--num-test: expected an integer from 1 to 10000, got {args.num_test}")
        if args.tta is not None and args.tta not in (0, 1, 2):
            raise ValueError(f"--tta: expected 0, 1 or 2, got {args.tta}")
        if args.out:
            check_writable(os.path.dirname(os.path.abspath(args.out)))
        loaded = [load_trained_model(run) for run in args.runs]
        sizes = [training_size(run) for run in args.runs]
    except (OSError, ValueError) as error:
        parser.error(str(error))
    # Preprocess exactly as each run did: the mean and scale come from its training split.
    tests = {}
    try:
        for size in sizes:
            if size not in tests:
                data = load_data(num_train=size, num_val=0, num_test=args.num_test)
                tests[size] = data["X_test"]
                y = data["y_test"]
    except CIFAR10Error as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    tta = loaded[0][1].get("tta", 0) if args.tta is None else args.tta
    members = [ensemble_probabilities([model], tests[size], tta=tta)[0]
               for (model, _), size in zip(loaded, sizes)]
    mean = np.mean(members, axis=0)
    member_acc = [float(np.mean(p.argmax(1) == y)) for p in members]
    acc = float(np.mean(mean.argmax(1) == y))
    for run, a in zip(args.runs, member_acc):
        print(f"{run}: test accuracy {a:.4f}")
    print(f"ensemble of {len(members)}: test accuracy {acc:.4f}")
    if args.out:
        atomic_write_text(args.out, json.dumps({
            "runs": args.runs, "member_test_acc": member_acc, "ensemble_test_acc": acc,
            "num_test": args.num_test, "tta": tta,
            "command": "python -m convlab.ensemble " + " ".join(sys.argv[1:])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

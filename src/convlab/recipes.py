"""The named training recipes, and the data, model and Solver each one describes.

A *recipe* is a named set of choices -- model, optimizer, schedule,
augmentation, test-time augmentation, epochs -- listed in :data:`RECIPES`.
:func:`resolve_recipe` applies ``key=value`` overrides (for ablations, e.g.
``activation=relu``); :func:`load_data`, :func:`build_model` and
:func:`build_solver` turn a recipe into what a run trains, and
:func:`load_trained_model` rebuilds a trained model from its ``model.npz``.
The command line :mod:`convlab.train`, :mod:`convlab.ensemble`,
:mod:`convlab.profiling` and the benchmarks all build their runs here.
"""

import json
import math
import os

import numpy as np

from convlab import optim, schedules
from convlab.augment import make_augment
from convlab.classifiers.three_layer_convnet import ThreeLayerConvNet
from convlab.classifiers.airbench_convnet import ConvNet
from convlab.classifiers.resnet import ResNet
from convlab.data_utils import get_CIFAR10_data
from convlab.modern_layers import ACTIVATIONS
from convlab.optim import nesterov_sgd
from convlab.runs import model_file
from convlab.solver import Solver

__all__ = ["RECIPES", "UPDATE_RULES", "resolve_recipe", "load_data", "build_model", "check_builds",
           "build_solver", "load_trained_model"]

# Hyperparameters follow airbench94 (Keller Jordan, 2024) translated to a
# mean (not summed) loss and decoupled weight decay: the learning rate is per
# example times the batch size, and the BN shifts learn 64x faster.
_AIRBENCH = {
    "model": "convnet",
    "widths": (16, 64, 64),
    "whiten_kernel": 2,
    "activation": "gelu",
    "bn_scale": False,
    "bn_momentum": 0.6,
    "label_smoothing": 0.2,
    "logit_scale": 1.0 / 9.0,
    "convs_per_block": 2,
    "update_rule": "nesterov",
    "batch_size": 512,
    "learning_rate": 1.465e-3,          # per example: multiplied by batch_size
    "momentum": 0.85,
    "weight_decay": 0.0089,             # decoupled, per step: lr * wd * w
    "bias_lr_scale": 64.0,
    "schedule": {"name": "linear", "end": 0.07, "warmup": 0.23, "warmup_start": 0.2},
    "flip": True,
    "translate": 2,
    "tta": 2,
    "ema_decay": None,
    "epochs": 8,
}

#: The named recipes. ``epochs`` is the default of ``--epochs``.
RECIPES = {
    # The course's network and optimizer: conv7x7(32)-relu-pool-affine(500)-relu-affine.
    "three_layer": {
        "model": "three_layer", "num_filters": 32, "filter_size": 7, "hidden_dim": 500,
        "reg": 0.001, "weight_scale": 0.001, "update_rule": "adam", "learning_rate": 1e-3,
        "batch_size": 50, "schedule": {"name": "constant"}, "flip": False, "translate": 0,
        "tta": 0, "ema_decay": None, "epochs": 1,
    },
    # airbench-style at a quarter of its width, 4 epochs of batch 256, flip
    # TTA, weights averaged with decay 0.95: the chapter's live run.  On a CPU
    # batch 256 takes about as long per epoch as 512 and makes twice as many
    # updates (chapter 7 measures what that and the average are worth).
    "quick": dict(_AIRBENCH, widths=(16, 64, 64), batch_size=256, epochs=4, tta=1, ema_decay=0.95),
    # airbench-style at half its width, 22 epochs of batch 256, flip +
    # translate TTA, weights averaged as in quick: the long run of chapter 7.
    "best": dict(_AIRBENCH, widths=(32, 128, 128), batch_size=256, epochs=22, tta=2,
                 ema_decay=0.95),
    # He et al.'s ResNet-20 for CIFAR-10 (option A shortcuts), trained much as in
    # the paper -- momentum 0.9 (Nesterov's here), learning rate 0.1 at batch
    # 128, flips and 4-pixel shifts -- with decoupled weight decay 5e-4 (each
    # step shrinks the weights by lr * 5e-4, outside the momentum; the paper's
    # 1e-4 L2 term, amplified ~10x by momentum 0.9, is about twice as strong)
    # and on a schedule short enough for a CPU: a warm-up and a linear decay
    # over 10 epochs instead of 64,000 steps (about 164 epochs) with two
    # tenfold drops.
    "resnet20": {
        "model": "resnet", "blocks_per_stage": 3, "widths": (16, 32, 64), "residual": True,
        "shortcut": "pad", "label_smoothing": 0.0, "update_rule": "nesterov", "batch_size": 128,
        "learning_rate": 0.1 / 128, "momentum": 0.9, "weight_decay": 5e-4,
        "bias_lr_scale": 1.0, "schedule": {"name": "linear", "end": 0.0, "warmup": 0.1,
                                           "warmup_start": 0.1},
        "flip": True, "translate": 4, "tta": 1, "ema_decay": None, "epochs": 10,
    },
    # A seconds-long recipe for smoke tests.
    "tiny": dict(_AIRBENCH, widths=(4, 8, 8), batch_size=64, epochs=1, tta=1),
}


def _parse_value(text):
    """A ``--set`` value: JSON if it parses (numbers, lists, null), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# What each recipe entry may hold: (description for the error message, test).
def _is_int(v, minimum):
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _is_number(v, low, high=math.inf, low_open=False, high_open=True):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return False
    return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)


def _is_schedule(v):
    if not isinstance(v, dict):
        return False
    try:
        rate = schedules.from_spec(v)(0, 10)
    except (TypeError, ValueError):
        return False
    return _is_number(rate, 0.0)


# "nesterov" is convlab.optim.nesterov_sgd with the recipe's units: learning_rate
# per example (times batch_size) and bias_lr_scale for the batch-norm shifts.
# Every other rule takes learning_rate per step, as convlab.optim does; the
# optimizer's own name is not a second way to ask for Nesterov in other units.
UPDATE_RULES = ("nesterov",) + tuple(rule for rule in optim.__all__ if rule != "nesterov_sgd")

_ENTRIES = {
    "model": ("'convnet', 'resnet' or 'three_layer'",
              lambda v: v in ("convnet", "resnet", "three_layer")),
    "blocks_per_stage": ("a positive integer", lambda v: _is_int(v, 1)),
    "residual": ("true or false", lambda v: isinstance(v, bool)),
    "shortcut": ("'pad' or 'project'", lambda v: v in ("pad", "project")),
    "widths": ("a list of positive integers, one per block, e.g. [16, 64, 64]",
               lambda v: isinstance(v, (list, tuple)) and len(v) > 0
               and all(_is_int(w, 1) for w in v)),
    "whiten_kernel": ("a positive integer or null", lambda v: v is None or _is_int(v, 1)),
    "activation": (f"one of {', '.join(ACTIVATIONS)}", lambda v: v in ACTIVATIONS),
    "bn_scale": ("true or false", lambda v: isinstance(v, bool)),
    "bn_momentum": ("a number in [0, 1)", lambda v: _is_number(v, 0.0, 1.0)),
    "label_smoothing": ("a number in [0, 1)", lambda v: _is_number(v, 0.0, 1.0)),
    "logit_scale": ("a positive number", lambda v: _is_number(v, 0.0, low_open=True)),
    "convs_per_block": ("a positive integer", lambda v: _is_int(v, 1)),
    "update_rule": (f"one of {', '.join(UPDATE_RULES)}", lambda v: v in UPDATE_RULES),
    "batch_size": ("a positive integer", lambda v: _is_int(v, 1)),
    "learning_rate": ("a positive number (per example with update_rule nesterov, per step "
                      "with the other rules)", lambda v: _is_number(v, 0.0, low_open=True)),
    "momentum": ("a number in [0, 1)", lambda v: _is_number(v, 0.0, 1.0)),
    "weight_decay": ("a non-negative number", lambda v: _is_number(v, 0.0)),
    "bias_lr_scale": ("a positive number", lambda v: _is_number(v, 0.0, low_open=True)),
    "schedule": ('a schedule such as {"name": "linear", "end": 0.1} '
                 "(see convlab.schedules.from_spec)", _is_schedule),
    "flip": ("true or false", lambda v: isinstance(v, bool)),
    "translate": ("a non-negative integer (pixels)", lambda v: _is_int(v, 0)),
    "tta": ("0, 1 or 2", lambda v: _is_int(v, 0) and v <= 2),
    "ema_decay": ("null or a number in [0, 1]",
                  lambda v: v is None or _is_number(v, 0.0, 1.0, high_open=False)),
    "epochs": ("a positive integer", lambda v: _is_int(v, 1)),
    "num_filters": ("a positive integer", lambda v: _is_int(v, 1)),
    "filter_size": ("a positive odd integer", lambda v: _is_int(v, 1) and v % 2 == 1),
    "hidden_dim": ("a positive integer", lambda v: _is_int(v, 1)),
    "reg": ("a non-negative number", lambda v: _is_number(v, 0.0)),
    "weight_scale": ("a positive number", lambda v: _is_number(v, 0.0, low_open=True)),
}

# Entries an update rule reads besides learning_rate (see build_solver).
_RULE_NEEDS = {"nesterov": ("momentum", "weight_decay", "bias_lr_scale")}


def resolve_recipe(name, overrides=(), epochs=None):
    """The recipe dict for ``name`` with ``key=value`` overrides applied, every entry checked.

    Parameters
    ----------
    name : str
        A key of :data:`RECIPES`.
    overrides : sequence of str
        ``"key=value"`` strings; values are parsed as JSON when possible
        (``true``, ``null``, ``[16, 64, 64]``, ``{"name": "constant"}``),
        else taken as strings (``relu``).
    epochs : int or None
        Overrides the recipe's ``epochs`` (``--epochs``); an ``epochs=...``
        override as well is refused rather than one of them silently winning.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        Naming the entry and how it was given, e.g. ``--set batch_size:
        expected a positive integer, got '64.9'``: an unknown recipe or key,
        a value of the wrong type or range, another model than the recipe's,
        an update rule whose entries the recipe lacks, or ``epochs`` given
        both as an override and as ``epochs``.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    recipe = dict(RECIPES[name])
    given = {}                      # key -> how the user wrote it, for the messages
    texts = {}                      # key -> the text of its --set value
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in recipe:
            raise ValueError(f"--set {key}: recipe {name!r} has no such entry; "
                             f"its entries are {', '.join(sorted(recipe))}")
        recipe[key] = _parse_value(value)
        given[key] = (f"--set {key}", repr(value))
        texts[key] = value
    if epochs is not None:
        if "epochs" in given:
            raise ValueError(f"--epochs {epochs!r} and --set epochs={texts['epochs']} both "
                             "set the number of epochs; give one or the other")
        recipe["epochs"] = epochs
        given["epochs"] = ("--epochs", repr(epochs))
    if recipe.get("update_rule") == "nesterov_sgd":
        where = given.get("update_rule", (f"recipe {name!r} entry update_rule",))[0]
        raise ValueError(f"{where}: in a recipe Nesterov SGD is 'nesterov' (learning_rate "
                         "per example, times batch_size; bias_lr_scale for the batch-norm "
                         "shifts), not 'nesterov_sgd'")
    for key, value in recipe.items():
        what, ok = _ENTRIES[key]
        if not ok(value):
            where, shown = given.get(key, (f"recipe {name!r} entry {key}", repr(value)))
            raise ValueError(f"{where}: expected {what}, got {shown}")
    if recipe["model"] != RECIPES[name]["model"]:
        raise ValueError(f"--set model: recipe {name!r} trains a {RECIPES[name]['model']!r} "
                         f"model; choose another --recipe to train a {recipe['model']!r} one")
    missing = [k for k in _RULE_NEEDS.get(recipe["update_rule"], ()) if k not in recipe]
    if missing:
        where = given.get("update_rule", (f"recipe {name!r} entry update_rule",))[0]
        raise ValueError(f"{where}: {recipe['update_rule']!r} needs the entries "
                         f"{', '.join(missing)}, which recipe {name!r} does not have")
    return recipe


def load_data(num_train=49000, num_val=1000, num_test=10000):
    """The data every recipe trains on: CIFAR-10 in float32, centred, with unit variance.

    Parameters
    ----------
    num_train, num_val, num_test : int
        The first ``num_train`` training images train, the next ``num_val``
        validate; the first ``num_test`` test images test.

    Returns
    -------
    data : dict
        ``X_train`` (num_train, 3, 32, 32), ``y_train`` (num_train,), and
        likewise ``X_val``, ``y_val``, ``X_test``, ``y_test``; see
        :func:`convlab.data_utils.get_CIFAR10_data`.
    """
    return get_CIFAR10_data(num_training=num_train, num_validation=num_val,
                            num_test=num_test, dtype=np.float32, unit_variance=True)


def build_model(recipe, seed, X_train=None):
    """The model a recipe describes, with its whitening filters computed from ``X_train``.

    Parameters
    ----------
    recipe : dict
        From :func:`resolve_recipe`.
    seed : int
        Seed of the initial weights (and of the whitening's patch sample).
    X_train : ndarray of shape (N, C, H, W) or None
        Training images as :func:`load_data` returns them; the first 5,000
        estimate the whitening filters. None: images of shape (3, 32, 32), and
        the whitening stays the identity (for a model whose trained state is
        loaded next).

    Returns
    -------
    model : ConvNet, ResNet or ThreeLayerConvNet
    """
    if recipe["model"] == "three_layer":
        return ThreeLayerConvNet(num_filters=recipe["num_filters"],
                                 filter_size=recipe["filter_size"],
                                 hidden_dim=recipe["hidden_dim"], reg=recipe["reg"],
                                 weight_scale=recipe["weight_scale"], dtype=np.float32,
                                 seed=seed)
    input_dim = (3, 32, 32) if X_train is None else X_train.shape[1:]
    if recipe["model"] == "resnet":
        return ResNet(input_dim=input_dim, blocks_per_stage=recipe["blocks_per_stage"],
                      widths=tuple(recipe["widths"]), residual=recipe["residual"],
                      shortcut=recipe["shortcut"], label_smoothing=recipe["label_smoothing"],
                      dtype=np.float32, seed=seed)
    model = ConvNet(input_dim=input_dim, widths=recipe["widths"],
                    convs_per_block=recipe["convs_per_block"],
                    whiten_kernel=recipe["whiten_kernel"], activation=recipe["activation"],
                    bn_scale=recipe["bn_scale"], bn_momentum=recipe["bn_momentum"],
                    label_smoothing=recipe["label_smoothing"],
                    logit_scale=recipe["logit_scale"], dtype=np.float32, seed=seed)
    if model.whiten_kernel is not None and X_train is not None:
        model.init_whitening(X_train[:5000], seed=seed)
    return model


def check_builds(recipe_name, recipe, seed):
    """ValueError unless ``recipe`` builds a model that classifies a CIFAR-10 image.

    Builds the model and runs one image through it: a recipe whose widths
    pool the image away, say, fails now rather than after the data is loaded.

    Parameters
    ----------
    recipe_name : str
        For the message.
    recipe : dict
        From :func:`resolve_recipe`.
    seed : int
    """
    try:
        model = build_model(recipe, seed)
        model.loss(np.zeros((1, 3, 32, 32), dtype=np.float32))
    except (ValueError, IndexError) as error:
        raise ValueError(f"recipe {recipe_name!r} with these --set values does not build a "
                         f"working model: {error}") from None


def build_solver(model, data, recipe, seed, out_dir, progress=True):
    """A :class:`~convlab.solver.Solver` configured by ``recipe``.

    Parameters
    ----------
    model : object with ``params`` and ``loss(X, y=None)``
    data : dict
        ``X_train``, ``y_train``, ``X_val``, ``y_val`` as :func:`load_data` returns them.
    recipe : dict
        From :func:`resolve_recipe`.
    seed : int
        Seed of the Solver's minibatches and augmentation.
    out_dir : str
        Where the per-epoch checkpoints go (``out_dir/checkpoint_epoch_<e>.npz``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    solver : Solver
        It ends training with the final weights (``restore_best=False``): the
        recipes train on a fixed schedule, and the final weights match the
        final batch-norm statistics (with ``ema_decay``, the final moving
        averages of both).
    """
    rule = recipe["update_rule"]
    batch = int(recipe["batch_size"])
    by_param = {}
    if rule == "nesterov":
        update_rule = nesterov_sgd
        optim_config = {"learning_rate": recipe["learning_rate"] * batch,
                        "momentum": recipe["momentum"],
                        "weight_decay": recipe["weight_decay"]}
        shifts = model.batchnorm_shifts() if hasattr(model, "batchnorm_shifts") else []
        by_param = {name: {"lr_scale": float(recipe["bias_lr_scale"])} for name in shifts}
    else:
        # Built-in rules take the learning rate as given (not per example).
        update_rule = rule
        optim_config = {"learning_rate": recipe["learning_rate"]}
        if rule in ("sgd", "sgd_momentum", "adam") and recipe.get("weight_decay"):
            optim_config["weight_decay"] = recipe["weight_decay"]
        if rule == "sgd_momentum" and "momentum" in recipe:
            optim_config["momentum"] = recipe["momentum"]
    augment = None
    if recipe["flip"] or recipe["translate"]:
        augment = make_augment(flip=bool(recipe["flip"]), max_shift=int(recipe["translate"]))
    solver = Solver(model, data, update_rule=update_rule, optim_config=optim_config,
                    batch_size=batch, num_epochs=recipe["epochs"], num_train_samples=1000,
                    print_every=10**9, verbose=False, progress=progress,
                    checkpoint_name=os.path.join(out_dir, "checkpoint"), seed=seed,
                    lr_schedule=schedules.from_spec(recipe["schedule"]), augment=augment,
                    ema_decay=recipe["ema_decay"], restore_best=False,
                    param_optim_config=by_param)
    return solver


def load_trained_model(path):
    """Rebuild a model saved by ``python -m convlab.train`` (its ``model.npz``).

    Parameters
    ----------
    path : str
        A ``model.npz`` file or the run directory that contains it.

    Returns
    -------
    model : ConvNet or ThreeLayerConvNet
    recipe : dict

    Raises
    ------
    ValueError
        If the file is missing, damaged, or its arrays do not fit the model
        its recipe describes (names, shapes, dtypes; see
        :func:`convlab.runs.model_file.check_arrays`).
    """
    params, state, recipe, path = model_file.read(path)
    if "widths" in recipe:
        recipe["widths"] = tuple(recipe["widths"])
    try:
        model = build_model(recipe, 0)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: its recipe does not build a model ({error!r})") from None
    model_file.check_arrays(path, "params", params, model.params)
    model_file.check_arrays(path, "state", state,
                            model.state_dict() if hasattr(model, "state_dict") else {})
    model.params.update(params)
    if state:
        model.load_state_dict(state)
    return model, recipe

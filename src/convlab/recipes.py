"""The named training recipes, and the data, model and Solver each one describes.

A *recipe* is a named set of choices -- model, optimizer, schedule,
augmentation, test-time augmentation, epochs -- listed in :data:`RECIPES`.
:func:`resolve_recipe` applies ``key=value`` overrides (for ablations, e.g.
``activation=relu``); :func:`load_data`, :func:`build_model` and
:func:`build_solver` turn a recipe into what a run trains. The command line
:mod:`convlab.train`, :mod:`convlab.ensemble`, :mod:`convlab.profiling` and the
benchmarks all build their runs here.
"""

import json
import os

import numpy as np

from convlab import schedules
from convlab.augment import make_augment
from convlab.classifiers.three_layer_convnet import ThreeLayerConvNet
from convlab.classifiers.airbench_convnet import ConvNet
from convlab.data_utils import get_CIFAR10_data
from convlab.optim import nesterov_sgd
from convlab.solver import Solver

__all__ = ["RECIPES", "resolve_recipe", "load_data", "build_model", "build_solver"]

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
    # A seconds-long recipe for smoke tests.
    "tiny": dict(_AIRBENCH, widths=(4, 8, 8), batch_size=64, epochs=1, tta=1),
}


def _parse_value(text):
    """A ``--set`` value: JSON if it parses (numbers, lists, null), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def resolve_recipe(name, overrides=(), epochs=None):
    """The recipe dict for ``name`` with ``key=value`` overrides applied.

    Parameters
    ----------
    name : str
        A key of :data:`RECIPES`.
    overrides : sequence of str
        ``"key=value"`` strings; values are parsed as JSON when possible.
    epochs : int or None
        Overrides the recipe's ``epochs``.

    Returns
    -------
    dict
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    recipe = dict(RECIPES[name])
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in recipe and key not in _AIRBENCH:
            raise ValueError(f"--set expects key=value with a recipe key "
                             f"({sorted(recipe)}), got {item!r}")
        recipe[key] = _parse_value(value)
    if epochs is not None:
        recipe["epochs"] = int(epochs)
    if recipe["epochs"] < 1:
        raise ValueError(f"epochs must be at least 1, got {recipe['epochs']}")
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
    model : ConvNet or ThreeLayerConvNet
    """
    if recipe["model"] == "three_layer":
        return ThreeLayerConvNet(num_filters=recipe["num_filters"],
                                 filter_size=recipe["filter_size"],
                                 hidden_dim=recipe["hidden_dim"], reg=recipe["reg"],
                                 weight_scale=recipe["weight_scale"], dtype=np.float32,
                                 seed=seed)
    input_dim = (3, 32, 32) if X_train is None else X_train.shape[1:]
    model = ConvNet(input_dim=input_dim, widths=recipe["widths"],
                    convs_per_block=recipe["convs_per_block"],
                    whiten_kernel=recipe["whiten_kernel"], activation=recipe["activation"],
                    bn_scale=recipe["bn_scale"], bn_momentum=recipe["bn_momentum"],
                    label_smoothing=recipe["label_smoothing"],
                    logit_scale=recipe["logit_scale"], dtype=np.float32, seed=seed)
    if model.whiten_kernel is not None and X_train is not None:
        model.init_whitening(X_train[:5000], seed=seed)
    return model


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
    """
    rule = recipe["update_rule"]
    batch = int(recipe["batch_size"])
    if rule == "nesterov":
        update_rule = nesterov_sgd
        optim_config = {"learning_rate": recipe["learning_rate"] * batch,
                        "momentum": recipe["momentum"],
                        "weight_decay": recipe["weight_decay"]}
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
                    ema_decay=recipe["ema_decay"])
    if rule == "nesterov":
        for name in model.params:
            if name.startswith("beta"):
                solver.optim_configs[name]["lr_scale"] = float(recipe["bias_lr_scale"])
    return solver

"""The training loop: minibatch gradient descent for any model, with checkpoints.

A *model* is anything with

- ``model.params``: a dict mapping names to parameter arrays, and
- ``model.loss(X, y=None)``: with ``y=None`` (test mode) it returns class
  scores of shape (N, C); with labels it returns ``(loss, grads)`` where
  ``grads`` has the keys and shapes of ``params``.

Optionally a model may carry state that is not a parameter (batch-norm running
means, for instance).  It then exposes ``model.state_dict()``, returning a dict
mapping names to arrays, and ``model.load_state_dict(state)``, which restores
such a dict; checkpoints store and restore it.  Without these methods the
parameters are the whole state.

*Data* is a dict with ``X_train`` of shape (N_train, ...), integer labels
``y_train`` of shape (N_train,), and ``X_val``, ``y_val`` likewise.

Example
-------
>>> solver = Solver(model, data, update_rule="adam",
...                 optim_config={"learning_rate": 1e-3},
...                 batch_size=50, num_epochs=10, seed=0)   # doctest: +SKIP
>>> solver.train()                                          # doctest: +SKIP
>>> solver.val_acc_history[-1]                              # doctest: +SKIP

Minibatches
-----------
Each epoch draws one random permutation of the training set and walks through
it in consecutive slices of ``batch_size``: sampling *without* replacement, so
every example is used at most once per epoch.  An epoch has
``max(N_train // batch_size, 1)`` iterations; the ``N_train % batch_size``
examples left over at the end of the permutation are skipped (different ones
each epoch), and when ``N_train < batch_size`` the one iteration uses the whole
set.

Randomness
----------
All randomness (the permutations, the subsets used to estimate accuracies, and
whatever the ``augment`` hook draws) comes from one ``numpy.random.Generator``,
``solver.rng``, seeded with ``seed``.  Its state is part of every checkpoint,
so a resumed run draws exactly the numbers the uninterrupted run would have.

Divergence
----------
A minibatch loss that is NaN or infinite stops training with a
:class:`DivergedError` (a learning rate too large, usually): nothing after
it could be trusted, and a run that carried on would end "complete" with
NaN weights.

Checkpoints
-----------
:meth:`Solver.save_checkpoint` writes everything needed to continue a run
exactly -- parameters, model state, optimizer state, histories, the random
generator -- and :meth:`Solver.resume` restores it; the file format, its
atomic writing and checked reading are in :mod:`convlab.checkpoint`.
"""

import contextlib
import json
import numbers
import os
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from convlab import checkpoint, optim
from convlab.checkpoint import find_latest_checkpoint  # importable from here as before
from convlab.validation import check_int

__all__ = ["Solver", "DivergedError", "find_latest_checkpoint"]

# The checkpoint format's name and version, also under their former names here.
CHECKPOINT_FORMAT = checkpoint.FORMAT
CHECKPOINT_VERSION = checkpoint.VERSION

_UPDATE_RULES = {name: getattr(optim, name) for name in optim.__all__}


class DivergedError(ArithmeticError):
    """The training loss became NaN or infinite: the run diverged.

    Raised by :meth:`Solver.step` before the update, so the model keeps the
    last finite parameters and the checkpoints hold nothing non-finite.

    Attributes
    ----------
    loss : float
        The non-finite loss.
    iteration, epoch : int
        The 1-based iteration and epoch it occurred in.
    """

    def __init__(self, loss, iteration, epoch):
        self.loss, self.iteration, self.epoch = loss, iteration, epoch
        super().__init__(f"the training loss became {loss} at iteration {iteration} "
                         f"(epoch {epoch}): training diverged; a smaller learning rate "
                         "usually helps")

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")

_DEFAULTS = {
    "update_rule": "sgd",
    "optim_config": None,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "num_train_samples": 1000,
    "num_val_samples": None,
    "print_every": 10,
    "verbose": True,
    "checkpoint_name": None,
    "progress": True,
    "seed": None,
    "lr_schedule": None,
    "augment": None,
    "ema_decay": None,
    "epoch_callbacks": (),
    "resume_from": None,
    "run_info": None,
}


class Solver:
    """Train a classification model with minibatch gradient descent.

    Parameters
    ----------
    model : object
        Has ``params`` (dict of arrays) and ``loss(X, y=None)``; see the module
        docstring.  Training updates ``model.params`` in place (the dict is
        kept, its values are replaced).
    data : dict
        ``X_train`` of shape (N_train, ...), ``y_train`` of shape (N_train,),
        ``X_val`` of shape (N_val, ...), ``y_val`` of shape (N_val,).

    Other Parameters
    ----------------
    update_rule : str or callable, default 'sgd'
        A rule name from :mod:`convlab.optim` ('sgd', 'sgd_momentum',
        'rmsprop', 'adam', 'adagrad', 'adadelta') or a function with the same
        signature ``(w, dw, config) -> (next_w, config)``.
    optim_config : dict, optional
        Hyperparameters for the update rule, e.g. ``{'learning_rate': 1e-3}``.
        Every parameter gets its own copy (the rule's state is per parameter).
    lr_decay : float, default 1.0
        The learning rate is multiplied by this after every epoch.
    batch_size : int, default 100
    num_epochs : int, default 10
    num_train_samples : int or None, default 1000
        Size of the random subset of the training set used to estimate the
        training accuracy after each epoch; None uses all of it.
    num_val_samples : int or None, default None
        The same for the validation set.
    print_every : int, default 10
        With ``verbose``, print the loss at iterations 1, 1 + print_every, ...
    verbose : bool, default True
        Print the loss and the per-epoch accuracies to standard output.
    checkpoint_name : str or path, optional
        Path prefix; after epoch ``e`` a checkpoint is written to
        ``f"{checkpoint_name}_epoch_{e}.npz"``.  Missing directories are created.
    progress : bool, default True
        Show a progress bar (``tqdm.auto``: a widget in Jupyter, text on
        standard error elsewhere).  Pass False for reproducible notebook output.
    seed : int or None, default None
        Seed of ``solver.rng``, the only source of randomness of the solver.
        None draws fresh entropy from the operating system.
    lr_schedule : callable, optional
        ``lr_schedule(iteration, num_iterations) -> multiplier``, called before
        every update with the 0-based iteration index; the learning rate used
        is ``optim_config['learning_rate'] * multiplier``.  When given,
        ``lr_decay`` is ignored.
    augment : callable, optional
        ``augment(X_batch, rng) -> X_batch``, applied to every training
        minibatch (never to evaluation data); ``rng`` is ``solver.rng``.
    ema_decay : float in [0, 1], optional
        Keep an exponential moving average of the parameters,
        ``ema <- ema + (1 - ema_decay) * (params - ema)`` after every
        update, starting from the initial parameters.  The end-of-epoch
        accuracies, and hence the best parameters, use the averaged weights.
        A model with state (``state_dict``) has the floating-point entries of
        its state averaged alike, and evaluated with the averaged weights:
        batch-norm running statistics collected with the raw weights would
        not match the averaged ones.  (Entries that do not change, such as
        frozen filters, stay exactly as they are.)
    epoch_callbacks : sequence of callables, optional
        Each is called as ``callback(solver)`` after every epoch, after the
        accuracies are recorded and before the checkpoint is written.  A
        callback may set ``solver.stop_training = True`` to end training after
        this epoch.  Callbacks that keep state of their own must restore it
        themselves when a run is resumed.
    resume_from : str or path, optional
        A checkpoint to restore right away (see :meth:`resume`).
    run_info : dict, optional
        JSON-serialisable facts about the run (``convlab.train`` stores its
        fingerprint: recipe, seed, data sizes, version), written into every
        checkpoint's ``meta`` as ``run_info`` so that a checkpoint can be
        matched to the run it belongs to (:mod:`convlab.run_dir`).

    Attributes
    ----------
    loss_history : list of float
        The minibatch loss of every iteration.
    lr_history : list of float
        The learning rate used at every iteration (aligned with
        ``loss_history``); NaN for a custom rule without a learning rate.
    train_acc_history, val_acc_history : list of float
        Accuracies after 0, 1, ..., ``epoch`` epochs (so the first entry is
        the accuracy before training, and ``len == epoch + 1``).
    epoch_time_history : list of float
        Wall time in seconds of every epoch (updates and the evaluation at its
        end, not the checkpoint).
    best_val_acc : float
        The highest entry of ``val_acc_history`` so far.
    best_params : dict of arrays
        Copies of the (averaged, with ``ema_decay``) parameters that reached
        ``best_val_acc``, first one wins.  :meth:`train` ends by loading them
        into ``model.params``.
    ema_params : dict of arrays or None
        The moving average of the parameters, with ``ema_decay``.
    ema_state : dict of arrays or None
        The moving average of the floating-point entries of
        ``model.state_dict()``, with ``ema_decay`` and a model with state.
    optim_configs : dict of dicts
        The optimizer config (hyperparameters and state) of every parameter.
    epoch, iteration : int
        Epochs and iterations completed.
    iterations_per_epoch : int
        ``max(N_train // batch_size, 1)``.
    rng : numpy.random.Generator
    stop_training : bool
        Set by a callback to stop after the current epoch.
    """

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_DEFAULTS))
        if unknown:
            raise ValueError(
                f"Solver: unknown keyword arguments {unknown}; "
                f"known ones are {sorted(_DEFAULTS)}"
            )
        opts = {**_DEFAULTS, **kwargs}

        _check_model(model)
        self.model = model
        self.X_train, self.y_train, self.X_val, self.y_val = _check_data(data)
        self.num_train = self.X_train.shape[0]

        self.batch_size = check_int("Solver: batch_size", opts["batch_size"])
        self.num_epochs = check_int("Solver: num_epochs", opts["num_epochs"], minimum=0)
        self.print_every = check_int("Solver: print_every", opts["print_every"])
        self.num_train_samples = check_int("Solver: num_train_samples", opts["num_train_samples"],
                                           allow_none=True)
        self.num_val_samples = check_int("Solver: num_val_samples", opts["num_val_samples"],
                                         allow_none=True)
        self.verbose = bool(opts["verbose"])
        self.progress = bool(opts["progress"])
        self.checkpoint_name = (None if opts["checkpoint_name"] is None
                                else os.fspath(opts["checkpoint_name"]))
        self.run_info = opts["run_info"]
        if self.run_info is not None:
            try:
                json.dumps(self.run_info)
            except (TypeError, ValueError) as error:
                raise ValueError(f"Solver: run_info must be JSON-serialisable ({error})") from None

        lr_decay = opts["lr_decay"]
        if not isinstance(lr_decay, numbers.Real) or not lr_decay > 0:
            raise ValueError(f"Solver: lr_decay must be a positive number, got {lr_decay!r}")
        self.lr_decay = float(lr_decay)

        for name in ("lr_schedule", "augment"):
            if opts[name] is not None and not callable(opts[name]):
                raise ValueError(f"Solver: {name} must be callable or None, got {opts[name]!r}")
        self.lr_schedule = opts["lr_schedule"]
        self.augment = opts["augment"]

        callbacks = opts["epoch_callbacks"]
        if callable(callbacks):
            callbacks = [callbacks]
        callbacks = list(callbacks)
        for callback in callbacks:
            if not callable(callback):
                raise ValueError(f"Solver: epoch_callbacks must hold callables, got {callback!r}")
        self.epoch_callbacks = callbacks

        ema_decay = opts["ema_decay"]
        if ema_decay is not None and (not isinstance(ema_decay, numbers.Real)
                                      or not 0.0 <= ema_decay <= 1.0):
            raise ValueError(f"Solver: ema_decay must be None or in [0, 1], got {ema_decay!r}")
        self.ema_decay = None if ema_decay is None else float(ema_decay)

        rule = opts["update_rule"]
        if isinstance(rule, str):
            if rule not in _UPDATE_RULES:
                raise ValueError(
                    f"Solver: unknown update_rule {rule!r}; choose one of "
                    f"{sorted(_UPDATE_RULES)} or pass a function"
                )
            self.update_rule_name, self.update_rule = rule, _UPDATE_RULES[rule]
        elif callable(rule):
            self.update_rule_name = getattr(rule, "__name__", type(rule).__name__)
            self.update_rule = rule
        else:
            raise ValueError(f"Solver: update_rule must be a name or a function, got {rule!r}")

        optim_config = opts["optim_config"]
        if optim_config is None:
            optim_config = {}
        if not isinstance(optim_config, dict):
            raise ValueError(f"Solver: optim_config must be a dict, got {optim_config!r}")
        self.optim_config = dict(optim_config)
        self.optim_configs = {name: dict(self.optim_config) for name in model.params}
        self.base_learning_rate = self._find_base_learning_rate()

        self.rng = np.random.default_rng(opts["seed"])
        self.iterations_per_epoch = max(self.num_train // self.batch_size, 1)
        self.epoch = 0
        self.iteration = 0
        self.loss_history = []
        self.lr_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.epoch_time_history = []
        self.best_val_acc = 0.0
        self.best_params = {}
        self.best_model_state = {}
        self.ema_params = (None if self.ema_decay is None else
                           {k: np.array(v, copy=True) for k, v in model.params.items()})
        self.ema_state = (None if self.ema_decay is None or not hasattr(model, "state_dict") else
                          {k: np.array(v, copy=True) for k, v in model.state_dict().items()
                           if np.issubdtype(np.asarray(v).dtype, np.floating)})
        self.stop_training = False

        if opts["resume_from"] is not None:
            self.resume(opts["resume_from"])

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------

    @property
    def num_iterations(self):
        """Total number of iterations of the run: ``num_epochs * iterations_per_epoch``."""
        return self.num_epochs * self.iterations_per_epoch

    def train(self):
        """Train until ``epoch == num_epochs`` (or a callback stops it).

        Evaluates once before the first update (unless resuming a run that has
        done so), then after every epoch records the accuracies, updates the
        best parameters, runs the callbacks and writes the checkpoint.  At the
        end, ``model.params`` holds copies of ``best_params`` and, for a model
        with state, ``model.load_state_dict`` restores the state (batch-norm
        running statistics, say) recorded with them, so the two match.  To continue a
        run exactly, resume it from a checkpoint rather than calling ``train``
        again, since the last parameters were replaced by the best ones.

        Raises
        ------
        DivergedError
            As soon as a minibatch loss is NaN or infinite: training stops
            there, with the last finite parameters and no checkpoint of the
            unfinished epoch.
        """
        self.stop_training = False
        if not self.val_acc_history:
            self._evaluate()
            self._report_epoch()
        bar = tqdm(total=self.num_iterations, initial=self.iteration, desc="train",
                   unit="it", disable=not self.progress)
        try:
            while self.epoch < self.num_epochs and not self.stop_training:
                start = time.perf_counter()
                order = self.rng.permutation(self.num_train)
                for i in range(self.iterations_per_epoch):
                    self.step(order[i * self.batch_size:(i + 1) * self.batch_size])
                    bar.set_postfix(loss=f"{self.loss_history[-1]:.4f}", refresh=False)
                    bar.update(1)
                    if self.verbose and (self.iteration - 1) % self.print_every == 0:
                        self._print(f"(Iteration {self.iteration} / {self.num_iterations}) "
                                    f"loss: {self.loss_history[-1]:f}", bar)
                self.epoch += 1
                self._evaluate()
                self.epoch_time_history.append(time.perf_counter() - start)
                bar.set_postfix(loss=f"{self.loss_history[-1]:.4f}",
                                val_acc=f"{self.val_acc_history[-1]:.4f}")
                self._report_epoch(bar)
                for callback in self.epoch_callbacks:
                    callback(self)
                if self.checkpoint_name is not None:
                    self.save_checkpoint(self.checkpoint_path(self.epoch))
        finally:
            bar.close()
        for name, value in self.best_params.items():
            self.model.params[name] = value.copy()
        if self.best_model_state:
            self.model.load_state_dict({k: v.copy() for k, v in self.best_model_state.items()})

    def step(self, batch):
        """One update on the training examples with indices ``batch``.

        What :meth:`train` does per minibatch: augment, forward and backward
        pass, the scheduled learning rate, the update rule on every
        parameter, the moving averages; the loss and learning rate are
        appended to the histories. (Benchmarks time it.)

        Parameters
        ----------
        batch : ndarray of int, shape (B,)
            Indices into ``X_train``.

        Raises
        ------
        DivergedError
            If the loss is NaN or infinite (nothing is updated).
        """
        X_batch = self.X_train[batch]
        y_batch = self.y_train[batch]
        if self.augment is not None:
            X_batch = self.augment(X_batch, self.rng)
        loss, grads = self.model.loss(X_batch, y_batch)
        if not np.isfinite(loss):
            raise DivergedError(float(loss), self.iteration + 1, self.epoch + 1)

        lr = None
        if self.base_learning_rate is not None:
            if self.lr_schedule is not None:
                multiplier = float(self.lr_schedule(self.iteration, self.num_iterations))
            else:
                multiplier = self.lr_decay ** self.epoch
            lr = self.base_learning_rate * multiplier

        params = self.model.params
        for name, w in params.items():
            if name not in grads:
                raise ValueError(f"Solver: model.loss returned no gradient for parameter {name!r}")
            config = self.optim_configs[name]
            if lr is not None:
                config["learning_rate"] = lr
            params[name], self.optim_configs[name] = self.update_rule(w, grads[name], config)

        if self.ema_params is not None:
            _update_average(self.ema_params, params, self.ema_decay)
            if self.ema_state is not None:
                _update_average(self.ema_state, self.model.state_dict(), self.ema_decay)

        self.loss_history.append(float(loss))
        self.lr_history.append(float("nan") if lr is None else lr)
        self.iteration += 1

    def _find_base_learning_rate(self):
        """The learning rate that schedules scale: from ``optim_config`` or the rule's default.

        Returns
        -------
        float or None
            None when the rule has no ``learning_rate`` (a custom rule).
        """
        given = self.optim_config.get("learning_rate")
        if given is not None and self.update_rule not in _UPDATE_RULES.values():
            return float(given)
        # Let the rule check the config and fill in its defaults on a
        # one-element dummy parameter (this is where a typo in optim_config
        # is caught for the built-in rules).
        _, filled = self.update_rule(np.zeros(1), np.zeros(1), dict(self.optim_config))
        if "learning_rate" in filled:
            return float(filled["learning_rate"])
        return None

    @contextlib.contextmanager
    def evaluation_params(self):
        """Context manager: within the block, the model holds the weights it is evaluated with.

        With ``ema_decay`` set, those are the moving averages of the
        parameters and of the model's state; otherwise the current ones. On
        leaving the block the model gets its training weights back.

        Example
        -------
        >>> with solver.evaluation_params():                    # doctest: +SKIP
        ...     scores = solver.model.loss(X_test)
        """
        if self.ema_params is None:
            yield
            return
        saved = dict(self.model.params)
        self.model.params.update(self.ema_params)
        if self.ema_state is not None:
            saved_state = self.model.state_dict()
            self.model.load_state_dict({**saved_state, **self.ema_state})
        try:
            yield
        finally:
            self.model.params.update(saved)
            if self.ema_state is not None:
                self.model.load_state_dict(saved_state)

    def _evaluate(self):
        """Record train and validation accuracy; keep the best parameters."""
        with self.evaluation_params():
            train_acc = self.check_accuracy(self.X_train, self.y_train,
                                            num_samples=self.num_train_samples)
            val_acc = self.check_accuracy(self.X_val, self.y_val,
                                          num_samples=self.num_val_samples)
            self.train_acc_history.append(train_acc)
            self.val_acc_history.append(val_acc)
            if not self.best_params or val_acc > self.best_val_acc:
                self.best_val_acc = val_acc
                self.best_params = {k: np.array(v, copy=True)
                                    for k, v in self.model.params.items()}
                if hasattr(self.model, "state_dict"):
                    self.best_model_state = {k: np.array(v, copy=True)
                                             for k, v in self.model.state_dict().items()}

    def _report_epoch(self, bar=None):
        if self.verbose:
            self._print(f"(Epoch {self.epoch} / {self.num_epochs}) "
                        f"train acc: {self.train_acc_history[-1]:f}; "
                        f"val acc: {self.val_acc_history[-1]:f}", bar)

    @staticmethod
    def _print(message, bar=None):
        if bar is not None and not bar.disable:
            bar.write(message, file=sys.stdout)
        else:
            print(message, file=sys.stdout)

    # ------------------------------------------------------------------
    # Evaluation
    # ------------------------------------------------------------------

    def predict(self, X, batch_size=100):
        """Predicted labels, evaluating the model in test mode in batches.

        Parameters
        ----------
        X : ndarray of shape (N, ...)
        batch_size : int
            Examples per call of ``model.loss``.

        Returns
        -------
        y_pred : ndarray of int, shape (N,)
        """
        batch_size = check_int("Solver: batch_size", batch_size)
        N = len(X)
        predictions = [np.argmax(self.model.loss(X[start:start + batch_size]), axis=1)
                       for start in range(0, N, batch_size)]
        if not predictions:
            return np.empty(0, dtype=np.intp)
        return np.concatenate(predictions)

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Fraction of examples the model classifies correctly.

        Uses the current ``model.params`` (not the EMA weights).

        Parameters
        ----------
        X : ndarray of shape (N, ...)
        y : ndarray of int, shape (N,)
        num_samples : int or None
            If given and smaller than N, evaluate on that many examples drawn
            without replacement with ``solver.rng``.
        batch_size : int
            Examples per call of ``model.loss``.

        Returns
        -------
        acc : float
        """
        y = np.asarray(y)
        if y.ndim != 1 or len(X) != y.shape[0]:
            raise ValueError(f"check_accuracy: X has shape {np.shape(X)} but y has shape "
                             f"{y.shape}; expected y of shape ({len(X)},)")
        num_samples = check_int("Solver: num_samples", num_samples, allow_none=True)
        N = y.shape[0]
        if N == 0:
            raise ValueError("check_accuracy: X and y are empty")
        if num_samples is not None and N > num_samples:
            subset = np.sort(self.rng.choice(N, num_samples, replace=False))
            X, y = X[subset], y[subset]
        return float(np.mean(self.predict(X, batch_size) == y))

    # ------------------------------------------------------------------
    # Checkpoints
    # ------------------------------------------------------------------

    def checkpoint_path(self, epoch):
        """The file written after ``epoch``: ``f"{checkpoint_name}_epoch_{epoch}.npz"``."""
        if self.checkpoint_name is None:
            raise ValueError("Solver: checkpoint_name is not set")
        return f"{self.checkpoint_name}_epoch_{epoch}.npz"

    def save_checkpoint(self, path):
        """Write everything needed to continue this run exactly to ``path``.

        The format is described in :mod:`convlab.checkpoint`.  Writing is atomic.

        Parameters
        ----------
        path : str or path
            The file name, used as given (``.npz`` is not appended).
        """
        params = self.model.params
        arrays = {f"params/{k}": np.asarray(v) for k, v in params.items()}
        has_state = hasattr(self.model, "state_dict")
        if has_state:
            for key, value in self.model.state_dict().items():
                value = np.asarray(value)
                if value.dtype == object:
                    raise ValueError(f"Solver: model.state_dict()[{key!r}] is not a numeric array")
                arrays[f"model_state/{key}"] = value
        optim_scalars = {}
        for name, config in self.optim_configs.items():
            scalars = {}
            for key, value in config.items():
                if isinstance(value, np.ndarray):
                    arrays[f"optim/{name}/{key}"] = value
                else:
                    scalars[key] = _json_scalar(f"optim_configs[{name!r}][{key!r}]", value)
            optim_scalars[name] = scalars
        for name, value in self.best_params.items():
            arrays[f"best/{name}"] = value
        for key, value in self.best_model_state.items():
            arrays[f"best_state/{key}"] = value
        if self.ema_params is not None:
            for name, value in self.ema_params.items():
                arrays[f"ema/{name}"] = value
        if self.ema_state is not None:
            for key, value in self.ema_state.items():
                arrays[f"ema_state/{key}"] = value

        meta = {
            "epoch": self.epoch,
            "iteration": self.iteration,
            "num_epochs": self.num_epochs,
            "batch_size": self.batch_size,
            "num_train": self.num_train,
            "update_rule": self.update_rule_name,
            "base_learning_rate": self.base_learning_rate,
            "param_names": list(params),
            "has_model_state": has_state,
            "optim_scalars": optim_scalars,
            "best_val_acc": self.best_val_acc,
            "ema_decay": self.ema_decay,
            "loss_history": self.loss_history,
            "lr_history": self.lr_history,
            "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history,
            "epoch_time_history": self.epoch_time_history,
            "rng": self.rng.bit_generator.state,
        }
        if self.run_info is not None:
            meta["run_info"] = self.run_info
        checkpoint.save(path, arrays, meta)

    def resume(self, path):
        """Restore a checkpoint written by :meth:`save_checkpoint`.

        Restores the model parameters (and ``load_state_dict`` state), the
        optimizer configs, epoch and iteration counters, histories, best and
        averaged parameters, and the random generator.  After this,
        :meth:`train` continues the run exactly where it stopped, provided the
        solver was built with the same settings and hooks as the original one:
        functions (``lr_schedule``, ``augment``, ``epoch_callbacks``, a custom
        ``update_rule``) are code, not data, and are not stored.  ``num_epochs``
        may differ (to extend a run), though a schedule that depends on
        ``num_iterations`` then changes its shape.

        Parameters
        ----------
        path : str or path

        Raises
        ------
        ValueError
            If the file is not a convlab checkpoint, holds NaN or infinite
            values (a diverged run, or a damaged file), or does not fit this
            solver (other parameter names or shapes, batch size, training-set
            size, update rule, or EMA setting).
        """
        path = os.fspath(path)
        try:
            arrays, meta = checkpoint.load(path)
            checkpoint.check_finite(path, arrays)
        except ValueError as error:
            raise ValueError(f"Solver.resume: {error}") from error

        missing = [key for key in _META_KEYS if key not in meta]
        if missing:
            raise ValueError(f"Solver.resume: checkpoint {path} lacks the meta entries "
                             f"{missing}; it is damaged or not written by Solver.save_checkpoint")
        for key, mine in (("batch_size", self.batch_size), ("num_train", self.num_train),
                          ("update_rule", self.update_rule_name),
                          ("ema_decay", self.ema_decay)):
            if meta[key] != mine:
                raise ValueError(f"Solver.resume: checkpoint {path} was written with "
                                 f"{key}={meta[key]!r} but this solver has {key}={mine!r}")
        params = self.model.params
        if set(meta["param_names"]) != set(params):
            raise ValueError(f"Solver.resume: checkpoint {path} has parameters "
                             f"{sorted(meta['param_names'])} but the model has {sorted(params)}")
        if meta["has_model_state"] != hasattr(self.model, "load_state_dict"):
            raise ValueError(f"Solver.resume: checkpoint {path} "
                             f"{'has' if meta['has_model_state'] else 'has no'} model state but "
                             f"the model {'has no' if meta['has_model_state'] else 'has a'} "
                             "load_state_dict method")
        if set(meta["optim_scalars"]) != set(params):
            raise ValueError(f"Solver.resume: checkpoint {path} has optimizer settings for "
                             f"{sorted(meta['optim_scalars'])} but the model has {sorted(params)}")
        # Every array section must match the model entry by entry: same names,
        # shapes and dtypes (a float64 array would silently change the run).
        state = self.model.state_dict() if meta["has_model_state"] else {}
        _check_section(path, arrays, "params/", params)
        _check_section(path, arrays, "best/", params)
        if meta["has_model_state"]:
            _check_section(path, arrays, "model_state/", state)
            _check_section(path, arrays, "best_state/", state)
        if self.ema_decay is not None:
            _check_section(path, arrays, "ema/", params)
            if meta["has_model_state"]:
                _check_section(path, arrays, "ema_state/",
                               {k: v for k, v in state.items()
                                if np.issubdtype(np.asarray(v).dtype, np.floating)})

        def section(prefix):
            return {key[len(prefix):]: value for key, value in arrays.items()
                    if key.startswith(prefix)}

        if meta["has_model_state"]:
            self.model.load_state_dict(section("model_state/"))
        params = self.model.params
        for name in meta["param_names"]:
            params[name] = arrays[f"params/{name}"]
        self.optim_configs = {}
        for name in meta["param_names"]:
            config = dict(meta["optim_scalars"][name])
            config.update(section(f"optim/{name}/"))
            self.optim_configs[name] = config
        self.best_params = section("best/")
        self.best_model_state = section("best_state/")
        self.ema_params = section("ema/") if self.ema_decay is not None else None
        self.ema_state = (section("ema_state/") if self.ema_decay is not None
                          and meta["has_model_state"] else None)

        self.epoch = meta["epoch"]
        self.iteration = meta["iteration"]
        self.base_learning_rate = meta["base_learning_rate"]
        self.best_val_acc = meta["best_val_acc"]
        for name in ("loss_history", "lr_history", "train_acc_history",
                     "val_acc_history", "epoch_time_history"):
            setattr(self, name, [float(x) for x in meta[name]])

        state = meta["rng"]
        if state.get("bit_generator") not in _BIT_GENERATORS:
            raise ValueError(f"Solver.resume: unknown bit generator "
                             f"{state.get('bit_generator')!r} in {path}")
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
        self.rng = np.random.Generator(bit_generator)


# The entries of a checkpoint's meta that resume reads.
_META_KEYS = ("epoch", "iteration", "num_epochs", "batch_size", "num_train", "update_rule",
              "base_learning_rate", "param_names", "has_model_state", "optim_scalars",
              "best_val_acc", "ema_decay", "loss_history", "lr_history", "train_acc_history",
              "val_acc_history", "epoch_time_history", "rng")


def _check_section(path, arrays, prefix, reference):
    """ValueError unless ``arrays[prefix + k]`` exists for exactly the keys of ``reference``,
    each with the reference entry's shape and dtype."""
    found = {key[len(prefix):] for key in arrays if key.startswith(prefix)}
    if found != set(reference):
        raise ValueError(f"Solver.resume: checkpoint {path} has {prefix}* entries "
                         f"{sorted(found)} but the model needs {sorted(reference)}")
    for key, mine in reference.items():
        saved, mine = arrays[prefix + key], np.asarray(mine)
        if saved.shape != mine.shape or saved.dtype != mine.dtype:
            raise ValueError(f"Solver.resume: {prefix[:-1]} entry {key!r} has shape {saved.shape} "
                             f"and dtype {saved.dtype} in checkpoint {path} but shape "
                             f"{mine.shape} and dtype {mine.dtype} in the model")


def _update_average(average, current, decay):
    """``average[k] += (1 - decay) * (current[k] - average[k])`` in place, for every key of ``average``.

    Written as a step towards ``current`` (rather than ``decay * average +
    (1 - decay) * current``) so that an entry that never changes stays
    exactly what it is.
    """
    for key, value in average.items():
        value += (1.0 - decay) * (current[key] - value)


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------

def _json_scalar(what, value):
    """Convert a config entry to a JSON-compatible scalar, or raise ValueError."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, float)):
        return value
    raise ValueError(f"Solver: cannot store {what} = {value!r} in a checkpoint; "
                     "config entries must be arrays, numbers, strings, booleans or None")


def _check_model(model):
    params = getattr(model, "params", None)
    if not isinstance(params, dict):
        raise ValueError(f"Solver: model must have a dict attribute 'params', "
                         f"got {type(params).__name__}")
    if not callable(getattr(model, "loss", None)):
        raise ValueError("Solver: model must have a method loss(X, y=None)")


def _check_data(data):
    """Validate the data dict and return ``X_train, y_train, X_val, y_val``."""
    missing = [key for key in ("X_train", "y_train", "X_val", "y_val") if key not in data]
    if missing:
        raise ValueError(f"Solver: data is missing {missing}")
    out = []
    for split in ("train", "val"):
        X, y = data[f"X_{split}"], np.asarray(data[f"y_{split}"])
        if y.ndim != 1 or np.ndim(X) < 1 or len(X) != y.shape[0]:
            raise ValueError(f"Solver: X_{split} has shape {np.shape(X)} but y_{split} has "
                             f"shape {y.shape}; expected y_{split} of shape ({len(X)},)")
        if y.shape[0] == 0:
            raise ValueError(f"Solver: X_{split} and y_{split} are empty")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"Solver: y_{split} must hold integer labels, got dtype {y.dtype}")
        out += [X, y]
    return tuple(out)

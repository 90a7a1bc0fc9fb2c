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

Weight averaging
----------------
With ``ema_decay``, the Solver keeps an exponential moving average of the
parameters, ``ema <- ema + (1 - ema_decay) * (params - ema)`` after every
update, starting from the initial parameters.  The end-of-epoch accuracies,
and hence the best parameters, use the averaged weights.  A model with state
(``state_dict``) has the floating-point entries of its state averaged alike,
and evaluated with the averaged weights: batch-norm running statistics
collected with the raw weights would not match the averaged ones.  (Entries
that do not change, such as frozen filters, stay exactly as they are.)

Divergence
----------
A minibatch loss that is NaN or infinite stops training with a
:class:`DivergedError` (a learning rate too large, usually): nothing after
it could be trusted, and a run that carried on would end "complete" with
NaN weights.

Checkpoints
-----------
:meth:`Solver.state_dict` holds everything needed to continue a run exactly
-- parameters, model state, optimizer state, histories, the random generator
-- and :meth:`Solver.load_state_dict` restores it, after checking that it fits
the model. :meth:`Solver.save_checkpoint` and :meth:`Solver.resume` do the
same through a file; the file format, its atomic writing and checked reading
are in :mod:`convlab.runs.checkpoint`.
"""

import contextlib
import json
import numbers
import os
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from convlab import optim
from convlab.runs import checkpoint
from convlab.runs.model_file import check_arrays
from convlab.validation import check_int

__all__ = ["Solver", "DivergedError"]

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
    "restore_best": True,
    "param_optim_config": None,
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
    param_optim_config : dict of dicts, optional
        Entries that some parameters' configs add to or change in
        ``optim_config``, by parameter name, e.g. ``{'beta1_1': {'lr_scale':
        64.0}}`` (:func:`convlab.optim.nesterov_sgd`). A scheduled
        ``learning_rate`` is set anew every step, so scale it with such an entry.
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
        Show a progress bar (``tqdm.auto``: a widget in Jupyter, text on standard
        error elsewhere).  Pass False for reproducible notebook output.
    seed : int or None, default None
        Seed of ``solver.rng``, the solver's only source of randomness (None:
        fresh entropy from the operating system).
    lr_schedule : callable, optional
        ``lr_schedule(iteration, num_iterations) -> multiplier``, called before
        every update with the 0-based iteration index; the learning rate used is
        ``optim_config['learning_rate'] * multiplier`` (``lr_decay`` is ignored).
    augment : callable, optional
        ``augment(X_batch, rng) -> X_batch``, applied to every training
        minibatch (never to evaluation data); ``rng`` is ``solver.rng``.
    ema_decay : float in [0, 1], optional
        Average the weights (and the model's state) over the updates and
        evaluate the averages; see "Weight averaging" in the module docstring.
    epoch_callbacks : sequence of callables, optional
        Each is called as ``callback(solver)`` after every epoch, after the
        accuracies are recorded and before the checkpoint is written; it may set
        ``solver.stop_training = True`` to end training after this epoch.
        Callbacks that keep state of their own must restore it on resuming.
    resume_from : str or path, optional
        A checkpoint to restore right away (see :meth:`resume`).
    restore_best : bool, default True
        End :meth:`train` with the parameters (and model state) that reached
        ``best_val_acc``; False: with what the last epoch was evaluated with
        (the moving averages, with ``ema_decay``), for a fixed schedule.
    run_info : dict, optional
        JSON-serialisable facts about the run (``convlab.train`` stores its
        fingerprint: recipe, seed, data sizes, version), written into every
        checkpoint's ``meta`` as ``run_info`` so that a checkpoint can be
        matched to the run it belongs to (:mod:`convlab.runs.folder`).

    Attributes
    ----------
    loss_history, lr_history : list of float
        The minibatch loss and the learning rate of every iteration (NaN for
        a custom rule without a learning rate).
    train_acc_history, val_acc_history : list of float
        Accuracies after 0, 1, ..., ``epoch`` epochs (``len == epoch + 1``).
    epoch_time_history : list of float
        Wall time in seconds of every epoch (its updates and evaluation).
    best_val_acc, best_params, best_model_state : float, dict of arrays, dict of arrays
        The highest entry of ``val_acc_history`` so far, and copies of the
        (averaged, with ``ema_decay``) parameters and model state that reached
        it, first one wins.
    ema_params, ema_state : dict of arrays or None
        With ``ema_decay``: the moving averages of the parameters and of the
        floating-point entries of ``model.state_dict()`` (None without state).
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
        opts = _with_defaults(kwargs)
        _check_model(model)
        self.model = model
        self.X_train, self.y_train, self.X_val, self.y_val = _check_data(data)
        self.num_train = self.X_train.shape[0]
        for name, value in _checked_options(opts).items():
            setattr(self, name, value)
        self.optim_configs = _optim_configs(self.optim_config, self.param_optim_config, model.params)
        self.base_learning_rate = _base_learning_rate(self.update_rule, self.optim_config)

        self.rng = np.random.default_rng(opts["seed"])
        self.iterations_per_epoch = max(self.num_train // self.batch_size, 1)
        self.epoch, self.iteration = 0, 0
        for name in _HISTORIES:
            setattr(self, name, [])
        self.best_val_acc, self.best_params, self.best_model_state = 0.0, {}, {}
        self.ema_params = None if self.ema_decay is None else _copied(model.params)
        self.ema_state = (None if self.ema_decay is None or not hasattr(model, "state_dict") else
                          _copied(_floating(model.state_dict())))
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
        end the model holds, with ``restore_best``, copies of ``best_params``
        and of the state (batch-norm statistics, say) recorded with them;
        without it, what the last epoch was evaluated with.  To continue a run
        exactly, resume it from a checkpoint rather than calling ``train``
        again, since the last parameters were replaced.

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
                        _print(f"(Iteration {self.iteration} / {self.num_iterations}) "
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
        if self.restore_best:
            _load_into(self.model, self.best_params, self.best_model_state)
        elif self.ema_params is not None:       # what the last epoch was evaluated with
            _load_into(self.model, self.ema_params, self.ema_state)

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
                self.best_val_acc, self.best_params = val_acc, _copied(self.model.params)
                if hasattr(self.model, "state_dict"):
                    self.best_model_state = _copied(self.model.state_dict())

    def _report_epoch(self, bar=None):
        if self.verbose:
            _print(f"(Epoch {self.epoch} / {self.num_epochs}) "
                   f"train acc: {self.train_acc_history[-1]:f}; "
                   f"val acc: {self.val_acc_history[-1]:f}", bar)

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
        predictions = [np.argmax(self.model.loss(X[start:start + batch_size]), axis=1)
                       for start in range(0, len(X), batch_size)]
        return np.concatenate(predictions) if predictions else np.empty(0, dtype=np.intp)

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
    # State and checkpoints
    # ------------------------------------------------------------------

    def state_dict(self):
        """Everything needed to continue this run exactly, as copies (like a model's ``state_dict``).

        Returns
        -------
        dict
            Dicts of arrays ``params``, ``model_state`` (None without one),
            ``best``, ``best_state``, ``ema`` and ``ema_state`` (None without
            ``ema_decay``); ``optim``, every parameter's optimizer config; the
            counters, settings and histories named as the attributes (the
            update rule by name); ``rng``, ``bit_generator.state``; ``run_info``.
        """
        copied = _copied
        has_state = hasattr(self.model, "state_dict")
        state = {
            "params": copied(self.model.params),
            "model_state": self.model.state_dict() if has_state else None,
            "optim": {name: _copied_config(config) for name, config in self.optim_configs.items()},
            "best": copied(self.best_params), "best_state": copied(self.best_model_state),
            "ema": copied(self.ema_params), "ema_state": copied(self.ema_state),
            "epoch": self.epoch, "iteration": self.iteration, "num_epochs": self.num_epochs,
            "batch_size": self.batch_size, "num_train": self.num_train,
            "update_rule": self.update_rule_name, "base_learning_rate": self.base_learning_rate,
            "best_val_acc": self.best_val_acc, "ema_decay": self.ema_decay,
            "rng": self.rng.bit_generator.state, "run_info": self.run_info,
        }
        state.update({name: list(getattr(self, name)) for name in _HISTORIES})
        return state

    def load_state_dict(self, state, source="the state"):
        """Restore what :meth:`state_dict` returned, after checking that it fits.

        After this, :meth:`train` continues the run exactly where it stopped,
        provided the solver was built with the same settings and hooks as the
        original one: functions (``lr_schedule``, ``augment``,
        ``epoch_callbacks``, a custom ``update_rule``) are code, not data, and
        are not stored.  ``num_epochs`` may differ (to extend a run), though a
        schedule that depends on ``num_iterations`` then changes its shape.

        Parameters
        ----------
        state : dict
        source : str, optional
            What ``state`` is, for the error messages (:meth:`resume` names its file).

        Raises
        ------
        ValueError
            If the state does not fit (other parameter names, shapes or dtypes,
            batch size, training-set size, update rule or EMA setting).
        """
        _check_fits(self, state, source)
        params, copied = self.model.params, _copied
        has_state = state["model_state"] is not None
        if has_state:
            self.model.load_state_dict(copied(state["model_state"]))
        for name in state["params"]:
            params[name] = np.array(state["params"][name], copy=True)
        self.optim_configs = {name: _copied_config(state["optim"][name]) for name in state["params"]}
        self.best_params, self.best_model_state = copied(state["best"]), copied(state["best_state"])
        self.ema_params = copied(state["ema"])
        self.ema_state = copied(state["ema_state"]) if has_state else None
        for key in ("epoch", "iteration", "base_learning_rate", "best_val_acc"):
            setattr(self, key, state[key])
        for name in _HISTORIES:
            setattr(self, name, [float(x) for x in state[name]])
        bit_generator = getattr(np.random, state["rng"]["bit_generator"])()
        bit_generator.state = state["rng"]
        self.rng = np.random.Generator(bit_generator)

    def checkpoint_path(self, epoch):
        """The file written after ``epoch``: ``f"{checkpoint_name}_epoch_{epoch}.npz"``."""
        if self.checkpoint_name is None:
            raise ValueError("Solver: checkpoint_name is not set")
        return f"{self.checkpoint_name}_epoch_{epoch}.npz"

    def save_checkpoint(self, path):
        """Write :meth:`state_dict` to the file ``path`` (used as given), atomically.

        The format is described in :mod:`convlab.runs.checkpoint`.
        """
        try:
            checkpoint.write_state(path, self.state_dict())
        except ValueError as error:
            raise ValueError(f"Solver: {error}") from None

    def resume(self, path):
        """Restore a checkpoint written by :meth:`save_checkpoint` (see :meth:`load_state_dict`).

        Raises
        ------
        ValueError
            If the file ``path`` is not a convlab checkpoint, holds NaN or
            infinite values (a diverged run, or a damaged file), or does not fit.
        """
        path = os.fspath(path)
        try:
            self.load_state_dict(checkpoint.read_state(path), f"checkpoint {path}")
        except ValueError as error:
            raise ValueError(f"Solver.resume: {error}") from error


_HISTORIES = ("loss_history", "lr_history", "train_acc_history", "val_acc_history",
              "epoch_time_history")


def _with_defaults(kwargs):
    """The Solver's keyword arguments with the defaults filled in; unknown ones refused."""
    unknown = sorted(set(kwargs) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"Solver: unknown keyword arguments {unknown}; "
                         f"known ones are {sorted(_DEFAULTS)}")
    return {**_DEFAULTS, **kwargs}


def _optim_configs(optim_config, by_param, params):
    """Every parameter's own copy of ``optim_config``, with its ``param_optim_config`` entries."""
    unknown = sorted(set(by_param) - set(params))
    if unknown:
        raise ValueError(f"Solver: param_optim_config names no parameter of the model: {unknown}")
    return {name: {**optim_config, **by_param.get(name, {})} for name in params}


def _load_into(model, params, state):
    """Copies of ``params`` (and of the model state entries ``state``, if any) into ``model``."""
    model.params.update(_copied(params))
    if state:
        model.load_state_dict({**model.state_dict(), **_copied(state)})


def _check_fits(solver, state, source):
    """ValueError, naming ``source``, unless a :meth:`Solver.state_dict` fits ``solver`` and its model.

    The settings that shape the run (batch size, training-set size, update
    rule, EMA) must be the same, and every array section must hold the
    model's entries with their shapes and dtypes.
    """
    for key, mine in (("batch_size", solver.batch_size), ("num_train", solver.num_train),
                      ("update_rule", solver.update_rule_name),
                      ("ema_decay", solver.ema_decay)):
        if state[key] != mine:
            raise ValueError(f"{source} was written with {key}={state[key]!r} but this "
                             f"solver has {key}={mine!r}")
    params = solver.model.params
    if set(state["params"]) != set(params):
        raise ValueError(f"{source} has parameters {sorted(state['params'])} but the model "
                         f"has {sorted(params)}")
    has_state = state["model_state"] is not None
    if has_state != hasattr(solver.model, "load_state_dict"):
        raise ValueError(f"{source} {'has' if has_state else 'has no'} model state but the "
                         f"model {'has no' if has_state else 'has a'} load_state_dict method")
    if set(state["optim"]) != set(params):
        raise ValueError(f"{source} has optimizer settings for {sorted(state['optim'])} but "
                         f"the model has {sorted(params)}")
    # Every array section must match the model entry by entry: same names,
    # shapes and dtypes (a float64 array would silently change the run).
    model_state = solver.model.state_dict() if has_state else {}
    sections = [("params", params), ("best", params)]
    if has_state:
        sections += [("model_state", model_state), ("best_state", model_state)]
    if solver.ema_decay is not None:
        sections.append(("ema", params))
        if has_state:
            sections.append(("ema_state", _floating(model_state)))
    for section, needed in sections:
        check_arrays(source, section, state[section], needed)
    rng = state["rng"]
    if rng.get("bit_generator") not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {rng.get('bit_generator')!r} in {source}")


def _copied(arrays):
    """A dict of copies of the arrays in ``arrays`` (None stays None)."""
    return None if arrays is None else {k: np.array(v, copy=True) for k, v in arrays.items()}


def _copied_config(config):
    """An optimizer config with its arrays (velocities, moments, ...) copied."""
    return {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in config.items()}


def _floating(state):
    """The floating-point entries of a model's state: those the moving average follows."""
    return {k: v for k, v in state.items() if np.issubdtype(np.asarray(v).dtype, np.floating)}


def _print(message, bar=None):
    """Print a line to standard output, above the progress bar ``bar`` if one is shown."""
    if bar is not None and not bar.disable:
        bar.write(message, file=sys.stdout)
    else:
        print(message, file=sys.stdout)


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

def _checked_options(opts):
    """The Solver's settings from its keyword arguments (defaults filled in), each one checked.

    Returns
    -------
    dict
        Attribute name -> value (``update_rule`` as a function, with its name
        in ``update_rule_name``).
    """
    checked = {
        "batch_size": check_int("Solver: batch_size", opts["batch_size"]),
        "num_epochs": check_int("Solver: num_epochs", opts["num_epochs"], minimum=0),
        "print_every": check_int("Solver: print_every", opts["print_every"]),
        "num_train_samples": check_int("Solver: num_train_samples", opts["num_train_samples"],
                                       allow_none=True),
        "num_val_samples": check_int("Solver: num_val_samples", opts["num_val_samples"],
                                     allow_none=True),
        "verbose": bool(opts["verbose"]),
        "restore_best": bool(opts["restore_best"]),
        "progress": bool(opts["progress"]),
        "checkpoint_name": (None if opts["checkpoint_name"] is None
                            else os.fspath(opts["checkpoint_name"])),
        "run_info": opts["run_info"],
    }
    if checked["run_info"] is not None:
        try:
            json.dumps(checked["run_info"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"Solver: run_info must be JSON-serialisable ({error})") from None

    lr_decay = opts["lr_decay"]
    if not isinstance(lr_decay, numbers.Real) or not lr_decay > 0:
        raise ValueError(f"Solver: lr_decay must be a positive number, got {lr_decay!r}")
    checked["lr_decay"] = float(lr_decay)

    for name in ("lr_schedule", "augment"):
        if opts[name] is not None and not callable(opts[name]):
            raise ValueError(f"Solver: {name} must be callable or None, got {opts[name]!r}")
        checked[name] = opts[name]

    callbacks = opts["epoch_callbacks"]
    if callable(callbacks):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for callback in callbacks:
        if not callable(callback):
            raise ValueError(f"Solver: epoch_callbacks must hold callables, got {callback!r}")
    checked["epoch_callbacks"] = callbacks

    ema_decay = opts["ema_decay"]
    if ema_decay is not None and (not isinstance(ema_decay, numbers.Real)
                                  or not 0.0 <= ema_decay <= 1.0):
        raise ValueError(f"Solver: ema_decay must be None or in [0, 1], got {ema_decay!r}")
    checked["ema_decay"] = None if ema_decay is None else float(ema_decay)

    rule = opts["update_rule"]
    if isinstance(rule, str):
        if rule not in _UPDATE_RULES:
            raise ValueError(
                f"Solver: unknown update_rule {rule!r}; choose one of "
                f"{sorted(_UPDATE_RULES)} or pass a function"
            )
        checked["update_rule_name"], checked["update_rule"] = rule, _UPDATE_RULES[rule]
    elif callable(rule):
        checked["update_rule_name"] = getattr(rule, "__name__", type(rule).__name__)
        checked["update_rule"] = rule
    else:
        raise ValueError(f"Solver: update_rule must be a name or a function, got {rule!r}")

    optim_config = opts["optim_config"]
    if optim_config is None:
        optim_config = {}
    if not isinstance(optim_config, dict):
        raise ValueError(f"Solver: optim_config must be a dict, got {optim_config!r}")
    checked["optim_config"] = dict(optim_config)

    by_param = opts["param_optim_config"] or {}
    if not isinstance(by_param, dict) or not all(isinstance(c, dict) for c in by_param.values()):
        raise ValueError("Solver: param_optim_config must be a dict of dicts (parameter name -> "
                         f"config entries), got {by_param!r}")
    checked["param_optim_config"] = {name: dict(c) for name, c in by_param.items()}
    return checked


def _base_learning_rate(update_rule, optim_config):
    """The learning rate that schedules scale: from ``optim_config`` or the rule's default.

    Returns
    -------
    float or None
        None when the rule has no ``learning_rate`` (a custom rule).
    """
    given = optim_config.get("learning_rate")
    if given is not None and update_rule not in _UPDATE_RULES.values():
        return float(given)
    # Let the rule check the config and fill in its defaults on a
    # one-element dummy parameter (this is where a typo in optim_config
    # is caught for the built-in rules).
    _, filled = update_rule(np.zeros(1), np.zeros(1), dict(optim_config))
    if "learning_rate" in filled:
        return float(filled["learning_rate"])
    return None


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

"""Tests for convlab.solver: the training loop, its hooks, checkpoints and resume."""

import json
import os

import numpy as np
import pytest

from convlab.runs.checkpoint import find_latest_checkpoint
from convlab.solver import Solver


# --------------------------------------------------------------------------
# Toy models and data
# --------------------------------------------------------------------------

class SoftmaxRegression:
    """Linear softmax classifier: scores = X.reshape(N, D) @ W + b."""

    def __init__(self, input_dim, num_classes, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        self.params = {
            "W": (0.01 * rng.standard_normal((input_dim, num_classes))).astype(dtype),
            "b": np.zeros(num_classes, dtype=dtype),
        }

    def loss(self, X, y=None):
        X = X.reshape(X.shape[0], -1)
        scores = X @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        N = X.shape[0]
        loss = -log_probs[np.arange(N), y].mean()
        dscores = np.exp(log_probs)
        dscores[np.arange(N), y] -= 1
        dscores /= N
        return loss, {"W": X.T @ dscores, "b": dscores.sum(axis=0)}


class CenteredSoftmax(SoftmaxRegression):
    """Softmax regression on centred inputs, with a running mean like batch norm.

    Training batches are centred with their own mean, which also updates a
    running mean; test mode centres with the running mean.  The running mean is
    state outside ``params``, exposed through ``state_dict``/``load_state_dict``.
    """

    def __init__(self, input_dim, num_classes, seed=0):
        super().__init__(input_dim, num_classes, seed)
        self.running_mean = np.zeros(input_dim)

    def loss(self, X, y=None):
        X = X.reshape(X.shape[0], -1)
        if y is None:
            return super().loss(X - self.running_mean)
        mean = X.mean(axis=0)
        self.running_mean = 0.9 * self.running_mean + 0.1 * mean
        return super().loss(X - mean, y)

    def state_dict(self):
        return {"running_mean": self.running_mean.copy()}

    def load_state_dict(self, state):
        self.running_mean = np.array(state["running_mean"], copy=True)


def blobs(num_train=200, num_val=60, dim=5, num_classes=3, seed=0):
    """Gaussian clusters, one per class, offset from the origin."""
    rng = np.random.default_rng(seed)
    centers = 2.0 * rng.standard_normal((num_classes, dim)) + 1.0

    def draw(n):
        y = rng.integers(num_classes, size=n)
        return centers[y] + rng.standard_normal((n, dim)), y

    X_train, y_train = draw(num_train)
    X_val, y_val = draw(num_val)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def make_solver(model=None, data=None, **kwargs):
    data = blobs() if data is None else data
    model = SoftmaxRegression(data["X_train"].shape[1], 3) if model is None else model
    options = dict(update_rule="sgd", optim_config={"learning_rate": 0.1}, batch_size=32,
                   num_epochs=3, verbose=False, progress=False, seed=0)
    options.update(kwargs)
    return Solver(model, data, **options)


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def test_loss_decreases_and_accuracy_beats_chance():
    solver = make_solver(num_epochs=5)
    solver.train()
    first, last = np.mean(solver.loss_history[:5]), np.mean(solver.loss_history[-5:])
    assert last < 0.5 * first
    assert solver.val_acc_history[-1] > 0.8
    assert solver.val_acc_history[0] < solver.val_acc_history[-1]


def test_history_lengths_and_counters():
    solver = make_solver(num_epochs=4)          # 200 // 32 = 6 iterations per epoch
    solver.train()
    assert solver.iterations_per_epoch == 6
    assert solver.epoch == 4 and solver.iteration == 24 == solver.num_iterations
    assert len(solver.loss_history) == len(solver.lr_history) == 24
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 5
    assert len(solver.epoch_time_history) == 4
    assert all(t > 0 for t in solver.epoch_time_history)
    assert solver.best_val_acc == max(solver.val_acc_history)


def test_batch_larger_than_training_set_gives_one_iteration_on_everything():
    seen = []
    solver = make_solver(batch_size=1000, num_epochs=2,
                         augment=lambda X, rng: seen.append(len(X)) or X)
    solver.train()
    assert solver.iterations_per_epoch == 1
    assert seen == [200, 200]


class RecordingModel:
    """Returns a zero loss and gradient, and records the example ids it is fed."""

    def __init__(self):
        self.params = {"w": np.zeros(1)}
        self.batches = []

    def loss(self, X, y=None):
        if y is None:
            return np.zeros((X.shape[0], 2))
        self.batches.append(X[:, 0].astype(int))
        return 0.0, {"w": np.zeros(1)}


def test_each_epoch_visits_a_permutation_without_replacement():
    N, batch = 60, 20
    data = {"X_train": np.arange(N, dtype=float)[:, None], "y_train": np.zeros(N, dtype=int),
            "X_val": np.zeros((4, 1)), "y_val": np.zeros(4, dtype=int)}
    model = RecordingModel()
    solver = make_solver(model, data, batch_size=batch, num_epochs=3)
    solver.train()
    assert len(model.batches) == 9
    orders = []
    for epoch in range(3):
        ids = np.concatenate(model.batches[3 * epoch:3 * epoch + 3])
        np.testing.assert_array_equal(np.sort(ids), np.arange(N))
        orders.append(ids)
    assert not np.array_equal(orders[0], orders[1])


def test_leftover_examples_are_skipped_per_epoch():
    data = {"X_train": np.arange(50, dtype=float)[:, None], "y_train": np.zeros(50, dtype=int),
            "X_val": np.zeros((4, 1)), "y_val": np.zeros(4, dtype=int)}
    model = RecordingModel()
    make_solver(model, data, batch_size=20, num_epochs=1).train()
    ids = np.concatenate(model.batches)
    assert len(ids) == 40 and len(np.unique(ids)) == 40


def test_same_seed_same_run_other_seed_other_run():
    runs = []
    for seed in (3, 3, 4):
        solver = make_solver(seed=seed, num_train_samples=50)
        solver.train()
        runs.append(solver)
    assert runs[0].loss_history == runs[1].loss_history
    assert runs[0].train_acc_history == runs[1].train_acc_history
    np.testing.assert_array_equal(runs[0].model.params["W"], runs[1].model.params["W"])
    assert runs[0].loss_history != runs[2].loss_history


def test_best_params_are_kept_and_loaded_at_the_end():
    data = blobs()
    # Shifted validation labels: the better the model learns, the worse it
    # scores, so the best validation accuracy is the one before training.
    data["y_val"] = (data["y_val"] + 1) % 3
    snapshots = []
    solver = make_solver(data=data, num_epochs=4,
                         epoch_callbacks=[lambda s: snapshots.append(
                             {k: v.copy() for k, v in s.model.params.items()})])
    initial = {k: v.copy() for k, v in solver.model.params.items()}
    solver.train()
    assert solver.val_acc_history[0] > max(solver.val_acc_history[1:])
    assert solver.best_val_acc == solver.val_acc_history[0]
    for name in initial:
        np.testing.assert_array_equal(solver.best_params[name], initial[name])
        np.testing.assert_array_equal(solver.model.params[name], initial[name])
        assert not np.array_equal(snapshots[-1][name], initial[name])


def test_best_params_come_back_with_the_model_state_recorded_with_them():
    # As above, the best validation accuracy is the one before training; the
    # running mean of CenteredSoftmax (zeros then) must come back with the
    # best parameters, or test mode would centre with the wrong statistics.
    data = blobs()
    data["y_val"] = (data["y_val"] + 1) % 3
    model = CenteredSoftmax(5, 3, seed=1)
    solver = make_solver(model, data, num_epochs=3)
    solver.train()
    assert solver.best_val_acc == solver.val_acc_history[0]
    np.testing.assert_array_equal(model.running_mean, np.zeros(5))
    np.testing.assert_array_equal(solver.best_model_state["running_mean"], np.zeros(5))


def test_best_params_are_those_of_the_best_epoch():
    snapshots = []
    solver = make_solver(num_epochs=4, optim_config={"learning_rate": 0.01},
                         epoch_callbacks=[lambda s: snapshots.append(
                             {k: v.copy() for k, v in s.model.params.items()})])
    solver.train()
    best_epoch = int(np.argmax(solver.val_acc_history))
    assert best_epoch >= 1
    for name, value in solver.best_params.items():
        np.testing.assert_array_equal(value, snapshots[best_epoch - 1][name])
        np.testing.assert_array_equal(solver.model.params[name], value)


def test_float32_model_stays_float32():
    data = blobs()
    data["X_train"] = data["X_train"].astype(np.float32)
    data["X_val"] = data["X_val"].astype(np.float32)
    model = SoftmaxRegression(5, 3, dtype=np.float32)
    solver = make_solver(model, data, update_rule="adam", ema_decay=0.9)
    solver.train()
    for name, value in model.params.items():
        assert value.dtype == np.float32
        assert solver.ema_params[name].dtype == np.float32
        assert solver.optim_configs[name]["m"].dtype == np.float32


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def test_quiet_run_prints_nothing(capsys):
    make_solver(verbose=False, progress=False).train()
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_verbose_run_prints_to_stdout(capsys):
    make_solver(verbose=True, progress=False, print_every=5, num_epochs=2).train()
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert [l.split(")")[0] for l in lines if l.startswith("(Iteration")] == \
        ["(Iteration 1 / 12", "(Iteration 6 / 12", "(Iteration 11 / 12"]
    assert [l.split(")")[0] for l in lines if l.startswith("(Epoch")] == \
        ["(Epoch 0 / 2", "(Epoch 1 / 2", "(Epoch 2 / 2"]


def test_progress_bar_goes_to_stderr_only(capsys):
    make_solver(verbose=False, progress=True, num_epochs=1).train()
    out, err = capsys.readouterr()
    assert out == ""
    assert "6/6" in err


# --------------------------------------------------------------------------
# Learning rate, hooks
# --------------------------------------------------------------------------

def test_lr_decay_is_applied_per_epoch():
    solver = make_solver(num_epochs=3, lr_decay=0.5)
    solver.train()
    expected = [0.1] * 6 + [0.05] * 6 + [0.025] * 6
    np.testing.assert_allclose(solver.lr_history, expected, rtol=1e-15)


def test_default_learning_rate_of_the_rule_is_used():
    solver = make_solver(update_rule="adam", optim_config={}, num_epochs=1)
    solver.train()
    assert solver.lr_history == [1e-3] * 6


def test_lr_schedule_is_called_and_replaces_lr_decay():
    calls = []

    def schedule(iteration, num_iterations):
        calls.append((iteration, num_iterations))
        return 1.0 - iteration / num_iterations

    solver = make_solver(num_epochs=2, lr_decay=0.5, lr_schedule=schedule)
    solver.train()
    assert calls == [(i, 12) for i in range(12)]
    np.testing.assert_allclose(solver.lr_history, [0.1 * (1 - i / 12) for i in range(12)],
                               rtol=1e-15)


def test_zero_lr_schedule_freezes_the_parameters():
    solver = make_solver(lr_schedule=lambda i, n: 0.0, update_rule="sgd_momentum")
    before = {k: v.copy() for k, v in solver.model.params.items()}
    solver.train()
    for name in before:
        np.testing.assert_array_equal(solver.model.params[name], before[name])


def test_augment_sees_each_training_batch_and_takes_effect():
    calls = []

    def blank(X, rng):
        calls.append((X.shape, rng))
        return np.zeros_like(X)

    last = {}
    solver = make_solver(num_epochs=2, augment=blank,
                         epoch_callbacks=[lambda s: last.update(
                             {k: v.copy() for k, v in s.model.params.items()})])
    W_before = solver.model.params["W"].copy()
    solver.train()
    assert len(calls) == 12
    assert all(shape == (32, 5) for shape, _ in calls)
    assert all(rng is solver.rng for _, rng in calls)
    # with blank inputs the weights get no gradient; only the bias learns
    np.testing.assert_array_equal(last["W"], W_before)
    assert np.any(last["b"] != 0)


def test_ema_follows_its_recurrence():
    data = blobs()
    reference = make_solver(data=data, num_epochs=2)
    steps = [{k: v.copy() for k, v in reference.model.params.items()}]
    original_step = reference.step

    def recording_step(batch):
        original_step(batch)
        steps.append({k: v.copy() for k, v in reference.model.params.items()})

    reference.step = recording_step
    reference.train()

    solver = make_solver(data=data, num_epochs=2, ema_decay=0.8)
    solver.train()
    # EMA never feeds back into training: the raw trajectory is the same.
    assert solver.loss_history == reference.loss_history
    for name in steps[0]:
        ema = steps[0][name].copy()
        for params in steps[1:]:
            ema = 0.8 * ema + 0.2 * params[name]
        np.testing.assert_allclose(solver.ema_params[name], ema, rtol=1e-12, atol=1e-15)


def test_evaluation_and_best_params_use_the_ema_weights():
    # ema_decay = 1: the average never leaves the initial weights, so every
    # evaluation sees the initial model and the best params are the initial ones.
    solver = make_solver(ema_decay=1.0, num_epochs=3, num_train_samples=None)
    initial = {k: v.copy() for k, v in solver.model.params.items()}
    solver.train()
    assert len(set(solver.val_acc_history)) == 1
    assert len(set(solver.train_acc_history)) == 1
    for name in initial:
        np.testing.assert_array_equal(solver.best_params[name], initial[name])
        np.testing.assert_array_equal(solver.model.params[name], initial[name])


def test_ema_averages_the_model_state_and_evaluates_with_it():
    data = blobs()
    reference = make_solver(CenteredSoftmax(5, 3), data, num_epochs=2)
    means = [reference.model.running_mean.copy()]
    original_step = reference.step

    def recording_step(batch):
        original_step(batch)
        means.append(reference.model.running_mean.copy())

    reference.step = recording_step
    reference.train()

    solver = make_solver(CenteredSoftmax(5, 3), data, num_epochs=2, ema_decay=0.8)
    evaluated = []
    original_evaluate = solver._evaluate

    def recording_evaluate():
        with solver.evaluation_params():
            evaluated.append(solver.model.running_mean.copy())
        original_evaluate()

    solver._evaluate = recording_evaluate
    solver.train()
    ema = means[0].copy()
    for mean in means[1:]:
        ema = 0.8 * ema + 0.2 * mean
    np.testing.assert_allclose(solver.ema_state["running_mean"], ema, rtol=1e-12, atol=1e-15)
    # evaluation sees the averaged running mean, training the raw one
    np.testing.assert_array_equal(evaluated[-1], solver.ema_state["running_mean"])
    assert not np.allclose(means[-1], ema)
    # train() ends with the best (averaged) parameters and their averaged state
    np.testing.assert_array_equal(solver.model.running_mean,
                                  solver.best_model_state["running_mean"])


def test_evaluation_and_best_state_use_the_averaged_state():
    # ema_decay = 1: the averaged running mean never leaves its initial zeros,
    # so every evaluation centres with zeros, and train() ends with them.
    solver = make_solver(CenteredSoftmax(5, 3), ema_decay=1.0, num_epochs=3, num_train_samples=None)
    solver.train()
    assert len(set(solver.val_acc_history)) == 1
    np.testing.assert_array_equal(solver.best_model_state["running_mean"], np.zeros(5))
    np.testing.assert_array_equal(solver.model.running_mean, np.zeros(5))


def test_ema_leaves_constant_state_exactly_unchanged():
    class FrozenState(SoftmaxRegression):
        def __init__(self):
            super().__init__(5, 3)
            self.frozen = np.array([0.1, 1 / 3, np.pi], dtype=np.float32)

        def state_dict(self):
            return {"frozen": self.frozen.copy()}

        def load_state_dict(self, state):
            self.frozen = np.array(state["frozen"], copy=True)

    solver = make_solver(FrozenState(), ema_decay=0.7)
    solver.train()
    np.testing.assert_array_equal(solver.ema_state["frozen"], solver.model.frozen)
    assert solver.ema_state["frozen"].dtype == np.float32


def test_epoch_callbacks_and_stop_training():
    seen = []

    def record(solver):
        seen.append((solver.epoch, len(solver.val_acc_history)))

    def stop_after_two(solver):
        if solver.epoch == 2:
            solver.stop_training = True

    solver = make_solver(num_epochs=5, epoch_callbacks=[record, stop_after_two])
    solver.train()
    assert seen == [(1, 2), (2, 3)]
    assert solver.epoch == 2


def test_callable_update_rule():
    def halving(w, dw, config=None):
        config = {} if config is None else config
        return w - 0.5 * dw, config

    solver = make_solver(update_rule=halving, optim_config={})
    solver.train()
    assert solver.base_learning_rate is None
    assert np.all(np.isnan(solver.lr_history))
    assert solver.val_acc_history[-1] > 0.8


# Issue 27: a parameter's own optimizer settings come in through the Solver,
# not by reaching into solver.optim_configs afterwards.
def test_param_optim_config_changes_only_the_parameters_it_names():
    options = dict(update_rule="sgd_momentum", optim_config={"learning_rate": 0.1, "momentum": 0.9})
    plain = make_solver(**options)
    slowed = make_solver(**options, param_optim_config={"b": {"momentum": 0.0}})
    assert slowed.optim_configs["b"] == {"learning_rate": 0.1, "momentum": 0.0}
    assert slowed.optim_configs["W"] == plain.optim_configs["W"] == options["optim_config"]
    plain.train()
    slowed.train()
    assert slowed.optim_configs["b"]["momentum"] == 0.0 and slowed.optim_configs["W"]["momentum"] == 0.9
    assert not np.array_equal(slowed.model.params["b"], plain.model.params["b"])
    with pytest.raises(ValueError, match=r"param_optim_config names no parameter.*\['b9'\]"):
        make_solver(param_optim_config={"b9": {"momentum": 0.0}})
    with pytest.raises(ValueError, match="param_optim_config must be a dict of dicts"):
        make_solver(param_optim_config={"b": 0.0})


def test_check_accuracy_and_predict():
    solver = make_solver()
    solver.train()
    data = blobs()
    y_pred = solver.predict(data["X_val"], batch_size=7)
    assert y_pred.shape == (60,)
    np.testing.assert_array_equal(y_pred, np.argmax(solver.model.loss(data["X_val"]), axis=1))
    assert solver.check_accuracy(data["X_val"], data["y_val"]) == np.mean(y_pred == data["y_val"])
    sub = solver.check_accuracy(data["X_val"], data["y_val"], num_samples=20)
    assert sub * 20 == round(sub * 20)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------

def test_unknown_kwargs_are_named():
    with pytest.raises(ValueError, match=r"\['learnig_rate', 'num_epoch'\]"):
        make_solver(num_epoch=3, learnig_rate=0.1)


def test_unknown_update_rule():
    with pytest.raises(ValueError, match="'adamw'"):
        make_solver(update_rule="adamw")


def test_bad_optim_config_is_caught_at_construction():
    with pytest.raises(ValueError, match="momentun"):
        make_solver(update_rule="sgd_momentum", optim_config={"learning_rate": 0.1,
                                                              "momentun": 0.9})


def test_mismatched_lengths_name_the_shapes():
    data = blobs()
    data["y_train"] = data["y_train"][:-1]
    with pytest.raises(ValueError, match=r"X_train has shape \(200, 5\).*\(199,\)"):
        make_solver(data=data)
    data = blobs()
    data["y_val"] = data["y_val"][:, None]
    with pytest.raises(ValueError, match=r"y_val has shape \(60, 1\)"):
        make_solver(data=data)


def test_missing_data_and_bad_settings():
    data = blobs()
    del data["X_val"]
    with pytest.raises(ValueError, match="X_val"):
        make_solver(data=data)
    with pytest.raises(ValueError, match="batch_size"):
        make_solver(batch_size=0)
    with pytest.raises(ValueError, match="ema_decay"):
        make_solver(ema_decay=1.5)
    with pytest.raises(ValueError, match="lr_schedule"):
        make_solver(lr_schedule=0.5)
    with pytest.raises(ValueError, match="params"):
        Solver(object(), blobs())


def test_check_accuracy_mismatch():
    solver = make_solver()
    with pytest.raises(ValueError, match=r"\(10, 5\).*\(9,\)"):
        solver.check_accuracy(np.zeros((10, 5)), np.zeros(9, dtype=int))


# --------------------------------------------------------------------------
# Checkpoints and resume
# --------------------------------------------------------------------------

def augment_flip_noise(X, rng):
    """A toy augmentation that draws from the solver's generator."""
    signs = rng.choice([-1.0, 1.0], size=(X.shape[0], 1))
    return X * signs + 0.1 * rng.standard_normal(X.shape)


def warmup_cosine(iteration, num_iterations):
    warm = 5
    if iteration < warm:
        return (iteration + 1) / warm
    return 0.5 * (1 + np.cos(np.pi * (iteration - warm) / (num_iterations - warm)))


RESUME_OPTIONS = dict(update_rule="adam", optim_config={"learning_rate": 0.05,
                                                         "weight_decay": 1e-3},
                      batch_size=16, num_epochs=5, num_train_samples=50,
                      lr_schedule=warmup_cosine, augment=augment_flip_noise, ema_decay=0.9)


def assert_same_run(a, b):
    assert a.epoch == b.epoch and a.iteration == b.iteration
    assert a.loss_history == b.loss_history
    assert a.lr_history == b.lr_history
    assert a.train_acc_history == b.train_acc_history
    assert a.val_acc_history == b.val_acc_history
    assert a.best_val_acc == b.best_val_acc
    for name in a.model.params:
        np.testing.assert_array_equal(a.model.params[name], b.model.params[name])
        np.testing.assert_array_equal(a.best_params[name], b.best_params[name])
        np.testing.assert_array_equal(a.ema_params[name], b.ema_params[name])
    assert (a.ema_state is None) == (b.ema_state is None)
    for key in a.ema_state or {}:
        np.testing.assert_array_equal(a.ema_state[key], b.ema_state[key])
        for key, value in a.optim_configs[name].items():
            np.testing.assert_array_equal(value, b.optim_configs[name][key])
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


@pytest.mark.parametrize("model_class", [SoftmaxRegression, CenteredSoftmax])
def test_resumed_run_equals_uninterrupted_run(tmp_path, model_class):
    data = blobs()
    full = make_solver(model_class(5, 3, seed=1), data, seed=7, **RESUME_OPTIONS)
    full.train()

    def stop_after_two(solver):
        if solver.epoch == 2:
            solver.stop_training = True

    prefix = tmp_path / "run" / "ckpt"
    first = make_solver(model_class(5, 3, seed=1), data, seed=7, checkpoint_name=prefix,
                        epoch_callbacks=[stop_after_two], **RESUME_OPTIONS)
    first.train()
    assert first.epoch == 2
    path = find_latest_checkpoint(prefix)
    assert path == f"{prefix}_epoch_2.npz"
    assert sorted(os.listdir(tmp_path / "run")) == ["ckpt_epoch_1.npz", "ckpt_epoch_2.npz"]

    # a fresh model with other initial weights and a solver with another seed:
    # everything that matters must come from the checkpoint
    resumed = make_solver(model_class(5, 3, seed=99), data, seed=123, resume_from=path,
                          **RESUME_OPTIONS)
    assert resumed.epoch == 2 and resumed.iteration == 24
    resumed.train()
    assert_same_run(full, resumed)
    assert full.epoch_time_history[:2] != resumed.epoch_time_history[2:]
    assert len(resumed.epoch_time_history) == 5
    if model_class is CenteredSoftmax:
        np.testing.assert_array_equal(full.model.running_mean, resumed.model.running_mean)


# Issue 27: the Solver's state as a dict, like a model's (state_dict / load_state_dict).
@pytest.mark.parametrize("model_class", [SoftmaxRegression, CenteredSoftmax])
def test_state_dict_round_trip_continues_the_run_exactly(model_class):
    data = blobs()
    full = make_solver(model_class(5, 3, seed=1), data, seed=7, **RESUME_OPTIONS)
    full.train()

    states = []

    def stop_after_two(solver):
        if solver.epoch == 2:
            # where a checkpoint is taken: train() then replaces the weights with the best ones
            states.append(solver.state_dict())
            solver.stop_training = True

    first = make_solver(model_class(5, 3, seed=1), data, seed=7, epoch_callbacks=[stop_after_two],
                        **RESUME_OPTIONS)
    first.train()
    state, = states
    # copies: changing the solver afterwards does not change the state, nor the reverse
    first.model.params["W"] += 1.0
    first.optim_configs["W"]["m"] += 1.0
    first.loss_history.append(0.0)
    resumed = make_solver(model_class(5, 3, seed=99), data, seed=123, **RESUME_OPTIONS)
    resumed.load_state_dict(state)
    state["params"]["W"] += 1.0
    assert resumed.epoch == 2 and resumed.iteration == 24
    resumed.train()
    assert_same_run(full, resumed)


def test_load_state_dict_refuses_a_state_that_does_not_fit():
    state = make_solver(num_epochs=1).state_dict()
    with pytest.raises(ValueError, match="the state was written with batch_size=32 but this "
                                         "solver has batch_size=20"):
        make_solver(batch_size=20).load_state_dict(state)
    with pytest.raises(ValueError, match=r"params entry 'W' has shape \(5, 3\) .* in the state "
                                         r"but shape \(5, 4\)"):
        make_solver(SoftmaxRegression(5, 4)).load_state_dict(state)


class Recorder:
    """An epoch callback keeping copies of what the solver evaluated after each epoch."""

    def __init__(self):
        self.params, self.state = [], []

    def __call__(self, solver):
        with solver.evaluation_params():
            self.params.append({k: v.copy() for k, v in solver.model.params.items()})
            self.state.append(solver.model.state_dict())


@pytest.mark.parametrize("ema_decay", [None, 0.5])
def test_restore_best_false_ends_with_what_the_last_epoch_evaluated(ema_decay):
    data = blobs()
    # a learning rate so large that the best epoch is not the last one
    options = dict(optim_config={"learning_rate": 30.0}, num_epochs=6, ema_decay=ema_decay,
                   batch_size=16)
    best = make_solver(CenteredSoftmax(5, 3, seed=1), data, **options)
    best.train()
    last_epoch = len(best.val_acc_history) - 1
    assert best.val_acc_history.index(best.best_val_acc) < last_epoch     # the case that matters
    recorder = Recorder()
    last = make_solver(CenteredSoftmax(5, 3, seed=1), data, restore_best=False,
                       epoch_callbacks=[recorder], **options)
    last.train()
    assert last.val_acc_history == best.val_acc_history
    for name in last.model.params:
        np.testing.assert_array_equal(best.model.params[name], best.best_params[name])
        np.testing.assert_array_equal(last.model.params[name], recorder.params[-1][name])
        assert not np.array_equal(last.model.params[name], best.model.params[name])
    np.testing.assert_array_equal(last.model.running_mean, recorder.state[-1]["running_mean"])
    np.testing.assert_array_equal(best.model.running_mean, best.best_model_state["running_mean"])


def test_resume_method_and_checkpoint_contents(tmp_path):
    data = blobs()
    solver = make_solver(data=data, seed=5, **RESUME_OPTIONS)
    solver.num_epochs = 1
    solver.train()
    path = tmp_path / "after_one.npz"
    solver.save_checkpoint(path)
    assert os.listdir(tmp_path) == ["after_one.npz"]     # no temporary file left

    with np.load(path, allow_pickle=False) as archive:
        files = set(archive.files)
        meta = json.loads(str(archive["meta"]))
    assert {"meta", "params/W", "params/b", "best/W", "ema/W",
            "optim/W/m", "optim/W/v", "optim/b/m"} <= files
    assert meta["format"] == "convlab-solver-checkpoint" and meta["version"] == 2
    assert meta["epoch"] == 1 and meta["iteration"] == 12
    assert meta["optim_scalars"]["W"]["t"] == 12
    assert meta["rng"] == solver.rng.bit_generator.state

    other = make_solver(SoftmaxRegression(5, 3, seed=42), data, seed=0, **RESUME_OPTIONS)
    other.num_epochs = 1
    other.resume(path)
    assert_same_run(solver, other)


def test_resume_rejects_mismatches(tmp_path):
    data = blobs()
    solver = make_solver(data=data, num_epochs=1)
    solver.train()
    path = tmp_path / "ckpt.npz"
    solver.save_checkpoint(path)
    with pytest.raises(ValueError, match="batch_size"):
        make_solver(data=data, batch_size=20, resume_from=path)
    with pytest.raises(ValueError, match=r"'W'.*\(5, 3\).*\(5, 4\)"):
        make_solver(SoftmaxRegression(5, 4), data, resume_from=path)
    with pytest.raises(ValueError, match="load_state_dict"):
        make_solver(CenteredSoftmax(5, 3), data, resume_from=path)
    with pytest.raises(ValueError, match="update_rule"):
        make_solver(data=data, update_rule="adam", resume_from=path)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="broken.npz"):
        make_solver(data=data, resume_from=broken)


def test_unstorable_config_entry_is_an_error(tmp_path):
    solver = make_solver()
    solver.optim_configs["W"]["note"] = object()
    with pytest.raises(ValueError, match="note"):
        solver.save_checkpoint(tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_interrupted_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    solver = make_solver(num_epochs=1)
    solver.train()
    path = tmp_path / "ckpt.npz"
    solver.save_checkpoint(path)
    good = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        solver.save_checkpoint(path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert path.read_bytes() == good


# --------------------------------------------------------------------------
# Overfitting 100 CIFAR-10 images (the course's sanity check)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_cifar():
    if not os.environ.get("CONVLAB_DATA"):
        pytest.skip("CONVLAB_DATA is not set; point it at a directory holding "
                    "cifar-10-batches-py/ to run the CIFAR-10 overfitting test")
    from convlab.data_utils import get_CIFAR10_data

    # 100 validation images (not the course's 1,000) keep the eleven
    # evaluations of the run cheap; they are only a contrast to the training set.
    data = get_CIFAR10_data(num_training=100, num_validation=100, num_test=10)
    return {key: data[key] for key in ("X_train", "y_train", "X_val", "y_val")}


def test_overfits_100_cifar10_images(small_cifar):
    # imported here so that the rest of this file needs no compiled kernels
    from convlab.classifiers.three_layer_convnet import ThreeLayerConvNet

    model = ThreeLayerConvNet(weight_scale=1e-2, seed=0)
    solver = Solver(model, small_cifar, num_epochs=10, batch_size=50, update_rule="adam",
                    optim_config={"learning_rate": 1e-3}, verbose=False, progress=False,
                    seed=0)
    solver.train()
    assert solver.train_acc_history[-1] >= 0.9
    assert solver.train_acc_history[0] < 0.3
    # memorizing 100 images says little about other images
    assert solver.val_acc_history[-1] < 0.5


# --------------------------------------------------------------------------
# Divergence (issue 26, row 7)
# --------------------------------------------------------------------------

class BlowsUp(SoftmaxRegression):
    """Softmax regression whose loss is ``bad`` from call ``at`` (1-based) on."""

    def __init__(self, input_dim, num_classes, at, bad):
        super().__init__(input_dim, num_classes)
        self.at, self.bad, self.calls = at, bad, 0

    def loss(self, X, y=None):
        if y is None:
            return super().loss(X)
        self.calls += 1
        loss, grads = super().loss(X, y)
        if self.calls == self.at:
            self.params_at_bad_call = {k: v.copy() for k, v in self.params.items()}
        return (self.bad if self.calls >= self.at else loss), grads


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_loss_stops_training_before_the_update(tmp_path, bad):
    from convlab.solver import DivergedError
    data = blobs()
    model = BlowsUp(data["X_train"].shape[1], 3, at=9, bad=bad)       # epoch 2, iteration 9
    solver = make_solver(model, data, checkpoint_name=tmp_path / "ck")
    with pytest.raises(DivergedError, match=f"the training loss became {float(bad)} at "
                                            "iteration 9 \\(epoch 2\\): training diverged"):
        solver.train()
    assert solver.iteration == 8 and len(solver.loss_history) == 8
    assert all(np.isfinite(solver.loss_history))
    # iteration 9's update never happened: the weights are those after iteration 8
    for name, value in model.params_at_bad_call.items():
        np.testing.assert_array_equal(model.params[name], value)
    assert sorted(os.listdir(tmp_path)) == ["ck_epoch_1.npz"]      # none of the broken epoch


def test_resume_refuses_a_checkpoint_holding_nan(tmp_path):
    solver = make_solver(num_epochs=1)
    solver.train()
    solver.model.params["W"][0, 1] = np.nan
    solver.save_checkpoint(tmp_path / "nan.npz")
    other = make_solver()
    with pytest.raises(ValueError, match=f"Solver.resume: checkpoint {tmp_path / 'nan.npz'} "
                                         "holds NaN or infinite values in params/W"):
        other.resume(tmp_path / "nan.npz")

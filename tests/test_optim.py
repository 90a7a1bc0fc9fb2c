"""Tests for convlab.optim: hand-computed steps, convergence, dtype and state."""

import math

import numpy as np
import pytest

from convlab import optim

RULES = ["sgd", "sgd_momentum", "nesterov_sgd", "rmsprop", "adam", "adagrad", "adadelta"]


# --------------------------------------------------------------------------
# One or two steps against numbers worked out by hand
# --------------------------------------------------------------------------

def test_sgd_one_step():
    w = np.array([1.0, -2.0])
    dw = np.array([0.5, 1.0])
    next_w, config = optim.sgd(w, dw, {"learning_rate": 0.1})
    np.testing.assert_allclose(next_w, [1.0 - 0.05, -2.0 - 0.1], rtol=1e-15)
    assert config["learning_rate"] == 0.1


def test_sgd_default_learning_rate_is_filled_in():
    next_w, config = optim.sgd(np.array([1.0]), np.array([1.0]))
    assert config["learning_rate"] == 1e-2
    assert config["weight_decay"] == 0.0
    np.testing.assert_allclose(next_w, [0.99], rtol=1e-15)


def test_momentum_one_step_from_given_velocity():
    w = np.array([1.0, -2.0])
    dw = np.array([0.5, 1.0])
    config = {"learning_rate": 0.1, "momentum": 0.9, "velocity": np.array([0.2, 0.0])}
    next_w, config = optim.sgd_momentum(w, dw, config)
    # v = 0.9 * [0.2, 0] - 0.1 * [0.5, 1] = [0.13, -0.1]
    np.testing.assert_allclose(config["velocity"], [0.13, -0.1], rtol=1e-12)
    np.testing.assert_allclose(next_w, [1.13, -2.1], rtol=1e-12)


def test_nesterov_one_step_from_given_velocity():
    w = np.array([1.0, -2.0])
    dw = np.array([0.5, 1.0])
    config = {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True,
              "velocity": np.array([0.2, 0.0])}
    next_w, config = optim.sgd_momentum(w, dw, config)
    # same new velocity [0.13, -0.1]; w + 0.9 * v - 0.1 * dw
    np.testing.assert_allclose(config["velocity"], [0.13, -0.1], rtol=1e-12)
    np.testing.assert_allclose(next_w, [1.0 + 0.117 - 0.05, -2.0 - 0.09 - 0.1], rtol=1e-12)


def test_nesterov_sgd_scales_the_learning_rate_but_not_the_decay():
    w = np.ones(3)
    dw = np.full(3, 0.5)
    base = {"learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.01}
    w1, c1 = optim.nesterov_sgd(w, dw, dict(base))
    w64, c64 = optim.nesterov_sgd(w, dw, dict(base, lr_scale=64.0))
    # Nesterov from rest: step = -(1 + mu) * lr * dw, plus decay -lr * wd * w.
    assert np.allclose(w1, 1 - 1.9 * 0.1 * 0.5 - 0.1 * 0.01)
    assert np.allclose(w64, 1 - 1.9 * 6.4 * 0.5 - 0.1 * 0.01)
    assert c64["lr_scale"] == 64.0 and c64["learning_rate"] == 0.1 and c64["weight_decay"] == 0.01


def test_momentum_and_nesterov_two_steps_on_constant_gradient():
    w0 = np.array([0.0])
    dw = np.array([1.0])
    classic = {"learning_rate": 0.1, "momentum": 0.9}
    nesterov = dict(classic, nesterov=True)
    w_c, w_n = w0, w0
    for _ in range(2):
        w_c, classic = optim.sgd_momentum(w_c, dw, classic)
        w_n, nesterov = optim.sgd_momentum(w_n, dw, nesterov)
    # classic: v1 = -0.1, v2 = -0.19; w2 = -0.1 - 0.19
    np.testing.assert_allclose(w_c, [-0.29], rtol=1e-12)
    # Nesterov: w1 = 0.9 * -0.1 - 0.1 = -0.19; w2 = w1 + 0.9 * -0.19 - 0.1
    np.testing.assert_allclose(w_n, [-0.19 - 0.171 - 0.1], rtol=1e-12)
    # both keep the same velocity sequence
    np.testing.assert_allclose(classic["velocity"], nesterov["velocity"], rtol=1e-15)


def test_nesterov_differs_from_classic_exactly_by_the_lookahead_term():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4))
    dw = rng.standard_normal((3, 4))
    v = rng.standard_normal((3, 4))
    base = {"learning_rate": 0.05, "momentum": 0.8, "velocity": v}
    w_c, cfg = optim.sgd_momentum(w, dw, base)
    w_n, _ = optim.sgd_momentum(w, dw, dict(base, nesterov=True))
    new_v = cfg["velocity"]
    # classic adds v; Nesterov adds mu * v - lr * dw
    np.testing.assert_allclose(w_n - w_c, (0.8 * new_v - 0.05 * dw) - new_v, atol=1e-14)
    assert not np.allclose(w_n, w_c)


def test_rmsprop_one_step():
    next_w, config = optim.rmsprop(np.array([1.0]), np.array([2.0]),
                                   {"learning_rate": 0.01, "epsilon": 0.0})
    # cache = 0.01 * 4 = 0.04; step = 0.01 * 2 / 0.2 = 0.1
    np.testing.assert_allclose(config["cache"], [0.04], rtol=1e-12)
    np.testing.assert_allclose(next_w, [0.9], rtol=1e-12)
    assert config["decay_rate"] == 0.99


def test_rmsprop_two_steps():
    cfg = {"learning_rate": 0.01, "decay_rate": 0.5, "epsilon": 0.0}
    w, cfg = optim.rmsprop(np.array([1.0]), np.array([2.0]), cfg)
    w, cfg = optim.rmsprop(w, np.array([1.0]), cfg)
    # cache1 = 0.5 * 4 = 2; cache2 = 0.5 * 2 + 0.5 * 1 = 1.5
    np.testing.assert_allclose(cfg["cache"], [1.5], rtol=1e-12)
    expected = 1.0 - 0.01 * 2 / math.sqrt(2.0) - 0.01 * 1 / math.sqrt(1.5)
    np.testing.assert_allclose(w, [expected], rtol=1e-12)


def test_adam_first_step_is_learning_rate_times_sign():
    w = np.array([1.0, 1.0])
    dw = np.array([3.0, -0.02])
    next_w, config = optim.adam(w, dw, {"learning_rate": 0.1, "epsilon": 0.0})
    # bias correction makes m_hat = dw and v_hat = dw**2 on the first step
    np.testing.assert_allclose(next_w, [0.9, 1.1], rtol=1e-12)
    assert config["t"] == 1
    np.testing.assert_allclose(config["m"], [0.3, -0.002], rtol=1e-12)
    np.testing.assert_allclose(config["v"], [0.009, 0.001 * 0.0004], rtol=1e-12)


def test_adam_two_steps():
    cfg = {"learning_rate": 0.1, "epsilon": 0.0}
    w, cfg = optim.adam(np.array([1.0]), np.array([3.0]), cfg)
    w, cfg = optim.adam(w, np.array([1.0]), cfg)
    m2 = 0.9 * 0.3 + 0.1 * 1.0                 # 0.37
    v2 = 0.999 * 0.009 + 0.001 * 1.0           # 0.009991
    m_hat = m2 / (1 - 0.9 ** 2)
    v_hat = v2 / (1 - 0.999 ** 2)
    np.testing.assert_allclose(w, [0.9 - 0.1 * m_hat / math.sqrt(v_hat)], rtol=1e-12)
    assert cfg["t"] == 2
    np.testing.assert_allclose(cfg["m"], [m2], rtol=1e-12)
    np.testing.assert_allclose(cfg["v"], [v2], rtol=1e-12)


def test_adagrad_two_steps():
    cfg = {"learning_rate": 0.1, "epsilon": 0.0}
    w, cfg = optim.adagrad(np.array([1.0]), np.array([2.0]), cfg)
    np.testing.assert_allclose(w, [0.9], rtol=1e-12)           # cache 4, step 0.1
    w, cfg = optim.adagrad(w, np.array([2.0]), cfg)
    np.testing.assert_allclose(cfg["cache"], [8.0], rtol=1e-12)
    np.testing.assert_allclose(w, [0.9 - 0.2 / math.sqrt(8.0)], rtol=1e-12)


def test_adadelta_two_steps():
    cfg = {"decay_rate": 0.9, "epsilon": 0.01}
    w, cfg = optim.adadelta(np.array([1.0]), np.array([2.0]), cfg)
    g1 = 0.1 * 4.0
    step1 = -math.sqrt(0.0 + 0.01) / math.sqrt(g1 + 0.01) * 2.0
    d1 = 0.1 * step1 ** 2
    np.testing.assert_allclose(w, [1.0 + step1], rtol=1e-12)
    np.testing.assert_allclose(cfg["cache"], [g1], rtol=1e-12)
    np.testing.assert_allclose(cfg["delta"], [d1], rtol=1e-12)
    assert cfg["learning_rate"] == 1.0
    w, cfg = optim.adadelta(w, np.array([-1.0]), cfg)
    g2 = 0.9 * g1 + 0.1 * 1.0
    step2 = -math.sqrt(d1 + 0.01) / math.sqrt(g2 + 0.01) * -1.0
    np.testing.assert_allclose(w, [1.0 + step1 + step2], rtol=1e-12)
    np.testing.assert_allclose(cfg["delta"], [0.9 * d1 + 0.1 * step2 ** 2], rtol=1e-12)


def test_adadelta_learning_rate_scales_the_step():
    w = np.array([1.0, -1.0])
    dw = np.array([0.3, 0.7])
    w1, _ = optim.adadelta(w, dw)
    w_half, _ = optim.adadelta(w, dw, {"learning_rate": 0.5})
    np.testing.assert_allclose(w_half - w, 0.5 * (w1 - w), rtol=1e-12)


# --------------------------------------------------------------------------
# Weight decay (decoupled)
# --------------------------------------------------------------------------

def test_sgd_weight_decay_shrinks_by_lr_times_decay():
    next_w, _ = optim.sgd(np.array([2.0]), np.array([0.0]),
                          {"learning_rate": 0.5, "weight_decay": 0.1})
    np.testing.assert_allclose(next_w, [2.0 - 0.5 * 0.1 * 2.0], rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_weight_decay_stays_out_of_the_velocity(nesterov):
    cfg = {"learning_rate": 0.5, "weight_decay": 0.1, "nesterov": nesterov}
    next_w, cfg = optim.sgd_momentum(np.array([2.0]), np.array([0.0]), cfg)
    np.testing.assert_allclose(next_w, [1.9], rtol=1e-12)
    np.testing.assert_array_equal(cfg["velocity"], [0.0])


def test_adam_weight_decay_is_decoupled():
    # a zero gradient gives a zero Adam step, so only the decay moves w;
    # coupled decay would have produced a step of size learning_rate instead
    next_w, cfg = optim.adam(np.array([2.0]), np.array([0.0]),
                             {"learning_rate": 0.5, "weight_decay": 0.1})
    np.testing.assert_allclose(next_w, [1.9], rtol=1e-12)
    np.testing.assert_array_equal(cfg["m"], [0.0])
    np.testing.assert_array_equal(cfg["v"], [0.0])


# --------------------------------------------------------------------------
# Convergence on a quadratic bowl with uneven curvature
# --------------------------------------------------------------------------

CONVERGENCE = {
    "sgd": {"learning_rate": 0.2},
    "sgd_momentum": {"learning_rate": 0.05, "momentum": 0.9},
    "sgd_momentum_nesterov": {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
    "rmsprop": {"learning_rate": 1e-2},
    "adam": {"learning_rate": 5e-2},
    "adagrad": {"learning_rate": 0.5},
    "adadelta": {"epsilon": 1e-4},
}


@pytest.mark.parametrize("name", sorted(CONVERGENCE))
def test_each_rule_converges_on_a_quadratic(name):
    curvature = np.array([[0.5, 1.0, 2.0], [4.0, 1.5, 3.0]])
    center = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])

    def loss_and_grad(w):
        diff = w - center
        return 0.5 * np.sum(curvature * diff * diff), curvature * diff

    rule = getattr(optim, name.replace("_nesterov", ""))
    config = dict(CONVERGENCE[name])
    w = np.zeros_like(center)
    start, _ = loss_and_grad(w)
    for _ in range(1000):
        _, dw = loss_and_grad(w)
        w, config = rule(w, dw, config)
    end, _ = loss_and_grad(w)
    assert end < 1e-4 * start, (name, start, end)
    np.testing.assert_allclose(w, center, atol=0.05)


# --------------------------------------------------------------------------
# dtype, shapes, state and bad input
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
def test_float32_stays_float32(name, grad_dtype):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    dw = rng.standard_normal((4, 5)).astype(grad_dtype)
    config = None
    for _ in range(3):
        w, config = getattr(optim, name)(w, dw, config)
        assert w.dtype == np.float32 and w.shape == (4, 5)
        for value in config.values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32 and value.shape == (4, 5)


@pytest.mark.parametrize("name", RULES)
def test_float64_stays_float64_and_does_not_modify_inputs(name):
    rng = np.random.default_rng(2)
    w = rng.standard_normal(6)
    dw = rng.standard_normal(6)
    w_copy, dw_copy = w.copy(), dw.copy()
    _, config = getattr(optim, name)(w, dw, {"learning_rate": 1e-3})
    config_snapshot = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                       for k, v in config.items()}
    given = dict(config)
    next_w, next_config = getattr(optim, name)(w, dw, given)
    assert next_w.dtype == np.float64
    np.testing.assert_array_equal(w, w_copy)
    np.testing.assert_array_equal(dw, dw_copy)
    assert given.keys() == config_snapshot.keys()
    for key, value in config_snapshot.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(given[key], value)
        else:
            assert given[key] == value
    assert next_config is not given


def test_state_advances():
    w, dw = np.ones(3), np.full(3, 0.5)
    cfg = None
    for step in range(1, 4):
        w, cfg = optim.adam(w, dw, cfg)
        assert cfg["t"] == step
    cfg = None
    velocities = []
    for _ in range(3):
        w, cfg = optim.sgd_momentum(w, dw, cfg)
        velocities.append(cfg["velocity"].copy())
    # constant gradient: v_k = -lr * dw * (1 + mu + ... + mu^(k-1))
    np.testing.assert_allclose(velocities[2], -1e-2 * 0.5 * (1 + 0.9 + 0.81) * np.ones(3),
                               rtol=1e-12)


@pytest.mark.parametrize("name", RULES)
def test_mismatched_shapes_raise(name):
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        getattr(optim, name)(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("name", RULES)
def test_unknown_config_key_raises(name):
    with pytest.raises(ValueError, match="learning_rte"):
        getattr(optim, name)(np.zeros(3), np.zeros(3), {"learning_rte": 0.1})


def test_negative_learning_rate_raises():
    with pytest.raises(ValueError, match="learning_rate"):
        optim.sgd(np.zeros(3), np.zeros(3), {"learning_rate": -1.0})


def test_state_with_wrong_shape_raises():
    with pytest.raises(ValueError, match="velocity"):
        optim.sgd_momentum(np.zeros(3), np.zeros(3), {"velocity": np.zeros(4)})


def test_integer_parameters_raise():
    with pytest.raises(ValueError, match="dtype"):
        optim.sgd(np.zeros(3, dtype=np.int64), np.zeros(3))

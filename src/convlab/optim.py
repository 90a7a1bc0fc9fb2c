"""First-order update rules.

Every rule has the same signature::

    next_w, config = rule(w, dw, config=None)

Parameters
----------
w : ndarray of any shape
    The current value of one parameter array.
dw : ndarray of the same shape as ``w``
    The gradient of the loss with respect to ``w``.
config : dict or None
    Hyperparameters (``learning_rate``, ...) and the rule's running state
    (velocities, moment estimates, step counter).  Missing entries are filled
    with the defaults listed in each rule's docstring.  The dictionary passed in
    is not modified: a new one is returned.

Returns
-------
next_w : ndarray of the same shape and dtype as ``w``
    The updated parameter.
config : dict
    The configuration to pass to the next call for the same parameter.  State
    arrays have the shape and dtype of ``w``.

A training loop keeps one ``config`` per parameter array, because the state of
momentum, RMSProp, Adam, AdaGrad and AdaDelta is per element of that array.

The dtype of ``w`` is kept: a float32 parameter stays float32 (its state arrays
are float32 too), so a network trained in single precision stays there.

Weight decay
------------
``sgd``, ``sgd_momentum`` and ``adam`` accept ``weight_decay`` (default 0).  It
is applied *decoupled* (Loshchilov & Hutter, 2019): the parameter shrinks by
``learning_rate * weight_decay * w`` directly, and the decay term never enters
the velocity or the moment estimates.  For plain SGD this is the same as adding
``weight_decay * w`` to the gradient; for momentum and Adam it is not (with
Adam, coupled decay would be divided by the adaptive denominator).  Because the
shrinkage is scaled by the learning rate, it follows any learning-rate schedule.
``nesterov_sgd`` adds a per-parameter learning-rate multiplier that leaves the
decay alone.
"""

import numpy as np

__all__ = ["sgd", "sgd_momentum", "nesterov_sgd", "rmsprop", "adam", "adagrad", "adadelta"]


def _prepare(name, w, dw, config, defaults):
    """Check the arrays, copy ``config`` and fill in its defaults.

    Parameters
    ----------
    name : str
        Name of the update rule, used in error messages.
    w, dw : ndarray of the same shape
        Parameter and gradient.
    config : dict or None
        User configuration; unknown keys are an error (they are usually typos).
    defaults : dict
        Default value for every key the rule understands.

    Returns
    -------
    w, dw : ndarray
    config : dict
        A new dictionary with every key of ``defaults`` present.
    """
    w = np.asarray(w)
    dw = np.asarray(dw)
    if not np.issubdtype(w.dtype, np.floating):
        raise ValueError(f"{name}: w must be a floating-point array, got dtype {w.dtype}")
    if w.shape != dw.shape:
        raise ValueError(f"{name}: w has shape {w.shape} but dw has shape {dw.shape}")
    config = {} if config is None else dict(config)
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(
            f"{name}: unknown config keys {unknown}; known keys are {sorted(defaults)}"
        )
    for key, value in defaults.items():
        config.setdefault(key, value)
    for key in ("learning_rate", "weight_decay", "epsilon"):
        if key in config and config[key] < 0:
            raise ValueError(f"{name}: config['{key}'] must be >= 0, got {config[key]}")
    return w, dw, config


def _state(config, key, w):
    """Return the state array ``config[key]``, creating zeros like ``w`` if absent.

    Parameters
    ----------
    config : dict
    key : str
    w : ndarray

    Returns
    -------
    state : ndarray of the shape and dtype of ``w``
    """
    state = config.get(key)
    if state is None:
        return np.zeros_like(w)
    state = np.asarray(state)
    if state.shape != w.shape:
        raise ValueError(
            f"config['{key}'] has shape {state.shape} but w has shape {w.shape}"
        )
    return state.astype(w.dtype, copy=False)


def _decay(w, config):
    """The decoupled weight-decay step ``-learning_rate * weight_decay * w``.

    Parameters
    ----------
    w : ndarray
    config : dict with ``learning_rate`` and ``weight_decay``

    Returns
    -------
    step : ndarray of the shape of ``w``, or the scalar 0.0 when there is no decay
    """
    if config["weight_decay"] == 0:
        return 0.0
    return -config["learning_rate"] * config["weight_decay"] * w


def sgd(w, dw, config=None):
    r"""Vanilla stochastic gradient descent.

    .. math::

        w \leftarrow w - \eta\,\nabla w - \eta\lambda w

    config:
        - learning_rate (:math:`\eta`, default 1e-2)
        - weight_decay (:math:`\lambda`, default 0; decoupled, see the module docstring)

    Parameters
    ----------
    w, dw : ndarray of the same shape
    config : dict or None

    Returns
    -------
    next_w : ndarray of the shape and dtype of ``w``
    config : dict
    """
    w, dw, config = _prepare("sgd", w, dw, config,
                             {"learning_rate": 1e-2, "weight_decay": 0.0})
    next_w = w - config["learning_rate"] * dw + _decay(w, config)
    return next_w.astype(w.dtype, copy=False), config


def sgd_momentum(w, dw, config=None):
    r"""Stochastic gradient descent with (optionally Nesterov) momentum.

    Classic (heavy-ball) momentum keeps a velocity :math:`v` (initially 0):

    .. math::

        v &\leftarrow \mu v - \eta\,\nabla w \\
        w &\leftarrow w + v - \eta\lambda w

    Nesterov momentum evaluates the step at the look-ahead point; in the form
    that needs only the gradient at the current point (Sutskever et al., 2013;
    Bengio et al., 2013) it uses the *new* velocity once more:

    .. math::

        v &\leftarrow \mu v - \eta\,\nabla w \\
        w &\leftarrow w + \mu v - \eta\,\nabla w - \eta\lambda w

    config:
        - learning_rate (:math:`\eta`, default 1e-2)
        - momentum (:math:`\mu`, default 0.9)
        - nesterov (default False)
        - weight_decay (:math:`\lambda`, default 0; decoupled, never enters :math:`v`)
        - velocity (:math:`v`, an array like ``w``; default zeros)

    Parameters
    ----------
    w, dw : ndarray of the same shape
    config : dict or None

    Returns
    -------
    next_w : ndarray of the shape and dtype of ``w``
    config : dict
        With ``config['velocity']`` updated.
    """
    w, dw, config = _prepare(
        "sgd_momentum", w, dw, config,
        {"learning_rate": 1e-2, "momentum": 0.9, "nesterov": False,
         "weight_decay": 0.0, "velocity": None},
    )
    lr, mu = config["learning_rate"], config["momentum"]
    v = mu * _state(config, "velocity", w) - lr * dw
    if config["nesterov"]:
        next_w = w + mu * v - lr * dw + _decay(w, config)
    else:
        next_w = w + v + _decay(w, config)
    config["velocity"] = v.astype(w.dtype, copy=False)
    return next_w.astype(w.dtype, copy=False), config


def nesterov_sgd(w, dw, config=None):
    """Nesterov SGD with decoupled weight decay and a per-parameter lr multiplier.

    The same as :func:`sgd_momentum` with ``nesterov=True``, except that
    ``config['lr_scale']`` (default 1) multiplies the learning rate of this
    parameter while the absolute weight decay per step,
    ``learning_rate * weight_decay * w``, stays that of the base learning rate.
    (airbench lets batch-norm shifts learn 64 times faster this way.)

    Parameters
    ----------
    w, dw : ndarray of the same shape
    config : dict
        ``learning_rate``, ``momentum``, ``weight_decay``, ``lr_scale``,
        ``velocity``.

    Returns
    -------
    next_w : ndarray
    config : dict
    """
    config = dict(config or {})
    scale = float(config.pop("lr_scale", 1.0))
    lr = float(config.get("learning_rate", 1e-2))
    wd = float(config.get("weight_decay", 0.0))
    inner = dict(config, learning_rate=lr * scale, weight_decay=wd / scale, nesterov=True)
    next_w, inner = sgd_momentum(w, dw, inner)
    inner.update(learning_rate=lr, weight_decay=wd, lr_scale=scale)
    return next_w, inner


def rmsprop(w, dw, config=None):
    r"""RMSProp: divide the step by a running root-mean-square of the gradient.

    .. math::

        c &\leftarrow \rho c + (1 - \rho)\,(\nabla w)^2 \\
        w &\leftarrow w - \eta\,\frac{\nabla w}{\sqrt{c} + \epsilon}

    (squares, roots and the division are elementwise).

    config:
        - learning_rate (:math:`\eta`, default 1e-2)
        - decay_rate (:math:`\rho`, default 0.99)
        - epsilon (:math:`\epsilon`, default 1e-8)
        - cache (:math:`c`, an array like ``w``; default zeros)

    Parameters
    ----------
    w, dw : ndarray of the same shape
    config : dict or None

    Returns
    -------
    next_w : ndarray of the shape and dtype of ``w``
    config : dict
        With ``config['cache']`` updated.
    """
    w, dw, config = _prepare(
        "rmsprop", w, dw, config,
        {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8, "cache": None},
    )
    rho = config["decay_rate"]
    cache = rho * _state(config, "cache", w) + (1 - rho) * dw * dw
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    config["cache"] = cache.astype(w.dtype, copy=False)
    return next_w.astype(w.dtype, copy=False), config


def adam(w, dw, config=None):
    r"""Adam: momentum on the gradient and RMSProp scaling, both bias-corrected.

    With the step counter :math:`t` incremented *before* the update
    (so the first step uses :math:`t = 1`):

    .. math::

        t &\leftarrow t + 1 \\
        m &\leftarrow \beta_1 m + (1 - \beta_1)\,\nabla w \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)\,(\nabla w)^2 \\
        \hat m &= m / (1 - \beta_1^t), \qquad \hat v = v / (1 - \beta_2^t) \\
        w &\leftarrow w - \eta\,\frac{\hat m}{\sqrt{\hat v} + \epsilon} - \eta\lambda w

    config:
        - learning_rate (:math:`\eta`, default 1e-3)
        - beta1 (:math:`\beta_1`, default 0.9)
        - beta2 (:math:`\beta_2`, default 0.999)
        - epsilon (:math:`\epsilon`, default 1e-8)
        - weight_decay (:math:`\lambda`, default 0; decoupled as in AdamW)
        - m, v (arrays like ``w``; default zeros)
        - t (int, default 0)

    Parameters
    ----------
    w, dw : ndarray of the same shape
    config : dict or None

    Returns
    -------
    next_w : ndarray of the shape and dtype of ``w``
    config : dict
        With ``m``, ``v`` and ``t`` updated.
    """
    w, dw, config = _prepare(
        "adam", w, dw, config,
        {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
         "weight_decay": 0.0, "m": None, "v": None, "t": 0},
    )
    b1, b2 = config["beta1"], config["beta2"]
    t = int(config["t"]) + 1
    m = b1 * _state(config, "m", w) + (1 - b1) * dw
    v = b2 * _state(config, "v", w) + (1 - b2) * dw * dw
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    next_w = (w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
              + _decay(w, config))
    config["m"] = m.astype(w.dtype, copy=False)
    config["v"] = v.astype(w.dtype, copy=False)
    config["t"] = t
    return next_w.astype(w.dtype, copy=False), config


def adagrad(w, dw, config=None):
    r"""AdaGrad: divide the step by the root of the sum of all squared gradients.

    .. math::

        c &\leftarrow c + (\nabla w)^2 \\
        w &\leftarrow w - \eta\,\frac{\nabla w}{\sqrt{c} + \epsilon}

    The effective step of every element only shrinks, which suits sparse
    gradients and convex problems but can stall a long training run.

    config:
        - learning_rate (:math:`\eta`, default 1e-2)
        - epsilon (:math:`\epsilon`, default 1e-8)
        - cache (:math:`c`, an array like ``w``; default zeros)

    Parameters
    ----------
    w, dw : ndarray of the same shape
    config : dict or None

    Returns
    -------
    next_w : ndarray of the shape and dtype of ``w``
    config : dict
        With ``config['cache']`` updated.
    """
    w, dw, config = _prepare(
        "adagrad", w, dw, config,
        {"learning_rate": 1e-2, "epsilon": 1e-8, "cache": None},
    )
    cache = _state(config, "cache", w) + dw * dw
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    config["cache"] = cache.astype(w.dtype, copy=False)
    return next_w.astype(w.dtype, copy=False), config


def adadelta(w, dw, config=None):
    r"""AdaDelta (Zeiler, 2012): a step whose units match those of ``w``.

    Two running averages, of squared gradients :math:`g` and of squared steps
    :math:`d`:

    .. math::

        g &\leftarrow \rho g + (1 - \rho)\,(\nabla w)^2 \\
        \Delta &= -\frac{\sqrt{d + \epsilon}}{\sqrt{g + \epsilon}}\,\nabla w \\
        d &\leftarrow \rho d + (1 - \rho)\,\Delta^2 \\
        w &\leftarrow w + \eta\,\Delta

    Zeiler's method has no learning rate; :math:`\eta` (default 1.0, which is
    the original method) is kept as a multiplier so that learning-rate
    schedules apply to AdaDelta like to the other rules.

    config:
        - learning_rate (:math:`\eta`, default 1.0)
        - decay_rate (:math:`\rho`, default 0.95)
        - epsilon (:math:`\epsilon`, default 1e-6)
        - cache (:math:`g`, an array like ``w``; default zeros)
        - delta (:math:`d`, an array like ``w``; default zeros)

    Parameters
    ----------
    w, dw : ndarray of the same shape
    config : dict or None

    Returns
    -------
    next_w : ndarray of the shape and dtype of ``w``
    config : dict
        With ``cache`` and ``delta`` updated.
    """
    w, dw, config = _prepare(
        "adadelta", w, dw, config,
        {"learning_rate": 1.0, "decay_rate": 0.95, "epsilon": 1e-6,
         "cache": None, "delta": None},
    )
    rho, eps = config["decay_rate"], config["epsilon"]
    g = rho * _state(config, "cache", w) + (1 - rho) * dw * dw
    d = _state(config, "delta", w)
    step = -np.sqrt(d + eps) / np.sqrt(g + eps) * dw
    d = rho * d + (1 - rho) * step * step
    next_w = w + config["learning_rate"] * step
    config["cache"] = g.astype(w.dtype, copy=False)
    config["delta"] = d.astype(w.dtype, copy=False)
    return next_w.astype(w.dtype, copy=False), config

"""Tests of the numeric-gradient tools in ``convlab.gradient_check``."""

import numpy as np
import pytest

from convlab.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, grad_check_sparse, rel_error


def test_rel_error_values():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == pytest.approx(0.5)
    assert rel_error(1.0, -1.0) == pytest.approx(1.0)
    # Both zero: the floor of 1e-8 avoids 0 / 0.
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([1e-9]), np.array([0.0])) == pytest.approx(0.1)


def test_rel_error_rejects_different_shapes():
    with pytest.raises(ValueError, match=r"x and y must have the same shape; got shapes \(3,\) and \(3, 1\)"):
        rel_error(np.zeros(3), np.zeros((3, 1)))


def test_eval_numerical_gradient_of_quadratic(rng):
    x = rng.standard_normal((3, 4))
    x_before = x.copy()
    grad = eval_numerical_gradient(lambda x: np.sum(x**2) + 3 * x[0, 0], x, verbose=False)
    expected = 2 * x_before
    expected[0, 0] += 3
    assert rel_error(grad, expected) < 1e-9
    assert np.array_equal(x, x_before)  # every entry restored exactly


def test_eval_numerical_gradient_sees_in_place_changes_through_a_closure(rng):
    """Models' losses read their parameters from a dict, not from the argument."""
    params = {"w": rng.standard_normal(5)}
    grad = eval_numerical_gradient(lambda _: float(np.sum(np.sin(params["w"]))), params["w"], verbose=False)
    assert rel_error(grad, np.cos(params["w"])) < 1e-8


def test_eval_numerical_gradient_prints_only_when_verbose(capsys):
    x = np.array([1.0, 2.0])
    eval_numerical_gradient(lambda x: np.sum(x**2), x, verbose=False)
    assert capsys.readouterr().out == ""
    eval_numerical_gradient(lambda x: np.sum(x**2), x)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("(0,)") and lines[1].startswith("(1,)")


def test_eval_numerical_gradient_restores_x_when_f_raises():
    x = np.array([1.0, 2.0])
    calls = []

    def f(x):
        calls.append(x.copy())
        if len(calls) == 2:
            raise RuntimeError("boom")
        return np.sum(x)

    with pytest.raises(RuntimeError):
        eval_numerical_gradient(f, x, verbose=False)
    assert np.array_equal(x, [1.0, 2.0])


def test_eval_numerical_gradient_array_contracts_with_upstream(rng):
    A = rng.standard_normal((4, 3))
    x = rng.standard_normal((3, 2))
    df = rng.standard_normal((4, 2))
    x_before = x.copy()
    grad = eval_numerical_gradient_array(lambda x: A @ x, x, df)
    assert rel_error(grad, A.T @ df) < 1e-9
    assert np.array_equal(x, x_before)


def test_eval_numerical_gradient_array_rejects_wrong_df_shape():
    with pytest.raises(ValueError, match=r"df must have the shape of f\(x\) \(3,\); got shape \(2,\)"):
        eval_numerical_gradient_array(lambda x: 2 * x, np.zeros(3), np.zeros(2))


def test_grad_check_sparse_small_for_correct_and_large_for_wrong_gradient(rng, capsys):
    x = rng.standard_normal((20, 30))

    def f(x):
        return float(np.sum(x**3))

    errors = grad_check_sparse(f, x, 3 * x**2, num_checks=15, seed=0)
    assert errors.shape == (15,)
    assert errors.max() < 1e-6  # round-off of f (about 1e-14 relative) divided by 2h
    assert capsys.readouterr().out == ""
    wrong = grad_check_sparse(f, x, 2 * x**2, num_checks=15, seed=0)
    assert wrong.min() > 0.1


def test_grad_check_sparse_is_reproducible_and_prints_when_asked(rng, capsys):
    x = rng.standard_normal(50)
    analytic = np.cos(x) + 1e-3 * rng.standard_normal(50)  # slightly wrong, so errors differ per entry
    a = grad_check_sparse(lambda x: float(np.sum(np.sin(x))), x, analytic, num_checks=5, seed=3)
    b = grad_check_sparse(lambda x: float(np.sum(np.sin(x))), x, analytic, num_checks=5, seed=3, verbose=True)
    assert np.array_equal(a, b)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all("relative error" in line for line in lines)


def test_grad_check_sparse_rejects_wrong_gradient_shape():
    with pytest.raises(ValueError, match=r"analytic_grad must have the shape of x \(4,\); got shape \(3,\)"):
        grad_check_sparse(lambda x: 0.0, np.zeros(4), np.zeros(3))


# Finding 6 of the hardening review: an integer point gave [50000, 150000, 250000]
# for the true gradient [2, 4, 6] of sum(x**2) (x + h rounds back to x, then the
# difference is divided by 2h), and a float16 point gave zeros. Both are refused.
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, np.bool_, np.complex128])
@pytest.mark.parametrize("check", ["scalar", "array", "sparse"])
def test_every_check_refuses_a_point_it_cannot_perturb(dtype, check):
    x = np.array([1, 2, 3]).astype(dtype)
    calls = {
        "scalar": lambda: eval_numerical_gradient(lambda x: np.sum(x**2), x, verbose=False),
        "array": lambda: eval_numerical_gradient_array(lambda x: x**2, x, np.ones(3)),
        "sparse": lambda: grad_check_sparse(lambda x: np.sum(x**2), x, np.zeros(3)),
    }
    with pytest.raises(TypeError, match=rf"x must be a float32 or float64 array; got dtype {np.dtype(dtype)}"):
        calls[check]()


def test_checks_refuse_a_list_and_a_step_the_dtype_cannot_resolve():
    with pytest.raises(TypeError, match="x must be a NumPy array"):
        eval_numerical_gradient(lambda x: 0.0, [1.0, 2.0], verbose=False)
    with pytest.raises(ValueError, match="h must be a positive finite number; got -1e-05"):
        eval_numerical_gradient(lambda x: 0.0, np.zeros(2), verbose=False, h=-1e-5)
    with pytest.raises(ValueError, match="below the spacing of float32"):
        eval_numerical_gradient(lambda x: 0.0, np.zeros(2, np.float32), verbose=False, h=1e-9)


def test_float32_point_still_works():
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    grad = eval_numerical_gradient(lambda x: float(np.sum(x.astype(np.float64) ** 2)), x,
                                   verbose=False, h=1e-3)
    assert np.allclose(grad, [2, 4, 6], rtol=1e-3)


def test_scaled_error_is_relative_to_the_largest_entry_not_to_each_entry():
    from convlab.gradient_check import scaled_error

    a = np.array([1.0, 1e-9])
    b = np.array([1.0, 2e-9])  # the small entry is off by 100 %, but only 1e-9 of the scale
    assert rel_error(a, b) > 0.05
    assert scaled_error(a, b) == pytest.approx(1e-9)
    assert scaled_error(np.zeros(3), np.zeros(3)) == 0.0
    assert scaled_error([2.0, 0.0], [0.0, 0.0]) == 1.0
    assert scaled_error(np.zeros((0,)), np.zeros((0,))) == 0.0

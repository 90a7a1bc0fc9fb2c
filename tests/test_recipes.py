"""The recipes: their table, overrides, and the models and solvers built from them."""

import numpy as np
import pytest

from convlab import recipes
from convlab.classifiers.three_layer_convnet import ThreeLayerConvNet
from convlab.classifiers.airbench_convnet import ConvNet


def test_recipes_and_overrides():
    assert {"quick", "best", "three_layer", "tiny"} <= set(recipes.RECIPES)
    r = recipes.resolve_recipe("quick", ["activation=relu", "widths=[8,16,16]"], epochs=3)
    assert r["activation"] == "relu" and r["widths"] == [8, 16, 16] and r["epochs"] == 3
    assert recipes.RECIPES["quick"]["activation"] == "gelu"  # the table is not modified
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes.resolve_recipe("nope")
    with pytest.raises(ValueError, match="--set nonsense: recipe 'quick' has no such entry"):
        recipes.resolve_recipe("quick", ["nonsense=1"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        recipes.resolve_recipe("quick", ["nonsense"])
    with pytest.raises(ValueError, match="epochs"):
        recipes.resolve_recipe("quick", epochs=0)


def test_build_model_whitens_with_the_training_images_or_waits_for_a_saved_state(rng):
    recipe = recipes.resolve_recipe("tiny")
    X = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    whitened = recipes.build_model(recipe, 0, X)
    bare = recipes.build_model(recipe, 0)
    assert isinstance(whitened, ConvNet) and whitened.widths == tuple(recipe["widths"])
    assert set(whitened.params) == set(bare.params)
    for name in whitened.params:
        np.testing.assert_array_equal(whitened.params[name], bare.params[name])
    assert not np.array_equal(whitened.whiten_w, bare.whiten_w)
    bare.load_state_dict(whitened.state_dict())
    np.testing.assert_array_equal(bare.loss(X[:8]), whitened.loss(X[:8]))
    assert isinstance(recipes.build_model(recipes.resolve_recipe("three_layer"), 0), ThreeLayerConvNet)


def test_build_solver_lets_the_batch_norm_shifts_learn_faster(rng, tmp_path):
    recipe = recipes.resolve_recipe("tiny")
    data = {"X_train": rng.standard_normal((128, 3, 32, 32)).astype(np.float32),
            "y_train": rng.integers(0, 10, 128),
            "X_val": rng.standard_normal((16, 3, 32, 32)).astype(np.float32),
            "y_val": rng.integers(0, 10, 16)}
    model = recipes.build_model(recipe, 0, data["X_train"])
    solver = recipes.build_solver(model, data, recipe, 0, str(tmp_path), progress=False)
    assert solver.batch_size == recipe["batch_size"] and solver.num_epochs == recipe["epochs"]
    assert solver.update_rule_name == "nesterov_sgd"
    assert model.batchnorm_shifts() == [n for n in model.params if n.startswith("beta")]
    for name, config in solver.optim_configs.items():
        assert config.get("lr_scale", 1.0) == (recipe["bias_lr_scale"] if name.startswith("beta") else 1.0)
        assert config["learning_rate"] == recipe["learning_rate"] * recipe["batch_size"]


# Issue 27: model.npz is written, checked and read in one place (convlab.runs.model_file).
def test_load_trained_model_round_trips_and_refuses_arrays_that_do_not_fit(tmp_path):
    from convlab.runs import model_file

    recipe = recipes.resolve_recipe("tiny")
    model = recipes.build_model(recipe, 3)
    model_file.write(tmp_path / "model.npz", model.params, model.state_dict(), recipe)
    loaded, stored = recipes.load_trained_model(str(tmp_path))
    assert stored == recipe
    for name, value in model.params.items():
        assert loaded.params[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded.params[name], value)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)

    wide = dict(model.params, W1_1=model.params["W1_1"].astype(np.float64))
    model_file.write(tmp_path / "f64.npz", wide, model.state_dict(), recipe)
    with pytest.raises(ValueError, match=r"params entry 'W1_1' has shape .* and dtype float64 in "
                                         r".*f64.npz but .* dtype float32 in the model"):
        recipes.load_trained_model(str(tmp_path / "f64.npz"))
    model_file.write(tmp_path / "stateless.npz", model.params, None, recipe)
    with pytest.raises(ValueError, match=r"stateless.npz has state/\* entries \[\] but the model "
                                         r"needs \['bn"):
        recipes.load_trained_model(str(tmp_path / "stateless.npz"))

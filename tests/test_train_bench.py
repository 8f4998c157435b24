"""The `cnn` first stage as it is and as it was (what `make bench-train`'s lever compares)."""

from __future__ import annotations

from train.architectures import build_cnn


def layer_kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_the_recipe_pools_before_its_first_batch_norm_and_the_lever_after():
    recipe, previous = build_cnn(), build_cnn(pool_before_batch_norm=False)
    assert layer_kinds(recipe)[:4] == ["Conv2D", "MaxPooling2D", "BatchNormalization", "ReLU"]
    assert layer_kinds(previous)[:4] == ["Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D"]
    assert layer_kinds(recipe)[4:] == layer_kinds(previous)[4:]
    assert recipe.count_params() == previous.count_params()
    assert recipe.output_shape == previous.output_shape == (None, 10)
    # The batch norm sees the pooled 13×13 map instead of the 26×26 one.
    assert recipe.layers[1].output.shape[1:3] == (13, 13)
    assert previous.layers[1].output.shape[1:3] == (26, 26)

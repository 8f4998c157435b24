"""`python -m train`: the batch command line, and the saved-model contract inference relies on.

Saved models load with `keras.saving.load_model(path, safe_mode=True)` and no custom objects,
take (28, 28, 1) float32 in [0, 1] and give 10 probabilities. Bad parameters tried: epochs 0,
batch size 8, learning rate 2, limit 10, a name with a slash, an unknown data set, a name taken.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import train_cli

from train.datasets import load_dataset


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-volume")


@pytest.mark.parametrize("architecture", ["simple", "cnn", "cnn-small"])
def test_cli_trains_and_saves_a_model_inference_can_load_safely(volume, architecture):
    name = f"cli-{architecture}"
    result = train_cli(volume, "--dataset", "mnist-5k", "--architecture", architecture,
                       "--epochs", "1", "--limit", "600", "--name", name)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"saved {name}" in result.stdout
    assert "━" in result.stdout  # Keras' progress bar
    assert sorted(path.name for path in volume.iterdir() if path.name.startswith(name)) == [
        f"{name}.json", f"{name}.keras", f"{name}.tflite"]
    assert not [path for path in volume.iterdir() if path.name.startswith(".")]

    import keras

    model = keras.saving.load_model(volume / f"{name}.keras", safe_mode=True)
    assert tuple(model.input_shape) == (None, 28, 28, 1)
    digits = load_dataset("mnist-5k", volume).x_test[:20].astype(np.float32)[..., None] / 255
    probabilities = model.predict(digits, verbose=0)
    assert probabilities.shape == (20, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    metadata = json.loads((volume / f"{name}.json").read_text())
    assert metadata["architecture"] == architecture
    assert metadata["dataset"] == {"name": "mnist-5k", "train": 600, "test": 500}
    assert metadata["parameter_count"] == model.count_params()


@pytest.mark.parametrize(("args", "words"), [
    (["--epochs", "0"], "--epochs must be between 1 and 100"),
    (["--batch-size", "8"], "--batch-size must be between 16 and 1024"),
    (["--learning-rate", "2"], "--learning-rate must be greater than 0"),
    (["--limit", "10"], "--limit must be at least 100"),
    (["--name", "a/b"], "--name must match"),
    (["--dataset", "imagenet"], "--dataset must be one of mnist, mnist-5k"),
])
def test_cli_refuses_bad_parameters_with_exit_2(tmp_path, args, words):
    result = train_cli(tmp_path, *args)
    assert result.returncode == 2
    assert words in result.stderr
    assert not list(tmp_path.glob("*.keras"))


def test_cli_refuses_a_name_that_is_taken(volume):
    (volume / "taken.keras").write_bytes(b"a model")
    result = train_cli(volume, "--name", "taken")
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert (volume / "taken.keras").read_bytes() == b"a model"


def test_cli_if_empty_trains_nothing_when_the_volume_holds_a_model(tmp_path):
    (tmp_path / "mine.keras").write_bytes(b"a model")
    result = train_cli(tmp_path, "--starter", "--if-empty")
    assert result.returncode == 0, result.stderr
    assert "nothing to train" in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mine.keras"]


def test_cli_if_empty_goes_on_when_only_a_temporary_file_is_there(tmp_path):
    """A dot-file is a write in progress, not a model: the volume still counts as empty (the
    bad --epochs stops the run before any training)."""
    (tmp_path / ".partial.keras").write_text("half a model")
    result = train_cli(tmp_path, "--starter", "--if-empty", "--epochs", "0")
    assert result.returncode == 2
    assert "--epochs must be between 1 and 100" in result.stderr


def test_cli_starter_is_the_starter_recipe_and_flags_override_it(tmp_path):
    # Its name is taken, so the CLI refuses before training: the cheap way to see the recipe.
    (tmp_path / "starter-cnn-mnist5k.keras").write_bytes(b"a model")
    result = train_cli(tmp_path, "--starter")
    assert result.returncode == 2
    assert "--name a model named 'starter-cnn-mnist5k' already exists" in result.stderr
    overridden = train_cli(tmp_path, "--starter", "--name", "other", "--dataset", "imagenet")
    assert overridden.returncode == 2
    assert "--dataset must be one of" in overridden.stderr
    assert "--name" not in overridden.stderr

"""Exports for other servers: inference's `GET /api/models/<name>/export` and train's
`python -m train.export`, both loaded back with the reference runtime (`tf.saved_model.load`,
onnxruntime) and compared with the Keras model on the 500 mnist-5k test digits."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SEED_MODEL_NAME, copy_seed_model
from inference_support import mnist_test_digits

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
MAX_DIFFERENCE = 1e-5
LAYOUTS = {
    "savedmodel": {f"{SEED_MODEL_NAME}/config.pbtxt",
                   f"{SEED_MODEL_NAME}/1/model.savedmodel/saved_model.pb",
                   f"{SEED_MODEL_NAME}/1/model.savedmodel/variables/variables.index"},
    "onnx": {f"{SEED_MODEL_NAME}/config.pbtxt", f"{SEED_MODEL_NAME}/1/model.onnx"},
}
PLATFORMS = {"savedmodel": "tensorflow_savedmodel", "onnx": "onnxruntime_onnx"}


@pytest.fixture(scope="module")
def volume(seed_model_dir, tmp_path_factory) -> Path:
    volume = tmp_path_factory.mktemp("export-volume")
    copy_seed_model(seed_model_dir, volume)
    return volume


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> np.ndarray:
    """The 500 mnist-5k test digits as the model's input: float32 in [0, 1], (500, 28, 28, 1)."""
    images, _ = mnist_test_digits(tmp_path_factory.mktemp("datasets"))
    return (images.astype(np.float32) / 255)[..., None]


@pytest.fixture(scope="module")
def keras_probabilities(volume, digits) -> np.ndarray:
    import keras

    model = keras.saving.load_model(volume / f"{SEED_MODEL_NAME}.keras", safe_mode=True,
                                    compile=False)
    return np.asarray(model(digits, training=False))


@pytest.fixture(scope="module")
def app(volume):
    from inference import create_app

    return create_app({"model_dir": volume, "load_default": False})


def unpack(archive: bytes, into: Path) -> tuple[set[str], Path]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = {member.name for member in tar.getmembers() if member.isfile()}
        tar.extractall(into, filter="data")
    return names, into / SEED_MODEL_NAME


def exported_probabilities(folder: Path, fmt: str, digits: np.ndarray) -> np.ndarray:
    """The export's answer to `digits`, from the reference runtime of its format."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / "1" / "model.onnx"))
        assert [i.name for i in session.get_inputs()] == ["input"]
        assert [o.name for o in session.get_outputs()] == ["probabilities"]
        return session.run(["probabilities"], {"input": digits})[0]
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder / "1" / "model.savedmodel"))
    serving = loaded.signatures["serving_default"]
    assert list(serving.structured_outputs) == ["probabilities"]
    return serving(input=tf.constant(digits))["probabilities"].numpy()


def assert_is_the_model(archive: bytes, fmt: str, tmp_path: Path, digits, keras_probabilities):
    names, folder = unpack(archive, tmp_path)
    assert LAYOUTS[fmt] <= names, sorted(names)
    config = (folder / "config.pbtxt").read_text()
    assert f'name: "{SEED_MODEL_NAME}"' in config
    assert f'platform: "{PLATFORMS[fmt]}"' in config
    assert "max_batch_size: 64" in config and "dims: [ 28, 28, 1 ]" in config
    answer = exported_probabilities(folder, fmt, digits)
    assert answer.shape == (500, 10)
    assert float(np.abs(answer - keras_probabilities).max()) <= MAX_DIFFERENCE


@pytest.mark.parametrize("fmt", ["savedmodel", "onnx"])
def test_the_export_route_gives_the_same_model_in_tritons_layout(app, fmt, tmp_path, digits,
                                                                 keras_probabilities,
                                                                 monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    response = app.test_client().get(f"/api/models/{SEED_MODEL_NAME}/export?format={fmt}")
    assert response.status_code == 200, response.text
    assert response.mimetype == "application/gzip"
    assert f"{SEED_MODEL_NAME}-{fmt}.tar.gz" in response.headers["Content-Disposition"]
    # The export's temporary folder is gone (autograph leaves its own generated files there).
    assert list(scratch.glob("export-*")) == []
    assert_is_the_model(response.data, fmt, tmp_path / "out", digits, keras_probabilities)


def test_the_export_route_refuses_an_unknown_format_and_model(app):
    client = app.test_client()
    response = client.get(f"/api/models/{SEED_MODEL_NAME}/export?format=pickle")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "unsupported_export_format"
    response = client.get("/api/models/no-such-model/export")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "model_not_found"


def train_export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.export", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.mark.parametrize("fmt", ["savedmodel", "onnx"])
def test_the_train_cli_writes_the_same_archive(volume, fmt, tmp_path, digits,
                                               keras_probabilities):
    out = tmp_path / "model.tar.gz"
    result = train_export(SEED_MODEL_NAME, "--format", fmt, "--out", str(out),
                          "--model-dir", str(volume))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_is_the_model(out.read_bytes(), fmt, tmp_path / "out", digits, keras_probabilities)


def test_the_train_cli_says_what_is_wrong(volume, tmp_path):
    missing = train_export("no-such-model", "--model-dir", str(volume))
    assert missing.returncode == 1 and "no-such-model" in missing.stderr
    invalid = train_export("../etc", "--model-dir", str(volume))
    assert invalid.returncode == 2 and "not a model name" in invalid.stderr

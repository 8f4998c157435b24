"""The TFLite copy the train service saves beside a model, and the inference service serving it
through LiteRT without importing TensorFlow (train/lite_copy.py, inference/runtime.load_lite).

What a user would check: the copy answers as the `.keras` file does (within 1e-5, on the
model's own test digits); a worker serving it holds no TensorFlow; a copy that does not match
its model (changed by hand, or left from an older model of the same name) is never used, and
Keras serves that model instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import SEED_MODEL_NAME, child_pids, copy_seed_model, run_service
from inference_support import mnist_test_digits, png_bytes

MAX_DIFFERENCE = 1e-5
DIGITS = 40


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def keras_probabilities(model_path: Path, images: np.ndarray) -> np.ndarray:
    import keras

    model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    return model.predict(images.astype(np.float32)[..., None] / 255.0, verbose=0)


def lite_probabilities(lite_path: Path, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(lite_path), num_threads=1)
    batch = images.astype(np.float32)[..., None] / 255.0
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], batch.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return mnist_test_digits(tmp_path_factory.mktemp("digits"))


def test_a_trained_model_has_a_tflite_copy_that_answers_as_it_does(seed_model_dir, digits):
    model = seed_model_dir / f"{SEED_MODEL_NAME}.keras"
    lite = seed_model_dir / f"{SEED_MODEL_NAME}.tflite"
    metadata = json.loads((seed_model_dir / f"{SEED_MODEL_NAME}.json").read_text())
    # Bound to each other by the metadata: both files' sha256.
    assert metadata["sha256"] == sha256(model)
    assert metadata["tflite"]["sha256"] == sha256(lite)
    assert metadata["tflite"]["max_difference"] <= MAX_DIFFERENCE
    # Checked here again, not taken from the metadata: all 500 of the model's test digits.
    images, _ = digits
    difference = np.abs(lite_probabilities(lite, images) - keras_probabilities(model, images))
    assert difference.max() <= MAX_DIFFERENCE


def worker_answers(server, images: np.ndarray) -> list[dict]:
    answers = []
    with requests.Session() as session:
        for pixels in images:
            response = session.post(server.url("/api/predict"), timeout=60,
                                     files={"image": ("d.png", png_bytes(pixels), "image/png")})
            assert response.status_code == 200, response.text
            answers.append(response.json())
    return answers


def runtime_of(server) -> str | None:
    models = requests.get(server.url("/api/models"), timeout=30).json()["models"]
    return next(m for m in models if m["name"] == SEED_MODEL_NAME).get("runtime")


def maps_tensorflow(pid: int) -> bool:
    return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture(scope="module")
def volumes(tmp_path_factory, seed_model_dir) -> dict[str, Path]:
    """The seed model with its TFLite copy; without it; with a copy that is not its own."""
    made = {}
    for kind in ("with-copy", "without-copy", "foreign-copy"):
        volume = tmp_path_factory.mktemp(kind)
        copy_seed_model(seed_model_dir, volume)
        made[kind] = volume
    (made["without-copy"] / f"{SEED_MODEL_NAME}.tflite").unlink()
    # A copy changed after the metadata vouched for it (edited by hand, or another model's).
    foreign = made["foreign-copy"] / f"{SEED_MODEL_NAME}.tflite"
    foreign.write_bytes(foreign.read_bytes() + b"\0")
    return made


def test_inference_serves_the_copy_through_litert_without_tensorflow(volumes, digits,
                                                                      tmp_path):
    images, labels = digits
    with (run_service("inference", volumes["with-copy"], tmp_path, "/readyz") as lite_server,
          run_service("inference", volumes["without-copy"], tmp_path, "/readyz") as keras_server):
        lite_answers = worker_answers(lite_server, images[:DIGITS])
        keras_answers = worker_answers(keras_server, images[:DIGITS])
        assert runtime_of(lite_server) == "litert"
        assert runtime_of(keras_server) == "keras"
        lite_workers = child_pids(lite_server.popen.pid)
        assert lite_workers and not any(maps_tensorflow(pid) for pid in lite_workers)
        assert all(maps_tensorflow(pid) for pid in child_pids(keras_server.popen.pid))
    for lite, keras in zip(lite_answers, keras_answers, strict=True):
        assert lite["digit"] == keras["digit"]
        assert lite["probabilities"] == pytest.approx(keras["probabilities"],
                                                      abs=MAX_DIFFERENCE)
    right = sum(a["digit"] == y for a, y in zip(lite_answers, labels, strict=False))
    assert right >= DIGITS - 2


def test_a_copy_that_is_not_the_models_own_is_never_used(volumes, digits, tmp_path):
    images, labels = digits
    with run_service("inference", volumes["foreign-copy"], tmp_path, "/readyz") as server:
        answers = worker_answers(server, images[:DIGITS])
        assert runtime_of(server) == "keras"
    right = sum(a["digit"] == y for a, y in zip(answers, labels, strict=False))
    assert right >= DIGITS - 2

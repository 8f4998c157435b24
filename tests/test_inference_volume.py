"""The volume changes under a running service: no model at first, a model copied in, a model
replaced in place (atomically and by overwriting), more models than the cache holds. No
restart anywhere: one gunicorn runs through the whole module, in file order. It has one worker
(WEB_CONCURRENCY=1) so that which worker's cache answers is known: with two, a model could
stay loaded in each and the cache test would prove nothing. (tests/test_inference_predict.py
runs the default two workers.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import requests
from conftest import SEED_MODEL_NAME, run_service
from inference_support import copy_seed_model, mnist_test_digits, multipart, png_bytes

# Enough requests that both gunicorn workers answer some of them.
REQUESTS_PER_CHECK = 12


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    return tmp_path_factory.mktemp("inference-live-volume")


@pytest.fixture(scope="module")
def server(volume, tmp_path_factory):
    logs = tmp_path_factory.mktemp("inference-live-logs")
    with run_service("inference", volume, logs, ready_path="/readyz",
                     MODEL_CACHE_SIZE="1", WEB_CONCURRENCY="1") as running:
        yield running


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    images, labels = mnist_test_digits(tmp_path_factory.mktemp("datasets"))
    return [png_bytes(image) for image in images[:REQUESTS_PER_CHECK]], labels[:REQUESTS_PER_CHECK]


@pytest.fixture(scope="module")
def always_three_model(seed_model_dir, tmp_path_factory):
    """The seed model with a huge bias on class 3: other weights, unmistakable answers."""
    target = tmp_path_factory.mktemp("other-weights") / "always-three.keras"
    script = (
        "import sys, keras\n"
        "model = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "dense = model.layers[-1]\n"
        "kernel, bias = dense.get_weights()\n"
        "bias[3] += 100.0\n"
        "dense.set_weights([kernel, bias])\n"
        "model.save(sys.argv[2])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(seed_model_dir / f"{SEED_MODEL_NAME}.keras"),
                    str(target)], check=True, capture_output=True, timeout=300,
                   env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    return target


def predictions(server, images, model=None) -> list[dict]:
    answers = []
    with requests.Session() as session:
        for image in images:
            response = multipart(session, server.url("/api/predict"), image, model=model)
            assert response.status_code == 200, response.text
            answers.append(response.json())
    return answers


def accuracy(answers, labels) -> float:
    return sum(a["digit"] == label for a, label in zip(answers, labels, strict=True)) / len(labels)


def test_with_no_model_predict_is_503_telling_to_train_one(server, digits):
    images, _ = digits
    response = requests.post(server.url("/api/predict"),
                             files={"image": ("d.png", images[0])}, timeout=30)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "no_model"
    assert "train" in error["message"].lower()
    assert requests.get(server.url("/api/models"), timeout=10).json() == {"models": [],
                                                                          "default": None}
    # Nothing to load is not a reason to be unready: the page must still work (and say so).
    assert requests.get(server.url("/readyz"), timeout=10).status_code == 200


def test_a_model_copied_in_is_listed_and_used_without_restart(server, volume, seed_model_dir,
                                                              digits):
    images, labels = digits
    copy_seed_model(seed_model_dir, volume, "copied-in")
    listing = requests.get(server.url("/api/models"), timeout=10).json()
    assert [model["name"] for model in listing["models"]] == ["copied-in"]
    assert listing["default"] == "copied-in"
    answers = predictions(server, images)  # no model named: the default, i.e. the new one
    assert {answer["model"] for answer in answers} == {"copied-in"}
    assert accuracy(answers, labels) >= 0.9
    # Each worker warms the new default in the background when probed; then it is ready.
    server.wait_ready(timeout=120)  # the server polls its ready_path, /readyz


def test_a_model_replaced_in_place_serves_the_new_weights_on_the_next_request(
        server, volume, seed_model_dir, digits, always_three_model):
    images, labels = digits
    copy_seed_model(seed_model_dir, volume, "replaced")
    assert accuracy(predictions(server, images, "replaced"), labels) >= 0.9

    # The train service's way: write a dot-file, then rename it over the old one.
    temporary = volume / ".replaced.keras.tmp"
    shutil.copyfile(always_three_model, temporary)
    temporary.replace(volume / "replaced.keras")
    answers = predictions(server, images, "replaced")
    assert [answer["digit"] for answer in answers] == [3] * len(images)

    # A person's way: copy over the file in place (same inode, same size as before).
    shutil.copyfile(seed_model_dir / f"{SEED_MODEL_NAME}.keras", volume / "replaced.keras")
    assert accuracy(predictions(server, images, "replaced"), labels) >= 0.9


def test_more_models_than_the_cache_holds_all_keep_working(server, volume, seed_model_dir,
                                                           digits, always_three_model):
    """MODEL_CACHE_SIZE=1 here: alternating two models loads and evicts, answers stay right."""
    images, labels = digits
    copy_seed_model(seed_model_dir, volume, "cache-a")
    shutil.copyfile(always_three_model, volume / ".cache-b.keras.tmp")
    (volume / ".cache-b.keras.tmp").replace(volume / "cache-b.keras")
    for _ in range(2):
        assert accuracy(predictions(server, images[:4], "cache-a"), labels[:4]) == 1.0
        assert {a["digit"] for a in predictions(server, images[:4], "cache-b")} == {3}
    metrics = requests.get(server.url("/metrics"), timeout=10).text
    loads = sum(float(line.rpartition(" ")[2]) for line in metrics.splitlines()
                if line.startswith('inference_model_load_seconds_count{model="cache-'))
    assert loads == 4  # each switch reloads in a cache of one


def test_metadata_written_beside_a_model_is_served(server, volume, seed_model_dir):
    copy_seed_model(seed_model_dir, volume, "with-metadata")
    metadata = json.loads((volume / "with-metadata.json").read_text())
    described = requests.get(server.url("/api/models/with-metadata"), timeout=10).json()
    assert described["test_accuracy"] == metadata["test_accuracy"]
    assert described["architecture"] == metadata["architecture"]
    assert described["size_bytes"] == (volume / "with-metadata.keras").stat().st_size

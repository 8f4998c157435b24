"""Training on feedback and scoring models on the feedback test split (issue 13).

A volume holds 300 reviewed feedback samples in a deliberately unusual style (thick, slanted:
tests/feedback_support.py). Through the real train service, a model trained on `mnist-5k` and one
on `mnist-5k+feedback` (same recipe, 3 epochs on 1,500 digits to stay near a minute each on 2
cores) are compared on the feedback test split, which neither saw. Then the evaluate route
scores them again on demand, and inference's `GET /api/models` shows the scores.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
import requests
from conftest import run_service, wait_for
from feedback_support import unusual_digits, write_reviewed_samples

from train.feedback import ids_sha256, split_of

TOKEN = "feedback-training-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
QUICK = {"architecture": "cnn", "epochs": 3, "limit": 1500}
SAMPLES = 300


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    volume = tmp_path_factory.mktemp("feedback-training-volume")
    images, labels = unusual_digits(SAMPLES)
    write_reviewed_samples(volume, images, labels)
    return volume


@pytest.fixture(scope="module")
def services(volume, tmp_path_factory):
    logs = tmp_path_factory.mktemp("feedback-training-logs")
    with run_service("train", volume, logs, ready_path="/readyz", TRAIN_API_TOKEN=TOKEN) as train, \
            run_service("inference", volume, logs, ready_path="/healthz") as inference:
        yield train, inference


def train_run(train, body: dict) -> dict:
    response = requests.post(train.url("/api/train/runs"), json=body, headers=BEARER, timeout=30)
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]

    def finished():
        run = requests.get(train.url(f"/api/train/runs/{run_id}"), timeout=10).json()
        return run if run["state"] in ("succeeded", "failed", "stopped") else None

    run = wait_for(finished, timeout=400, interval=1, what=f"run {run_id}")
    assert run["state"] == "succeeded", run
    return run


def metadata(volume, name: str) -> dict:
    return json.loads((volume / f"{name}.json").read_text())


def evaluate(train, name: str, body: dict, headers=BEARER) -> requests.Response:
    return requests.post(train.url(f"/api/models/{name}/evaluate"), json=body, headers=headers,
                         timeout=180)


@pytest.fixture(scope="module")
def trained(services, volume):
    train, _ = services
    train_run(train, {**QUICK, "dataset": "mnist-5k", "name": "base"})
    train_run(train, {**QUICK, "dataset": "mnist-5k+feedback", "name": "mixed"})
    return metadata(volume, "base"), metadata(volume, "mixed")


def test_the_feedback_data_sets_are_offered_with_their_counts(services):
    train, _ = services
    options = requests.get(train.url("/api/train/options"), timeout=10).json()
    offered = {entry["name"]: entry for entry in options["datasets"]}
    for name in ("feedback", "mnist+feedback", "mnist-5k+feedback"):
        assert offered[name]["reviewed"] == SAMPLES and offered[name]["unreviewed"] == 0
    assert options["defaults"]["include_unreviewed"] is False
    assert options["defaults"]["feedback_weight"] >= 1


@pytest.mark.parametrize("body, field", [
    ({"dataset": "mnist-5k+feedback", "feedback_weight": 0}, "feedback_weight"),
    ({"dataset": "mnist-5k+feedback", "feedback_weight": "4"}, "feedback_weight"),
    ({"dataset": "feedback", "include_unreviewed": "yes"}, "include_unreviewed"),
    ({"dataset": "mnist-5k", "feedback_weight": 2}, "feedback_weight"),
    ({"dataset": "mnist-5k+feedbackish"}, "dataset"),
])
def test_bad_feedback_parameters_are_refused_by_name(services, body, field):
    """Bad inputs tried: feedback_weight 0 and "4", include_unreviewed "yes", a weight with a
    data set without feedback, an unknown mix."""
    train, _ = services
    response = requests.post(train.url("/api/train/runs"), json=body, headers=BEARER, timeout=30)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


def test_feedback_training_beats_the_base_model_on_the_held_out_feedback(trained, volume):
    base, mixed = trained
    train_ids = sorted(p.stem for p in (volume / "feedback").glob("*.json")
                       if split_of(p.stem) == "train")
    assert mixed["feedback"]["samples"] == len(train_ids)
    assert mixed["feedback"]["ids_sha256"] == ids_sha256(train_ids)
    assert mixed["hyperparameters"]["feedback_weight"] >= 1
    assert "feedback" not in base and "feedback_weight" not in base["hyperparameters"]
    for model in (base, mixed):  # the same test sets for both: like with like
        assert model["evaluations"]["mnist-5k"]["size"] == 500
        assert model["evaluations"]["feedback"]["size"] == SAMPLES - len(train_ids)
    base_score = base["evaluations"]["feedback"]["accuracy"]
    mixed_score = mixed["evaluations"]["feedback"]["accuracy"]
    print(f"feedback test split ({SAMPLES - len(train_ids)} digits): base {base_score:.3f}, "
          f"mnist-5k+feedback {mixed_score:.3f}")
    assert mixed_score >= base_score + 0.05, (base_score, mixed_score)
    # Its ordinary digits did not suffer much for it.
    assert mixed["evaluations"]["mnist-5k"]["accuracy"] >= \
        base["evaluations"]["mnist-5k"]["accuracy"] - 0.03


def test_evaluate_on_demand_stores_the_score_and_inference_shows_it(services, trained, volume):
    """Bad inputs tried: no token (401), an unknown model (404), an unknown data set (422)."""
    train, inference = services
    base, _ = trained
    assert evaluate(train, "base", {"dataset": "feedback"}, headers={}).status_code == 401
    assert evaluate(train, "nope", {"dataset": "feedback"}).status_code == 404
    unknown = evaluate(train, "base", {"dataset": "emnist"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "invalid_dataset"

    started = time.monotonic()
    again = evaluate(train, "base", {"dataset": "feedback"})
    feedback_seconds = time.monotonic() - started
    assert again.status_code == 200, again.text
    assert again.json()["accuracy"] == base["evaluations"]["feedback"]["accuracy"]
    started = time.monotonic()
    digits = evaluate(train, "base", {"dataset": "mnist-5k"})
    mnist_seconds = time.monotonic() - started
    assert digits.status_code == 200 and digits.json()["size"] == 500
    print(f"evaluate: feedback {feedback_seconds:.1f} s, mnist-5k {mnist_seconds:.1f} s")

    assert again.json()["preprocessing_version"] == base["preprocessing"]["version"]

    # An older model without metadata gets a minimal file holding its score. Without metadata
    # it counts as made for preprocessing version 1, so it sees the digits as version 1 left them.
    shutil.copyfile(volume / "base.keras", volume / ".bare.keras.tmp")
    (volume / ".bare.keras.tmp").replace(volume / "bare.keras")
    bare = evaluate(train, "bare", {"dataset": "feedback"})
    assert bare.status_code == 200, bare.text
    assert bare.json()["preprocessing_version"] == 1
    assert metadata(volume, "bare")["evaluations"]["feedback"] == bare.json()

    listing = requests.get(inference.url("/api/models"), timeout=30).json()["models"]
    shown = {model["name"]: model.get("evaluations") for model in listing}
    assert set(shown["mixed"]) == {"mnist-5k", "feedback"}
    assert shown["bare"]["feedback"]["size"] == again.json()["size"]

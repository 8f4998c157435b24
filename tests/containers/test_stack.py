"""End to end through the containers: everything a user does, through the page's port only.

The images are the ones `make images` builds; Compose runs them as docker-compose.yml says
(one-shot volume-init and seed, then train and inference, then the page). Every request goes to
the ui container's nginx, which proxies /api/* to the other two by their service names.
"""

from __future__ import annotations

import time

import pytest
from shared_helpers import base64_png_test_digits

# What compose's seed step trains into an empty volume.
SEED_MODEL = "starter-cnn-mnist5k"
RUN_MODEL = "e2e-one-epoch"
RUN_TIMEOUT = 600
TERMINAL_STATES = {"succeeded", "failed", "stopped"}
DIGITS_ASKED = 50


@pytest.fixture(scope="module")
def test_digits(tmp_path_factory) -> list[tuple[int, str]]:
    """The first MNIST test digits of mnist-5k's test split, as (label, base64 PNG)."""
    return base64_png_test_digits(tmp_path_factory.mktemp("unused-volume"), DIGITS_ASKED)


def share_right(stack, http, digits, model: str | None = None) -> float:
    """Ask the page's /api/predict for each digit; the share it reads right. Checks each answer's
    shape and the model that gave it on the way."""
    right = 0
    for label, png in digits:
        body = {"image": png} | ({"model": model} if model else {})
        response = http.post(stack.url("/api/predict"), json=body, timeout=60)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert len(answer["probabilities"]) == 10
        assert answer["digit"] == max(range(10), key=lambda d: answer["probabilities"][d])
        if model:
            assert answer["model"] == model
        right += answer["digit"] == label
    return right / len(digits)


def test_every_service_is_healthy_and_runs_as_non_root(stack):
    for service in ("train", "inference", "ui"):
        container = stack.inspect(service)
        assert container["State"]["Health"]["Status"] == "healthy", service
        assert stack.exec(service, "id", "-u") != "0", f"{service} runs as root"
    for one_shot in ("volume-init", "seed"):
        state = stack.inspect(one_shot)["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), one_shot


def test_page_loads_with_its_script_and_style(stack, http):
    page = http.get(stack.url("/"), timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<title>digits</title>" in page.text
    for asset, kind in (("/js/app.js", "javascript"), ("/css/app.css", "text/css")):
        response = http.get(stack.url(asset), timeout=10)
        assert response.status_code == 200, asset
        assert kind in response.headers["Content-Type"], asset


def test_models_lists_the_seeded_default_model(stack, http):
    response = http.get(stack.url("/api/models"), timeout=30)
    assert response.status_code == 200, response.text
    listing = response.json()
    assert SEED_MODEL in [model["name"] for model in listing["models"]]
    assert listing["default"] == SEED_MODEL


def test_seeded_model_reads_mnist_test_digits_right(stack, http, test_digits):
    assert share_right(stack, http, test_digits) >= 0.9


def test_unknown_route_and_bad_image_get_json_errors_through_the_page(stack, http):
    """Bad inputs tried: an unknown API route, an image field that is not an image."""
    missing = http.get(stack.url("/api/no-such-route"), timeout=10)
    assert missing.status_code == 404
    assert "code" in missing.json()["error"]
    bad = http.post(stack.url("/api/predict"), json={"image": "bm90IGFuIGltYWdl"}, timeout=30)
    assert 400 <= bad.status_code < 500
    assert "code" in bad.json()["error"]


def test_run_started_through_the_page_trains_in_train_and_is_served_by_inference(
        stack, http, test_digits):
    started = http.post(stack.url("/api/train/runs"), timeout=30, json={
        "dataset": "mnist-5k", "architecture": "simple", "epochs": 1, "name": RUN_MODEL})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    deadline = time.monotonic() + RUN_TIMEOUT
    run = started.json()
    while run["state"] not in TERMINAL_STATES and time.monotonic() < deadline:
        time.sleep(1)
        response = http.get(stack.url(f"/api/train/runs/{run_id}"), timeout=30)
        assert response.status_code == 200, response.text
        run = response.json()
    assert run["state"] == "succeeded", run
    assert run["model"] == RUN_MODEL

    # The train container wrote it into the shared volume, as the containers' non-root user...
    model_file = stack.volume / f"{RUN_MODEL}.keras"
    assert model_file.is_file()
    owner = model_file.stat().st_uid
    assert owner != 0
    assert str(owner) == stack.exec("train", "id", "-u")
    # ...and the inference container, which only reads the volume, serves it.
    listing = http.get(stack.url("/api/models"), timeout=30).json()
    assert RUN_MODEL in [model["name"] for model in listing["models"]]
    details = http.get(stack.url(f"/api/models/{RUN_MODEL}"), timeout=30)
    assert details.status_code == 200, details.text
    # One epoch on 4,500 digits already reads most test digits right (about 83% here).
    assert share_right(stack, http, test_digits, model=RUN_MODEL) >= 0.6

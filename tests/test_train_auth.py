"""TRAIN_API_TOKEN: with it set, every mutating train route needs `Authorization: Bearer <token>`.

Tried without a header, with a wrong token, with a right token under another scheme, and with
the token itself; reading routes stay open.
"""

from __future__ import annotations

import pytest
import requests
from conftest import run_service

TOKEN = "s3cret-token-for-tests"
MUTATING = [
    ("post", "/api/train/runs"),
    ("post", "/api/train/runs/20990101-000000-abcdef/stop"),
    ("delete", "/api/train/models/some-model"),
    ("post", "/api/retrain_model/"),
    ("post", "/api/stop_training/"),
]


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    volume = tmp_path_factory.mktemp("auth-volume")
    logs = tmp_path_factory.mktemp("auth-logs")
    with run_service("train", volume, logs, TRAIN_API_TOKEN=TOKEN) as server:
        yield server


@pytest.mark.parametrize(("method", "path"), MUTATING)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}",
                                           TOKEN, f"Bearer {TOKEN}x"])
def test_mutating_routes_without_the_token_get_401(train, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.request(method, train.url(path), headers=headers, timeout=10,
                                json={"epochs": 0})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_with_the_token_requests_get_through(train):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    # A bad parameter shows that authentication passed and validation answered.
    response = requests.post(train.url("/api/train/runs"), json={"epochs": 0}, headers=headers,
                             timeout=10)
    assert response.status_code == 422
    assert requests.delete(train.url("/api/train/models/none"), headers=headers,
                           timeout=10).status_code == 404
    assert requests.post(train.url("/api/stop_training/"), headers=headers,
                         timeout=10).status_code == 409


def test_reading_routes_need_no_token(train):
    for path in ("/api/train/runs", "/api/train/options", "/api/training_progress/",
                 "/api/check_model_status/", "/healthz", "/openapi.json"):
        assert requests.get(train.url(path), timeout=10).status_code == 200, path

"""`/api/feedback` on the train service under its real gunicorn command (issue 13).

The volume holds a stand-in model file: sending feedback only needs the model's name to exist
(scoring real models is tests/test_feedback_training.py's). The service trusts one proxy
(TRAIN_TRUSTED_PROXIES=1, as behind the page's nginx), so each test speaks from its own client
address through X-Forwarded-For and has its own rate-limit budget.
"""

from __future__ import annotations

import base64
import io
import itertools
import time

import hypothesis.strategies as st
import numpy as np
import pytest
import requests
from conftest import run_service
from PIL import Image
from schemathesis import GenerationMode
from test_reliability_fuzz import Fuzzer, load_schema

MODEL = "feedback-model"
TOKEN = "feedback-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
ADDRESSES = (f"198.51.100.{n}" for n in itertools.count(1))
PIXELS = (np.random.default_rng(n).integers(0, 256, (28, 28), dtype=np.uint8)
          for n in itertools.count(1))


def png(pixels: np.ndarray, fmt: str = "PNG", mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def sample_body(pixels: np.ndarray | None = None, **fields) -> dict:
    pixels = next(PIXELS) if pixels is None else pixels
    return {"image": data_url(png(pixels)), "label": 3, "predicted": 8, "confidence": 0.61,
            "model": MODEL, "preprocessing_version": 1, **fields}


class Client:
    """Requests from one client address (X-Forwarded-For, believed by the service)."""

    def __init__(self, server, address: str | None = None):
        self.server = server
        self.headers = {"X-Forwarded-For": address or next(ADDRESSES)}

    def request(self, method: str, path: str, token: bool = False, **kwargs):
        headers = {**self.headers, **(BEARER if token else {}), **kwargs.pop("headers", {})}
        return requests.request(method, self.server.url(path), headers=headers, timeout=30,
                                **kwargs)

    def send(self, body=None, **kwargs) -> requests.Response:
        return self.request("POST", "/api/feedback", json=body, **kwargs)


def stored(volume) -> list[str]:
    """Every file under feedback/ but the lock: what a request left on the volume."""
    folder = volume / "feedback"
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock") if folder.is_dir() else []


def serve(volume, logs, **env):
    env = {"TRAIN_API_TOKEN": TOKEN, "TRAIN_TRUSTED_PROXIES": "1",
           "FEEDBACK_RATE_LIMIT": "1000", **env}
    return run_service("train", volume, logs, ready_path="/readyz", **env)


def new_volume(tmp_path_factory, name: str):
    volume = tmp_path_factory.mktemp(name)
    (volume / f"{MODEL}.keras").write_bytes(b"a stand-in: only its name is used here")
    return volume


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    return new_volume(tmp_path_factory, "feedback-volume")


@pytest.fixture(scope="module")
def train(volume, tmp_path_factory):
    with serve(volume, tmp_path_factory.mktemp("feedback-logs")) as server:
        yield server


# ---------------------------------------------------------------- bad input, then a good request

BIG_ORIGINAL = png(np.random.default_rng(0).integers(0, 256, (560, 560), dtype=np.uint8))
BAD_INPUTS = {
    "no body": (None, 400, "invalid_json"),
    "not JSON": ("label=3", 400, "invalid_json"),
    "a JSON list": ([1, 2], 400, "invalid_json"),
    "no image": ({**sample_body(), "image": None}, 400, "missing_image"),
    "an empty image": ({**sample_body(), "image": ""}, 400, "missing_image"),
    "image not base64": ({**sample_body(), "image": "data:image/png;base64,@@@"}, 400,
                         "invalid_image"),
    "image a text data URL": ({**sample_body(), "image": "data:text/html;base64,PGI+"}, 400,
                              "invalid_image"),
    "image not an image": ({**sample_body(), "image": data_url(b"GIF89a-not-really")}, 400,
                           "invalid_image"),
    "image a JPEG": ({**sample_body(), "image": data_url(png(next(PIXELS), "JPEG"))}, 400,
                     "invalid_image"),
    "image 27×28": ({**sample_body(), "image": data_url(png(next(PIXELS)[:27]))}, 422,
                    "invalid_image_size"),
    "image 280×280": ({**sample_body(), "image": data_url(png(np.zeros((280, 280), np.uint8)))},
                      422, "invalid_image_size"),
    "label 10": (sample_body(label=10), 422, "invalid_label"),
    "label -1": (sample_body(label=-1), 422, "invalid_label"),
    "label a string": (sample_body(label="3"), 422, "invalid_label"),
    "label true": (sample_body(label=True), 422, "invalid_label"),
    "no label": ({k: v for k, v in sample_body().items() if k != "label"}, 422,
                 "invalid_label"),
    "predicted 11": (sample_body(predicted=11), 422, "invalid_predicted"),
    "confidence 1.5": (sample_body(confidence=1.5), 422, "invalid_confidence"),
    "unknown model": (sample_body(model="no-such-model"), 404, "unknown_model"),
    "model with a path": (sample_body(model="../etc/passwd"), 422, "invalid_model"),
    "preprocessing_version 0": (sample_body(preprocessing_version=0), 422,
                                "invalid_preprocessing_version"),
    "an unknown field": (sample_body(client="me"), 422, "unknown_field"),
    "original not an image": (sample_body(original=data_url(b"<svg></svg>", "image/svg+xml")),
                              400, "invalid_original"),
    "original over 256 KiB": (sample_body(original=data_url(BIG_ORIGINAL)), 413,
                              "original_too_large"),
    "a body over 512 KiB": ({**sample_body(), "original": "A" * 600_000}, 413,
                            "payload_too_large"),
}


@pytest.mark.reliability("Bad input", "feedback: each bad POST /api/feedback, then a good one")
def test_each_bad_sample_is_refused_clearly_stores_nothing_and_a_good_one_follows(
        train, volume, observed):
    """Bad inputs tried: no body, not JSON, a list, no/empty image, image not base64, a text
    data URL, not an image, a JPEG, 27×28 and 280×280 images, label 10/-1/"3"/true/missing,
    predicted 11, confidence 1.5, an unknown model, a model name with a path, preprocessing
    version 0, an unknown field, an SVG original, an original over 256 KiB, a body over 512 KiB.
    """
    client = Client(train)
    seen = []
    for case, (body, status, code) in BAD_INPUTS.items():
        before = stored(volume)
        if isinstance(body, str):
            response = client.request("POST", "/api/feedback", data=body,
                                      headers={"Content-Type": "application/json"})
        else:
            response = client.send(body)
        assert response.status_code == status, (case, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (case, error)
        assert error["message"] and "Traceback" not in response.text, case
        assert stored(volume) == before, f"{case}: something was stored"
        good = client.send(sample_body())
        assert good.status_code == 201, (case, good.text)
        seen.append(f"{case} → {status} {code}")
    observed(f"{len(BAD_INPUTS)} bad bodies, each refused with its status and a code naming "
             "the field, nothing stored, and each followed by a good sample stored (201): "
             + "; ".join(seen))


# ---------------------------------------------------------------- a sample's life


def test_a_sample_is_stored_listed_served_reviewed_and_deleted(train, volume):
    """Bad inputs tried: review and delete without the token (401), a review label of 12
    (422), a sample that does not exist (404)."""
    client = Client(train)
    pixels = next(PIXELS)
    original = png(np.full((60, 40), 200, np.uint8), "JPEG")
    response = client.send(sample_body(pixels, label=7, predicted=1, confidence=0.42,
                                       original=data_url(original, "image/jpeg"),
                                       preprocessing_version=2))
    assert response.status_code == 201, response.text
    sample = response.json()
    sample_id = sample["id"]
    assert sample == {**sample, "label": 7, "predicted": 1, "confidence": 0.42, "model": MODEL,
                      "preprocessing_version": 2, "reviewed": False, "reviewed_at": None,
                      "correct": False, "duplicate": False,
                      "image_url": f"/api/feedback/{sample_id}/image",
                      "original_url": f"/api/feedback/{sample_id}/original"}
    assert sample["split"] in ("train", "test") and sample["created_at"].endswith("Z")

    image = client.request("GET", sample["image_url"])
    assert image.headers["Content-Type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.content))), pixels)
    kept = client.request("GET", sample["original_url"])
    assert kept.headers["Content-Type"] == "image/jpeg" and kept.content == original

    listed = client.request("GET", "/api/feedback", params={
        "label": 7, "model": MODEL, "wrong": "true", "reviewed": "false"}).json()
    assert sample_id in [item["id"] for item in listed["items"]]
    assert {"total", "wrong", "unreviewed"} <= set(listed["counts"])
    right_only = client.request("GET", "/api/feedback", params={"wrong": "false",
                                                                "per_page": 500}).json()
    assert sample_id not in [item["id"] for item in right_only["items"]]
    assert client.request("GET", "/api/feedback", params={"label": 12}).status_code == 422

    path = f"/api/feedback/{sample_id}"
    for method, route in (("POST", f"{path}/review"), ("DELETE", path)):
        refused = client.request(method, route, json={})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    bad_label = client.request("POST", f"{path}/review", token=True, json={"label": 12})
    assert bad_label.status_code == 422 and bad_label.json()["error"]["code"] == "invalid_label"
    relabelled = client.request("POST", f"{path}/review", token=True, json={"label": 9}).json()
    assert relabelled["label"] == 9 and relabelled["reviewed"] and relabelled["reviewed_at"]
    accepted = client.request("POST", f"{path}/review", token=True)
    assert accepted.status_code == 200 and accepted.json()["label"] == 9

    assert client.request("DELETE", path, token=True).status_code == 204
    for route in (path, f"{path}/image", f"{path}/original"):
        gone = client.request("GET", route)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "sample_not_found"
    assert client.request("DELETE", path, token=True).status_code == 404
    assert not [name for name in stored(volume) if name.startswith(sample_id)]


def test_a_sample_without_original_has_no_original_url(train):
    client = Client(train)
    sample = client.send(sample_body(label=4, predicted=4)).json()
    assert sample["original_url"] is None and sample["correct"] is True
    missing = client.request("GET", f"/api/feedback/{sample['id']}/original")
    assert missing.status_code == 404


@pytest.mark.reliability("Bad input", "feedback: the same image sent twice")
def test_the_same_image_is_stored_once(train, volume, observed):
    """Bad input tried: the same 28×28 pixels sent again, as an RGB PNG and with another label."""
    client = Client(train)
    pixels = next(PIXELS)
    first = client.send(sample_body(pixels, label=2))
    assert first.status_code == 201
    files = stored(volume)
    again = client.send({**sample_body(pixels, label=5),
                         "image": data_url(png(pixels, mode="RGB"))})
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"] and again.json()["label"] == 2
    assert stored(volume) == files
    observed("the same pixels again (an RGB PNG, label 5): 200 with the stored sample, "
             "`duplicate: true`, its label unchanged (2), no file added")


# ---------------------------------------------------------------- export


def test_export_is_an_npz_keras_users_load_as_is(train):
    client = Client(train)
    pixels = next(PIXELS)
    sample = client.send(sample_body(pixels, label=6)).json()
    client.request("POST", f"/api/feedback/{sample['id']}/review", token=True)
    unreviewed = client.send(sample_body(label=1)).json()

    response = client.request("GET", "/api/feedback/export")
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert 'filename="feedback.npz"' in response.headers["Content-Disposition"]
    with np.load(io.BytesIO(response.content), allow_pickle=False) as archive:
        x, y, split, ids = (archive[key] for key in ("x", "y", "split", "id"))
    assert x.dtype == np.uint8 and x.shape[1:] == (28, 28) and len(x) == len(y) == len(split)
    assert set(split) <= {"train", "test"} and split.dtype.kind == "U"
    assert unreviewed["id"] not in ids
    where = list(ids).index(sample["id"])
    assert np.array_equal(x[where], pixels) and y[where] == 6
    assert split[where] == sample["split"]

    everything = client.request("GET", "/api/feedback/export?include_unreviewed=true")
    with np.load(io.BytesIO(everything.content), allow_pickle=False) as archive:
        assert unreviewed["id"] in archive["id"]
    import keras  # the shapes Keras takes as they are: (N, 28, 28) uint8 and integer labels

    assert keras.utils.to_categorical(y, 10).shape == (len(y), 10)


# ---------------------------------------------------------------- bounds: rate limit, cap


@pytest.mark.reliability("Bad input", "feedback: a client sending faster than the rate limit")
def test_a_client_over_the_rate_limit_gets_429_and_others_do_not(tmp_path_factory, observed):
    """Bad input tried: a 4th sample within a minute from one address (the limit is 3 here)."""
    volume = new_volume(tmp_path_factory, "feedback-rate-volume")
    with serve(volume, tmp_path_factory.mktemp("rate-logs"), FEEDBACK_RATE_LIMIT="3") as train:
        eager, other = Client(train), Client(train)
        assert [eager.send(sample_body()).status_code for _ in range(3)] == [201] * 3
        files = stored(volume)
        refused = eager.send(sample_body())
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert stored(volume) == files
        assert other.send(sample_body()).status_code == 201
        # Reading is not limited.
        assert eager.request("GET", "/api/feedback").status_code == 200
    observed(f"FEEDBACK_RATE_LIMIT=3: the 4th sample in a minute from one address got 429 "
             f"rate_limited with Retry-After {refused.headers['Retry-After']} s and stored "
             "nothing; another address still got 201")


@pytest.mark.reliability("Bad input", "feedback: more samples than the cap")
def test_the_cap_drops_the_oldest_unreviewed_first(tmp_path_factory, observed):
    """Bad input tried: a 4th and 5th sample with FEEDBACK_MAX_SAMPLES=3."""
    volume = new_volume(tmp_path_factory, "feedback-cap-volume")
    with serve(volume, tmp_path_factory.mktemp("cap-logs"), FEEDBACK_MAX_SAMPLES="3") as train:
        client = Client(train)
        ids = []
        for _ in range(3):
            ids.append(client.send(sample_body()).json()["id"])
            time.sleep(0.01)  # distinct created_at, so "oldest" is unambiguous
        client.request("POST", f"/api/feedback/{ids[0]}/review", token=True)  # oldest, reviewed
        for _ in range(2):
            ids.append(client.send(sample_body()).json()["id"])
            time.sleep(0.01)
        kept = {item["id"] for item in client.request("GET", "/api/feedback").json()["items"]}
    assert kept == {ids[0], ids[3], ids[4]}
    assert len([name for name in stored(volume) if name.endswith(".json")]) == 3
    observed("FEEDBACK_MAX_SAMPLES=3, the oldest sample reviewed, 5 sent: the 2 oldest "
             "unreviewed were dropped (their files too); the reviewed one and the 2 newest kept")


# ---------------------------------------------------------------- fuzzing


def sample_bodies():
    """Mostly well-formed samples: real 28×28 PNGs (sometimes another size), fields near and
    past their bounds, a known model or not."""
    def body(side, seed, label, predicted, confidence, model, original):
        pixels = np.random.default_rng(seed).integers(0, 256, (side, 28), dtype=np.uint8)
        return {"image": data_url(png(pixels)), "label": label, "predicted": predicted,
                "confidence": confidence, "model": model,
                **({"original": data_url(png(pixels, "JPEG"))} if original else {})}
    return st.builds(body, st.sampled_from([28, 28, 28, 27]), st.integers(0, 2**32 - 1),
                     st.integers(-1, 10), st.integers(0, 9), st.floats(-0.1, 1.1),
                     st.sampled_from([MODEL, MODEL, "nope", "../x"]), st.booleans())


@pytest.mark.reliability("Fuzzing", "train: schemathesis on the /api/feedback and evaluate routes")
def test_fuzzing_the_feedback_routes_finds_no_5xx(train, volume, observed):
    started = time.monotonic()
    schema = load_schema(train)
    fuzzer = Fuzzer(train.base_url)
    sample_id = Client(train).send(sample_body()).json()["id"]
    paths = [path for path in schema.raw_schema["paths"]
             if path.startswith("/api/feedback") or path.endswith("/evaluate")]
    for path in paths:
        for method in set(schema.raw_schema["paths"][path]) - {"parameters"}:
            operation = schema[path][method.upper()]
            fuzzer.fuzz(operation, examples=30)
            fuzzer.fuzz(operation, examples=30, headers=BEARER)
            if "{sample_id}" in path and method != "delete":
                fuzzer.run(operation.as_strategy(path_parameters={"sample_id": sample_id}),
                           examples=10, headers=BEARER)
    post = schema["/api/feedback"]["POST"]
    fuzzer.run(sample_bodies().flatmap(lambda body: post.as_strategy(
        body=body, media_type="application/json")), examples=60)
    fuzzer.fuzz(schema["/api/models/{name}/evaluate"]["POST"], examples=20, headers=BEARER,
                modes=(GenerationMode.POSITIVE,))
    fuzzer.probe_undeclared_methods(schema, {"sample_id": sample_id, "name": MODEL,
                                             "run_id": "none"})
    observed(f"{fuzzer.summary()} in {time.monotonic() - started:.0f} s")
    fuzzer.assert_clean()


# ---------------------------------------------------------------- evaluate: refusals


def test_evaluate_refuses_clearly_before_any_work(train):
    """Bad inputs tried: no token, an unknown model, a name with a path, an unknown data set, no
    data set, the feedback set while no reviewed sample is in its test split (the real scoring:
    tests/test_feedback_training.py)."""
    client = Client(train)
    cases = [("feedback-model", {"dataset": "feedback"}, False, 401, "unauthorized"),
             ("no-such-model", {"dataset": "feedback"}, True, 404, "model_not_found"),
             ("..", {"dataset": "feedback"}, True, 404, None),
             ("feedback-model", {"dataset": "emnist"}, True, 422, "invalid_dataset"),
             ("feedback-model", {}, True, 422, "invalid_parameters")]
    for name, body, token, status, code in cases:
        response = client.request("POST", f"/api/models/{name}/evaluate", token=token, json=body)
        assert response.status_code == status, (name, body, response.text)
        assert code is None or response.json()["error"]["code"] == code
    reviewed_test = [item for item in client.request(
        "GET", "/api/feedback", params={"reviewed": "true", "per_page": 500}).json()["items"]
        if item["split"] == "test"]
    for item in reviewed_test:  # this module's volume: make the reviewed test split empty
        client.request("DELETE", f"/api/feedback/{item['id']}", token=True)
    empty = client.request("POST", f"/api/models/{MODEL}/evaluate", token=True,
                           json={"dataset": "feedback"})
    assert empty.status_code == 409 and empty.json()["error"]["code"] == "empty_test_set"
    assert "test split" in empty.json()["error"]["message"]


def test_the_store_s_cached_listing_follows_every_change(tmp_path):
    """The listing is kept while the folder's mtime stands; a review, a delete or an add (each a
    rename or unlink in the folder) is seen at once, also right after a listing was kept."""
    from train.feedback import FeedbackStore

    store = FeedbackStore(tmp_path)
    fields = {"label": 1, "predicted": 2, "confidence": 0.5, "model": "m",
              "preprocessing_version": 1}
    first = store.add(next(PIXELS), fields, None).sample["id"]
    time.sleep(1.1)  # older than the racy second: this listing is kept
    assert [r["reviewed"] for r in store.all()] == [False] and store.cache is not None
    store.review(first, 7)
    assert [(r["reviewed"], r["label"]) for r in store.all()] == [(True, 7)]
    second = store.add(next(PIXELS), fields, None).sample["id"]
    assert {r["id"] for r in store.all()} == {first, second}
    store.delete(first)
    assert [r["id"] for r in store.all()] == [second]

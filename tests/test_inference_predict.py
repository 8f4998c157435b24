"""The inference service under its real gunicorn command, with a model trained on mnist-5k:
accuracy on MNIST digits and on photo-like uploads, the three input forms, the models routes,
probes, metrics, OpenAPI and the request log."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import requests
from conftest import SEED_MODEL_ARCHITECTURE, SEED_MODEL_NAME, copy_seed_model, run_service
from inference_support import (
    as_json,
    as_person_upload,
    decode_data_url_png,
    mnist_test_digits,
    multipart,
    png_bytes,
)


@pytest.fixture(scope="module")
def server(seed_model_dir, tmp_path_factory):
    volume = tmp_path_factory.mktemp("inference-volume")
    copy_seed_model(seed_model_dir, volume)
    logs = tmp_path_factory.mktemp("inference-logs")
    with run_service("inference", volume, logs, ready_path="/readyz") as running:
        yield running


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return mnist_test_digits(tmp_path_factory.mktemp("datasets"))


@pytest.fixture(scope="module")
def session():
    with requests.Session() as http:
        yield http


@pytest.fixture(scope="module")
def multipart_answers(server, digits, session):
    """The service's answers to the 500 test digits uploaded as 28×28 PNG files (multipart)."""
    images, _ = digits
    answers = []
    for pixels in images:
        response = multipart(session, server.url("/api/predict"), png_bytes(pixels))
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def test_mnist_test_digits_as_png_uploads_are_at_least_97_percent_right(multipart_answers,
                                                                         digits, seed_model_dir):
    _, labels = digits
    predicted = np.array([answer["digit"] for answer in multipart_answers])
    accuracy = float((predicted == labels).mean())
    assert len(predicted) == 500
    # The model's own accuracy on these digits (raw arrays, no HTTP), to tell a weak model
    # from a preprocessing problem when this fails.
    own = json.loads((seed_model_dir / f"{SEED_MODEL_NAME}.json").read_text())["test_accuracy"]
    assert accuracy >= 0.97, (f"accuracy {accuracy:.3f} on 500 mnist-5k test digits "
                              f"(the model's own test accuracy: {own:.3f})")


def test_an_answer_has_the_model_digit_confidence_probabilities_and_preprocessed_image(
        multipart_answers):
    answer = multipart_answers[0]
    assert answer["model"] == SEED_MODEL_NAME
    assert len(answer["probabilities"]) == 10
    assert sum(answer["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert answer["digit"] == int(np.argmax(answer["probabilities"]))
    assert answer["confidence"] == pytest.approx(max(answer["probabilities"]))
    preprocessed = decode_data_url_png(answer["preprocessed"])
    assert preprocessed.size == (28, 28)
    assert preprocessed.mode == "L"


def test_the_preprocessed_image_is_mnist_like(multipart_answers, digits):
    """White ink on black, centred: an MNIST digit comes back almost unchanged (with version 2
    or later of the preprocessing, the seed model's, its stroke width normalised; version 3
    reads a 28×28 MNIST PNG as version 2 does: too small to reduce, its ink a fifth of it)."""
    from inference.stroke_width import normalise_stroke_width

    images, _ = digits
    for answer, original in zip(multipart_answers[:20], images[:20], strict=True):
        seen = np.asarray(decode_data_url_png(answer["preprocessed"]), np.float32)
        expected = original.astype(np.float32)
        if answer["preprocessing_version"] >= 2:
            expected = normalise_stroke_width(expected / 255.0) * 255.0
        assert np.abs(seen - expected).mean() < 8  # of 255


def test_person_uploads_dark_ink_on_light_paper_are_at_least_95_percent_right(
        server, digits, session):
    """Each test digit drawn as dark ink on light paper in a 280×280 RGB photo, at a random
    size and position (fixed seed), with noise: the preprocessing must find, invert, crop,
    scale and centre it the way MNIST was made."""
    images, labels = digits
    rng = np.random.default_rng(20240607)
    right = 0
    for pixels, label in zip(images, labels, strict=True):
        response = multipart(session, server.url("/api/predict"), as_person_upload(pixels, rng))
        assert response.status_code == 200, response.text
        right += response.json()["digit"] == label
    accuracy = right / len(labels)
    assert accuracy >= 0.95, f"accuracy {accuracy:.3f} on 500 photo-like uploads"


@pytest.mark.parametrize("data_url", [False, True], ids=["plain-base64", "data-url"])
def test_json_gives_the_same_answers_as_multipart(server, digits, session, multipart_answers,
                                                  data_url):
    images, _ = digits
    for pixels, expected in zip(images, multipart_answers, strict=True):
        response = as_json(session, server.url("/api/predict"), png_bytes(pixels),
                           data_url=data_url)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["digit"] == expected["digit"]
        assert answer["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)


def test_a_form_with_base64_text_fields_answers_as_the_upload_does(server, digits, session,
                                                                  multipart_answers):
    """Plain form fields (no file name): `image` as a data URL, `model` by name. Each request
    has its own boundary (requests makes a new one every time, as browsers and curl do)."""
    images, _ = digits
    for pixels, expected in zip(images[:10], multipart_answers[:10], strict=True):
        data_url = "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode()
        response = session.post(server.url("/api/predict"), timeout=30,
                                files={"model": (None, SEED_MODEL_NAME), "image": (None, data_url)})
        assert response.status_code == 200, response.text
        assert response.request.headers["Content-Type"].startswith("multipart/form-data")
        answer = response.json()
        assert (answer["model"], answer["digit"]) == (SEED_MODEL_NAME, expected["digit"])


def test_the_earlier_drawing_route_answers_like_predict(server, digits, session,
                                                        multipart_answers):
    images, _ = digits
    for pixels, expected in zip(images[:25], multipart_answers[:25], strict=True):
        response = as_json(session, server.url("/api/drawing/"), png_bytes(pixels),
                           data_url=True)
        assert response.status_code == 200, response.text
        assert response.json()["digit"] == expected["digit"]


def test_a_canvas_drawing_with_transparency_is_recognised(server, digits, session,
                                                          multipart_answers):
    """A browser canvas: black strokes on fully transparent pixels (RGBA)."""
    images, _ = digits
    for pixels, expected in zip(images[:10], multipart_answers[:10], strict=True):
        big = np.asarray(png_to_size(pixels, 200))
        rgba = np.zeros((200, 200, 4), np.uint8)
        rgba[..., 3] = big  # ink is opaque black, the rest transparent
        response = as_json(session, server.url("/api/predict"), png_bytes(rgba, "RGBA"),
                           data_url=True)
        assert response.status_code == 200, response.text
        assert response.json()["digit"] == expected["digit"]


def png_to_size(pixels: np.ndarray, size: int):
    from PIL import Image

    return Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC)


def test_exif_orientation_is_applied(server, digits, session, multipart_answers):
    """A phone photo stored sideways with EXIF orientation 6 (rotate 90° clockwise to view)."""
    import io

    from PIL import Image

    images, _ = digits
    for pixels, expected in zip(images[:10], multipart_answers[:10], strict=True):
        stored = Image.fromarray(255 - pixels).resize((112, 112)).rotate(90, expand=True)
        exif = Image.Exif()
        exif[0x0112] = 6
        buffer = io.BytesIO()
        stored.convert("RGB").save(buffer, "JPEG", quality=95, exif=exif)
        response = multipart(session, server.url("/api/predict"), buffer.getvalue(),
                             filename="photo.jpg", content_type="image/jpeg")
        assert response.status_code == 200, response.text
        assert response.json()["digit"] == expected["digit"]


def test_models_are_listed_with_their_metadata_and_the_default(server, session):
    body = session.get(server.url("/api/models"), timeout=10).json()
    assert body["default"] == SEED_MODEL_NAME
    [model] = body["models"]
    assert model["name"] == SEED_MODEL_NAME
    assert model["architecture"] == SEED_MODEL_ARCHITECTURE
    assert 0.9 < model["test_accuracy"] <= 1
    assert model["size_bytes"] > 0
    assert model["status"] == "loaded"
    one = session.get(server.url(f"/api/models/{SEED_MODEL_NAME}"), timeout=10)
    assert one.status_code == 200
    assert one.json()["name"] == SEED_MODEL_NAME
    assert one.json()["created_at"] == model["created_at"]


def test_probes(server, session):
    assert session.get(server.url("/healthz"), timeout=10).json() == {"status": "ok"}
    ready = session.get(server.url("/readyz"), timeout=10)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_openapi_describes_every_route(server, session):
    spec = session.get(server.url("/openapi.json"), timeout=10).json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/predict", "/api/drawing/", "/api/models", "/api/models/{name}",
                 "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path
    predict = spec["paths"]["/api/predict"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(predict["requestBody"]["content"])
    assert {"200", "400", "404", "413", "415", "422", "503"} <= set(predict["responses"])


def test_metrics_add_up_over_all_gunicorn_workers(server, digits, session):
    """Each of the 2 workers counts its own requests; /metrics must show the sum."""
    images, _ = digits

    def predictions() -> float:
        text = session.get(server.url("/metrics"), timeout=10).text
        return sample(text, "inference_predictions_total", f'model="{SEED_MODEL_NAME}"')

    before = predictions()
    for pixels in images[:30]:
        assert multipart(session, server.url("/api/predict"), png_bytes(pixels)).ok
    assert predictions() == before + 30
    text = session.get(server.url("/metrics"), timeout=10).text
    assert sample(text, "inference_http_requests_total",
                  'method="POST",route="/api/predict",status="200"') >= 30
    assert sample(text, "inference_http_request_duration_seconds_count",
                  'route="/api/predict"') >= 30
    assert sample(text, "inference_model_cache_hits_total") >= 30
    assert sample(text, "inference_model_load_seconds_count", f'model="{SEED_MODEL_NAME}"') >= 1
    assert "inference_model_cache_misses_total" in text


def sample(text: str, name: str, labels: str = "") -> float:
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == wanted:
            return float(value)
    raise AssertionError(f"no sample {wanted} in /metrics")


def test_one_json_log_line_per_request_without_image_bytes(server, digits, session):
    images, _ = digits
    marker_model = SEED_MODEL_NAME
    assert multipart(session, server.url("/api/predict"), png_bytes(images[0]),
                     model=marker_model).ok
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines()
             if line.startswith("{")]
    predict_lines = [line for line in lines if line["route"] == "/api/predict"]
    assert predict_lines, "no JSON log line for /api/predict"
    last = predict_lines[-1]
    assert last["status"] == 200
    assert last["model"] == SEED_MODEL_NAME
    assert last["method"] == "POST"
    assert isinstance(last["ms"], float | int)
    log_text = server.log_path.read_text()
    assert "base64" not in log_text and "iVBORw0KGgo" not in log_text  # no PNG data anywhere

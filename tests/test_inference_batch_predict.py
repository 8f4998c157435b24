"""/api/predict's batch form (JSON `images`, several multipart `image` parts) and its raw image
body (Content-Type image/*), under the service's real gunicorn command with the seed model:
one answer per image in order, equal to the single-image answers; an error per bad image; the
bounds; and the raw body's answers and errors."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import requests
from conftest import SEED_MODEL_NAME, copy_seed_model, run_service
from inference_support import mnist_test_digits, multipart, png_bytes

from inference.request_image import BATCH_MAX_IMAGES


@pytest.fixture(scope="module")
def server(seed_model_dir, tmp_path_factory):
    volume = tmp_path_factory.mktemp("batch-volume")
    copy_seed_model(seed_model_dir, volume)
    logs = tmp_path_factory.mktemp("batch-logs")
    with run_service("inference", volume, logs, ready_path="/readyz") as running:
        yield running


@pytest.fixture(scope="module")
def session():
    with requests.Session() as http:
        yield http


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    images, _ = mnist_test_digits(tmp_path_factory.mktemp("datasets"))
    return [png_bytes(pixels) for pixels in images[:40]]


@pytest.fixture(scope="module")
def single_answers(server, session, pngs):
    answers = []
    for image in pngs:
        response = multipart(session, server.url("/api/predict"), image)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def assert_same_prediction(batch_item: dict, single: dict) -> None:
    assert batch_item["digit"] == single["digit"]
    assert batch_item["confidence"] == pytest.approx(single["confidence"], abs=1e-5)
    assert batch_item["probabilities"] == pytest.approx(single["probabilities"], abs=1e-5)
    assert batch_item["preprocessed"] == single["preprocessed"]
    assert batch_item["preprocessing_version"] == single["preprocessing_version"]


def test_a_json_batch_answers_every_image_in_order_as_single_requests_do(
        server, session, pngs, single_answers):
    images = [f"data:image/png;base64,{b64(p)}" if i % 2 else b64(p) for i, p in enumerate(pngs)]
    response = session.post(server.url("/api/predict"), json={"images": images}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == SEED_MODEL_NAME
    assert len(body["predictions"]) == len(pngs)
    for item, single in zip(body["predictions"], single_answers, strict=True):
        assert set(item) == {"digit", "confidence", "probabilities", "preprocessed",
                             "preprocessing_version"}
        assert_same_prediction(item, single)


def test_several_multipart_image_parts_are_a_batch(server, session, pngs, single_answers):
    files = [("image", (f"{i}.png", image, "image/png")) for i, image in enumerate(pngs[:5])]
    response = session.post(server.url("/api/predict"), files=files,
                            data={"model": SEED_MODEL_NAME}, timeout=60)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    for item, single in zip(predictions, single_answers[:5], strict=True):
        assert_same_prediction(item, single)
    # Parts named `images` are a batch even when there is one.
    response = session.post(server.url("/api/predict"),
                            files=[("images", ("a.png", pngs[0], "image/png"))], timeout=60)
    assert response.status_code == 200, response.text
    [item] = response.json()["predictions"]
    assert_same_prediction(item, single_answers[0])


def test_bad_images_get_their_own_error_and_the_others_are_still_answered(
        server, session, pngs, single_answers):
    blank = png_bytes(np.zeros((28, 28), np.uint8))
    images = [b64(pngs[0]), "not base64 at all!", 42, b64(b"plain text, not an image"),
              b64(blank), "", b64(pngs[1]), "data:text/html;base64,PGI+",
              b64(pngs[2][: len(pngs[2]) // 2])]
    response = session.post(server.url("/api/predict"), json={"images": images}, timeout=60)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(images)
    assert_same_prediction(predictions[0], single_answers[0])
    assert_same_prediction(predictions[6], single_answers[1])
    codes = [p.get("error", {}).get("code") for p in predictions]
    assert codes == [None, "invalid_base64", "missing_image", "invalid_image", "no_digit_found",
                     "missing_image", None, "invalid_data_url", codes[8]]
    assert codes[8] in {"invalid_image", "truncated_image"}
    for item in predictions:
        if "error" in item:
            assert set(item) == {"error"}
            assert item["error"]["message"]


def test_a_batch_where_no_image_can_be_read_is_still_one_answer_per_image(server, session):
    response = session.post(server.url("/api/predict"), json={"images": ["@@", "##"]},
                            timeout=60)
    assert response.status_code == 200, response.text
    assert [p["error"]["code"] for p in response.json()["predictions"]] == \
        ["invalid_base64", "invalid_base64"]


@pytest.mark.parametrize(("images", "status", "code"), [
    ([], 400, "invalid_images"),
    ("not a list", 400, "invalid_images"),
    (None, 400, "invalid_images"),
])
def test_a_batch_that_is_not_a_list_of_images_is_refused(server, session, images, status, code):
    response = session.post(server.url("/api/predict"), json={"images": images}, timeout=60)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_batch_is_bounded(server, session, pngs):
    just_enough = [b64(pngs[0])] * BATCH_MAX_IMAGES
    response = session.post(server.url("/api/predict"), json={"images": just_enough}, timeout=60)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == BATCH_MAX_IMAGES
    response = session.post(server.url("/api/predict"),
                            json={"images": just_enough + [b64(pngs[0])]}, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_images"
    files = [("image", (f"{i}.png", pngs[0], "image/png")) for i in range(BATCH_MAX_IMAGES + 1)]
    response = session.post(server.url("/api/predict"), files=files, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_images"


def test_a_batch_naming_an_unknown_model_is_a_404(server, session, pngs):
    response = session.post(server.url("/api/predict"),
                            json={"images": [b64(pngs[0])], "model": "no-such-model"},
                            timeout=60)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_the_earlier_drawing_route_takes_one_image_only(server, session, pngs):
    response = session.post(server.url("/api/drawing/"), json={"images": [b64(pngs[0])]},
                            timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batch_not_supported"


def test_a_raw_image_body_answers_as_multipart_does(server, session, pngs, single_answers):
    for image, single in zip(pngs[:10], single_answers[:10], strict=True):
        response = session.post(server.url("/api/predict"), data=image,
                                headers={"Content-Type": "image/png"}, timeout=60)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["model"] == SEED_MODEL_NAME
        assert_same_prediction(answer, single)
    response = session.post(server.url(f"/api/predict?model={SEED_MODEL_NAME}"), data=pngs[0],
                            headers={"Content-Type": "image/png"}, timeout=60)
    assert response.status_code == 200
    assert response.json()["model"] == SEED_MODEL_NAME


def test_a_raw_jpeg_body_is_read_by_its_bytes(server, session, pngs, single_answers):
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(pngs[0])).resize((112, 112)).save(buffer, "JPEG", quality=95)
    response = session.post(server.url("/api/predict"), data=buffer.getvalue(),
                            headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == single_answers[0]["digit"]


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("/api/predict", b"", 400, "empty_image"),
    ("/api/predict", b"plain text, not an image", 400, "invalid_image"),
    ("/api/predict?model=no-such-model", None, 404, "model_not_found"),
    ("/api/predict?model=..%2Fetc", None, 400, "invalid_model_name"),
])
def test_a_raw_body_that_is_no_image_or_names_no_model_gets_an_error(
        server, session, pngs, path, body, status, code):
    response = session.post(server.url(path), data=pngs[0] if body is None else body,
                            headers={"Content-Type": "image/png"}, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code


def test_openapi_documents_the_batch_and_the_raw_body(server, session):
    spec = session.get(server.url("/openapi.json"), timeout=10).json()
    predict = spec["paths"]["/api/predict"]["post"]
    content = predict["requestBody"]["content"]
    assert "image/*" in content
    assert {"$ref": "#/components/schemas/PredictBatchJson"} in \
        content["application/json"]["schema"]["oneOf"]
    assert {"$ref": "#/components/schemas/BatchPrediction"} in \
        predict["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"]
    assert "predictions" in spec["components"]["schemas"]["BatchPrediction"]["properties"]

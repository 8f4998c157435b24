"""The Open Inference Protocol (KServe v2) routes, spoken to by a client nobody here wrote:
Triton's `tritonclient[http]`, against the service under its real gunicorn command.

Every answer is checked against /api/predict's for the same image files (mnist-5k test digits as
person-like uploads): the same preprocessing, the same model, the same probabilities.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import select
import socket
import time

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from conftest import SEED_MODEL_NAME, copy_seed_model, run_service
from inference_support import as_person_upload, mnist_test_digits, multipart
from tritonclient.utils import InferenceServerException

from inference.preprocess import preprocess

# Probabilities of one image in a batch of many vs. alone: the same graph, the same weights;
# a batched matmul may add float32 rounding in the last bits.
SAME = {"atol": 1e-6, "rtol": 0}


@pytest.fixture(scope="module")
def server(seed_model_dir, tmp_path_factory):
    volume = tmp_path_factory.mktemp("v2-volume")
    copy_seed_model(seed_model_dir, volume)
    with run_service("inference", volume, tmp_path_factory.mktemp("v2-logs"),
                     ready_path="/readyz") as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    client = triton.InferenceServerClient(url=server.base_url.removeprefix("http://"),
                                          network_timeout=120.0, connection_timeout=60.0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> list[bytes]:
    """16 mnist-5k test digits as photo-like PNG files."""
    images, _ = mnist_test_digits(tmp_path_factory.mktemp("datasets"))
    rng = np.random.default_rng(12)
    return [as_person_upload(images[i], rng) for i in range(16)]


@pytest.fixture(scope="module")
def predicted(server, uploads) -> list[dict]:
    """/api/predict's answers to the same files."""
    with requests.Session() as session:
        answers = [multipart(session, server.url("/api/predict"), image) for image in uploads]
    assert all(answer.status_code == 200 for answer in answers)
    return [answer.json() for answer in answers]


def expected(predicted: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([answer["probabilities"] for answer in predicted], np.float32),
            np.array([answer["digit"] for answer in predicted], np.int64))


def image_input(files: list[bytes], binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("image", [len(files)], "BYTES")
    if binary:
        tensor.set_data_from_numpy(np.array(files, dtype=np.object_), binary_data=True)
    else:  # JSON carries text: base64, as /api/predict's JSON body
        encoded = [base64.b64encode(f).decode() for f in files]
        tensor.set_data_from_numpy(np.array(encoded, dtype=np.object_), binary_data=False)
    return tensor


def pixels_input(pixels: np.ndarray, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("input", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    return tensor


# ---------------------------------------------------------------- health and metadata


def test_server_is_live_and_ready_and_names_the_binary_extension(client, server):
    assert client.is_server_live()
    assert client.is_server_ready()
    # The status is the answer; the body is what KServe's own client reads.
    assert requests.get(server.url("/v2/health/live"), timeout=10).json() == {"live": True}
    assert requests.get(server.url("/v2/health/ready"), timeout=10).json() == {"ready": True}
    assert requests.get(server.url(f"/v2/models/{SEED_MODEL_NAME}/ready"), timeout=60).json() \
        == {"name": SEED_MODEL_NAME, "ready": True}
    metadata = client.get_server_metadata()
    assert metadata["name"] == "digits-inference"
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_is_ready_in_both_url_forms(client):
    assert client.is_model_ready(SEED_MODEL_NAME)
    assert client.is_model_ready(SEED_MODEL_NAME, model_version="1")
    assert not client.is_model_ready(SEED_MODEL_NAME, model_version="2")


def test_model_metadata_names_the_inputs_and_outputs(client):
    metadata = client.get_model_metadata(SEED_MODEL_NAME)
    assert metadata["name"] == SEED_MODEL_NAME and metadata["versions"] == ["1"]
    tensors = {t["name"]: (t["datatype"], t["shape"])
               for t in metadata["inputs"] + metadata["outputs"]}
    assert tensors == {"input": ("FP32", [-1, 28, 28, 1]), "image": ("BYTES", [-1]),
                       "probabilities": ("FP32", [-1, 10]), "digit": ("INT64", [-1])}
    assert client.get_model_metadata(SEED_MODEL_NAME, model_version="1") == metadata


def test_an_unknown_model_is_404_in_the_protocols_error_shape(client, server):
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_metadata("no-such-model")
    assert raised.value.status() == "404"
    assert "no-such-model" in raised.value.message()
    with pytest.raises(InferenceServerException) as raised:
        client.infer("no-such-model", [pixels_input(np.zeros((1, 28, 28, 1), np.float32))])
    assert raised.value.status() == "404"
    response = requests.get(server.url("/v2/models/no-such-model"), timeout=10)
    assert response.status_code == 404 and isinstance(response.json()["error"], str)
    # the service's own routes keep their own shape
    own = requests.get(server.url("/api/models/no-such-model"), timeout=10).json()
    assert own["error"]["code"] == "model_not_found"


# ---------------------------------------------------------------- inference


def test_a_batch_of_16_image_files_in_binary_equals_api_predict(client, uploads, predicted):
    result = client.infer(SEED_MODEL_NAME, [image_input(uploads)])
    probabilities, digits = expected(predicted)
    assert result.get_response()["model_name"] == SEED_MODEL_NAME
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, **SAME)
    np.testing.assert_array_equal(result.as_numpy("digit"), digits)
    assert result.as_numpy("digit").dtype == np.int64


def test_image_files_as_base64_json_equal_api_predict(client, uploads, predicted):
    outputs = [triton.InferRequestedOutput(name, binary_data=False)
               for name in ("probabilities", "digit")]
    result = client.infer(SEED_MODEL_NAME, [image_input(uploads[:4], binary=False)],
                          outputs=outputs)
    probabilities, digits = expected(predicted[:4])
    assert all("data" in output for output in result.get_response()["outputs"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, **SAME)
    np.testing.assert_array_equal(result.as_numpy("digit"), digits)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_preprocessed_fp32_input_equals_api_predict(client, uploads, predicted, binary):
    """`input` is what /api/predict feeds its model: preprocess() of the same file, in the
    preprocessing version the model asks for (/api/predict says which)."""
    version = predicted[0]["preprocessing_version"]
    pixels = np.stack([preprocess(image, version).image for image in uploads])
    outputs = [triton.InferRequestedOutput(name, binary_data=binary)
               for name in ("probabilities", "digit")]
    result = client.infer(SEED_MODEL_NAME, [pixels_input(pixels, binary)], outputs=outputs,
                          model_version="1")
    probabilities, digits = expected(predicted)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, **SAME)
    np.testing.assert_array_equal(result.as_numpy("digit"), digits)


def test_a_request_may_ask_for_one_output(client, uploads, predicted):
    result = client.infer(SEED_MODEL_NAME, [image_input(uploads[:2])],
                          outputs=[triton.InferRequestedOutput("digit")], request_id="r-7")
    response = result.get_response()
    assert [output["name"] for output in response["outputs"]] == ["digit"]
    assert response["id"] == "r-7"
    assert result.as_numpy("probabilities") is None
    np.testing.assert_array_equal(result.as_numpy("digit"), expected(predicted[:2])[1])


def error_of(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as raised:
        call()
    return raised.value


def test_a_wrong_shape_a_wrong_datatype_and_values_outside_0_1_are_400(client):
    wrong_shape = error_of(lambda: client.infer(
        SEED_MODEL_NAME, [pixels_input(np.zeros((2, 28, 28), np.float32))]))
    assert wrong_shape.status() == "400" and "shape" in wrong_shape.message()
    as_int = triton.InferInput("input", [1, 28, 28, 1], "INT32")
    as_int.set_data_from_numpy(np.zeros((1, 28, 28, 1), np.int32))
    wrong_type = error_of(lambda: client.infer(SEED_MODEL_NAME, [as_int]))
    assert wrong_type.status() == "400" and "FP32" in wrong_type.message()
    bright = error_of(lambda: client.infer(
        SEED_MODEL_NAME, [pixels_input(np.full((1, 28, 28, 1), 255, np.float32))]))
    assert bright.status() == "400" and "[0, 1]" in bright.message()


def test_a_batch_over_the_limit_is_400_and_says_the_limit(client):
    error = error_of(lambda: client.infer(
        SEED_MODEL_NAME, [pixels_input(np.zeros((65, 28, 28, 1), np.float32))]))
    assert error.status() == "400" and "64" in error.message()


def test_an_unreadable_image_names_its_place_in_the_batch(client, uploads):
    error = error_of(lambda: client.infer(
        SEED_MODEL_NAME, [image_input([uploads[0], b"not an image"])]))
    assert error.status() == "400" and error.message().startswith("image 1:")


def test_malformed_bodies_get_the_protocols_error(server):
    url = server.url(f"/v2/models/{SEED_MODEL_NAME}/infer")
    cases = [
        ({"data": b"{not json"}, 400),
        ({"json": {"inputs": []}}, 400),
        ({"json": {"inputs": [{"name": "input", "shape": [1, 28, 28, 1], "datatype": "FP32",
                               "data": ["x"] * 784}]}}, 400),
        ({"data": b'{"inputs": []}', "headers": {"Inference-Header-Content-Length": "999"}},
         400),
    ]
    for kwargs, status in cases:
        response = requests.post(url, timeout=30, **kwargs)
        assert response.status_code == status, response.text
        assert isinstance(response.json()["error"], str), response.text


def test_a_body_that_trickles_in_is_cut_off_with_408(server):
    """/api/predict's whole-body deadline holds here too: one byte every 0.2 s never trips the
    socket's timeout, the deadline (BODY_READ_TIMEOUT + the length at 16 KiB/s) does."""
    host, port = server.base_url.removeprefix("http://").split(":")
    length, sent = 20_000, 0
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST /v2/models/{SEED_MODEL_NAME}/infer HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
                     .encode())
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while sent < length and not select.select([sock], [], [], 0)[0]:
                sock.sendall(b" ")
                sent += 1
                time.sleep(0.2)
        assert time.monotonic() - started < 60 and sent < length
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        assert reply.status == 408
        assert "in time" in json.loads(reply.read())["error"]


# ---------------------------------------------------------------- around the routes


def test_v2_routes_are_in_openapi_and_in_metrics(server, client, uploads):
    client.infer(SEED_MODEL_NAME, [image_input(uploads[:1])])
    paths = requests.get(server.url("/openapi.json"), timeout=10).json()["paths"]
    assert {"/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}",
            "/v2/models/{name}/ready", "/v2/models/{name}/infer",
            "/v2/models/{name}/versions/{version}/infer"} <= set(paths)
    metrics = requests.get(server.url("/metrics"), timeout=10).text
    assert 'route="/v2/models/<name>/infer"' in metrics
    assert 'inference_http_request_duration_seconds_count{route="/v2/health/ready"}' in metrics


def test_an_unexpected_error_in_a_v2_route_is_500_without_a_traceback(tmp_path, monkeypatch):
    """The protocol's error shape, and nothing of the exception reaches the client."""
    from inference import create_app

    app = create_app({"model_dir": tmp_path, "load_default": False})
    cache = app.extensions["model_cache"]

    def broken(name=None):
        raise RuntimeError("secret detail /etc/passwd")

    monkeypatch.setattr(cache, "get", broken)
    response = app.test_client().get("/v2/models/any")
    assert response.status_code == 500
    assert set(response.json) == {"error"} and isinstance(response.json["error"], str)
    assert "secret" not in response.text and "Traceback" not in response.text
    monkeypatch.setattr(cache, "list_models", broken)
    own = app.test_client().get("/api/models")
    assert own.status_code == 500 and own.json["error"]["code"] == "internal_error"
    assert "secret" not in own.text

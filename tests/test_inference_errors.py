"""Bad input and broken model files: every one gets a JSON error with its status and stable
code, and the service keeps answering good requests right after it.

Bad inputs tried (one test case each, see CASES): a multipart body and a JSON body over
MAX_UPLOAD_BYTES; an empty file; text instead of an image; a PNG whose compressed data is corrupted;
a truncated PNG and a truncated JPEG; an SVG, a HEIC header and an EPS file (formats we don't
read); a PNG header claiming 40000×40000 pixels (decompression bomb); bad base64; a data URL
without ";base64,"; JSON without "image"; JSON that is not an object; a body that is not
JSON; a text/plain body; multipart without the image field, without a boundary, not multipart
at all, and with 200 parts; an unknown model; a model name
with path characters, one of 65 characters and one that is not a string; a blank white page
and a low-contrast noise image (no digit); an unknown route; a wrong method; a client that
stops sending its body (408). In the volume: a zip that is not a Keras model and a file of
random bytes, both named `.keras`.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import struct
import zlib

import numpy as np
import pytest
import requests
from conftest import SEED_MODEL_NAME, copy_seed_model, run_service
from inference_support import mnist_test_digits, png_bytes
from PIL import Image

UPLOAD_LIMIT = 300_000


@pytest.fixture(scope="module")
def volume(seed_model_dir, tmp_path_factory):
    volume = tmp_path_factory.mktemp("inference-errors-volume")
    copy_seed_model(seed_model_dir, volume)
    # A zip archive that is not a Keras model, and random bytes: both newer than the good one.
    with __import__("zipfile").ZipFile(volume / "not-a-model.keras", "w") as archive:
        archive.writestr("config.json", "{\"this\": \"is not a keras model\"}")
    (volume / "random-bytes.keras").write_bytes(np.random.default_rng(1).bytes(4096))
    return volume


@pytest.fixture(scope="module")
def server(volume, tmp_path_factory):
    logs = tmp_path_factory.mktemp("inference-errors-logs")
    with run_service("inference", volume, logs, ready_path="/readyz",
                     MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT), BODY_READ_TIMEOUT="2",
                     # Micro-batching on here (off by default), so its path meets real traffic.
                     BATCH_WINDOW_MS="0") as running:
        yield running


@pytest.fixture(scope="module")
def good_png(tmp_path_factory) -> tuple[bytes, int]:
    images, labels = mnist_test_digits(tmp_path_factory.mktemp("datasets"))
    return png_bytes(images[0]), int(labels[0])


def assert_still_serves(server, good_png):
    image, label = good_png
    response = requests.post(server.url("/api/predict"), files={"image": ("d.png", image)},
                             timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == label


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


# ---------------------------------------------------------------- bad images


def real_png(size: int = 280) -> bytes:
    rng = np.random.default_rng(3)
    return png_bytes(rng.integers(0, 255, (size, size), dtype=np.uint8))


def real_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (300, 300, 3), np.uint8)).save(
        buffer, "JPEG", quality=90)
    return buffer.getvalue()


def corrupt(data: bytes) -> bytes:
    """The file with 400 bytes in its middle inverted (a bad download or disk)."""
    return data[:2000] + bytes(byte ^ 0xFF for byte in data[2000:2400]) + data[2400:]


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def eps_file() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (20, 20), 255).save(buffer, "EPS")
    return buffer.getvalue()


HEIC_HEADER = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="28" height="28">' \
      b'<text x="5" y="20">7</text></svg>'
WHITE_PAGE = png_bytes(np.full((200, 200), 250, np.uint8))
LOW_CONTRAST_NOISE = png_bytes(np.random.default_rng(5).integers(120, 140, (100, 100),
                                                                  dtype=np.uint8))


def upload(image: bytes, **fields):
    return {"files": {"image": ("upload.png", image, "application/octet-stream")},
            "data": fields or None}


def json_body(image: str, **fields):
    return {"json": {"image": image, **fields}}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


CASES = {
    "multipart-over-limit": (upload(b"\x89PNG" + b"0" * UPLOAD_LIMIT), 413, "payload_too_large"),
    "json-over-limit": (json_body("A" * (UPLOAD_LIMIT + 10)), 413, "payload_too_large"),
    "empty-file": (upload(b""), 400, "empty_image"),
    "text-not-image": (upload(b"hello, I am not an image"), 400, "invalid_image"),
    "png-with-corrupt-data": (upload(corrupt(real_png())), 400, "invalid_image"),
    "truncated-png": (upload(real_png()[:3000]), 400, "truncated_image"),
    "truncated-jpeg": (upload(real_jpeg()[:4000]), 400, "truncated_image"),
    "svg": (upload(SVG), 415, "unsupported_image_format"),
    "heic": (upload(HEIC_HEADER), 415, "unsupported_image_format"),
    "eps": (upload(eps_file()), 415, "unsupported_image_format"),
    "bomb-40000x40000": (upload(png_claiming(40000, 40000)), 413, "image_too_large"),
    "bad-base64": (json_body("this is *not* base64!"), 400, "invalid_base64"),
    "data-url-without-base64": (json_body("data:image/png,abc"), 400, "invalid_data_url"),
    "data-url-bad-base64": (json_body("data:image/png;base64,@@@@"), 400, "invalid_base64"),
    "json-without-image": ({"json": {"model": SEED_MODEL_NAME}}, 400, "missing_image"),
    "json-not-an-object": ({"json": ["image"]}, 400, "invalid_json"),
    "body-not-json": ({"data": b"{not json", "headers": {"Content-Type": "application/json"}},
                      400, "invalid_json"),
    "text-plain-body": ({"data": b"hello", "headers": {"Content-Type": "text/plain"}}, 415,
                        "unsupported_content_type"),
    "multipart-without-image": ({"files": {"picture": ("d.png", WHITE_PAGE)}}, 400,
                                "missing_image"),
    "multipart-without-boundary": ({"data": b"--x\r\n\r\n", "headers": {
        "Content-Type": "multipart/form-data"}}, 400, "invalid_multipart"),
    "multipart-not-multipart": ({"data": b"hello, I am not a form", "headers": {
        "Content-Type": "multipart/form-data; boundary=xx"}}, 400, "invalid_multipart"),
    "multipart-200-parts": ({"files": {f"field{n}": (None, "x") for n in range(200)}}, 400,
                            "too_many_parts"),
    "unknown-model": (upload(WHITE_PAGE, model="no-such-model"), 404, "model_not_found"),
    "model-name-with-path": (json_body(b64(WHITE_PAGE), model="../mnist5k-cnn"), 400,
                             "invalid_model_name"),
    "model-name-absolute-path": (upload(WHITE_PAGE, model="/etc/passwd"), 400,
                                 "invalid_model_name"),
    "model-name-65-chars": (upload(WHITE_PAGE, model="m" * 65), 400, "invalid_model_name"),
    "model-name-not-a-string": (json_body(b64(WHITE_PAGE), model=7), 400, "invalid_model_name"),
    "white-page": (upload(WHITE_PAGE), 422, "no_digit_found"),
    "low-contrast-noise": (json_body("data:image/png;base64," + b64(LOW_CONTRAST_NOISE)), 422,
                           "no_digit_found"),
}


# Cases that are also rows of docs/reliability.md (the bad-input battery of
# tests/test_reliability_bad_input.py has the others).
RELIABILITY_ROWS = {"empty-file": "zero-byte file", "truncated-png": "truncated PNG",
                    "bomb-40000x40000": "a PNG header claiming 40000×40000 pixels",
                    "body-not-json": "JSON that isn't JSON", "json-not-an-object": "a JSON array",
                    "white-page": "an all-white page"}


@pytest.mark.parametrize("route", ["/api/predict", "/api/drawing/"])
@pytest.mark.parametrize("case", [
    pytest.param(case, id=case, marks=[pytest.mark.reliability("Bad input", RELIABILITY_ROWS[case])]
                 if case in RELIABILITY_ROWS else []) for case in CASES])
def test_bad_request_gets_its_error_then_a_good_one_succeeds(server, good_png, case, route,
                                                             observed):
    kwargs, status, code = CASES[case]
    response = requests.post(server.url(route), timeout=60, **kwargs)
    assert_error(response, status, code)
    assert_still_serves(server, good_png)
    observed(f"POST {route}: {status} {code}; the next good request got 200 with the right digit")


@pytest.mark.reliability("Bad input", "a body that stops half-way")
def test_a_client_that_stops_sending_its_body_gets_408_and_frees_its_thread(server, good_png,
                                                                             observed):
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: multipart/form-data; boundary=xx\r\n"
                     b"Content-Length: 5000\r\n\r\n--xx\r\n")
        # Headers and body may arrive in separate segments: let http.client parse the reply.
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        body = json.loads(reply.read())
    assert reply.status == 408, body
    assert body["error"]["code"] == "request_timeout"
    assert_still_serves(server, good_png)
    observed("6 of 5,000 bytes, then silence: 408 request_timeout after BODY_READ_TIMEOUT (2 s); "
             "the next good request got 200")


# ---------------------------------------------------------------- routes and names


def test_unknown_model_metadata_is_404_and_path_characters_are_400(server, good_png):
    assert_error(requests.get(server.url("/api/models/no-such-model"), timeout=10),
                 404, "model_not_found")
    assert_error(requests.get(server.url("/api/models/..%2F..%2Fetc%2Fpasswd"), timeout=10),
                 400, "invalid_model_name")
    assert_error(requests.get(server.url("/api/models/" + "x" * 65), timeout=10),
                 400, "invalid_model_name")
    assert_still_serves(server, good_png)


def test_unknown_route_and_wrong_method_are_json_errors(server, good_png):
    assert_error(requests.get(server.url("/no/such/route"), timeout=10), 404, "not_found")
    wrong = requests.get(server.url("/api/predict"), timeout=10)
    assert_error(wrong, 405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]
    assert_still_serves(server, good_png)


# ---------------------------------------------------------------- broken model files


@pytest.mark.parametrize("broken", ["not-a-model", "random-bytes"])
def test_a_corrupt_model_file_gives_503_and_is_listed_unloadable_others_unaffected(
        server, good_png, broken):
    image, label = good_png
    response = requests.post(server.url("/api/predict"), timeout=60,
                             files={"image": ("d.png", image)}, data={"model": broken})
    error = assert_error(response, 503, "model_unavailable")
    assert broken in error["message"]
    listing = requests.get(server.url("/api/models"), timeout=10).json()
    statuses = {model["name"]: model for model in listing["models"]}
    assert statuses[broken]["status"] == "unloadable"
    assert statuses[broken]["error"]
    assert statuses[SEED_MODEL_NAME]["status"] != "unloadable"
    # Newer than the good model, but a broken file never becomes the default.
    assert listing["default"] == SEED_MODEL_NAME
    assert_still_serves(server, good_png)
    named = requests.post(server.url("/api/predict"), timeout=60,
                          files={"image": ("d.png", image)}, data={"model": SEED_MODEL_NAME})
    assert named.status_code == 200 and named.json()["digit"] == label
    assert requests.get(server.url("/readyz"), timeout=10).status_code == 200

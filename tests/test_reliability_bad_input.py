"""Bad input: each case gets its status and error code (or, where the input is odd but readable,
the right answer), and then a good request still succeeds.

Cases that tests/test_inference_errors.py and tests/test_train_service.py already try (zero-byte
file, truncated PNG, the 40000×40000 header, JSON that isn't JSON, a JSON array, a white page;
epochs as a string, batch size 0, unknown data set and architecture, a name with a slash) are
rows of docs/reliability.md from there. The services run under their real gunicorn command with
the default upload limit (5 MiB) and BODY_READ_TIMEOUT=2 s.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import select
import socket
import threading
import time

import numpy as np
import pytest
import requests
from conftest import copy_seed_model, run_service
from inference_support import as_person_upload, mnist_test_digits, png_bytes
from PIL import Image

BODY_READ_TIMEOUT = 2


@pytest.fixture(scope="module")
def inference(seed_model_dir, tmp_path_factory):
    volume = tmp_path_factory.mktemp("bad-input-volume")
    copy_seed_model(seed_model_dir, volume)
    with run_service("inference", volume, tmp_path_factory.mktemp("bad-input-logs"),
                     ready_path="/readyz", BODY_READ_TIMEOUT=str(BODY_READ_TIMEOUT)) as server:
        yield server


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    return mnist_test_digits(tmp_path_factory.mktemp("bad-input-datasets"))


def predict_file(server, data: bytes, content_type: str = "image/png", **fields):
    return requests.post(server.url("/api/predict"), timeout=60, data=fields or None,
                         files={"image": ("upload", data, content_type)})


def predict_json(server, payload):
    return requests.post(server.url("/api/predict"), json=payload, timeout=60)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def error_of(response: requests.Response | http.client.HTTPResponse, status: int,
             code: str) -> str:
    """Assert an error answer in our format; return "status code" for the report."""
    body = response.json() if isinstance(response, requests.Response) else json.loads(
        response.read())
    got = response.status_code if isinstance(response, requests.Response) else response.status
    assert got == status, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return f"{status} {code}"


def answer_of(response: requests.Response, label: int) -> str:
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == label, response.json()
    return f"200, digit {label}"


def still_serves(server, digits) -> str:
    images, labels = digits
    response = predict_file(server, png_bytes(images[1]))
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == int(labels[1])
    return "the next good request got 200 with the right digit"


def image_file(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def person_digit(digits, index: int = 0) -> tuple[Image.Image, int]:
    """An MNIST test digit as a person's scan (dark ink on light paper, RGB), and its label."""
    images, labels = digits
    data = as_person_upload(images[index], np.random.default_rng(index))
    return Image.open(io.BytesIO(data)).convert("RGB"), int(labels[index])


# ---------------------------------------------------------------- bodies


@pytest.mark.reliability("Bad input", "empty body")
def test_empty_body(inference, digits, observed):
    no_type = requests.post(inference.url("/api/predict"), timeout=10)
    as_json = requests.post(inference.url("/api/predict"), data=b"", timeout=10,
                            headers={"Content-Type": "application/json"})
    as_form = requests.post(inference.url("/api/predict"), data=b"", timeout=10,
                            headers={"Content-Type": "multipart/form-data; boundary=x"})
    observed(f"no Content-Type: {error_of(no_type, 415, 'unsupported_content_type')}; "
             f"JSON: {error_of(as_json, 400, 'invalid_json')}; "
             f"multipart: {error_of(as_form, 400, 'missing_image')}; "
             f"{still_serves(inference, digits)}")


@pytest.mark.reliability("Bad input", "12 MB of random bytes")
def test_twelve_megabytes_of_random_bytes(inference, digits, observed):
    response = predict_file(inference, os.urandom(12 * 1024 * 1024), "application/octet-stream")
    observed(f"{error_of(response, 413, 'payload_too_large')} (limit 5 MiB, refused from the "
             f"Content-Length before reading); {still_serves(inference, digits)}")


# ---------------------------------------------------------------- odd but readable images


@pytest.mark.reliability("Bad input", "an animated GIF of 1,000 frames")
def test_animated_gif_of_a_thousand_frames(inference, digits, observed):
    first, label = person_digit(digits)
    first = first.convert("L").resize((112, 112))
    frames = [Image.new("L", first.size, 40 + i % 200) for i in range(999)]
    gif = image_file(first, "GIF", save_all=True, append_images=frames, duration=20, loop=0)
    assert Image.open(io.BytesIO(gif)).n_frames == 1000
    started = time.monotonic()
    response = predict_file(inference, gif, "image/gif")
    seconds = time.monotonic() - started
    observed(f"{len(gif) // 1024} KiB, 1,000 frames: {answer_of(response, label)} from the first "
             f"frame only ({seconds * 1000:.0f} ms; the other 999 are never decoded); "
             f"{still_serves(inference, digits)}")


@pytest.mark.reliability("Bad input", "a 1×1 image")
def test_one_pixel_image(inference, digits, observed):
    black, white = (image_file(Image.new("L", (1, 1), value), "PNG") for value in (0, 255))
    observed(f"black pixel: {error_of(predict_file(inference, black), 422, 'no_digit_found')}; "
             f"white pixel: {error_of(predict_file(inference, white), 422, 'no_digit_found')}; "
             f"{still_serves(inference, digits)}")


@pytest.mark.reliability("Bad input", "an all-black image")
def test_all_black_image(inference, digits, observed):
    # The all-white page is a case of tests/test_inference_errors.py.
    black = image_file(Image.new("RGB", (280, 280), (0, 0, 0)), "PNG")
    observed(f"280×280 black: {error_of(predict_file(inference, black), 422, 'no_digit_found')}"
             f"; {still_serves(inference, digits)}")


@pytest.mark.reliability("Bad input", "a CMYK JPEG")
def test_cmyk_jpeg(inference, digits, observed):
    image, label = person_digit(digits, 2)
    data = image_file(image.convert("CMYK"), "JPEG", quality=90)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    observed(f"an MNIST digit scanned, saved as CMYK JPEG: "
             f"{answer_of(predict_file(inference, data, 'image/jpeg'), label)}; "
             f"{still_serves(inference, digits)}")


@pytest.mark.reliability("Bad input", "a 16-bit PNG")
def test_sixteen_bit_png(inference, digits, observed):
    image, label = person_digit(digits, 3)
    pixels = np.asarray(image.convert("L"), np.uint16) * 257
    data = image_file(Image.fromarray(pixels), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    observed(f"an MNIST digit scanned, as 16-bit grayscale PNG: "
             f"{answer_of(predict_file(inference, data), label)}; "
             f"{still_serves(inference, digits)}")


@pytest.mark.reliability("Bad input", "a fully transparent RGBA image")
def test_fully_transparent_image(inference, digits, observed):
    # Invisible ink: a digit drawn in the colour channels with alpha 0 everywhere.
    image, _ = person_digit(digits, 4)
    rgba = image.convert("RGBA")
    rgba.putalpha(0)
    response = predict_file(inference, image_file(rgba, "PNG"))
    observed(f"{error_of(response, 422, 'no_digit_found')} (a digit hidden under alpha 0 is not "
             f"read); {still_serves(inference, digits)}")


# ---------------------------------------------------------------- JSON


@pytest.mark.reliability("Bad input", "base64 with bad padding")
def test_base64_with_bad_padding(inference, digits, observed):
    images, labels = digits
    encoded = b64(png_bytes(images[5]))
    assert encoded.endswith("=")
    missing = predict_json(inference, {"image": encoded.rstrip("=")})
    extra = predict_json(inference, {"image": encoded + "=="})
    inside = predict_json(inference, {"image": encoded[:12] + "=" + encoded[12:]})
    observed(f"padding left out: {answer_of(missing, int(labels[5]))} (as browsers' atob "
             f"accepts); too much: {error_of(extra, 400, 'invalid_base64')}; '=' inside: "
             f"{error_of(inside, 400, 'invalid_base64')}; {still_serves(inference, digits)}")


@pytest.mark.reliability("Bad input", "a data URL with the wrong MIME type")
def test_data_url_with_the_wrong_mime_type(inference, digits, observed):
    images, labels = digits
    encoded = b64(png_bytes(images[6]))
    html = predict_json(inference, {"image": f"data:text/html;base64,{encoded}"})
    text = predict_json(inference, {"image": f"data:text/plain;base64,{encoded}"})
    other_image = predict_json(inference, {"image": f"data:image/jpeg;base64,{encoded}"})
    observed(f"text/html: {error_of(html, 400, 'invalid_data_url')}; text/plain: "
             f"{error_of(text, 400, 'invalid_data_url')}; image/jpeg holding a PNG: "
             f"{answer_of(other_image, int(labels[6]))} (the bytes tell the format); "
             f"{still_serves(inference, digits)}")


@pytest.mark.reliability("Bad input", "JSON whose image is a number, a list or null")
def test_json_image_of_the_wrong_type(inference, digits, observed):
    answers = []
    for value in (7, [1, 2, 3], None):
        response = predict_json(inference, {"image": value})
        answers.append(f"{json.dumps(value)}: {error_of(response, 400, 'missing_image')}")
    observed(f"{'; '.join(answers)}; {still_serves(inference, digits)}")


# ---------------------------------------------------------------- model names

BAD_NAMES = {"../../etc/passwd": "../../etc/passwd", "%2e%2e%2fx": "%2e%2e%2fx",
             "300 characters": "m" * 300, "non-ASCII": "modèle-七"}


def raw_get(server, path: str) -> http.client.HTTPResponse:
    """GET with the path exactly as given (requests would resolve the `..` itself)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", path)
    return connection.getresponse()


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.reliability("Bad input", f"model name {case}"), id=case)
    for case in BAD_NAMES])
def test_bad_model_names(inference, digits, observed, case):
    name = BAD_NAMES[case]
    images, _ = digits
    image = png_bytes(images[7])
    form = predict_file(inference, image, model=name)
    as_json = predict_json(inference, {"image": b64(image), "model": name})
    # In the URL: literally, and percent-encoded (UTF-8) where it isn't ASCII.
    path = "/api/models/" + "".join(c if c.isascii() else "".join(
        f"%{byte:02X}" for byte in c.encode()) for c in name)
    listing = raw_get(inference, path)
    observed(f"form field: {error_of(form, 400, 'invalid_model_name')}; JSON: "
             f"{error_of(as_json, 400, 'invalid_model_name')}; GET {path[:40]}: "
             f"{error_of(listing, 400, 'invalid_model_name')}; "
             f"{still_serves(inference, digits)}")


# ---------------------------------------------------------------- transport


@pytest.mark.reliability("Bad input", "a Content-Type that lies")
def test_content_type_that_lies(inference, digits, observed):
    images, labels = digits
    png = png_bytes(images[8])
    jpeg = image_file(Image.fromarray(images[8]), "JPEG", quality=95)
    png_as_json = requests.post(inference.url("/api/predict"), data=png, timeout=10,
                                headers={"Content-Type": "application/json"})
    json_as_png = requests.post(inference.url("/api/predict"), data=json.dumps(
        {"image": b64(png)}), headers={"Content-Type": "image/png"}, timeout=10)
    text_as_png = predict_file(inference, b"just some text, honestly", "image/png")
    jpeg_as_png = predict_file(inference, jpeg, "image/png")
    observed(f"PNG sent as application/json: {error_of(png_as_json, 400, 'invalid_json')}; "
             f"JSON sent as a raw image/png body: {error_of(json_as_png, 400, 'invalid_image')}; "
             f"text in a part labelled image/png: "
             f"{error_of(text_as_png, 400, 'invalid_image')}; a JPEG labelled image/png: "
             f"{answer_of(jpeg_as_png, int(labels[8]))} (the bytes decide); "
             f"{still_serves(inference, digits)}")


def server_answered(sock: socket.socket) -> bool:
    """Whether the server has sent something (or closed), without waiting or consuming it."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


@pytest.mark.reliability("Bad input", "a request body that trickles in slowly")
def test_a_body_that_trickles_in_is_cut_off_while_others_are_served(inference, digits,
                                                                    observed):
    """One byte every 0.2 s never trips a per-read timeout: the body's own deadline must."""
    host, port = inference.base_url.removeprefix("http://").split(":")
    length = 20_000  # 4,000 s at this pace
    cut_off = threading.Event()
    outcome: dict = {}

    def trickle():
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: multipart/form-data; boundary=xx\r\n"
                         + f"Content-Length: {length}\r\n\r\n".encode() + b"--xx\r\n")
            started, sent = time.monotonic(), 6
            try:
                while sent < length and not server_answered(sock):
                    sock.sendall(b"a")
                    sent += 1
                    time.sleep(0.2)
            except OSError as error:  # closed on us
                outcome["error"] = type(error).__name__
            outcome.update(sent=sent, seconds=time.monotonic() - started)
            try:
                reply = http.client.HTTPResponse(sock)
                reply.begin()
                outcome["status"], outcome["body"] = reply.status, json.loads(reply.read())
            except (OSError, http.client.HTTPException) as error:
                outcome.setdefault("error", type(error).__name__)
        cut_off.set()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    served = 0
    while not cut_off.is_set() and served < 500:
        still_serves(inference, digits)
        served += 1
    thread.join(timeout=120)
    assert cut_off.is_set(), "the trickling client was never cut off"
    trickled = outcome["sent"] - 6
    assert trickled >= 5, outcome  # it did trickle: no pause ever reached BODY_READ_TIMEOUT
    assert outcome["sent"] < length, outcome
    if "status" in outcome:
        assert outcome["status"] == 408, outcome
        assert outcome["body"]["error"]["code"] == "request_timeout"
        answer = "408 request_timeout"
    else:
        answer = f"the connection closed ({outcome['error']})"
    observed(f"1 byte per 0.2 s of a {length:,}-byte body (BODY_READ_TIMEOUT={BODY_READ_TIMEOUT}"
             f" s): {answer} after {trickled} bytes of body in {outcome['seconds']:.1f} s; "
             f"meanwhile {served} good requests were answered 200 with the right digit; "
             f"{still_serves(inference, digits)}")


# ---------------------------------------------------------------- training


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    volume = tmp_path_factory.mktemp("bad-input-train-volume")
    with run_service("train", volume, tmp_path_factory.mktemp("bad-input-train-logs"),
                     ready_path="/readyz") as server:
        yield server


@pytest.mark.reliability("Bad input", "train: a huge JSON body")
def test_train_huge_json_body(train, observed):
    # Every other field case (epochs as a string, batch size 0, unknown data set and
    # architecture, a name with a slash) is in tests/test_train_service.py.
    body = json.dumps({"epochs": 3, "name": "x", "notes": "n" * (8 * 1024 * 1024)})
    response = requests.post(train.url("/api/train/runs"), data=body, timeout=60,
                             headers={"Content-Type": "application/json"})
    deep = requests.post(train.url("/api/train/runs"), data="[" * 50_000 + "]" * 50_000,
                         timeout=60, headers={"Content-Type": "application/json"})
    options = requests.get(train.url("/api/train/options"), timeout=10)
    runs = requests.get(train.url("/api/train/runs"), timeout=10).json()["runs"]
    assert options.status_code == 200
    assert runs == []
    observed(f"8 MiB: {error_of(response, 413, 'payload_too_large')} (limit 64 KiB); 100,000 "
             f"nested brackets: {error_of(deep, 413, 'payload_too_large')}; no run was started; "
             f"the next request (GET /api/train/options) got 200")

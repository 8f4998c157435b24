"""The images and the model name out of a prediction request, read within time limits.

Three ways in: multipart/form-data with a file field `image` (or a base64 form field), JSON
`{"image": "<base64 or data URL>", "model": "..."}`, or the image file itself as the body
(`Content-Type: image/png`, `image/jpeg`..., the model in the query: `?model=name`).
A batch (read_predict_request): JSON `{"images": [...]}`, or several multipart `image` parts
(or parts named `images`), at most BATCH_MAX_IMAGES; an image that can't be read is an error in
its place, not a failed request. Transport encodings (base64, URL-safe base64, data URLs) are
undone here, so preprocess.py only ever sees the image file's bytes.

A client that stops sending its body, or trickles it in, must not hold a gunicorn thread: the
socket gets a read timeout and the whole body a deadline (body_deadline.py); either ends in 408.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pybase64
from flask import current_app, request
from werkzeug.exceptions import ClientDisconnected

from . import body_deadline, multipart_form
from .errors import ApiError


def limit_socket_reads() -> None:
    """A read timeout on the request's socket (a before_request hook of the predict routes)."""
    # A client that stops sending mid-body would otherwise hold this gunicorn thread forever;
    # gunicorn resets the socket to blocking for the next request on the connection.
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(current_app.config["BODY_READ_TIMEOUT_S"])


# The most images one /api/predict batch may carry (docs/api.md).
BATCH_MAX_IMAGES = 64
# A form's parts: a batch's images and a few fields (`model`); more is not a prediction request.
MAX_FORM_PARTS = BATCH_MAX_IMAGES + 16


@dataclass
class PredictRequest:
    """What a prediction request asks for: one image, or a batch of them in order.

    In a batch, an image that could not be read (bad base64, not a string) is the ApiError in
    its place: it gets its own error in the answer, the others are still predicted.
    """

    images: list[bytes | ApiError]
    model: str | None
    batch: bool


def read_image_request() -> tuple[bytes, str | None]:
    """The image bytes and the optional model name, from multipart, JSON or a raw image body.

    A batch is refused here (the earlier API's /api/drawing/ takes one image).
    """
    wanted = read_predict_request()
    if wanted.batch:
        raise ApiError(400, "batch_not_supported",
                       "This route takes one image; send batches to /api/predict.")
    return wanted.images[0], wanted.model


def read_predict_request() -> PredictRequest:
    """One image or a batch, and the optional model name, from multipart, JSON or a raw body."""
    with _within_body_deadline():
        if request.mimetype == "multipart/form-data":
            return _read_multipart()
        if request.is_json:
            return _read_json()
        if request.mimetype.startswith("image/"):
            return _read_raw_image()
    raise ApiError(415, "unsupported_content_type",
                   "Send multipart/form-data with a file field 'image', application/json "
                   "with {\"image\": \"<base64 or data URL>\"} (or {\"images\": [...]}), or "
                   "the image file itself with Content-Type image/png, image/jpeg...")


def read_raw_body() -> bytes:
    """The whole body as it came (the /v2 routes' tensors), under the same deadline (408)."""
    with _within_body_deadline():
        return request.get_data(cache=False)


@contextmanager
def _within_body_deadline() -> Iterator[None]:
    """Read the body inside this block: a body too slow or cut off by its deadline is a 408."""
    token = _watch_body()
    try:
        yield
    except (TimeoutError, ClientDisconnected):
        # Werkzeug reports a socket timeout while reading the body as a disconnection.
        raise _too_slow() from None
    finally:
        # Cut off by the deadline, the body ended early: whatever was made of it is void.
        if token is not None and body_deadline.deadlines.done(token):
            raise _too_slow()


def _too_slow() -> ApiError:
    return ApiError(408, "request_timeout",
                    "The request body did not arrive in time (or the client went away).")


def _watch_body() -> int | None:
    """A deadline for the whole body too: a client that trickles it in is cut off (408)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return None
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    length = min(request.content_length or limit, limit)
    return body_deadline.deadlines.watch(
        sock, body_deadline.seconds_for(length, current_app.config["BODY_READ_TIMEOUT_S"]))


def _read_multipart() -> PredictRequest:
    parts = multipart_form.read_parts(request.stream, request.mimetype_params.get("boundary"),
                                      MAX_FORM_PARTS)
    uploads = [part for part in parts if part.is_file and part.name in ("image", "images")]
    fields = {part.name: part.text() for part in reversed(parts) if not part.is_file}
    model = _model_name(fields.get("model"))
    if len(uploads) > 1 or any(part.name == "images" for part in uploads):
        _check_batch_size(len(uploads))
        return PredictRequest([bytes(upload.data) for upload in uploads], model, batch=True)
    if uploads:
        data = bytes(uploads[0].data)
    elif fields.get("image"):
        data = decode_image_string(fields["image"])
    else:
        raise ApiError(400, "missing_image", "The form has no file field 'image'.")
    return PredictRequest([data], model, batch=False)


def _read_json() -> PredictRequest:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "The body is not a JSON object.")
    model = _model_name(payload.get("model"))
    if "images" in payload:
        images = payload["images"]
        if not isinstance(images, list) or not images:
            raise ApiError(400, "invalid_images",
                           "'images' must be a non-empty list of base64 strings or data URLs.")
        _check_batch_size(len(images))
        return PredictRequest([_batch_image(image) for image in images], model, batch=True)
    image = payload.get("image")
    if not isinstance(image, str) or not image:
        raise ApiError(400, "missing_image",
                       "The JSON has no 'image' string (base64 or a data URL).")
    return PredictRequest([decode_image_string(image)], model, batch=False)


def _read_raw_image() -> PredictRequest:
    """The body is the image file itself (Content-Type image/*); the model in the query."""
    data = request.get_data(cache=False)
    if not data:
        raise ApiError(400, "empty_image", "The image is empty.")
    return PredictRequest([data], _model_name(request.args.get("model")), batch=False)


def _check_batch_size(count: int) -> None:
    if count > BATCH_MAX_IMAGES:
        raise ApiError(400, "too_many_images",
                       f"A batch holds at most {BATCH_MAX_IMAGES} images, not {count}.")


def _batch_image(value) -> bytes | ApiError:
    if not isinstance(value, str) or not value:
        return ApiError(400, "missing_image",
                        "Each entry of 'images' must be a base64 string or a data URL.")
    try:
        return decode_image_string(value)
    except ApiError as exc:
        return exc


def _model_name(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_model_name", "'model' must be a string.")
    return value


def decode_image_string(text: str) -> bytes:
    """The bytes of a JSON `image` value: plain base64 (standard or URL-safe) or a data URL."""
    text = text.strip()
    if text.startswith("data:"):
        header, comma, payload = text.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ApiError(400, "invalid_data_url",
                           "A data URL must look like data:image/png;base64,<base64 data>.")
        # Any image/* will do (the bytes tell the format, as in a browser); text/html won't.
        media_type = header[5:].split(";", 1)[0].strip().lower()
        if media_type and not media_type.startswith("image/"):
            raise ApiError(400, "invalid_data_url",
                           "A data URL must hold an image (data:image/png;base64,...), "
                           f"not {media_type[:40]!r}.")
        text = payload
    if not text:
        raise ApiError(400, "empty_image", "The image is empty.")
    compact = "".join(text.split())
    alphabet = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        padded = compact + "=" * (-len(compact) % 4)
        # pybase64: the standard library's decoding with the same checks, SIMD-fast (a photo's
        # 100 kB of base64 in ~5 µs against ~200 µs).
        return pybase64.b64decode(padded, altchars=alphabet, validate=True)
    except ValueError:  # binascii.Error is one
        raise ApiError(400, "invalid_base64",
                       "The image is not valid base64 (nor a base64 data URL).") from None

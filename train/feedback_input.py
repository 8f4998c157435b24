"""Reading a `POST /api/feedback` body: the 28×28 image, the original upload, the fields.

Everything is checked before anything is stored; each problem is a FeedbackInputError whose code
names the field, so the page can say which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re

import numpy as np

from train.feedback import IMAGE_SIDE
from train.volume import is_valid_name

DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,", re.ASCII)
# Originals are served back from the page's own origin, so only raster formats with a fixed,
# harmless media type are kept: never SVG or HTML, whatever the client claims.
ORIGINAL_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif",
                  "BMP": "image/bmp", "WEBP": "image/webp", "TIFF": "image/tiff"}
FIELDS = ("image", "original", "label", "predicted", "confidence", "model",
          "preprocessing_version")


class FeedbackInputError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def decode_base64(text, field: str) -> bytes:
    """Plain base64 or a `data:...;base64,` URL → bytes."""
    if not isinstance(text, str) or not text:
        raise FeedbackInputError(400, f"missing_{field}",
                                 f"`{field}` must be a base64 string or a data URL")
    match = DATA_URL.match(text)
    payload = text[match.end():] if match else text
    if match and match.group(1) and not match.group(1).startswith("image/"):
        raise FeedbackInputError(400, f"invalid_{field}",
                                 f"`{field}` is a data URL of {match.group(1)}, not an image")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise FeedbackInputError(400, f"invalid_{field}",
                                 f"`{field}` is not valid base64") from None
    if not data:
        raise FeedbackInputError(400, f"missing_{field}", f"`{field}` is empty")
    return data


def read_image(text) -> np.ndarray:
    """The 28×28 grey image the model saw (a PNG) → uint8 pixels; 400/422 otherwise."""
    from PIL import Image, UnidentifiedImageError

    data = decode_base64(text, "image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise FeedbackInputError(400, "invalid_image",
                                         f"`image` must be a PNG, not {image.format}")
            # The header is read, the pixels not yet: a wrong size is refused before decoding.
            if image.size != (IMAGE_SIDE, IMAGE_SIDE):
                width, height = image.size
                raise FeedbackInputError(
                    422, "invalid_image_size", f"`image` must be the 28×28 image the model saw "
                    f"(the prediction's `preprocessed`), not {width}×{height}")
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise FeedbackInputError(400, "invalid_image",
                                 "`image` is not a readable PNG image") from None


def read_original(text, max_bytes: int) -> tuple[bytes, str] | None:
    """The original upload (bytes, its media type as detected), None when absent."""
    from PIL import Image, UnidentifiedImageError

    if text is None:
        return None
    data = decode_base64(text, "original")
    if len(data) > max_bytes:
        raise FeedbackInputError(413, "original_too_large",
                                 f"`original` is {len(data)} bytes; the limit is {max_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as image:  # the header only: the type, not the pixels
            media_type = ORIGINAL_TYPES.get(image.format or "")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        media_type = None
    if media_type is None:
        raise FeedbackInputError(
            400, "invalid_original",
            f"`original` must be a {', '.join(ORIGINAL_TYPES)} image")
    return data, media_type


def digit(body: dict, field: str) -> int:
    value = body.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 9:
        raise FeedbackInputError(422, f"invalid_{field}", f"`{field}` must be a digit 0-9")
    return value


def read_fields(body: dict, known_models: list[str]) -> dict:
    """label, predicted, confidence, model, preprocessing_version: checked, in that order."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise FeedbackInputError(422, "unknown_field", f"unknown field(s): {', '.join(unknown)}")
    label, predicted = digit(body, "label"), digit(body, "predicted")
    confidence = body.get("confidence")
    if (not isinstance(confidence, int | float) or isinstance(confidence, bool)
            or not math.isfinite(confidence) or not 0 <= confidence <= 1):
        raise FeedbackInputError(422, "invalid_confidence",
                                 "`confidence` must be a number from 0 to 1")
    model = body.get("model")
    if not isinstance(model, str) or not is_valid_name(model):
        raise FeedbackInputError(422, "invalid_model", "`model` must be a model's name")
    if model not in known_models:
        raise FeedbackInputError(404, "unknown_model", f"there is no model {model!r}")
    # Absent or null: 1, the version of every model older than versions.
    version = body.get("preprocessing_version")
    version = 1 if version is None else version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FeedbackInputError(422, "invalid_preprocessing_version",
                                 "`preprocessing_version` must be an integer of at least 1")
    return {"label": label, "predicted": predicted, "confidence": round(float(confidence), 6),
            "model": model, "preprocessing_version": version}


def read_body(body, known_models: list[str], max_original_bytes: int) -> tuple:
    """(pixels, fields, original) from the JSON body, or FeedbackInputError."""
    if not isinstance(body, dict):
        raise FeedbackInputError(400, "invalid_json", "the body must be a JSON object")
    if body.get("image") is None:
        raise FeedbackInputError(400, "missing_image",
                                 "`image` (the 28×28 PNG the model saw) is required")
    pixels = read_image(body["image"])
    fields = read_fields(body, known_models)
    original = read_original(body.get("original"), max_original_bytes)
    return pixels, fields, original

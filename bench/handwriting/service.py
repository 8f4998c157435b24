"""The inference service's preprocessing, as the benchmark calls it, and how uploads are encoded.

Everything the benchmark knows about the service's code is in `_service_preprocess`: if the
preprocessing moves or is renamed, only that function changes. `preprocessing_digest()` names
the version of that code, so cached inputs made by another version are made again.
"""

from __future__ import annotations

import hashlib
import inspect
import io
from collections.abc import Iterable

import numpy as np
from PIL import Image

FIELD = 28
# The service's answer to an image it can't read (no digit found, ...): scored as wrong.
REFUSED = -1


def _service_preprocess():
    from inference import preprocess as module

    return module, module.preprocess


def _service_modules():
    """The service's modules whose code decides what a model sees."""
    from inference import preprocess, stroke_width

    return (preprocess, stroke_width)


def preprocessing_digest() -> str:
    """A short hash of the service's preprocessing source: part of the cache's check."""
    source = "".join(inspect.getsource(module) for module in _service_modules())
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def latest_version() -> int:
    """The newest preprocessing version the service knows (what new models are trained for)."""
    module, _ = _service_preprocess()
    return int(getattr(module, "LATEST_VERSION", 1))


def preprocess_upload(data: bytes, version: int = 1) -> np.ndarray | None:
    """The 28×28 float32 image the service's preprocessing `version` makes of `data`, or None
    when it refuses it."""
    module, preprocess = _service_preprocess()
    error = getattr(module, "ImageError", ValueError)
    try:
        result = preprocess(data, version) if version != 1 else preprocess(data)
    except error:
        return None
    image = np.asarray(getattr(result, "image", result), np.float32)
    return image.reshape(FIELD, FIELD)


def preprocess_uploads(uploads: Iterable[bytes],
                       version: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(inputs float32 (N, 28, 28), refused bool (N,)): a refused upload's input is all zeros."""
    inputs, refused = [], []
    for data in uploads:
        image = preprocess_upload(data, version)
        refused.append(image is None)
        inputs.append(np.zeros((FIELD, FIELD), np.float32) if image is None else image)
    return np.stack(inputs), np.asarray(refused, bool)


def png_bytes(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=int(quality))
    return buffer.getvalue()


def decode_gray(data: bytes) -> np.ndarray:
    """An upload as uint8 gray levels (for the sample sheet and the tests)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"))


def upscale(digits: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, h, w) → float32 (N, size, size) in [0, 1], bicubic (smooth, as ink would be)."""
    out = np.empty((len(digits), size, size), np.float32)
    for i, digit in enumerate(digits):
        image = Image.fromarray(np.asarray(digit, np.float32) / 255.0, "F")
        out[i] = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))
    return np.clip(out, 0.0, 1.0, out=out)

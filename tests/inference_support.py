"""Helpers for the inference tests: MNIST test digits, image files made from them, requests."""

from __future__ import annotations

import base64
import io
import sys
from functools import cache
from pathlib import Path

import numpy as np
import requests
from conftest import REPO, SEED_MODEL_NAME, copy_seed_model  # noqa: F401 (re-exported)
from PIL import Image

if str(REPO) not in sys.path:  # `pytest` (not `python -m pytest`) leaves the repo root out
    sys.path.insert(0, str(REPO))

# The person-style upload is shared with `make bench`, which sends the same kind of photo.
from bench.person_upload import as_person_upload, png_bytes  # noqa: E402, F401 (re-exported)


@cache
def mnist_test_digits(scratch: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 500 mnist-5k test digits (uint8, 28×28, white on black) and their labels."""
    from train.datasets import load_dataset

    dataset = load_dataset("mnist-5k", scratch)
    return dataset.x_test, np.asarray(dataset.y_test)


def multipart(session: requests.Session, url: str, image: bytes, model: str | None = None,
              filename: str = "digit.png", content_type: str = "image/png"):
    data = {"model": model} if model else None
    return session.post(url, files={"image": (filename, image, content_type)}, data=data,
                        timeout=60)


def as_json(session: requests.Session, url: str, image: bytes, model: str | None = None,
            data_url: bool = False):
    encoded = base64.b64encode(image).decode("ascii")
    payload = {"image": f"data:image/png;base64,{encoded}" if data_url else encoded}
    if model:
        payload["model"] = model
    return session.post(url, json=payload, timeout=60)


def decode_data_url_png(url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix), url[:40]
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix):])))

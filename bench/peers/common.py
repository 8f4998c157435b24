"""What both peers of `make bench` do per image: this project's preprocessing and forward call.

The peers (KServe's model server, a plain FastAPI app) run from their own virtual environment
(bench/peers/requirements.txt) and import `inference.preprocess` and `inference.runtime` from
this checkout, so that only the serving stack differs from the service's: same decode and
preprocessing (in the version the model's metadata asks for, as the service applies it), same
traced forward function, the same answer (digit, confidence, the ten probabilities, the
preprocessed image as a PNG data URL).
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from inference.preprocess import preprocess  # noqa: E402 (after the path)
from inference.runtime import load  # noqa: E402
from inference.volume import ModelVolume  # noqa: E402


class Predictor:
    def __init__(self, model_path: str):
        path = Path(model_path)
        self.name = path.stem
        self.forward = load(path).forward  # as the service: LiteRT when the TFLite copy is there
        self.version = ModelVolume(path.parent).preprocessing_version_of(path.stem)

    def answer(self, data: bytes) -> dict:
        prepared = preprocess(data, self.version)
        probabilities = self.forward(prepared.image[None])[0]
        digit = int(probabilities.argmax())
        return {"model": self.name, "digit": digit, "confidence": float(probabilities[digit]),
                "probabilities": [float(p) for p in probabilities],
                "preprocessed": prepared.png_data_url()}


def image_from_base64(text: str) -> bytes:
    """A JSON `image` value (base64, or a data URL) to the file's bytes."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    return base64.b64decode(text)

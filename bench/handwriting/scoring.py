"""Run a model over the prepared sets: accuracy and the worst confusions of each."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .service import REFUSED

BATCH = 500


@dataclass
class Score:
    name: str
    images: int
    correct: int
    refused: int  # uploads the service answered with an error (no digit found, ...)
    confusions: list[tuple[int, int, int]]  # (true, predicted or REFUSED, count), worst first

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else 0.0


def load_model(path: Path):
    """A `.keras` file, loaded as the inference service loads it: safe mode, no Python code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras.saving.load_model(path, safe_mode=True, compile=False)


def predict(model, inputs: np.ndarray) -> np.ndarray:
    """The predicted digit of each (N, 28, 28) input, batched."""
    batch = np.asarray(inputs, np.float32)[..., None]
    answers = []
    for start in range(0, len(batch), BATCH):
        probabilities = model(batch[start: start + BATCH], training=False)
        answers.append(np.argmax(np.asarray(probabilities), axis=1))
    return np.concatenate(answers) if answers else np.zeros(0, np.int64)


def score(name: str, labels: np.ndarray, predicted: np.ndarray, refused: np.ndarray,
          worst: int = 3) -> Score:
    predicted = np.where(refused, REFUSED, predicted)
    wrong = predicted != labels
    pairs = {}
    for true, guess in zip(labels[wrong].tolist(), predicted[wrong].tolist(), strict=True):
        pairs[(true, guess)] = pairs.get((true, guess), 0) + 1
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:worst]
    return Score(name, int(len(labels)), int((~wrong).sum()), int(refused.sum()),
                 [(true, guess, count) for (true, guess), count in ranked])


def score_set(model, prepared) -> Score:
    return score(prepared.name, prepared.labels, predict(model, prepared.inputs), prepared.refused)

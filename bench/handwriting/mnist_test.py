"""MNIST test: the test digits themselves, each uploaded as its 28×28 PNG (white on black)."""

from __future__ import annotations

import numpy as np

from .service import png_bytes
from .sets import Uploads

NAME = "MNIST test"
VERSION = 1
DEFAULT_COUNT = 10_000
DESCRIPTION = ("MNIST's own test digits, each uploaded as its 28×28 PNG: the population the model "
               "was trained on, for comparison.")


def generate(source, count: int, seed: int) -> Uploads:
    """In order, all of them by default; the seed only matters when the source is smaller."""
    index = np.arange(count) if count <= len(source) else source.pick(count, seed)
    return Uploads([png_bytes(source.images[i]) for i in index], source.labels[index])

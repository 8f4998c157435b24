"""What every set module provides, and the generated uploads of one set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Uploads:
    """What people would send: encoded image files (PNG or JPEG bytes) and the true digits."""

    files: list[bytes]
    labels: np.ndarray  # int64 (N,)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, np.int64)
        if len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} files for {len(self.labels)} labels")


def image_rng(seed: int, index: int) -> np.random.Generator:
    """Each image's own random stream: image i is the same whatever the set's size."""
    return np.random.default_rng([seed, index])


def uploads_of(source, count: int, seed: int,
               make_file: Callable[[np.ndarray, np.random.Generator], bytes]) -> Uploads:
    """`count` digits picked from `source`, each turned into a file by `make_file(digit, rng)`."""
    index = source.pick(count, seed)
    files = [make_file(source.images[i], image_rng(seed, n)) for n, i in enumerate(index)]
    return Uploads(files, source.labels[index])

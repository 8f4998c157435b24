"""Where the benchmark's MNIST digits come from: the full MNIST test split, or mnist-5k's.

The full MNIST lives beside the repository (`<repo>/../shared/data/mnist/mnist.npz`, or
`--mnist-npz`). A fresh machine without it falls back to the 500 test digits of the packaged
mnist-5k split (train.datasets), and the report says so.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MNIST_NPZ = REPO.parent / "shared" / "data" / "mnist" / "mnist.npz"


@dataclass(frozen=True)
class Source:
    """MNIST test digits: uint8 (N, 28, 28) white ink on black, labels int64 (N,)."""

    name: str  # "mnist" or "mnist-5k": part of every cache key
    description: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def pick(self, count: int, seed: int) -> np.ndarray:
        """`count` indices chosen from `seed`; with replacement only when the source is smaller.

        A smaller count with the same seed gives a prefix of a larger one, so a small run scores
        the first images of the full set.
        """
        rng = np.random.default_rng([seed, 0x5EED])
        order = rng.permutation(len(self))
        if count <= len(order):
            return order[:count]
        repeats = -(-count // len(order))
        return np.concatenate([order] * repeats)[:count]


def load_source(mnist_npz: Path | None = None, allow_fallback: bool = True) -> Source:
    path = Path(mnist_npz) if mnist_npz else DEFAULT_MNIST_NPZ
    if path.is_file():
        with np.load(path, allow_pickle=False) as archive:
            images, labels = archive["x_test"], archive["y_test"]
        return Source("mnist", f"the full MNIST test split ({len(labels):,} digits, {path})",
                      np.asarray(images, np.uint8), np.asarray(labels, np.int64).reshape(-1))
    if mnist_npz is not None and not allow_fallback:
        raise FileNotFoundError(f"{path} does not exist")
    return load_mnist_5k(missing=path)


def load_mnist_5k(missing: Path | None = None) -> Source:
    from train.datasets import MNIST_5K, load_dataset

    with tempfile.TemporaryDirectory() as scratch:
        dataset = load_dataset(MNIST_5K, Path(scratch))
    why = f"{missing} is absent, so " if missing else ""
    return Source("mnist-5k", f"{why}the {len(dataset.y_test)} test digits of the packaged "
                  "mnist-5k split (sets larger than that reuse each digit with other settings)",
                  dataset.x_test, dataset.y_test)

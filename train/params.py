"""Training parameters: bounds, defaults and validation, shared by the API, the CLI and the job.

Validation returns every bad field by name so the API can answer 422 naming it and the CLI can
print it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from train import feedback_data
from train.architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE, get_architecture
from train.datasets import MNIST, MNIST_5K, available_datasets, volume_dataset_names
from train.feedback import FeedbackStore
from train.volume import NAME_PATTERN, is_valid_name, model_path

EPOCHS_BOUNDS = (1, 100)
BATCH_SIZE_BOUNDS = (16, 1024)
LEARNING_RATE_MAX = 1.0
LIMIT_MIN = 100
FEEDBACK_WEIGHT_BOUNDS = (1, 100)
# How many times each feedback sample is repeated among a base set's digits: measured on 318
# thick, slanted digits with mnist-5k (docs/training.md, "Training on feedback").
DEFAULT_FEEDBACK_WEIGHT = 8
# Training on feedback takes the reviewed samples unless asked: the route that stores them is
# open, so a sample counts once a person with the train token has looked at it (docs/feedback.md).
DEFAULT_INCLUDE_UNREVIEWED = False
FIELDS = ("architecture", "dataset", "epochs", "batch_size", "learning_rate", "limit", "augment",
          "name", "feedback_weight", "include_unreviewed")
# The model a new volume is seeded with (`python -m train --starter --if-empty`: `make run`,
# Compose's `seed`, the k8s `train-default` Job): `cnn-small` on the 5,000 digits shipped with
# the code, so it needs no download, with that architecture's recipe: 20 epochs of 256 digits at
# rate 0.006 instead of `cnn`'s 8 epochs of 128 at 0.003. On the handwriting benchmark
# (docs/handwriting.md, means of seeds): 16 epochs instead of 8 read other writers 94.4% instead
# of 91.5% and thick 96.0% instead of 94.9%; then 20 epochs of 256 instead of 16 of 128 (fewer,
# larger steps, 6 seeds) read other writers 95.6% instead of 94.4% and thick 95.8% instead of
# 95.2%, drawn 97.8% instead of 98.0%; then `cnn-small` instead of `cnn` read every set as well
# (6 seeds) in 0.72 of the time (~21 s of training on 2 cores): the first prediction comes sooner.
# The name stays the one every deployment and test knows the starter by.
STARTER_ARCHITECTURE = "cnn-small"
STARTER = {"dataset": MNIST_5K, "architecture": STARTER_ARCHITECTURE,
           **ARCHITECTURES[STARTER_ARCHITECTURE].recipe(),
           "name": "starter-cnn-mnist5k"}


class InvalidParamsError(ValueError):
    """One or more fields are invalid; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


@dataclass(frozen=True)
class TrainParams:
    architecture: str
    dataset: str
    epochs: int
    batch_size: int
    learning_rate: float
    limit: int | None
    augment: bool
    name: str
    # Only with a feedback data set (feedback_data.py); None otherwise.
    feedback_weight: int | None = None
    include_unreviewed: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict) -> TrainParams:
        return cls(**{field: document.get(field) for field in FIELDS})


def default_dataset(model_dir: Path) -> str:
    """The full MNIST when the volume holds a copy (no download needed), else mnist-5k."""
    return MNIST if MNIST in volume_dataset_names(model_dir) else MNIST_5K


def default_name(architecture: str, model_dir: Path, now: datetime | None = None) -> str:
    """Readable and unique: `cnn-20261122-1432`, then `cnn-20261122-1432-2`, ..."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M")
    base = f"{architecture}-{stamp}"
    candidate, number = base, 1
    while model_path(model_dir, candidate).exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def options(model_dir: Path) -> dict:
    """What `GET /api/train/options` shows: architectures with their defaults, data sets, bounds."""
    return {
        "architectures": [
            {"name": arch.name, "description": arch.description, "defaults": arch.defaults,
             "default": arch.name == DEFAULT_ARCHITECTURE}
            for arch in ARCHITECTURES.values()
        ],
        "datasets": [{"name": name, "default": name == default_dataset(model_dir)}
                     for name in available_datasets(model_dir)] + feedback_options(model_dir),
        "defaults": {"architecture": DEFAULT_ARCHITECTURE, "dataset": default_dataset(model_dir),
                     **ARCHITECTURES[DEFAULT_ARCHITECTURE].defaults, "limit": None,
                     "feedback_weight": DEFAULT_FEEDBACK_WEIGHT,
                     "include_unreviewed": DEFAULT_INCLUDE_UNREVIEWED},
        "bounds": {
            "epochs": {"min": EPOCHS_BOUNDS[0], "max": EPOCHS_BOUNDS[1]},
            "batch_size": {"min": BATCH_SIZE_BOUNDS[0], "max": BATCH_SIZE_BOUNDS[1]},
            "learning_rate": {"exclusive_min": 0, "max": LEARNING_RATE_MAX},
            "limit": {"min": LIMIT_MIN},
            "feedback_weight": {"min": FEEDBACK_WEIGHT_BOUNDS[0], "max": FEEDBACK_WEIGHT_BOUNDS[1]},
            "name": {"pattern": NAME_PATTERN.pattern},
        },
    }


def feedback_options(model_dir: Path) -> list[dict]:
    """The feedback data sets, with how many samples there are (reviewed or not) to use."""
    records = FeedbackStore(model_dir).all()
    reviewed = sum(1 for record in records if record.get("reviewed"))
    return [{"name": name, "default": False, "feedback": True, "reviewed": reviewed,
             "unreviewed": len(records) - reviewed} for name in feedback_data.FEEDBACK_DATASETS]


def dataset_names(model_dir: Path) -> list[str]:
    return [*available_datasets(model_dir), *feedback_data.FEEDBACK_DATASETS]


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(errors: dict, field: str, value, low: int, high: int | None) -> None:
    if not is_int(value):
        errors[field] = "must be an integer"
    elif value < low or (high is not None and value > high):
        errors[field] = (f"must be between {low} and {high}" if high is not None
                         else f"must be at least {low}")


def resolve(request: dict, model_dir: Path) -> TrainParams:
    """Fill in defaults and validate; raise InvalidParamsError naming every bad field.

    The one validator of training parameters: the API's request schema only documents them.
    """
    unknown = sorted(set(request) - set(FIELDS))
    errors: dict[str, str] = {field: "unknown field" for field in unknown}

    architecture = request.get("architecture")
    if architecture is None:
        architecture = DEFAULT_ARCHITECTURE
    if architecture not in ARCHITECTURES:
        errors["architecture"] = f"must be one of {', '.join(ARCHITECTURES)}"
        architecture = DEFAULT_ARCHITECTURE
    recipe = get_architecture(architecture).defaults

    dataset = request.get("dataset")
    if dataset is None:
        dataset = default_dataset(model_dir)
    if not isinstance(dataset, str) or dataset not in dataset_names(model_dir):
        errors["dataset"] = f"must be one of {', '.join(dataset_names(model_dir))}"
    feedback_weight, include_unreviewed = resolve_feedback(request, dataset, model_dir, errors)

    epochs = request.get("epochs", recipe["epochs"])
    check_int(errors, "epochs", epochs, *EPOCHS_BOUNDS)
    batch_size = request.get("batch_size", recipe["batch_size"])
    check_int(errors, "batch_size", batch_size, *BATCH_SIZE_BOUNDS)

    learning_rate = request.get("learning_rate", recipe["learning_rate"])
    if not isinstance(learning_rate, int | float) or isinstance(learning_rate, bool) \
            or not math.isfinite(learning_rate):
        errors["learning_rate"] = "must be a number"
    elif not 0 < learning_rate <= LEARNING_RATE_MAX:
        errors["learning_rate"] = f"must be greater than 0 and at most {LEARNING_RATE_MAX:g}"

    limit = request.get("limit")
    if limit is not None:
        check_int(errors, "limit", limit, LIMIT_MIN, None)

    augment = request.get("augment", recipe["augment"])
    if not isinstance(augment, bool):
        errors["augment"] = "must be true or false"

    name = request.get("name")
    if name is None:
        name = default_name(architecture, model_dir)
    elif not isinstance(name, str) or not is_valid_name(name):
        errors["name"] = (f"must match {NAME_PATTERN.pattern} (letters, digits, '.', '_', '-'; "
                          "at most 64)")
    elif model_path(model_dir, name).exists():
        errors["name"] = f"a model named {name!r} already exists"

    if errors:
        raise InvalidParamsError(errors)
    return TrainParams(architecture=architecture, dataset=dataset, epochs=epochs,
                       batch_size=batch_size, learning_rate=float(learning_rate), limit=limit,
                       augment=augment, name=name, feedback_weight=feedback_weight,
                       include_unreviewed=include_unreviewed)


def resolve_feedback(request: dict, dataset, model_dir: Path, errors: dict) -> tuple:
    """(feedback_weight, include_unreviewed) for a feedback data set, (None, None) otherwise."""
    weight = request.get("feedback_weight")
    include = request.get("include_unreviewed")
    if not feedback_data.uses_feedback(dataset):
        for field, value in (("feedback_weight", weight), ("include_unreviewed", include)):
            if value is not None:
                errors[field] = "only with a feedback data set (" + \
                    ", ".join(feedback_data.FEEDBACK_DATASETS) + ")"
        return None, None
    weight = DEFAULT_FEEDBACK_WEIGHT if weight is None else weight
    check_int(errors, "feedback_weight", weight, *FEEDBACK_WEIGHT_BOUNDS)
    include = DEFAULT_INCLUDE_UNREVIEWED if include is None else include
    if not isinstance(include, bool):
        errors["include_unreviewed"] = "must be true or false"
    elif "dataset" not in errors:
        problem = feedback_data.problem(dataset, model_dir, include)
        if problem:
            errors["dataset"] = problem
    return weight, include

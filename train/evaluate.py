"""Scoring a model on a data set's test split, stored in its metadata under `evaluations`.

Every model is scored on the same test sets, so the Models view compares like with like: the
reference digits (MNIST's 10,000 test digits when `datasets/mnist.npz` is on the volume, else
mnist-5k's 500) and the feedback test split. The job does it when it saves a model
(training.py); `POST /api/models/<name>/evaluate` does it on demand, for older models and after
new feedback, through `python -m train.evaluate` in a subprocess: the web workers never import
TensorFlow, and a few seconds of a child process holds no worker's memory afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from train.datasets import MNIST, MNIST_5K, Dataset, load_dataset, volume_dataset_names
from train.feedback import ids_sha256
from train.feedback_data import FEEDBACK, feedback_test_set
from train.timeutil import utc_now_iso
from train.volume import metadata_path, model_path, read_json, write_json_atomic

# How long the route waits for the subprocess: MNIST's 10,000 digits on the cnn take ~5 s here.
EVALUATE_TIMEOUT_SECONDS = 120


class EvaluationError(Exception):
    """The evaluation can't be done; `status` and `code` say how the route answers."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def reference_dataset(model_dir: Path) -> str:
    """The digits every model is scored on: full MNIST when the volume has it, else mnist-5k."""
    return MNIST if MNIST in volume_dataset_names(model_dir) else MNIST_5K


def model_preprocessing_version(metadata: dict | None) -> int:
    """The version the model was trained for (its metadata's `preprocessing.version`), else 1."""
    preprocessing = (metadata or {}).get("preprocessing")
    version = preprocessing.get("version") if isinstance(preprocessing, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


def test_set(name: str, model_dir: Path, include_unreviewed: bool = False) -> tuple[Dataset, dict]:
    """The test split of `name` and what identifies it (for feedback: which samples)."""
    if name == FEEDBACK:
        dataset, ids = feedback_test_set(model_dir, include_unreviewed)
        if not ids:
            which = "" if include_unreviewed else "reviewed "
            raise EvaluationError(409, "empty_test_set",
                                  f"there are no {which}feedback samples in the test split yet "
                                  "(about 1 in 5 samples falls there)")
        return dataset, {"include_unreviewed": include_unreviewed, "ids_sha256": ids_sha256(ids)}
    return load_dataset(name, model_dir), {}


def score(model, dataset: Dataset, model_name: str, extra: dict,
          probabilities: np.ndarray | None = None) -> dict:
    """Accuracy, per-class accuracy and confusion matrix of `model` on `dataset`'s test split
    (from `probabilities` for it, when they are known already)."""
    from train.training import evaluation

    started = time.monotonic()
    result = evaluation(model, dataset, probabilities)
    return {"model": model_name, "dataset": dataset.name, "split": "test",
            "size": int(len(dataset.y_test)), "accuracy": result["test_accuracy"],
            "per_class_accuracy": result["per_class_accuracy"],
            "confusion_matrix": result["confusion_matrix"], "evaluated_at": utc_now_iso(),
            "seconds": round(time.monotonic() - started, 2), **extra}


def standard_evaluations(model, model_name: str, model_dir: Path, version: int,
                         trained_on: Dataset | None = None,
                         trained_on_probabilities: np.ndarray | None = None) -> dict:
    """The scores every new model gets: the reference digits, and feedback when there is some,
    each score noting the preprocessing `version` the model is served with. The reference digits
    are scored as they are, as models are trained on them; the feedback images are already what
    the service's preprocessing made of the uploads.

    `trained_on` saves loading the reference set again when the model was trained on it, and
    `trained_on_probabilities` (the model's for its test split) predicting it again.
    """
    reference = reference_dataset(model_dir)
    seen = {"preprocessing_version": version}
    if trained_on is not None and trained_on.name == reference:
        reference_score = score(model, trained_on, model_name, seen, trained_on_probabilities)
    else:
        reference_score = score(model, load_dataset(reference, model_dir), model_name, seen)
    evaluations = {reference: reference_score}
    with contextlib.suppress(EvaluationError):
        feedback, extra = test_set(FEEDBACK, model_dir)
        evaluations[FEEDBACK] = score(model, feedback, model_name, {**extra, **seen})
    return evaluations


@contextlib.contextmanager
def metadata_lock(model_dir: Path, name: str) -> Iterator[None]:
    """Held while `<name>.json` is read, changed and replaced, by every process on the volume."""
    with (Path(model_dir) / f".{name}.json.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def store_evaluation(model_dir: Path, name: str, key: str, result: dict) -> None:
    """Put `result` under `evaluations[key]` of `<name>.json` (atomically); a model without
    metadata gets a minimal file."""
    with metadata_lock(model_dir, name):
        metadata = read_json(metadata_path(model_dir, name)) or {"name": name}
        metadata["evaluations"] = {**(metadata.get("evaluations") or {}), key: result}
        write_json_atomic(metadata_path(model_dir, name), metadata)


def evaluate_saved(model_dir: Path, name: str, dataset_name: str,
                   include_unreviewed: bool = False) -> dict:
    """Load model `name`, score it on `dataset_name`'s test split, store and return the score."""
    from train.datasets import DatasetUnavailableError

    path = model_path(model_dir, name)
    if not path.is_file():
        raise EvaluationError(404, "model_not_found", f"there is no model {name!r}")
    try:
        dataset, extra = test_set(dataset_name, model_dir, include_unreviewed)
    except DatasetUnavailableError as error:
        raise EvaluationError(422, "dataset_unavailable", str(error)) from error
    import keras

    version = model_preprocessing_version(read_json(metadata_path(model_dir, name)))
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # a file keras can't read is the model's problem, not ours
        raise EvaluationError(422, "model_unloadable",
                              f"model {name!r} can't be loaded: {error}") from error
    result = score(model, dataset, name, {**extra, "preprocessing_version": version})
    store_evaluation(model_dir, name, dataset_name, result)
    return result


def evaluate_in_subprocess(model_dir: Path, name: str, dataset_name: str,
                           include_unreviewed: bool) -> dict:
    """`python -m train.evaluate` in a child process; its JSON answer, or EvaluationError."""
    command = [sys.executable, "-m", "train.evaluate", name, dataset_name]
    if include_unreviewed:
        command.append("--include-unreviewed")
    env = {**os.environ, "MODEL_DIR": str(model_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                              timeout=EVALUATE_TIMEOUT_SECONDS,
                              cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        raise EvaluationError(503, "evaluation_timeout", f"the evaluation took over "
                              f"{EVALUATE_TIMEOUT_SECONDS} s and was stopped") from None
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        sys.stderr.write(done.stderr[-3000:])
        raise EvaluationError(500, "evaluation_failed", "the evaluation failed") from None
    if "error" in answer:
        error = answer["error"]
        raise EvaluationError(error["status"], error["code"], error["message"])
    return answer


def main(argv: list[str] | None = None) -> int:
    from train.config import Settings

    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__)
    parser.add_argument("name", help="a model on the volume")
    parser.add_argument("dataset", help="feedback, mnist, mnist-5k or a datasets/<name>.npz")
    parser.add_argument("--include-unreviewed", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        result = evaluate_saved(Settings.from_env().model_dir, args.name, args.dataset,
                                args.include_unreviewed)
    except EvaluationError as error:
        print(json.dumps({"error": {"status": error.status, "code": error.code,
                                    "message": error.message}}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

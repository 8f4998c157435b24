"""The training core shared by the job and the CLI: data → model → fit → evaluate → save.

`train_model` reports progress through a Reporter, raises TrainingStopped when a stop was
requested (and then writes nothing), and on success writes `<name>.keras`, `<name>.json` and
the model's TFLite copy `<name>.tflite` (train/lite_copy.py) atomically into the model volume.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from train.architectures import INPUT_SHAPE, get_architecture
from train.datasets import Dataset, load_dataset
from train.evaluate import standard_evaluations
from train.feedback_data import load_with_feedback, uses_feedback
from train.lite_copy import checked_copy
from train.params import TrainParams
from train.precision import FLOAT32, layers_built_under, training_policy
from train.progress import NullReporter, ProgressCallback, Reporter
from train.timeutil import utc_now_iso
from train.volume import (
    atomic_target,
    lite_path,
    metadata_path,
    model_path,
    sha256_of,
    write_bytes_atomic,
    write_json_atomic,
)

log = logging.getLogger(__name__)

WARMUP_FRACTION = 0.05
# Parameters that mean something only with a feedback data set: left out of other models' metadata.
FEEDBACK_ONLY = ("feedback_weight", "include_unreviewed")
EVAL_BATCH_SIZE = 1000
# The inference service's preprocessing version every new model is trained for, written into
# its metadata as {"preprocessing": {"version": n}}; the service applies that version to the
# model's uploads (inference/preprocess.py; a model without the field gets version 1).
PREPROCESSING_VERSION = 3
PREPROCESSING_VERSIONS = (1, 2, 3)
# Models are trained on the digits as they are, whatever their version: passing the training
# digits through version 2's stroke-width step too was measured and does not pay (on the starter
# it cost other writers 2.4 points, on full MNIST 0.7; docs/handwriting.md, "Versioned
# preprocessing"), so training has no copy of that step.


class TrainingStopped(Exception):  # noqa: N818 - a stop is not an error
    """The run was stopped on request before it finished; no model was written."""


class VolumeFullError(OSError):
    """The model volume ran out of space (or quota) while the model was being saved."""


def limited(dataset: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """The first `limit` training digits of a fixed shuffle (the test split stays whole)."""
    if limit is None or limit >= len(dataset.y_train):
        return dataset
    keep = np.random.default_rng(seed).permutation(len(dataset.y_train))[:limit]
    return Dataset(dataset.name, dataset.x_train[keep], dataset.y_train[keep],
                   dataset.x_test, dataset.y_test)


def as_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 28, 28, 1) in [0, 1]: the saved models' input contract."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]


def input_pipelines(dataset: Dataset, batch_size: int, augment: bool, seed: int,
                    epochs: int = 1):
    """The training batches (endless: `fit` counts the steps of an epoch) and the test batches.

    With `augment`, the last FINAL_EPOCHS_WITHOUT_GEOMETRY of the `epochs` change only the
    strokes' thickness (train/augment.py), when the run has more epochs than that.

    Both run without tf.data's autotuning (AUTOTUNE then means one call per core): with a new
    iterator per epoch, as Keras makes them, each epoch's end waited at random for the old
    iterator's autotuning thread, up to ~5 s an epoch on the full MNIST. One endless iterator
    and no autotuning took the starter's run from 26–33 s to 21–22 s (docs/benchmarks.md,
    "Epochs without stalls").
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    options = tf.data.Options()
    options.autotune.enabled = False
    batches = (tf.data.Dataset.from_tensor_slices((dataset.x_train, dataset.y_train))
               .shuffle(len(dataset.y_train), seed=seed, reshuffle_each_iteration=True)
               .batch(batch_size)
               .map(lambda x, y: (tf.cast(x, tf.float32)[..., tf.newaxis] / 255.0, y),
                    num_parallel_calls=autotune))
    # repeat() after batch(): each pass is one epoch, reshuffled, ending in its partial batch.
    if not augment:
        train = batches.repeat()
    else:
        from train.augment import FINAL_EPOCHS_WITHOUT_GEOMETRY, make_augmenter

        augmented = batches.map(make_augmenter(), num_parallel_calls=autotune)
        geometric_epochs = epochs - FINAL_EPOCHS_WITHOUT_GEOMETRY
        if FINAL_EPOCHS_WITHOUT_GEOMETRY == 0 or geometric_epochs <= 0:
            train = augmented.repeat()
        else:
            strokes_only = batches.map(make_augmenter(geometry=False),
                                       num_parallel_calls=autotune)
            train = augmented.repeat(geometric_epochs).concatenate(strokes_only.repeat())
    test = (tf.data.Dataset.from_tensor_slices((as_model_input(dataset.x_test), dataset.y_test))
            .batch(EVAL_BATCH_SIZE))
    return (train.prefetch(autotune).with_options(options),
            test.prefetch(autotune).with_options(options))


def learning_rate(schedule: str, peak: float, total_steps: int):
    """A constant rate, or a linear warm-up to `peak` followed by a cosine decay to zero."""
    if schedule != "cosine":
        return peak
    import keras

    warmup = max(1, int(total_steps * WARMUP_FRACTION))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10, decay_steps=max(1, total_steps - warmup),
        warmup_target=peak, warmup_steps=warmup, alpha=0.0)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def test_probabilities(model, dataset: Dataset) -> np.ndarray:
    return model.predict(as_model_input(dataset.x_test), batch_size=EVAL_BATCH_SIZE, verbose=0)


def evaluation(model, dataset: Dataset, probabilities: np.ndarray | None = None) -> dict:
    if probabilities is None:
        probabilities = test_probabilities(model, dataset)
    labels = dataset.y_test
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted)
    per_class = [round(float(matrix[k, k] / matrix[k].sum()), 6) if matrix[k].sum() else None
                 for k in range(10)]
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    return {"test_accuracy": round(float((predicted == labels).mean()), 6),
            "test_loss": round(float(-np.log(picked).mean()), 6),
            "per_class_accuracy": per_class,
            "confusion_matrix": matrix.tolist()}


def inference_copy(model):
    """The trained network in float32 without optimizer state: smaller files, nothing but
    built-in layers, and the same numbers whether it was trained in float32 or bfloat16 (its
    weights are float32 either way; only its layers' compute dtype changes)."""
    import keras

    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": FLOAT32})

    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def lite_copy(network, check: tuple[np.ndarray, np.ndarray]) -> tuple[bytes, float] | None:
    """The network's checked TFLite copy (train/lite_copy.py) for `check` = (test images, Keras'
    probabilities for them); None when it failed the check (the model is then served through
    Keras)."""
    try:
        return checked_copy(network, *check)
    except ValueError as exc:
        log.warning("no TFLite copy: %s", exc)
        return None


def save_model(network, model_dir: Path, metadata: dict,
               check: tuple[np.ndarray, np.ndarray]) -> dict:
    """Write the inference copy `network`'s `<name>.tflite` (checked on `check`: test images and
    Keras' probabilities for them), `<name>.json`, then `<name>.keras`, each atomically; return
    the final metadata.

    The metadata goes before the model so that whoever sees the model also finds its metadata,
    and the TFLite copy before the metadata that vouches for it.
    """
    name = metadata["name"]
    target = model_path(model_dir, name)
    lite = lite_copy(network, check)
    try:
        # Keras insists on the .keras suffix: the temporary keeps it after its dot-prefixed name.
        with atomic_target(target, suffix=".keras") as temporary:
            network.save(temporary)
            metadata = {**metadata, "size_bytes": temporary.stat().st_size,
                        "sha256": sha256_of(temporary)}
            if lite is None:
                lite_path(model_dir, name).unlink(missing_ok=True)
            else:
                flatbuffer, difference = lite
                write_bytes_atomic(lite_path(model_dir, name), flatbuffer)
                metadata["tflite"] = {"file": lite_path(model_dir, name).name,
                                      "sha256": hashlib.sha256(flatbuffer).hexdigest(),
                                      "size_bytes": len(flatbuffer),
                                      "max_difference": difference}
            write_json_atomic(metadata_path(model_dir, name), metadata)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise VolumeFullError(
            error.errno, f"the model volume is full: model {name!r} could not be saved "
            f"({os.strerror(error.errno)}); nothing of it was kept and the other models are "
            "untouched. Free some space (delete old models) and train again.") from error
    return metadata


def training_data(params: TrainParams, model_dir: Path) -> tuple[Dataset, dict | None]:
    """The run's data set (`limit` applied to the digits other than feedback) and, for a
    feedback data set, what the metadata records about the samples it saw."""
    if not uses_feedback(params.dataset):
        return limited(load_dataset(params.dataset, model_dir), params.limit), None
    return load_with_feedback(params.dataset, model_dir, bool(params.include_unreviewed),
                              params.feedback_weight or 1,
                              lambda base: limited(base, params.limit))


def train_model(params: TrainParams, model_dir: Path, reporter: Reporter | None = None,
                verbose: int | str = 0, seed: int | None = None,
                preprocessing_version: int = PREPROCESSING_VERSION,
                jit_compile: bool = False, precision: str = FLOAT32) -> dict:
    """Train as `params` say and save the model; return its metadata.

    `precision` is TRAIN_PRECISION (train/precision.py): float32, or bfloat16 (`mixed_bfloat16`,
    or `auto`: where the CPU computes it in hardware) to train faster; the model is saved, scored
    and served in float32 either way.

    `preprocessing_version` pins an older preprocessing (PREPROCESSING_VERSIONS) for
    comparisons; new models get the newest. `jit_compile` (XLA for the train step) is for
    `make bench-train`'s levers: on 2 CPU cores it made an epoch of the full MNIST ~1.9× slower
    (docs/benchmarks.md, "Training"), so training runs without it.
    """
    if preprocessing_version not in PREPROCESSING_VERSIONS:
        raise ValueError(f"unknown preprocessing version {preprocessing_version!r}")
    import keras
    import tensorflow as tf

    reporter = reporter or NullReporter()
    model_dir = Path(model_dir)
    seed = int.from_bytes(os.urandom(3), "big") if seed is None else seed
    keras.utils.set_random_seed(seed)
    architecture = get_architecture(params.architecture)
    reporter.set_phase("loading data")
    dataset, feedback = training_data(params, model_dir)
    steps = math.ceil(len(dataset.y_train) / params.batch_size)

    policy = training_policy(precision)
    with layers_built_under(policy):
        model = architecture.build()
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate(architecture.schedule, params.learning_rate, steps * params.epochs)),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=jit_compile)
    # The optimizer's slots and the metric's totals made here, not inside the first traced step:
    # TensorFlow traces a function again when its first trace made variables, and on 2 cores that
    # second trace of the train step is ~0.7 s of every run (docs/benchmarks.md, "Training").
    model.optimizer.build(model.trainable_variables)
    train_data, test_data = input_pipelines(dataset, params.batch_size, params.augment, seed,
                                             params.epochs)
    callback = ProgressCallback(reporter, params.epochs, steps)
    started = time.monotonic()
    model.fit(train_data, epochs=params.epochs, steps_per_epoch=steps, validation_data=test_data,
              callbacks=[callback], verbose=verbose, shuffle=False)  # tf.data shuffles
    train_seconds = time.monotonic() - started
    if callback.stopped or reporter.should_stop():
        raise TrainingStopped("stopped on request")
    reporter.set_phase("evaluating and saving")
    # Scored as it is served: the float32 copy that is saved.
    network = inference_copy(model)
    probabilities = test_probabilities(network, dataset)

    metadata = {
        "name": params.name,
        "created_at": utc_now_iso(),
        "architecture": params.architecture,
        "hyperparameters": {key: value for key, value in params.to_dict().items()
                            if key not in ("name", "architecture", "dataset")
                            and not (key in FEEDBACK_ONLY and value is None)}
        | {"optimizer": "adam", "schedule": architecture.schedule, "seed": seed},
        "dataset": {"name": dataset.name, **dataset.sizes},
        **evaluation(network, dataset, probabilities),
        # The same test sets for every model, so the Models view compares like with like.
        "evaluations": standard_evaluations(network, params.name, model_dir,
                                            preprocessing_version, dataset, probabilities),
        "history": callback.history,
        "train_seconds": round(train_seconds, 2),
        "training_precision": policy,
        "parameter_count": int(model.count_params()),
        "input_shape": list(INPUT_SHAPE),
        "preprocessing": {"version": preprocessing_version},
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }
    if feedback is not None:
        metadata["feedback"] = feedback
    return save_model(network, model_dir, metadata,
                      check=(as_model_input(dataset.x_test), probabilities))

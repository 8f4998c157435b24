"""Keras models in, a fast compiled forward function out.

`model.predict` builds a data pipeline on every call (~90 ms here); one call of a `tf.function`
traced once with a `None` batch dimension costs well under a millisecond for our CNNs, for any
batch size, with no retracing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INPUT_SHAPE = (28, 28, 1)
CLASSES = 10

_tf_lock = threading.Lock()
_tf_configured = False


def _configure_tensorflow():
    """Import TensorFlow once per process, with one thread per op.

    Each gunicorn worker is its own process on a 2-core machine: more intra-op threads per
    worker only make the workers fight over the cores (and a 28×28 forward pass is too small
    to split).
    """
    global _tf_configured
    with _tf_lock:
        # Defaults that TensorFlow and Keras read from the environment themselves (not settings
        # of this service, so not in config.py): quiet C++ logs, the TensorFlow backend.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf

        if not _tf_configured:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(1)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass  # the runtime was already initialised by someone else: keep its setting
            _tf_configured = True
        return tf


class NotADigitsModelError(ValueError):
    """The file is a Keras model, but not one that maps 28×28×1 images to 10 classes."""


class UnsafeModelError(ValueError):
    """The file holds Python code (a `Lambda` layer's function, say): safe mode refuses it."""


@dataclass
class CompiledModel:
    forward: Callable[[np.ndarray], np.ndarray]  # (n, 28, 28, 1) float32 -> (n, 10) float32


def load_compiled(path: Path, *, jit_compile: bool = False) -> CompiledModel:
    """Load a `.keras` file with safe mode on (no code runs on load), compile and warm it.

    `jit_compile=True` has XLA compile the traced function (`make bench-levers` measures
    it; docs/benchmarks.md says why it is off)."""
    tf = _configure_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise
        # Keras' own words end by suggesting safe_mode=False, which is not for us to choose.
        what = str(exc).split(". ")[0].strip()
        raise UnsafeModelError(
            f"refused by safe mode: {what}. Models are loaded with safe_mode=True and no Python "
            "code from a model file ever runs here; rebuild it from built-in Keras layers."
        ) from None
    _check_shapes(model)

    @tf.function(input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.float32)],
                 reduce_retracing=True, jit_compile=jit_compile)
    def call(images):
        return model(images, training=False)

    # The concrete function skips tf.function's per-call signature matching (~0.2 ms here).
    concrete = call.get_concrete_function()

    def forward(images: np.ndarray) -> np.ndarray:
        return concrete(tf.constant(images)).numpy()

    # Warm: the first call traces the graph (~0.3 s); requests must never pay for that.
    warm = forward(np.zeros((1, *INPUT_SHAPE), np.float32))
    if warm.shape != (1, CLASSES) or not np.all(np.isfinite(warm)):
        raise NotADigitsModelError(f"the model's output for a blank image is {warm.shape}, "
                              f"not {CLASSES} finite probabilities")
    return CompiledModel(forward=forward)


def _check_shapes(model) -> None:
    try:
        input_shape = tuple(model.input_shape)
        output_shape = tuple(model.output_shape)
    except (AttributeError, ValueError) as exc:
        raise NotADigitsModelError(f"the model has no single input and output: {exc}") from None
    if input_shape[1:] != INPUT_SHAPE or output_shape[1:] != (CLASSES,):
        raise NotADigitsModelError(f"the model maps {input_shape[1:]} to {output_shape[1:]}, "
                              f"not {INPUT_SHAPE} to ({CLASSES},)")

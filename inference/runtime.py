"""Models in, a fast forward function out: a model's TFLite copy through LiteRT (load_lite), or
the `.keras` file through Keras and TensorFlow (load_compiled).

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
    runtime: str = "keras"  # or "litert": the model's TFLite copy (load_lite)


def load(path: Path) -> CompiledModel:
    """The model file at `path`, served the fastest way it can be: its TFLite copy through
    LiteRT when the train service saved a valid one beside it (no TensorFlow in this process),
    else the `.keras` file through Keras (docs/inference.md, "Runtimes")."""
    from .volume import lite_copy_of

    lite = lite_copy_of(path)
    return load_lite(lite) if lite is not None else load_compiled(path)


def load_lite(flatbuffer: bytes) -> CompiledModel:
    """A model's TFLite copy (`<name>.tflite`, saved and checked by the train service) through
    LiteRT's interpreter: no TensorFlow in this process, so a worker holds ~75 MB, not ~660."""
    forward = _litert_forward(flatbuffer)
    _check_output(forward)
    return CompiledModel(forward=forward, runtime="litert")


def _litert_forward(flatbuffer: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """LiteRT's interpreter for a TFLite flatbuffer as a forward function: one interpreter,
    allocated for one image now (a flatbuffer it can't run fails here, not on a request), resized
    to each call's batch size (~5 µs when the size changes), under a lock: an interpreter is not
    safe for concurrent use, and a forward call is ~30 µs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    lock = threading.Lock()
    allocated: list[tuple[int, ...]] = [()]

    def allocate(shape: tuple[int, ...]) -> None:
        interpreter.resize_tensor_input(input_index, shape)
        interpreter.allocate_tensors()
        allocated[0] = shape

    def forward(images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, np.float32)
        with lock:
            if images.shape != allocated[0]:
                allocate(images.shape)
            interpreter.set_tensor(input_index, images)
            interpreter.invoke()
            return interpreter.get_tensor(output_index).copy()

    allocate((1, *INPUT_SHAPE))
    return forward


def _check_output(forward: Callable[[np.ndarray], np.ndarray]) -> None:
    """Call it once (requests must never pay for the first call's set-up) and check it maps an
    image to 10 finite probabilities."""
    warm = forward(np.zeros((1, *INPUT_SHAPE), np.float32))
    if warm.shape != (1, CLASSES) or not np.all(np.isfinite(warm)):
        raise NotADigitsModelError(f"the model's output for a blank image is {warm.shape}, "
                                   f"not {CLASSES} finite probabilities")


def load_compiled(path: Path, *, jit_compile: bool = False,
                  tflite: bool | None = None) -> CompiledModel:
    """Load a `.keras` file with safe mode on (no code runs on load), compile and warm it.

    `jit_compile=True` has XLA compile the traced function. `tflite=True` (the default, unless
    the environment says INFERENCE_TFLITE=0) also converts it to TFLite at load time for single
    images, the hot path, and keeps that only if its outputs equal the traced function's within
    1e-5. `make bench-levers` measures both (docs/benchmarks.md): TFLite's forward call for one
    image is ~7x faster than the traced function's, the service +20-30% faster; XLA does not pay."""
    if tflite is None:
        tflite = os.environ.get("INFERENCE_TFLITE", "1") != "0"
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

    def traced(images: np.ndarray) -> np.ndarray:
        return concrete(tf.constant(images)).numpy()

    single = _tflite_single(tf, concrete, traced) if tflite else None

    def forward(images: np.ndarray) -> np.ndarray:
        if single is not None and len(images) == 1:
            return single(images)
        return traced(images)

    # Warm: the first call traces the graph (~0.3 s).
    _check_output(forward)
    return CompiledModel(forward=forward)


def _tflite_single(tf, concrete, traced: Callable[[np.ndarray], np.ndarray]):
    """A TFLite interpreter for one image at a time, converted from the traced function with its
    variables frozen into constants; None (and the traced function serves) if it can't be made
    or any of its outputs for probe images differs from the traced function's by over 1e-5."""
    import logging

    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    log = logging.getLogger(__name__)
    try:
        frozen = convert_variables_to_constants_v2(concrete)
        flat = tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()
        single = _litert_forward(flat)  # LiteRT's interpreter, as for the copies
    except Exception as exc:  # noqa: BLE001 - any failure: serve with the traced function
        log.warning("TFLite conversion failed, serving with the traced function: %s", exc)
        return None

    rng = np.random.default_rng(0)
    probes = [np.zeros((1, *INPUT_SHAPE), np.float32),
              *(rng.random((1, *INPUT_SHAPE), dtype=np.float32) for _ in range(15))]
    difference = max(float(np.abs(single(x) - traced(x)).max()) for x in probes)
    if not difference <= 1e-5:
        log.warning("TFLite outputs differ from the traced function's by %g: not used", difference)
        return None
    return single


def _check_shapes(model) -> None:
    try:
        input_shape = tuple(model.input_shape)
        output_shape = tuple(model.output_shape)
    except (AttributeError, ValueError) as exc:
        raise NotADigitsModelError(f"the model has no single input and output: {exc}") from None
    if input_shape[1:] != INPUT_SHAPE or output_shape[1:] != (CLASSES,):
        raise NotADigitsModelError(f"the model maps {input_shape[1:]} to {output_shape[1:]}, "
                              f"not {INPUT_SHAPE} to ({CLASSES},)")

"""A TensorFlow Lite copy of a trained model, saved beside it for the inference service.

Why: with it, the inference service serves the model through LiteRT's interpreter alone and its
workers never import TensorFlow, whose import is most of a worker's memory (~560 of ~670 MB;
docs/benchmarks.md, "Memory"). The `.keras` file stays the one truth: the copy is converted from
the very network saved there, kept only if its probabilities for the run's own test digits equal
Keras' within MAX_DIFFERENCE, and bound to the `.keras` file by both files' sha256 in the
metadata. A model without a valid copy (an older model, one copied in by hand) is served through
Keras, as before.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

MAX_DIFFERENCE = 1e-5
# Test digits per interpreter call when checking the copy (activations of 1,000 digits: ~90 MB).
CHECK_BATCH = 1000


def convert(model) -> bytes:
    """The network as a TFLite flatbuffer: its forward pass traced for any batch size, with the
    weights frozen into constants."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    @tf.function(input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])
    def forward(images):
        return model(images, training=False)

    frozen = convert_variables_to_constants_v2(forward.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


def lite_probabilities(flatbuffer: bytes, images: np.ndarray) -> np.ndarray:
    """What LiteRT's interpreter (the one the inference service uses) answers for `images`."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    answers = []
    for start in range(0, len(images), CHECK_BATCH):
        batch = np.ascontiguousarray(images[start:start + CHECK_BATCH], np.float32)
        interpreter.resize_tensor_input(input_index, batch.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(input_index, batch)
        interpreter.invoke()
        answers.append(interpreter.get_tensor(output_index).copy())
    return np.concatenate(answers)


def checked_copy(model, images: np.ndarray, probabilities: np.ndarray) -> tuple[bytes, float]:
    """The copy and its largest difference from Keras' `probabilities` for `images`; ValueError
    when it can't be made or differs by more than MAX_DIFFERENCE."""
    try:
        flatbuffer = convert(model)
        difference = float(np.abs(lite_probabilities(flatbuffer, images) - probabilities).max())
    except Exception as exc:  # noqa: BLE001 - any failure: the model is served through Keras
        raise ValueError(f"the TFLite conversion failed: {exc}") from exc
    if not difference <= MAX_DIFFERENCE:
        raise ValueError(f"the TFLite copy differs from Keras by {difference:.3g} "
                         f"(over {MAX_DIFFERENCE:g})")
    return flatbuffer, difference

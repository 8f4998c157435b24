"""runtime.load_compiled(tflite=True), the default (INFERENCE_TFLITE=0 turns it off): single
images through a TFLite interpreter converted at load time, with outputs equal to the traced
Keras function's within 1e-5 on the model's test digits; batches through the traced function;
and the traced function alone when the conversion fails."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SEED_MODEL_NAME
from inference_support import mnist_test_digits, png_bytes

from inference.preprocess import preprocess
from inference.runtime import load_compiled


@pytest.fixture(scope="module")
def model_path(seed_model_dir):
    return seed_model_dir / f"{SEED_MODEL_NAME}.keras"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    digits, _ = mnist_test_digits(tmp_path_factory.mktemp("datasets"))
    return np.stack([preprocess(png_bytes(pixels)).image for pixels in digits[:200]])


@pytest.fixture(scope="module")
def traced(model_path):
    return load_compiled(model_path, tflite=False).forward


def test_single_images_through_tflite_equal_the_traced_function_within_1e_5(
        model_path, images, traced):
    forward = load_compiled(model_path, tflite=True).forward
    single = np.concatenate([forward(image[None]) for image in images])
    expected = traced(images)
    assert np.abs(single - expected).max() <= 1e-5
    assert (single.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_batches_keep_the_traced_function(model_path, images, traced):
    forward = load_compiled(model_path, tflite=True).forward
    np.testing.assert_array_equal(forward(images[:32]), traced(images[:32]))


def test_a_failed_conversion_leaves_the_traced_function_serving(model_path, images, traced,
                                                                 monkeypatch):
    import tensorflow as tf

    def refuse(*args, **kwargs):
        raise RuntimeError("no TFLite here")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_concrete_functions", refuse)
    forward = load_compiled(model_path, tflite=True).forward
    np.testing.assert_array_equal(forward(images[:1]), traced(images[:1]))


def test_tflite_is_on_by_default_and_off_with_inference_tflite_0(model_path, images, traced,
                                                                  monkeypatch):
    import tensorflow as tf

    conversions = []
    convert = tf.lite.TFLiteConverter.from_concrete_functions

    def counted(*args, **kwargs):
        conversions.append(1)
        return convert(*args, **kwargs)

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_concrete_functions", counted)
    monkeypatch.delenv("INFERENCE_TFLITE", raising=False)
    load_compiled(model_path)
    assert len(conversions) == 1
    monkeypatch.setenv("INFERENCE_TFLITE", "0")
    forward = load_compiled(model_path).forward
    assert len(conversions) == 1
    np.testing.assert_array_equal(forward(images[:1]), traced(images[:1]))

"""A model of the volume as a .tar.gz in Triton's model repository layout.

    savedmodel: <name>/config.pbtxt                     platform tensorflow_savedmodel
                <name>/1/model.savedmodel/saved_model.pb signature `serving_default`: `input`
                <name>/1/model.savedmodel/variables/...  float32 [None, 28, 28, 1] →
                                                         `probabilities` [None, 10]
    onnx:       <name>/config.pbtxt                     platform onnxruntime_onnx
                <name>/1/model.onnx                      the same function, through tf2onnx

TF Serving wants the SavedModel directly in the version folder (`<name>/1/saved_model.pb`): see
docs/deployment.md. train/export.py holds the same code for `python -m train.export` (the
services share no code: each image copies only its own folder).
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from .runtime import CLASSES, INPUT_SHAPE, _check_shapes, _configure_tensorflow

FORMATS = ("savedmodel", "onnx")
PLATFORMS = {"savedmodel": "tensorflow_savedmodel", "onnx": "onnxruntime_onnx"}
ONNX_OPSET = 17
# Triton batches up to this many images per call of the exported model.
TRITON_MAX_BATCH = 64

TRITON_CONFIG = """\
name: "{name}"
platform: "{platform}"
max_batch_size: {max_batch}
input [ {{ name: "input", data_type: TYPE_FP32, dims: [ {dims} ] }} ]
output [ {{ name: "probabilities", data_type: TYPE_FP32, dims: [ {classes} ] }} ]
"""


def save_model_repository(keras_path: Path, name: str, root: Path, fmt: str) -> Path:
    """Write `<root>/<name>/` (config.pbtxt and version 1); returns that folder."""
    tf = _configure_tensorflow()
    import keras

    # Safe mode, as for serving: no Python code from a model file ever runs here.
    model = keras.saving.load_model(keras_path, safe_mode=True, compile=False)
    _check_shapes(model)
    spec = [tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name="input")]

    @tf.function(input_signature=spec)
    def serve(input):  # noqa: A002 - the argument's name is the signature's input name
        return {"probabilities": model(input, training=False)}

    version = root / name / "1"
    version.mkdir(parents=True)
    if fmt == "onnx":
        import tf2onnx  # its from_keras fails on Keras 3 models; from_function works

        tf2onnx.convert.from_function(serve, input_signature=spec, opset=ONNX_OPSET,
                                      output_path=str(version / "model.onnx"))
    else:
        holder = tf.Module()
        holder.model = model  # tracked, so that its variables are saved with the function
        tf.saved_model.save(holder, str(version / "model.savedmodel"),
                            signatures={"serving_default": serve})
    (root / name / "config.pbtxt").write_text(TRITON_CONFIG.format(
        name=name, platform=PLATFORMS[fmt], max_batch=TRITON_MAX_BATCH,
        dims=", ".join(map(str, INPUT_SHAPE)), classes=CLASSES))
    return root / name


def export_archive(keras_path: Path, name: str, fmt: str = "savedmodel") -> bytes:
    """The model repository as .tar.gz bytes, built in a temporary folder that is then removed."""
    with tempfile.TemporaryDirectory(prefix="export-") as scratch:
        folder = save_model_repository(keras_path, name, Path(scratch), fmt)
        archive = Path(scratch) / "export.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder, arcname=name)
        return archive.read_bytes()

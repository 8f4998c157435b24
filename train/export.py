"""`python -m train.export NAME [--format savedmodel|onnx] [--out FILE]`: a model of the volume
as a .tar.gz for Triton (and, moved one level up, TF Serving).

Layout, Triton's model repository (docs/deployment.md): `<name>/config.pbtxt` and
`<name>/1/model.savedmodel/` with the signature `serving_default`: `input` float32
[None, 28, 28, 1] → `probabilities` [None, 10]; or `<name>/1/model.onnx`, the same function
through tf2onnx (whose from_keras fails on Keras 3 models). The inference service's
`GET /api/models/<name>/export` writes the same archive with its own copy of this code (the
services share no code: each image copies only its own folder).

Exit status 0 on success, 2 for a bad name or format, 1 when the model is missing or unreadable.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
from pathlib import Path

FORMATS = ("savedmodel", "onnx")
PLATFORMS = {"savedmodel": "tensorflow_savedmodel", "onnx": "onnxruntime_onnx"}
ONNX_OPSET = 17
INPUT_SHAPE = (28, 28, 1)
CLASSES = 10
TRITON_MAX_BATCH = 64  # Triton batches up to this many images per call of the SavedModel

TRITON_CONFIG = """\
name: "{name}"
platform: "{platform}"
max_batch_size: {max_batch}
input [ {{ name: "input", data_type: TYPE_FP32, dims: [ 28, 28, 1 ] }} ]
output [ {{ name: "probabilities", data_type: TYPE_FP32, dims: [ 10 ] }} ]
"""


def save_model_repository(keras_path: Path, name: str, root: Path, fmt: str) -> Path:
    """Write `<root>/<name>/` (config.pbtxt and version 1); returns that folder."""
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(keras_path, safe_mode=True, compile=False)
    if tuple(model.input_shape[1:]) != INPUT_SHAPE or tuple(model.output_shape[1:]) != (CLASSES,):
        raise ValueError(f"{name} maps {model.input_shape[1:]} to {model.output_shape[1:]}, "
                         f"not {INPUT_SHAPE} to ({CLASSES},)")

    spec = [tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name="input")]

    @tf.function(input_signature=spec)
    def serve(input):  # noqa: A002 - the argument's name is the signature's input name
        return {"probabilities": model(input, training=False)}

    version = root / name / "1"
    version.mkdir(parents=True)
    if fmt == "onnx":
        import tf2onnx

        tf2onnx.convert.from_function(serve, input_signature=spec, opset=ONNX_OPSET,
                                      output_path=str(version / "model.onnx"))
    else:
        holder = tf.Module()
        holder.model = model  # tracked, so that its variables are saved with the function
        tf.saved_model.save(holder, str(version / "model.savedmodel"),
                            signatures={"serving_default": serve})
    (root / name / "config.pbtxt").write_text(TRITON_CONFIG.format(
        name=name, platform=PLATFORMS[fmt], max_batch=TRITON_MAX_BATCH))
    return root / name


def write_archive(keras_path: Path, name: str, out: Path, fmt: str = "savedmodel") -> None:
    """The model repository as `out` (.tar.gz), built in a temporary folder then removed."""
    with tempfile.TemporaryDirectory(prefix="export-") as scratch:
        folder = save_model_repository(keras_path, name, Path(scratch), fmt)
        with tarfile.open(out, "w:gz") as tar:
            tar.add(folder, arcname=name)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.export",
                                description="Export a model of the volume for Triton or TF "
                                            "Serving, as a .tar.gz.")
    p.add_argument("name", help="the model's name (<name>.keras on the volume)")
    p.add_argument("--format", choices=FORMATS, default="savedmodel")
    p.add_argument("--out", type=Path, help="default: ./<name>-<format>.tar.gz")
    p.add_argument("--model-dir", type=Path,
                   help="the model volume (default: $MODEL_DIR or ./model-volume)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train.cli import model_dir_of
    from train.volume import is_valid_name, model_path

    if not is_valid_name(args.name):
        print(f"error: {args.name!r} is not a model name", file=sys.stderr)
        return 2
    source = model_path(model_dir_of(args), args.name)
    if not source.is_file():
        print(f"error: there is no model {args.name!r} ({source})", file=sys.stderr)
        return 1
    out = args.out or Path(f"{args.name}-{args.format}.tar.gz")
    try:
        write_archive(source, args.name, out, args.format)
    except (OSError, ValueError) as error:
        print(f"error: {args.name} can't be exported: {error}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size} bytes): {args.name}/config.pbtxt and "
          f"{args.name}/1/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

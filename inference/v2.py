"""Open Inference Protocol (KServe v2) tensors of our models: requests decoded, answers encoded.

Knows no Flask: routes/v2.py reads the body and passes it here. What the protocol says is
https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol (and its
binary tensor data extension, which Triton's clients use by default):

- a request is a JSON object, optionally followed by binary tensor data; the header
  `Inference-Header-Content-Length` then says how long the JSON part is, and each input sent
  in binary says its byte count in `parameters.binary_data_size` (in the order of `inputs`);
- binary data is little-endian, row-major; a BYTES element is a 4-byte length and its bytes;
- an output is sent as binary when its request output says `parameters.binary_data: true`, or
  when the request's `parameters.binary_data_output` is true and the output says nothing.

Our models take one of two inputs: `input`, FP32 [n, 28, 28, 1] already preprocessed (values
in [0, 1]), or `image`, BYTES [n], encoded image files the service preprocesses exactly as
/api/predict does. They answer `probabilities` FP32 [n, 10] and `digit` INT64 [n].
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from .runtime import CLASSES, INPUT_SHAPE

PIXELS_INPUT = "input"
IMAGE_INPUT = "image"
PROBABILITIES = "probabilities"
DIGIT = "digit"
OUTPUT_NAMES = (PROBABILITIES, DIGIT)
# The one version of every model: a model is its file, and a replaced file is still version 1
# (/api/models' `modified_at` tells the file's generations apart).
MODEL_VERSION = "1"
PLATFORM = "keras"
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "Inference-Header-Content-Length"

_NUMPY_TYPES = {"FP32": np.float32, "INT64": np.int64}


class ProtocolError(ValueError):
    """A request the protocol or our models can't take: `{"error": message}` with `status`."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def model_metadata(name: str) -> dict:
    """The model metadata response: every digits model has the same tensors."""
    return {
        "name": name,
        "versions": [MODEL_VERSION],
        "platform": PLATFORM,
        "inputs": [
            {"name": PIXELS_INPUT, "datatype": "FP32", "shape": [-1, *INPUT_SHAPE]},
            {"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": [
            {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, CLASSES]},
            {"name": DIGIT, "datatype": "INT64", "shape": [-1]},
        ],
    }


# ---------------------------------------------------------------------- the request


@dataclass
class InferRequest:
    id: str | None
    input_name: str  # PIXELS_INPUT or IMAGE_INPUT
    pixels: np.ndarray | None = None  # (n, 28, 28, 1) float32, for PIXELS_INPUT
    images: list = field(default_factory=list)  # n image files: bytes, or base64 text from JSON
    outputs: dict[str, bool] = field(default_factory=dict)  # output name → send as binary

    @property
    def batch_size(self) -> int:
        return len(self.pixels) if self.pixels is not None else len(self.images)


def parse_request(body: bytes, header_length: str | None, max_batch: int) -> InferRequest:
    """The inference request in `body` (JSON, or JSON then binary tensors)."""
    head, binary = _split_body(body, header_length)
    try:
        payload = json.loads(head)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("The inference request is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ProtocolError("The inference request must be a JSON object.")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(f"Send exactly one input: {PIXELS_INPUT!r} (FP32 "
                            f"[-1, 28, 28, 1]) or {IMAGE_INPUT!r} (BYTES [-1]).")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string.")
    tensor = inputs[0]
    data = _tensor_data(tensor, binary)
    request = InferRequest(request_id, tensor.get("name"),
                           outputs=_requested_outputs(payload))
    if request.input_name == PIXELS_INPUT:
        request.pixels = _pixels(tensor, data)
    elif request.input_name == IMAGE_INPUT:
        request.images = _images(tensor, data)
    else:
        raise ProtocolError(f"Unknown input {str(request.input_name)[:40]!r}: the inputs are "
                            f"{PIXELS_INPUT!r} and {IMAGE_INPUT!r}.")
    if not 1 <= request.batch_size <= max_batch:
        raise ProtocolError(f"A batch holds 1 to {max_batch} images (V2_MAX_BATCH); this one "
                            f"holds {request.batch_size}.")
    return request


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 <= length <= len(body):
        raise ProtocolError(f"{HEADER_LENGTH} must be the length of the JSON part of the body "
                            f"(0 to {len(body)}), not {header_length[:20]!r}.")
    return body[:length], body[length:]


def _requested_outputs(payload: dict) -> dict[str, bool]:
    """Output name → binary or not; every output when the request names none."""
    parameters = _parameters(payload, "the request")
    binary_default = parameters.get("binary_data_output", False) is True
    requested = payload.get("outputs")
    if requested is None:
        return dict.fromkeys(OUTPUT_NAMES, binary_default)
    if not isinstance(requested, list) or not requested:
        raise ProtocolError("'outputs' must be a non-empty list of {\"name\": ...} objects.")
    outputs = {}
    for output in requested:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUT_NAMES:
            raise ProtocolError(f"Unknown output {str(name)[:40]!r}: the outputs are "
                                f"{PROBABILITIES!r} and {DIGIT!r}.")
        binary = _parameters(output, f"output {name!r}").get("binary_data", binary_default)
        outputs[name] = binary is True
    return outputs


def _parameters(obj: dict, what: str) -> dict:
    parameters = obj.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"The parameters of {what} must be a JSON object.")
    return parameters


def _tensor_data(tensor: dict, binary: bytes):
    """The input's data: its bytes when sent as binary, else its JSON `data`."""
    size = _parameters(tensor, "the input").get("binary_data_size")
    if size is None:
        if "data" not in tensor:
            raise ProtocolError("The input has neither 'data' nor binary data "
                                "(parameters.binary_data_size).")
        return tensor["data"]
    if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
        raise ProtocolError(f"binary_data_size ({str(size)[:20]}) is not the length of the "
                            f"binary data after the JSON ({len(binary)} bytes).")
    return binary


def _shape(tensor: dict, rank: int) -> list[int]:
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or len(shape) != rank
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                       for d in shape)):
        expected = f"[n, {', '.join(map(str, INPUT_SHAPE))}]" if rank == 4 else "[n]"
        raise ProtocolError(f"The shape of {tensor.get('name')!r} must be {expected}, "
                            f"not {str(shape)[:60]}.")
    return shape


def _check_datatype(tensor: dict, expected: str) -> None:
    if tensor.get("datatype") != expected:
        raise ProtocolError(f"{tensor['name']!r} is {expected}, not "
                            f"{str(tensor.get('datatype'))[:20]!r}.")


def _pixels(tensor: dict, data) -> np.ndarray:
    _check_datatype(tensor, "FP32")
    shape = _shape(tensor, 4)
    if tuple(shape[1:]) != INPUT_SHAPE:
        raise ProtocolError(f"The shape of 'input' must be [n, 28, 28, 1], not {shape}.")
    try:
        if isinstance(data, bytes):
            values = np.frombuffer(data, dtype="<f4")
        else:
            values = np.asarray(data, dtype=np.float32).reshape(-1)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError("The data of 'input' must be numbers (a flat or nested list).") \
            from None
    if values.size != int(np.prod(shape)):
        raise ProtocolError(f"'input' has {values.size} values, not the {int(np.prod(shape))} "
                            f"of its shape {shape}.")
    if not (np.all(np.isfinite(values)) and values.min(initial=0) >= 0
            and values.max(initial=0) <= 1):
        raise ProtocolError("The values of 'input' must be in [0, 1] (the preprocessed 28×28 "
                            "image; send encoded files as 'image' to have them preprocessed).")
    return values.astype(np.float32, copy=False).reshape(shape)


def _images(tensor: dict, data) -> list:
    _check_datatype(tensor, "BYTES")
    (count,) = _shape(tensor, 1)
    if isinstance(data, bytes):
        images = _bytes_elements(data)
    elif isinstance(data, list) and all(isinstance(item, str) for item in data):
        images = data  # JSON: base64 or data URLs, decoded by the route as /api/predict does
    else:
        raise ProtocolError("The JSON data of 'image' must be a list of strings (base64 or "
                            "data URLs of image files); send raw files as binary data.")
    if len(images) != count:
        raise ProtocolError(f"'image' has {len(images)} elements, not the {count} of its "
                            f"shape [{count}].")
    return images


def _bytes_elements(data: bytes) -> list[bytes]:
    """A binary BYTES tensor: each element a 4-byte little-endian length, then its bytes."""
    elements, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ProtocolError("The binary data of 'image' ends inside an element's length.")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise ProtocolError("The binary data of 'image' is shorter than its elements say.")
        elements.append(data[offset: offset + length])
        offset += length
    return elements


# ---------------------------------------------------------------------- the response


def encode_response(request: InferRequest, model_name: str,
                    probabilities: np.ndarray) -> tuple[dict, bytes]:
    """The inference response's JSON and the binary data that follows it (maybe empty)."""
    tensors = {
        PROBABILITIES: ("FP32", probabilities.astype(np.float32, copy=False)),
        DIGIT: ("INT64", probabilities.argmax(axis=1).astype(np.int64)),
    }
    outputs, chunks = [], []
    for name, binary in request.outputs.items():
        datatype, values = tensors[name]
        output = {"name": name, "datatype": datatype, "shape": list(values.shape)}
        if binary:
            raw = values.astype(np.dtype(_NUMPY_TYPES[datatype]).newbyteorder("<")).tobytes()
            output["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            output["data"] = values.reshape(-1).tolist()
        outputs.append(output)
    response = {"model_name": model_name, "model_version": MODEL_VERSION, "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    return response, b"".join(chunks)

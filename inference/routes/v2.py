"""The Open Inference Protocol (KServe v2) over HTTP, beside the service's own routes.

GET /v2, /v2/health/live, /v2/health/ready, /v2/models/<name>[/versions/<v>][/ready],
POST /v2/models/<name>[/versions/<v>]/infer. Tensors are decoded and encoded in inference/v2.py.

Errors here are the protocol's `{"error": "<message>"}`, not the service's own
`{"error": {"code", "message"}}`: this blueprint has its own error handler, which Flask asks
before the app's for anything raised in these views. (A URL that matches no route at all — an
unknown path, a method a route does not take — is the app's, in the app's shape.)
"""

from __future__ import annotations

import logging

import numpy as np
from flask import Response, current_app, g, json, jsonify, request
from flask_smorest import Blueprint
from werkzeug.exceptions import HTTPException

from .. import metrics, v2
from ..errors import DOMAIN_ERRORS, ApiError, ErrorSchema
from ..preprocess import ImageError, preprocess
from ..request_image import decode_image_string, limit_socket_reads, read_raw_body
from ..schemas import (
    V2ErrorSchema,
    V2InferRequestSchema,
    V2InferResponseSchema,
    V2ModelMetadataSchema,
    V2ServerMetadataSchema,
)
from ..volume import validate_name

log = logging.getLogger(__name__)

blp = Blueprint("v2", __name__, url_prefix="/v2",
                description="Open Inference Protocol (KServe v2 / Triton HTTP)")
# A client that stops sending mid-body must not hold this gunicorn thread (408 instead).
blp.before_request(limit_socket_reads)

SERVER_NAME = "digits-inference"
SERVER_VERSION = "1"


def _json(schema, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _status(field: str, description: str) -> dict:
    """A health answer: the status says it (200 true, 4xx false); the body says it too, as
    KServe's own server and its SDK's client expect ({"live": true}...)."""
    schema = {"type": "object", "properties": {field: {"type": "boolean"}}, "required": [field]}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    400: "a request the protocol or the model can't take: JSON, shape, datatype, batch size, "
         "an image that can't be read, an invalid model name",
    404: "no such model, or no such version (the one version is 1)",
    408: "the client stopped sending its body",
    413: "body over MAX_UPLOAD_BYTES, or an image with too many pixels",
    415: "an image format that is not supported",
    422: "no digit found in an image",
    503: "no model yet, or the model can't be loaded",
}
MODEL_ERRORS = {status: ERRORS[status] for status in (400, 404, 503)}


def _errors(table: dict[int, str]) -> dict:
    responses = {str(status): _json(V2ErrorSchema, text) for status, text in table.items()}
    if 404 in table:  # also a URL that matches no route: the service's own error shape
        responses["404"] = _json({"oneOf": [V2ErrorSchema, ErrorSchema]},
                                 table[404] + "; a name with a '/' matches no route: "
                                 "{\"error\": {\"code\", \"message\"}}")
    return responses


# ---------------------------------------------------------------------- errors


@blp.errorhandler(Exception)
def protocol_error(exc: Exception):
    """Anything raised in a v2 view, as the protocol's `{"error": "..."}`."""
    status, message = _status_and_message(exc)
    g.error_code = f"v2_{status}"  # for the request log line
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _status_and_message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, v2.ProtocolError):
        return exc.status, str(exc)
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, HTTPException):
        if exc.code == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            return 413, f"The request body is larger than the limit of {limit} bytes."
        return exc.code or 500, exc.description or exc.name
    for kind, (status, _code, message) in DOMAIN_ERRORS.items():
        if isinstance(exc, kind):
            return status, message or str(exc)
    # Logged with its traceback for us; the client only learns that it was our fault.
    log.exception("unhandled error in a v2 route")
    return 500, "Internal error: the server could not answer this request."


# ---------------------------------------------------------------------- server


@blp.route("")
@blp.doc(responses={"200": _json(V2ServerMetadataSchema, "the server's name, version and "
                                                         "protocol extensions")})
def server_metadata():
    """Server metadata."""
    return jsonify({"name": SERVER_NAME, "version": SERVER_VERSION,
                    "extensions": v2.EXTENSIONS})


@blp.route("/health/live")
@blp.doc(responses={"200": _status("live", "live")})
def server_live():
    """Live: the process answers HTTP."""
    return jsonify({"live": True})


@blp.route("/health/ready")
@blp.doc(responses={"200": _status("ready", "ready"),
                    "400": _status("ready", "not ready yet (/readyz says why)")})
def server_ready():
    """Ready: the volume is readable and the default model (if any) is loaded and warmed."""
    ready = current_app.extensions["model_cache"].readiness_problem() is None
    response = jsonify({"ready": ready})
    response.status_code = 200 if ready else 400
    return response


# ---------------------------------------------------------------------- models
#
# Plain `<name>` (no slashes): a `path:` name would take GET .../infer for the metadata of a
# model called "x/infer" (400) instead of the 405 it is. A URL whose name has a slash matches no
# route, so its 404 is the app's, in the service's own error shape: documented as such.


def _model(name: str, version: str | None):
    validate_name(name)
    if version is not None and version != v2.MODEL_VERSION:
        raise v2.ProtocolError(f"Model {name!r} has no version {version[:20]!r}: its one "
                               f"version is {v2.MODEL_VERSION}.", status=404)
    return current_app.extensions["model_cache"].get(name)


@blp.route("/models/<name>", endpoint="model_metadata")
@blp.route("/models/<name>/versions/<version>", endpoint="model_version_metadata")
@blp.doc(responses={"200": _json(V2ModelMetadataSchema, "the model's tensors"),
                    **_errors(MODEL_ERRORS)})
def model_metadata(name: str, version: str | None = None):
    """Model metadata: inputs `input` (FP32) or `image` (BYTES), outputs `probabilities`,
    `digit`."""
    model = _model(name, version)
    return jsonify(v2.model_metadata(model.name))


@blp.route("/models/<name>/ready", endpoint="model_ready")
@blp.route("/models/<name>/versions/<version>/ready", endpoint="model_version_ready")
@blp.doc(responses={"200": _status("ready", "loaded and warmed (loaded now if it was not)"),
                    **_errors(MODEL_ERRORS)})
def model_ready(name: str, version: str | None = None):
    """Model ready: the model is loaded in this worker (it is loaded now if need be)."""
    model = _model(name, version)
    return jsonify({"name": model.name, "ready": True})


_infer_documented = blp.doc(
    requestBody={"required": True, "content": {
        "application/json": {"schema": V2InferRequestSchema},
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
            "description": "binary tensor data extension: the JSON request, then the binary "
                           "tensors; the header Inference-Header-Content-Length gives the "
                           "JSON part's length"},
    }},
    responses={"200": {"description": "the outputs asked for (all by default)", "content": {
        "application/json": {"schema": V2InferResponseSchema},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }}, **_errors(ERRORS)},
)


@blp.route("/models/<name>/infer", methods=["POST"], endpoint="infer")
@blp.route("/models/<name>/versions/<version>/infer", methods=["POST"],
           endpoint="version_infer")
@_infer_documented
def infer(name: str, version: str | None = None):
    """Inference: a batch of preprocessed 28×28×1 images (`input`) or image files (`image`)."""
    # The model first: a bad name or a missing model is found before the body is read.
    model = _model(name, version)
    g.model = model.name
    settings = current_app.extensions["inference_settings"]
    # The socket timeout and the whole-body deadline of /api/predict: 408 for a slow client.
    parsed = v2.parse_request(read_raw_body(), request.headers.get(v2.HEADER_LENGTH),
                              settings.v2_max_batch)
    pixels = (parsed.pixels if parsed.pixels is not None
              else _preprocessed(parsed.images, model.preprocessing_version))
    # One forward call for the whole batch (not the micro-batcher, which takes single images).
    probabilities = model.forward(pixels)
    metrics.PREDICTIONS.labels(model.name).inc(len(pixels))
    response, binary = v2.encode_response(parsed, model.name, probabilities)
    return _respond(response, binary)


def _preprocessed(images: list, version: int) -> np.ndarray:
    """Each image file through /api/predict's own pipeline (the model's preprocessing
    `version`); an error names the image."""
    prepared = []
    for index, image in enumerate(images):
        try:
            data = decode_image_string(image) if isinstance(image, str) else image
            prepared.append(preprocess(data, version).image)
        except ApiError as exc:
            raise v2.ProtocolError(f"image {index}: {exc.message}", exc.status) from None
        except ImageError as exc:
            status = next((s for kind, (s, _, _) in DOMAIN_ERRORS.items()
                           if isinstance(exc, kind)), 400)
            raise v2.ProtocolError(f"image {index}: {exc.message}", status) from None
    return np.stack(prepared)


def _respond(response: dict, binary: bytes) -> Response:
    header = json.dumps(response).encode()
    if not binary:
        return Response(header, mimetype="application/json")
    answer = Response(header + binary, mimetype="application/octet-stream")
    answer.headers[v2.HEADER_LENGTH] = str(len(header))
    return answer

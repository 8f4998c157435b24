"""POST /api/predict (and the earlier API's /api/drawing/): which digit is this, how sure."""

from __future__ import annotations

from flask import current_app, g, jsonify, request
from flask_smorest import Blueprint
from werkzeug.exceptions import ClientDisconnected

from .. import body_deadline, metrics
from ..errors import ApiError, ErrorSchema
from ..preprocess import decode_image_string, preprocess
from ..schemas import PredictionSchema, PredictJsonSchema, PredictMultipartSchema

blp = Blueprint("predict", __name__, description="Recognise a digit")

REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": PredictMultipartSchema},
        "application/json": {"schema": PredictJsonSchema},
    },
}
ERRORS = {
    400: "bad image, base64, data URL, JSON or model name",
    404: "unknown model",
    408: "the client stopped sending its body",
    413: "body over MAX_UPLOAD_BYTES, or an image with too many pixels",
    415: "neither multipart nor JSON, or an image format that is not supported",
    422: "no digit found in the image",
    503: "no model yet, or the model can't be loaded",
}


def _json(schema, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# One `doc` decorator rather than one `alt_response` per status: each of those wraps the view
# in another call layer, and this is the hot path.
_documented = blp.doc(
    requestBody=REQUEST_BODY,
    responses={"200": _json(PredictionSchema, "the digit, how sure, and what the model saw"),
               **{str(status): _json(ErrorSchema, text) for status, text in ERRORS.items()}},
)


@blp.route("/api/predict", methods=["POST"])
@_documented
def predict():
    """Predict the digit in an image (multipart file `image`, or JSON with base64 `image`)."""
    return _answer(*_read_request())


@blp.route("/api/drawing/", methods=["POST"])
@_documented
def drawing():
    """The earlier API's route: the same input and answer as /api/predict."""
    return _answer(*_read_request())


@blp.before_request
def bound_body_reading():
    # A client that stops sending mid-body would otherwise hold this gunicorn thread forever;
    # gunicorn resets the socket to blocking for the next request on the connection.
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(current_app.config["BODY_READ_TIMEOUT_S"])


def _read_request() -> tuple[bytes, str | None]:
    """The image bytes and the optional model name, from multipart or JSON."""
    token = _watch_body()
    try:
        if request.mimetype == "multipart/form-data":
            return _read_multipart()
        if request.is_json:
            return _read_json()
    except (TimeoutError, ClientDisconnected):
        # Werkzeug reports a socket timeout while reading the body as a disconnection.
        raise _too_slow() from None
    finally:
        # Cut off by the deadline, the body ended early: whatever was made of it is void.
        if token is not None and body_deadline.deadlines.done(token):
            raise _too_slow()
    raise ApiError(415, "unsupported_content_type",
                   "Send multipart/form-data with a file field 'image', or application/json "
                   "with {\"image\": \"<base64 or data URL>\"}.")


def _too_slow() -> ApiError:
    return ApiError(408, "request_timeout",
                    "The request body did not arrive in time (or the client went away).")


def _watch_body() -> int | None:
    """A deadline for the whole body too: a client that trickles it in is cut off (408)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return None
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    length = min(request.content_length or limit, limit)
    return body_deadline.deadlines.watch(
        sock, body_deadline.seconds_for(length, current_app.config["BODY_READ_TIMEOUT_S"]))


def _read_multipart() -> tuple[bytes, str | None]:
    upload = request.files.get("image")
    if upload is not None:
        data = upload.read()
    elif request.form.get("image"):
        data = decode_image_string(request.form["image"])
    else:
        raise ApiError(400, "missing_image", "The form has no file field 'image'.")
    return data, _model_name(request.form.get("model"))


def _read_json() -> tuple[bytes, str | None]:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "The body is not a JSON object.")
    image = payload.get("image")
    if not isinstance(image, str) or not image:
        raise ApiError(400, "missing_image",
                       "The JSON has no 'image' string (base64 or a data URL).")
    return decode_image_string(image), _model_name(payload.get("model"))


def _model_name(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_model_name", "'model' must be a string.")
    return value


def _answer(data: bytes, model_name: str | None):
    # The model first: a bad name or a missing model is found before any decoding work.
    model = current_app.extensions["model_registry"].get(model_name)
    g.model = model.name
    prepared = preprocess(data)
    # The compiled forward call (runtime.CompiledModel): no Keras predict loop per request.
    probabilities = model.probabilities(prepared.image)
    digit = int(probabilities.argmax())
    metrics.PREDICTIONS.labels(model.name).inc()
    return jsonify({
        "model": model.name,
        "digit": digit,
        "confidence": float(probabilities[digit]),
        "probabilities": [float(p) for p in probabilities],
        "preprocessed": prepared.png_data_url(),
    })

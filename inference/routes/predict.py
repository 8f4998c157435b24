"""POST /api/predict (and the earlier API's /api/drawing/): which digit is this, how sure."""

from __future__ import annotations

import numpy as np
from flask import current_app, g, jsonify
from flask_smorest import Blueprint

from .. import metrics
from ..errors import ApiError, ErrorSchema
from ..preprocess import ImageError, Preprocessed, preprocess
from ..request_image import limit_socket_reads, read_image_request, read_predict_request
from ..schemas import (
    BatchPredictionSchema,
    PredictBatchJsonSchema,
    PredictionSchema,
    PredictJsonSchema,
    PredictMultipartSchema,
)

blp = Blueprint("predict", __name__, description="Recognise a digit")

REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": PredictMultipartSchema},
        "application/json": {"schema": {"oneOf": [PredictJsonSchema, PredictBatchJsonSchema]}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
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
    responses={"200": _json({"oneOf": [PredictionSchema, BatchPredictionSchema]},
                            "the digit, how sure, and what the model saw; for a batch, "
                            "`predictions` in the order of the images"),
               **{str(status): _json(ErrorSchema, text) for status, text in ERRORS.items()}},
)


@blp.route("/api/predict", methods=["POST"])
@_documented
def predict():
    """Predict the digit in an image (multipart file `image`, JSON with base64 `image`, or the
    image file as the body), or in a batch of images (JSON `images`, several `image` parts)."""
    wanted = read_predict_request()
    if wanted.batch:
        return _answer_batch(wanted.images, wanted.model)
    return _answer(wanted.images[0], wanted.model)


@blp.route("/api/drawing/", methods=["POST"])
@_documented
def drawing():
    """The earlier API's route: the same input and answer as /api/predict."""
    return _answer(*read_image_request())


# A client that stops sending mid-body must not hold this gunicorn thread (408 instead).
blp.before_request(limit_socket_reads)


def _answer(data: bytes, model_name: str | None):
    # The model first: a bad name or a missing model is found before any decoding work.
    model = current_app.extensions["model_cache"].get(model_name)
    g.model = model.name
    # The preprocessing version the model was trained for (its metadata's; 1 when none).
    prepared = preprocess(data, model.preprocessing_version)
    # The compiled forward call (runtime.CompiledModel): no Keras predict loop per request.
    probabilities = model.probabilities(prepared.image)
    metrics.PREDICTIONS.labels(model.name).inc()
    return jsonify({"model": model.name, **_prediction(probabilities, prepared)})


def _prediction(probabilities: np.ndarray, prepared: Preprocessed) -> dict:
    """One image's answer: the digit, how sure, all ten, and what the model saw."""
    digit = int(probabilities.argmax())
    return {
        "digit": digit,
        "confidence": float(probabilities[digit]),
        "probabilities": [float(p) for p in probabilities],
        "preprocessed": prepared.png_data_url(),
        "preprocessing_version": prepared.version,
    }


def _answer_batch(images: list, model_name: str | None):
    """One forward call for every image that could be read; an error in place of the others."""
    model = current_app.extensions["model_cache"].get(model_name)
    g.model = model.name
    prepared, errors = [], {}
    for index, data in enumerate(images):
        try:
            if isinstance(data, ApiError):
                raise data
            prepared.append((index, preprocess(data, model.preprocessing_version)))
        except (ApiError, ImageError) as exc:
            errors[index] = {"error": {"code": exc.code, "message": exc.message}}
    answers: dict[int, dict] = dict(errors)
    if prepared:
        rows = model.forward(np.stack([item.image for _, item in prepared]))
        for (index, item), probabilities in zip(prepared, rows, strict=True):
            answers[index] = _prediction(probabilities, item)
        metrics.PREDICTIONS.labels(model.name).inc(len(prepared))
    return jsonify({"model": model.name,
                    "predictions": [answers[index] for index in range(len(images))]})

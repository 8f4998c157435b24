"""`/api/feedback`: users' corrected digits, stored on the volume for training and scoring.

Sending a sample is open to the page's users (no token) but bounded: the body size, a rate limit
per client address, the number of samples kept. Reviewing and deleting need the train token when
one is set. How the loop works: docs/feedback.md.
"""

from __future__ import annotations

import io

import numpy as np
from flask import Response, current_app, request
from flask_smorest import Blueprint
from werkzeug.routing import BaseConverter

from train.auth import require_token
from train.errors import ApiError
from train.feedback import ID_LENGTH, ID_PATTERN, FeedbackStore, counts, public
from train.feedback_input import FeedbackInputError, digit, read_body
from train.routes import service, settings
from train.schemas import (
    ErrorSchema,
    FeedbackExportQuerySchema,
    FeedbackListSchema,
    FeedbackQuerySchema,
    FeedbackSampleSchema,
    FeedbackSavedSchema,
)

blp = Blueprint("feedback", __name__, url_prefix="/api/feedback",
                description="Users' corrected digits: send, list, review, delete, export.")

SAMPLE_REQUEST = {
    "type": "object",
    "required": ["image", "label", "predicted", "confidence", "model"],
    "additionalProperties": False,
    "properties": {
        "image": {"type": "string", "description": "the 28×28 grey PNG the model saw, as a "
                  "data URL or base64 (the prediction's `preprocessed`)"},
        "original": {"type": "string", "nullable": True, "description":
                     "the original upload or the pad's PNG, as a data URL or base64 "
                     "(≤ FEEDBACK_MAX_ORIGINAL_BYTES decoded, 256 KiB by default)"},
        "label": {"type": "integer", "minimum": 0, "maximum": 9,
                  "description": "the right digit"},
        "predicted": {"type": "integer", "minimum": 0, "maximum": 9,
                      "description": "the digit the model said"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "model": {"type": "string", "description": "the name of a model on the volume"},
        "preprocessing_version": {"type": "integer", "minimum": 1, "default": 1,
                                  "nullable": True},
    },
}
REVIEW_REQUEST = {
    "type": "object", "additionalProperties": False,
    "properties": {"label": {"type": "integer", "minimum": 0, "maximum": 9, "description":
                             "a new label; left out: the current label is accepted"}},
}
PNG = {"image/png": {"schema": {"type": "string", "format": "binary"}}}


class SampleIdConverter(BaseConverter):
    regex = f"[0-9a-f]{{{ID_LENGTH}}}"


def sample_id_schema(converter) -> dict:
    return {"type": "string", "pattern": ID_PATTERN.pattern}


def store() -> FeedbackStore:
    return current_app.extensions["train.feedback"]


def json_body(required: bool = True):
    """The request's JSON (None when absent and not required); 400 when it is not JSON."""
    body = request.get_json(silent=True)
    if body is None and (required or request.get_data()):
        raise ApiError(400, "invalid_json", "the body must be JSON (Content-Type: "
                       "application/json)")
    return body


@blp.before_request
def allow_larger_bodies():
    # The app's 64 KiB limit fits training requests; a sample carries the original upload.
    request.max_content_length = settings().feedback_max_body_bytes


def check_rate_limit() -> None:
    retry = current_app.extensions["train.feedback_limiter"].retry_after(
        request.remote_addr or "unknown")
    if retry is not None:
        raise ApiError(429, "rate_limited",
                       f"too many samples from this address; try again in {retry} s",
                       headers={"Retry-After": str(retry)})


@blp.route("", methods=["POST"])
@blp.doc(requestBody={"required": True, "content": {"application/json": {
    "schema": SAMPLE_REQUEST}}})
@blp.response(201, FeedbackSavedSchema, description="stored")
@blp.alt_response(200, schema=FeedbackSavedSchema,
                  description="the same image was stored before: that sample, unchanged")
@blp.alt_response(400, schema=ErrorSchema, description="no image, not a PNG, bad base64")
@blp.alt_response(404, schema=ErrorSchema, description="unknown_model")
@blp.alt_response(413, schema=ErrorSchema, description="body or original too large")
@blp.alt_response(422, schema=ErrorSchema, description="a bad field, named by the code")
@blp.alt_response(429, schema=ErrorSchema, description="rate_limited (Retry-After)")
@blp.alt_response(507, schema=ErrorSchema, description="volume_full: nothing stored")
def add_sample():
    """Send a corrected digit: the image the model saw, the right label, what the model said."""
    check_rate_limit()
    try:
        pixels, fields, original = read_body(json_body(), service().models(),
                                             settings().feedback_max_original_bytes)
    except FeedbackInputError as error:
        raise ApiError(error.status, error.code, error.message) from None
    added = store().add(pixels, fields, original)
    return {**public(added.sample), "duplicate": added.duplicate}, 200 if added.duplicate else 201


@blp.route("", methods=["GET"])
@blp.arguments(FeedbackQuerySchema, location="query")
@blp.response(200, FeedbackListSchema)
@blp.alt_response(422, schema=ErrorSchema, description="a bad filter, named in fields")
def list_samples(query: dict):
    """The samples, newest first, filtered and paged; counts over all samples."""
    records = store().all()
    chosen = [record for record in records if matches(record, query)]
    page, per_page = query["page"], query["per_page"]
    start = (page - 1) * per_page
    return {"items": [public(record) for record in chosen[start:start + per_page]],
            "total": len(chosen), "page": page, "per_page": per_page, "counts": counts(records)}


def matches(record: dict, query: dict) -> bool:
    if query.get("label") is not None and record.get("label") != query["label"]:
        return False
    if query.get("model") is not None and record.get("model") != query["model"]:
        return False
    if query.get("wrong") is not None and \
            (record.get("label") != record.get("predicted")) != query["wrong"]:
        return False
    return query.get("reviewed") is None or bool(record.get("reviewed")) == query["reviewed"]


@blp.route("/export", methods=["GET"])
@blp.arguments(FeedbackExportQuerySchema, location="query")
@blp.doc(responses={"200": {"description": "feedback.npz: x (N×28×28 uint8, white on black), "
                            "y (N,), split (N,) 'train'/'test', id (N,)",
                            "content": {"application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}}}}})
@blp.alt_response(422, schema=ErrorSchema)
def export(query: dict):
    """The samples as an .npz that `np.load(..., allow_pickle=False)` reads as is."""
    x, y, split, ids = store().arrays(store().selected(query["include_unreviewed"]))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x, y=y, split=split,
                        id=np.asarray(ids, dtype=f"<U{ID_LENGTH}"))
    return Response(buffer.getvalue(), mimetype="application/octet-stream", headers={
        "Content-Disposition": 'attachment; filename="feedback.npz"'})


@blp.route("/<sample_id:sample_id>", methods=["GET"])
@blp.response(200, FeedbackSampleSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_sample(sample_id: str):
    """One sample."""
    return public(store().require(sample_id))


@blp.route("/<sample_id:sample_id>/image", methods=["GET"])
@blp.doc(responses={"200": {"description": "the 28×28 PNG the model saw", "content": PNG}})
@blp.alt_response(404, schema=ErrorSchema)
def sample_image(sample_id: str):
    """The 28×28 image as the model saw it."""
    return Response(store().image(sample_id), mimetype="image/png",
                    headers={"Cache-Control": "private, max-age=86400, immutable"})


@blp.route("/<sample_id:sample_id>/original", methods=["GET"])
@blp.doc(responses={"200": {"description": "the original upload, with its type", "content": {
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}})
@blp.alt_response(404, schema=ErrorSchema, description="no such sample, or it has no original")
def sample_original(sample_id: str):
    """The original upload (or the pad's PNG) as it was sent."""
    data, media_type = store().original(sample_id)
    return Response(data, mimetype=media_type,
                    headers={"Cache-Control": "private, max-age=86400, immutable",
                             "Content-Disposition": "inline"})


@blp.route("/<sample_id:sample_id>/review", methods=["POST"])
@require_token
@blp.doc(requestBody={"required": False, "content": {"application/json": {
    "schema": REVIEW_REQUEST}}})
@blp.response(200, FeedbackSampleSchema)
@blp.alt_response(400, schema=ErrorSchema, description="the body is not JSON")
@blp.alt_response(401, schema=ErrorSchema, description="TRAIN_API_TOKEN is set; bearer missing")
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(422, schema=ErrorSchema, description="invalid_label")
def review_sample(sample_id: str):
    """Accept the sample's label, or relabel it (`label`): it becomes reviewed."""
    body = json_body(required=False) or {}
    if not isinstance(body, dict) or set(body) - {"label"}:
        raise ApiError(422, "invalid_body", "the body may hold only `label` (0-9)")
    try:
        label = digit(body, "label") if "label" in body else None
    except FeedbackInputError as error:
        raise ApiError(error.status, error.code, error.message) from None
    return public(store().review(sample_id, label))


@blp.route("/<sample_id:sample_id>", methods=["DELETE"])
@require_token
@blp.response(204)
@blp.alt_response(401, schema=ErrorSchema, description="TRAIN_API_TOKEN is set; bearer missing")
@blp.alt_response(404, schema=ErrorSchema)
def delete_sample(sample_id: str):
    """Remove a sample (its record, image and original)."""
    store().delete(sample_id)
    return ""

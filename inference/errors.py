"""One error format for every failure: {"error": {"code": "snake_case", "message": "..."}}.

Three kinds of failure end up in that shape, all registered here:
- `ApiError`: raised where a request is read, with its HTTP status and stable code;
- domain errors of the volume, the model cache and the image pipeline, which know nothing of
  HTTP: DOMAIN_ERRORS below is the one table that gives each its status (and code);
- werkzeug's HTTP errors (404 route, 405, 413 from MAX_CONTENT_LENGTH...), through
  flask-smorest's public hook `Api.handle_http_exception`, and unexpected exceptions (500),
so a client never sees HTML or a traceback.
"""

from __future__ import annotations

import logging
import re

import flask_smorest
import marshmallow as ma
from flask import Flask, current_app, g, has_app_context, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from .model_cache import ModelUnavailableError, NoModelsError
from .preprocess import (
    ImageTooLargeError,
    NoDigitFoundError,
    UnreadableImageError,
    UnsupportedImageFormatError,
)
from .volume import InvalidModelNameError, ModelNotFoundError

log = logging.getLogger(__name__)

NO_MODEL_MESSAGE = ("There is no model in the volume yet: train one first (the page's Train "
                    "tab, POST /api/train/runs, or `python -m train`).")

# exception → (status, code, message); a code of None is the exception's own `code` (the image
# pipeline's errors carry theirs), a message of None is the exception's text.
DOMAIN_ERRORS: dict[type[Exception], tuple[int, str | None, str | None]] = {
    InvalidModelNameError: (400, "invalid_model_name", None),
    ModelNotFoundError: (404, "model_not_found", None),
    ModelUnavailableError: (503, "model_unavailable", None),
    NoModelsError: (503, "no_model", NO_MODEL_MESSAGE),
    UnreadableImageError: (400, None, None),
    ImageTooLargeError: (413, None, None),
    UnsupportedImageFormatError: (415, None, None),
    NoDigitFoundError: (422, None, None),
}


class ApiError(Exception):
    """An error a client caused or can act on, with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(metadata={"description": "stable snake_case error code"})
    message = ma.fields.String(metadata={"description": "what went wrong, for people"})


class ErrorSchema(ma.Schema):
    """The body of every 4xx/5xx response."""

    error = ma.fields.Nested(ErrorBodySchema)


def error_response(status: int, code: str, message: str):
    if has_app_context():
        g.error_code = code  # for the request log line
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


class ApiWithOurErrors(flask_smorest.Api):
    """flask-smorest's Api with our error format for werkzeug's HTTP errors instead of its own."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        if error.code == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            message = f"The request body is larger than the limit of {limit} bytes."
        else:
            message = error.description or error.name
        response = error_response(error.code or 500, _code_for(error), message)
        if error.code == 405 and error.response is None:
            allowed = getattr(error, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response


def _code_for(exc: HTTPException) -> str:
    # "Request Entity Too Large" -> "request_entity_too_large"; 413 gets the clearer name.
    if exc.code == 413:
        return "payload_too_large"
    return re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")


def init_app(app: Flask, api: ApiWithOurErrors) -> None:
    """Our errors and everything unexpected in the one format (`api` handles werkzeug's)."""
    if not isinstance(api, ApiWithOurErrors):
        raise TypeError("the app's Api must be errors.ApiWithOurErrors, or werkzeug's errors "
                        "would come in flask-smorest's format")

    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message)

    for exception, (status, code, message) in DOMAIN_ERRORS.items():
        app.register_error_handler(exception, _domain_handler(status, code, message))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        # Logged with its traceback for us; the client only learns that it was our fault.
        log.exception("unhandled error")
        return error_response(500, "internal_error", InternalServerError.description)


def _domain_handler(status: int, code: str | None, message: str | None):
    def handle(exc: Exception):
        return error_response(status, code or exc.code, message or str(exc))
    return handle

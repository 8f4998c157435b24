"""One error format for every failure: {"error": {"code": "snake_case", "message": "..."}}.

Our own errors are `ApiError`s; werkzeug's HTTP errors (404 route, 405, 413 from
MAX_CONTENT_LENGTH...) and unexpected exceptions are converted to the same shape, so a client
never sees HTML or a traceback.
"""

from __future__ import annotations

import logging
import re

import marshmallow as ma
from flask import Flask, g, has_app_context, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


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


def _code_for(exc: HTTPException) -> str:
    # "Request Entity Too Large" -> "request_entity_too_large"; 413 gets the clearer name.
    if exc.code == 413:
        return "payload_too_large"
    return re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        if exc.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"The request body is larger than the limit of {limit} bytes."
        else:
            message = exc.description or exc.name
        response = error_response(exc.code or 500, _code_for(exc), message)
        if exc.code == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        # Logged with its traceback for us; the client only learns that it was our fault.
        log.exception("unhandled error")
        return error_response(500, "internal_error", InternalServerError.description)

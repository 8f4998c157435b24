"""One error format for every error: `{"error": {"code": "snake_case", "message": "..."}}`.

flask-smorest's Api registers the handler for every werkzeug HTTPException (404 on unknown
routes, 405, 413, webargs' 422...); `ApiWithOurErrors` makes it answer in our format through the
public `handle_http_exception` hook. The service layer raises domain errors; `DOMAIN_ERRORS` is
the one table that maps them to HTTP. Anything unexpected becomes a 500 in the same format,
logged, never a traceback to the client.
"""

from __future__ import annotations

import marshmallow as ma
from flask import current_app, jsonify, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException, InternalServerError

from train.feedback import FeedbackVolumeFullError, SampleNotFoundError
from train.params import InvalidParamsError
from train.service import (
    ActiveRunError,
    ModelNotFoundError,
    NoActiveRunError,
    NoModelError,
    RunNotActiveError,
    RunNotFoundError,
)


class ApiError(Exception):
    """Raised by views for an error response with our own code and message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra


def error_response(status: int, code: str, message: str, headers: dict | None = None, **extra):
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def snake_case(name: str) -> str:
    return "_".join(name.lower().replace("-", " ").split()) or "error"


def validation_details(messages) -> dict[str, str]:
    """webargs' {location: {field: [messages]}} → {field: "message; message"}."""
    fields: dict[str, str] = {}
    for location, location_errors in (messages or {}).items():
        if isinstance(location_errors, list):  # e.g. {"json": ["Invalid JSON body."]}
            fields[location] = "; ".join(map(str, location_errors))
            continue
        if not isinstance(location_errors, dict):
            continue
        for field, problems in location_errors.items():
            if isinstance(problems, dict):  # nested: flatten one level
                problems = [f"{key}: {value}" for key, value in problems.items()]
            if not isinstance(problems, list):
                problems = [problems]
            fields[str(field).replace("_schema", "body")] = "; ".join(map(str, problems))
    return fields


class ErrorDetailSchema(ma.Schema):
    code = ma.fields.String(metadata={"description": "snake_case error code"})
    message = ma.fields.String(metadata={"description": "what went wrong, in words"})
    fields = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(),
                            metadata={"description": "422 only: each bad field and why"})
    run_id = ma.fields.String(metadata={"description": "409 only: the run in the way"})


class ErrorSchema(ma.Schema):
    error = ma.fields.Nested(ErrorDetailSchema)


class ApiWithOurErrors(Api):
    ERROR_SCHEMA = ErrorSchema
    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        headers = data.get("headers") or {}
        if "messages" in data or "errors" in data:
            fields = validation_details(data.get("errors") or data.get("messages"))
            if error.code == 422:
                return invalid_parameters(fields, headers)
            return error_response(error.code, snake_case(error.name),
                                  "; ".join(fields.values()) or error.name, headers)
        if isinstance(error, InternalServerError):
            return error_response(500, "internal_error", "the server failed to answer")
        message = data.get("message") or error.description or error.name
        if error.code == 413:  # the code inference and the page's nginx use too
            # A route may allow more than the app (feedback samples carry the original upload).
            limit = request.max_content_length or current_app.config.get("MAX_CONTENT_LENGTH")
            return error_response(413, "payload_too_large",
                                  f"The request body is larger than the limit of {limit} bytes.")
        allowed = getattr(error, "valid_methods", None)
        if error.code == 405 and allowed:
            # RFC 9110: a 405 names the methods the route does take.
            headers = {**headers, "Allow": ", ".join(allowed)}
        return error_response(error.code or 500, snake_case(error.name), message, headers)


def invalid_parameters(fields: dict[str, str], headers: dict | None = None):
    """The one 422: the body's shape (webargs) or its values (params.resolve), field by field."""
    message = "invalid " + "; ".join(f"{field}: {problem}" for field, problem in fields.items())
    return error_response(422, "invalid_parameters", message, headers, fields=fields)


def handle_api_error(error: ApiError):
    return error_response(error.status, error.code, error.message, error.headers, **error.extra)


# The service's domain errors as HTTP: status, code, message and extra fields of the body.
DOMAIN_ERRORS = {
    ActiveRunError: lambda error: ApiError(
        409, "run_active", f"run {error.run['id']} is {error.run['state']}: one run at a time; "
        "stop it or wait for it to finish", run_id=error.run["id"]),
    RunNotActiveError: lambda error: ApiError(409, "run_finished", str(error),
                                              run_id=error.run["id"]),
    NoActiveRunError: lambda error: ApiError(409, "no_active_run", "no training is running"),
    RunNotFoundError: lambda error: ApiError(404, "run_not_found", str(error)),
    ModelNotFoundError: lambda error: ApiError(404, "model_not_found", str(error)),
    NoModelError: lambda error: ApiError(404, "no_model",
                                         "there is no model yet: train one first"),
    SampleNotFoundError: lambda error: ApiError(404, "sample_not_found", str(error)),
    # 507 Insufficient Storage: the server can't store what it was sent; nothing was kept.
    FeedbackVolumeFullError: lambda error: ApiError(507, "volume_full", error.strerror),
}


def handle_domain_error(error: Exception):
    if isinstance(error, InvalidParamsError):
        return invalid_parameters(error.errors)
    return handle_api_error(DOMAIN_ERRORS[type(error)](error))


def handle_unexpected(error: Exception):
    if isinstance(error, HTTPException):
        return current_app.extensions["smorest_api"].handle_http_exception(error)
    current_app.logger.exception("unhandled error")
    return error_response(500, "internal_error", "the server failed to answer")


def init_app(app, api: ApiWithOurErrors) -> None:
    app.extensions["smorest_api"] = api
    app.register_error_handler(ApiError, handle_api_error)
    for domain_error in (InvalidParamsError, *DOMAIN_ERRORS):
        app.register_error_handler(domain_error, handle_domain_error)
    app.register_error_handler(Exception, handle_unexpected)

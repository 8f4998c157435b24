"""The inference service: which digit is in an image, with any model on the volume.

`create_app()` is the application factory that gunicorn runs (see gunicorn.conf.py).
"""

from __future__ import annotations

import io

from flask import Flask, Request
from flask_smorest import Api

from . import metrics, request_log
from .blueprints import health, models, predict
from .config import Settings
from .errors import ErrorSchema, error_response, register_error_handlers
from .registry import (
    InvalidModelNameError,
    ModelNotFoundError,
    ModelRegistry,
    ModelUnavailableError,
    NoModelsError,
    validate_name,
)


class DigitsApi(Api):
    """flask-smorest's Api with our error format instead of its own."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        register_error_handlers(self._app)


class InMemoryRequest(Request):
    """Uploaded files stay in memory (bounded by MAX_UPLOAD_BYTES): Werkzeug would spool one over
    500 KB to a temporary file, and people's pictures are never to touch the disk."""

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        return io.BytesIO()


def create_app(settings: Settings | None = None, *, load_default: bool = True) -> Flask:
    settings = settings or Settings.from_env()
    if settings.default_model:
        validate_name(settings.default_model)  # a typo in the config fails the boot, clearly

    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        # Werkzeug's default caps non-file form fields at 500 kB; an image may come as one.
        MAX_FORM_MEMORY_SIZE=settings.max_upload_bytes,
        BODY_READ_TIMEOUT_S=settings.body_read_timeout_s,
        JSON_SORT_KEYS=False,
        API_TITLE="digits inference",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
    )
    app.json.sort_keys = False
    app.json.compact = True

    registry = ModelRegistry(
        settings.model_dir, cache_size=settings.model_cache_size,
        default_model=settings.default_model, batch_window_ms=settings.batch_window_ms,
        max_batch=settings.max_batch, events=metrics.RegistryMetrics())
    app.extensions["model_registry"] = registry
    app.extensions["inference_settings"] = settings

    api = DigitsApi(app)
    for blueprint in (predict.blp, models.blp, health.blp):
        api.register_blueprint(blueprint)
    _register_registry_errors(app)
    request_log.init_app(app)

    if load_default:
        # Each worker loads (and warms) the default model at boot, in the background, so the
        # worker answers /healthz at once and /readyz says 200 when the model is ready.
        registry.load_in_background()
    return app


def _register_registry_errors(app: Flask) -> None:
    """The registry speaks in exceptions of its own; here they become HTTP errors."""
    no_model = ("There is no model in the volume yet: train one first (the page's Train tab, "
                "POST /api/train/runs, or `python -m train`).")
    answers = {
        InvalidModelNameError: (400, "invalid_model_name", None),
        ModelNotFoundError: (404, "model_not_found", None),
        ModelUnavailableError: (503, "model_unavailable", None),
        NoModelsError: (503, "no_model", no_model),
    }
    for exception, (status, code, message) in answers.items():
        def handler(exc, status=status, code=code, message=message):
            return error_response(status, code, message or str(exc))
        app.register_error_handler(exception, handler)

"""The application factory: settings → components → errors → request log → routes."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping

from flask import Flask, Request

from . import errors, metrics, request_log
from .config import Settings
from .model_cache import ModelCache
from .routes import health, models, predict, v2
from .volume import ModelVolume, validate_name


class InMemoryRequest(Request):
    """Uploaded files stay in memory (bounded by MAX_UPLOAD_BYTES): Werkzeug would spool one over
    500 KB to a temporary file, and people's pictures are never to touch the disk."""

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        return io.BytesIO()


def create_app(test_config: Mapping | None = None) -> Flask:
    """The inference app. `test_config` maps Settings fields to values that override the
    environment, e.g. {"model_dir": tmp, "load_default": False}."""
    settings = dataclasses.replace(Settings.from_env(), **(test_config or {}))
    if settings.default_model:
        validate_name(settings.default_model)  # a typo in the config fails the boot, clearly

    app = Flask(__name__)
    app.request_class = InMemoryRequest
    _configure(app, settings)

    volume = ModelVolume(settings.model_dir, default_model=settings.default_model)
    cache = ModelCache(volume, size=settings.model_cache_size,
                       batch_window_ms=settings.batch_window_ms, max_batch=settings.max_batch,
                       events=metrics.CacheMetrics())
    app.extensions["inference_settings"] = settings
    app.extensions["model_volume"] = volume
    app.extensions["model_cache"] = cache

    api = errors.ApiWithOurErrors(app)
    errors.init_app(app, api)
    request_log.init_app(app)
    for blueprint in (predict.blp, models.blp, health.blp, v2.blp):
        api.register_blueprint(blueprint)

    if settings.load_default:
        # Each worker loads (and warms) the default model at boot, in the background, so the
        # worker answers /healthz at once and /readyz says 200 when the model is ready.
        cache.load_in_background()
    return app


def _configure(app: Flask, settings: Settings) -> None:
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

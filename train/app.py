"""The train service's Flask application factory (gunicorn: `train:create_app()`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from train import errors, metrics, request_log
from train.config import Settings
from train.executors import make_executor
from train.feedback import FeedbackStore
from train.ratelimit import RateLimiter
from train.service import TrainingService

API_TITLE = "digits train"
API_VERSION = "1.0"
# One JSON body is a few hundred bytes; nothing legitimate comes near this.
MAX_CONTENT_LENGTH = 64 * 1024


def create_app(test_config: Mapping | None = None) -> Flask:
    """The app; `test_config` maps Settings fields to values that replace the environment's,
    e.g. `create_app({"model_dir": tmp_path, "api_token": "secret"})`."""
    settings = dataclasses.replace(Settings.from_env(), **(test_config or {}))
    app = Flask("train")
    app.json.sort_keys = False
    app.config.from_mapping(
        API_TITLE=API_TITLE,
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
    )
    app.extensions["train.settings"] = settings
    app.extensions["train.service"] = TrainingService(
        settings.model_dir, make_executor(settings), on_started=metrics.count_run_started)
    app.extensions["train.feedback"] = FeedbackStore(settings.model_dir,
                                                     settings.feedback_max_samples)
    app.extensions["train.feedback_limiter"] = RateLimiter(settings.feedback_rate_limit)
    if settings.trusted_proxies:
        # The client's address (the feedback rate limit's key) from the proxies' X-Forwarded-For;
        # believed only when we are told how many proxies stand in front (TRAIN_TRUSTED_PROXIES).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)

    api = errors.ApiWithOurErrors(app, spec_kwargs={
        "info": {"description": "Training runs and models of digits (docs/api.md, Train)."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    })
    errors.init_app(app, api)
    request_log.init_app(app)
    register_routes(app, api)
    return app


def register_routes(app: Flask, api) -> None:
    from train.routes import evaluate, feedback, health, legacy, runs

    # Sample ids in URLs are their 24 hex digits: `/api/feedback/export` is never an id.
    app.url_map.converters["sample_id"] = feedback.SampleIdConverter
    api.register_converter(feedback.SampleIdConverter, feedback.sample_id_schema)

    api.register_blueprint(runs.blp)
    api.register_blueprint(legacy.blp)
    api.register_blueprint(feedback.blp)
    api.register_blueprint(evaluate.blp)
    api.register_blueprint(health.blp)

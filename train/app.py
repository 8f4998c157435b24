"""The train service's Flask application (built by `train.create_app`)."""

from __future__ import annotations

import os

from flask import Flask

from train import errors, metrics, settings
from train.executors import executor_name, make_executor
from train.service import TrainingService

API_TITLE = "digits train"
API_VERSION = "1.0"


def build_app(test_config: dict | None = None) -> Flask:
    app = Flask("train")
    app.json.sort_keys = False
    app.config.from_mapping(
        MODEL_DIR=settings.model_dir(),
        TRAIN_EXECUTOR=executor_name(),
        TRAIN_API_TOKEN=os.environ.get("TRAIN_API_TOKEN") or None,
        API_TITLE=API_TITLE,
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        # One JSON body is a few hundred bytes; nothing legitimate comes near this.
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    if test_config:
        app.config.update(test_config)

    model_dir = app.config["MODEL_DIR"]
    executor = make_executor(app.config["TRAIN_EXECUTOR"], model_dir)
    service = TrainingService(model_dir, executor)
    app.extensions["train.service"] = service

    api = errors.ApiWithOurErrors(app, spec_kwargs={
        "info": {"description": "Training runs and models of digits (DESIGN.md, train section)."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    })
    errors.init_app(app, api)
    metrics.init_app(app, service)

    from train.api import health, legacy, runs

    api.register_blueprint(runs.blp)
    api.register_blueprint(legacy.blp)
    app.register_blueprint(health.blp)
    return app

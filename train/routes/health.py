"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from train.metrics import metrics as app_metrics

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    """Alive: the process answers."""
    return jsonify({"status": "ok"})


@blp.get("/readyz")
def readyz():
    """Ready: the model volume exists and the service can write its runs there."""
    runs = current_app.extensions["train.service"].store.folder
    try:
        runs.mkdir(parents=True, exist_ok=True)
        writable = os.access(runs, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        return jsonify({"error": {"code": "not_ready",
                                  "message": f"the model volume is not writable ({runs})"}}), 503
    return jsonify({"status": "ready", "executor": current_app.config["TRAIN_EXECUTOR"]})


@blp.get("/metrics")
def metrics():
    """Prometheus text format."""
    return Response(generate_latest(app_metrics().registry), mimetype=CONTENT_TYPE_LATEST)

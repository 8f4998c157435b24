"""Probes and metrics: /healthz (alive), /readyz (can run trainings), /metrics (Prometheus)."""

from __future__ import annotations

import os

from flask import Response, jsonify
from flask_smorest import Blueprint

from train import metrics
from train.routes import service, settings
from train.schemas import StatusSchema

blp = Blueprint("health", __name__, description="Probes and metrics")


@blp.route("/healthz")
@blp.alt_response(200, schema=StatusSchema, success=True)
def healthz():
    """Alive: the process answers HTTP."""
    return jsonify({"status": "ok"})


@blp.route("/readyz")
@blp.alt_response(200, schema=StatusSchema, success=True)
@blp.alt_response(503, schema=StatusSchema, description="the volume is not writable")
def readyz():
    """Ready: the model volume exists and the service can write its runs there."""
    runs = service().store.folder
    try:
        runs.mkdir(parents=True, exist_ok=True)
        writable = os.access(runs, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        return jsonify({"error": {"code": "not_ready",
                                  "message": f"the model volume is not writable ({runs})"}}), 503
    return jsonify({"status": "ready", "executor": settings().executor})


@blp.route("/metrics")
@blp.doc(responses={200: {"description": "Prometheus text format",
                          "content": {"text/plain": {"schema": {"type": "string"}}}}})
def prometheus_metrics():
    """Requests, latency and runs started; runs by state, models, the active run's progress."""
    body, content_type = metrics.exposition(service(), settings().metrics_dir)
    return Response(body, content_type=content_type)

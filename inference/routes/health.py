"""Probes and metrics: /healthz (alive), /readyz (can serve), /metrics (Prometheus)."""

from __future__ import annotations

from flask import Response, current_app, jsonify
from flask_smorest import Blueprint

from .. import metrics
from ..schemas import StatusSchema

blp = Blueprint("health", __name__, description="Probes and metrics")


@blp.route("/healthz")
@blp.alt_response(200, schema=StatusSchema, success=True)
def healthz():
    """Alive: the process answers HTTP."""
    return jsonify({"status": "ok"})


@blp.route("/readyz")
@blp.alt_response(200, schema=StatusSchema, success=True)
@blp.alt_response(503, schema=StatusSchema, description="not ready, with the reason")
def readyz():
    """Ready: the volume is readable and the default model (if any) is loaded and warmed."""
    problem = current_app.extensions["model_cache"].readiness_problem()
    if problem:
        response = jsonify({"status": "unavailable", "reason": problem,
                            "error": {"code": "not_ready", "message": problem}})
        response.status_code = 503
        return response
    return jsonify({"status": "ready"})


@blp.route("/metrics")
@blp.doc(responses={200: {"description": "Prometheus text format",
                          "content": {"text/plain": {"schema": {"type": "string"}}}}})
def prometheus_metrics():
    """Request counts and latency, predictions per model, model loads, cache hits."""
    settings = current_app.extensions["inference_settings"]
    body, content_type = metrics.exposition(settings.prometheus_multiproc_dir)
    return Response(body, content_type=content_type)

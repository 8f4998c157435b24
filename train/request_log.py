"""One JSON line per request on stderr: method, route, status, milliseconds, model, error code.

The same lines as the inference service's. Never the body nor the headers: a request may carry
the API token. The route is the pattern (`/api/train/runs/<run_id>`), never the raw path.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import Flask, g, request

from train import metrics

log = logging.getLogger("train.requests")


def configure_logger() -> None:
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def route_pattern() -> str | None:
    """The route pattern (bounded), never the raw path (unbounded, user-controlled)."""
    rule = request.url_rule
    return rule.rule if rule is not None else None


def error_code(response) -> str | None:
    """The `error.code` of one of our JSON error bodies, else None."""
    if response.status_code < 400 or not response.is_json:
        return None
    body = response.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def start_timer() -> None:
    g.started = time.perf_counter()


def log_and_count(response):
    started = g.get("started")
    seconds = time.perf_counter() - started if started else 0.0
    route = route_pattern()
    metrics.observe_request(request.method, route or "unmatched", response.status_code, seconds)
    line = {"ts": round(time.time(), 3), "method": request.method,
            "route": route or "<unmatched>", "status": response.status_code,
            "ms": round(seconds * 1000, 2)}
    model = (request.view_args or {}).get("name")  # DELETE /api/train/models/<name>
    if model:
        line["model"] = model
    code = error_code(response)
    if code:
        line["error"] = code
    log.info(json.dumps(line))
    return response


def init_app(app: Flask) -> None:
    configure_logger()
    app.before_request(start_timer)
    app.after_request(log_and_count)

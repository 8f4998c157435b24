"""One JSON line per request on stderr: method, route, status, model, milliseconds.

Never the body: images are people's data and can be megabytes.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import Flask, g, request

from . import metrics

log = logging.getLogger("inference.requests")


def _configure_logger() -> None:
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def route_label() -> str:
    """The route pattern (bounded), never the raw path (unbounded, user-controlled)."""
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def init_app(app: Flask) -> None:
    _configure_logger()

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def log_and_count(response):
        started = g.get("started")
        seconds = time.perf_counter() - started if started else 0.0
        route = route_label()
        metrics.observe_request(request.method, route, response.status_code, seconds)
        line = {"ts": round(time.time(), 3), "method": request.method, "route": route,
                "status": response.status_code, "ms": round(seconds * 1000, 2)}
        model = g.get("model")
        if model:
            line["model"] = model
        error = g.get("error_code")
        if error:
            line["error"] = error
        log.info(json.dumps(line))
        return response

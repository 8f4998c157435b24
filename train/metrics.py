"""Prometheus metrics: HTTP requests, runs started, and run/model gauges read at scrape time.

Each app has its own registry (tests may build several apps in one process).
"""

from __future__ import annotations

import time

from flask import current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from train.runs import STATES


class VolumeCollector:
    """Runs by state, models on the volume and the active run's progress, read when scraped."""

    def __init__(self, service):
        self.service = service

    def collect(self):
        runs = self.service.store.all()
        by_state = GaugeMetricFamily("train_runs", "Training runs on the volume, by state",
                                     labels=["state"])
        for state in STATES:
            by_state.add_metric([state], sum(run.get("state") == state for run in runs))
        yield by_state
        yield GaugeMetricFamily("train_models", "Models on the volume",
                                value=len(self.service.models()))
        active = [run for run in runs if run.get("state") in ("running", "stopping")]
        yield GaugeMetricFamily("train_active_run_progress", "Progress (0..1) of the active run",
                                value=float(active[0].get("progress") or 0) if active else 0.0)


class Metrics:
    def __init__(self, service):
        self.registry = CollectorRegistry()
        self.requests = Counter("train_http_requests_total", "HTTP requests answered",
                                ["method", "endpoint", "status"], registry=self.registry)
        self.latency = Histogram("train_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "endpoint"], registry=self.registry)
        self.runs_started = Counter("train_runs_started_total",
                                    "Training runs started by this process", ["architecture"],
                                    registry=self.registry)
        self.registry.register(VolumeCollector(service))


def metrics() -> Metrics:
    return current_app.extensions["train.metrics"]


def before_request() -> None:
    g.started = time.perf_counter()


def after_request(response):
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    metrics().requests.labels(request.method, endpoint, str(response.status_code)).inc()
    if "started" in g:
        metrics().latency.labels(request.method, endpoint).observe(
            time.perf_counter() - g.started)
    return response


def init_app(app, service) -> None:
    app.extensions["train.metrics"] = Metrics(service)
    app.before_request(before_request)
    app.after_request(after_request)

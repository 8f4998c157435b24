"""Prometheus metrics, correct under several gunicorn workers.

HTTP requests and runs started are counted by whichever worker handled them. gunicorn.conf.py
sets PROMETHEUS_MULTIPROC_DIR before the workers start: each worker then writes its samples to
files there, and /metrics (in whichever worker answers) adds them all up. Without it (a single
process, e.g. a test client) this module's own registry is read.

Runs by state, models on the volume and the active run's progress are not counted by anyone:
`VolumeCollector` reads them from the volume at scrape time, the same for every worker.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from train.lifecycle import STATES

# This process' counters (not prometheus_client's global registry: no process_* or python_*
# metrics, as before, and nothing shared with another app made in the same process).
OWN_REGISTRY = CollectorRegistry()
REQUESTS = Counter("train_http_requests_total", "HTTP requests answered",
                   ["method", "endpoint", "status"], registry=OWN_REGISTRY)
LATENCY = Histogram("train_http_request_duration_seconds", "HTTP request latency",
                    ["method", "endpoint"], registry=OWN_REGISTRY)
RUNS_STARTED = Counter("train_runs_started_total", "Training runs started by this service",
                       ["architecture"], registry=OWN_REGISTRY)


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


def observe_request(method: str, endpoint: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, endpoint, str(status)).inc()
    LATENCY.labels(method, endpoint).observe(seconds)


def count_run_started(run: dict) -> None:
    RUNS_STARTED.labels(architecture=run["params"]["architecture"]).inc()


def exposition(service, multiprocess_dir: str | None) -> tuple[bytes, str]:
    """Every worker's counters (or this process' alone) and the volume's gauges, as text."""
    registry = CollectorRegistry()
    if multiprocess_dir:
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    else:
        registry.register(OWN_REGISTRY)
    registry.register(VolumeCollector(service))
    return generate_latest(registry), CONTENT_TYPE_LATEST

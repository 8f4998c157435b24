"""Prometheus metrics, correct under several gunicorn workers.

gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before the workers start: each worker then writes
its samples to files there, and /metrics (in whichever worker answers) adds them all up.
Without it (a single process, e.g. a test client) the ordinary in-process registry is used.
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
from prometheus_client import REGISTRY as PROCESS_REGISTRY

from .model_cache import CacheEvents

REQUESTS = Counter("inference_http_requests_total", "HTTP requests answered",
                   ["method", "route", "status"])
LATENCY = Histogram("inference_http_request_duration_seconds", "Time to answer a request",
                    ["route"],
                    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05,
                             0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PREDICTIONS = Counter("inference_predictions_total", "Digits predicted", ["model"])
MODEL_LOAD_SECONDS = Histogram("inference_model_load_seconds",
                               "Time to load, compile and warm a model", ["model"],
                               buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32))
MODEL_LOAD_FAILURES = Counter("inference_model_load_failures_total",
                              "Model files that could not be loaded", ["model"])
CACHE_HITS = Counter("inference_model_cache_hits_total", "Requests served by a loaded model")
CACHE_MISSES = Counter("inference_model_cache_misses_total",
                       "Requests that had to load their model first")


class CacheMetrics(CacheEvents):
    def cache_hit(self, name: str) -> None:
        CACHE_HITS.inc()

    def cache_miss(self, name: str) -> None:
        CACHE_MISSES.inc()

    def model_loaded(self, name: str, seconds: float) -> None:
        MODEL_LOAD_SECONDS.labels(name).observe(seconds)

    def load_failed(self, name: str) -> None:
        MODEL_LOAD_FAILURES.labels(name).inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(route).observe(seconds)


def exposition(multiproc_dir: str | None) -> tuple[bytes, str]:
    """The current metrics of all workers (Settings.prometheus_multiproc_dir), in Prometheus'
    text format."""
    if multiproc_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry = PROCESS_REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST

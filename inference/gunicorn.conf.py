# ruff: noqa: N999 - gunicorn finds its config by this file name
"""gunicorn settings for the inference service.

Run from the repository root:  gunicorn --config inference/gunicorn.conf.py "inference:create_app()"

Workers and threads, for 2 cores: a 28×28 prediction is ~1 ms of CPU, nearly all Python (HTTP
parsing, Flask, decoding, preprocessing: holds the GIL) around a ~30 µs LiteRT call. Two worker
processes run two requests truly in parallel, one per core; a few gthread threads per worker
overlap one request's network reads and writes with another's work. More processes than cores
only add context switches; more threads only add GIL contention. gthread was measured against
sync, gevent (more requests, but a p99 of ~2 s: unfair between connections) and other counts
(`make bench-levers`, docs/benchmarks.md).

Model loading: per worker, not preloaded in the master. A model served through the Keras
fallback brings TensorFlow, whose thread pools do not survive fork(), and each worker must own
its cache anyway (a model replaced on the volume is reloaded by each worker on its next use).
Each worker loads and warms the default model in the background at boot; /readyz answers 200
once it is ready.
"""

import os
import shutil
import tempfile

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("INFERENCE_THREADS", "4"))
preload_app = False
# One listening socket per worker (SO_REUSEPORT), so the kernel spreads new connections over the
# workers. With one shared socket, a gthread worker accepts every connection that is ready when
# it wakes, keep-alive connections stay where they were accepted, and `make bench-levers` saw all
# 8 of wrk's connections on one worker (the other idle, ~30% less throughput) in some rounds.
# The kernel's spread is a hash, not a strict rotation: 8 connections split 5/3 as often as 4/4.
# Measured shares are in docs/benchmarks.md. INFERENCE_REUSE_PORT=0 goes back to one shared
# socket (for the benchmark's comparison). A worker's socket closes with it: connections waiting
# in its queue then are reset, so a worker restart under load can cost a few requests.
reuse_port = os.environ.get("INFERENCE_REUSE_PORT", "1") != "0"

# A worker that stops answering its heartbeat for this long (a hung model load, a stuck call)
# is killed and replaced. Request bodies are bounded separately: the app puts a 10 s timeout on
# the socket while reading a body, and gunicorn defers connections that send nothing for 5 s.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Request line and headers stay small; bodies are capped by MAX_UPLOAD_BYTES in the app.
limit_request_line = 8190
limit_request_fields = 100

# The app writes one JSON line per request itself; gunicorn's access log would double it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
proc_name = "digits-inference"
# gunicorn's control socket (for `gunicornc`) defaults to one path under $HOME for every instance,
# so two services on one machine would fight over it, and in the image $HOME is read-only.
# Workers are managed by signals and the orchestrator here: no control interface.
control_socket_disable = True

# Prometheus' multiprocess mode: every worker writes its samples to files in this folder and
# /metrics sums them. It must be set before a worker imports prometheus_client, and start empty.
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="digits-inference-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    os.makedirs(_metrics_dir, exist_ok=True)
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db"):
            os.remove(os.path.join(_metrics_dir, name))


# With reuse_port each worker has its own socket from the moment it is forked, and the kernel
# hands it connections at once. A worker that accepted them before its default model was loaded
# and warmed would answer /readyz 503 while its sibling says 200 (a flapping probe: the launcher
# and Kubernetes see "ready", then "not ready") and keep its first predictions waiting on the
# load. So a worker starts accepting once its boot-time load has ended; connections wait in its
# socket's backlog meanwhile. Bounded well inside `timeout`, which a worker's boot counts
# against: past it the worker serves, and /readyz says "loading" until the load ends.
BOOT_LOAD_WAIT_SECONDS = 20


def post_worker_init(worker):
    app = worker.wsgi
    cache = getattr(app, "extensions", {}).get("model_cache")
    if cache is not None and not cache.wait_for_background_loads(BOOT_LOAD_WAIT_SECONDS):
        worker.log.warning("the default model is still loading after %s s: serving anyway",
                           BOOT_LOAD_WAIT_SECONDS)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)

# ruff: noqa: N999 - gunicorn's config file name is fixed by the shared contract
"""gunicorn settings for the train service.

Run as `gunicorn --config train/gunicorn.conf.py "train:create_app()"` from the repository root.

Threads, not processes: training never runs in a web worker (each run is its own job), and
server-sent event streams each hold a thread while they last. WEB_CONCURRENCY may still ask for
more workers: the run store's locks and the metrics' multiprocess mode are made for that.
"""

import os
import shutil
import tempfile

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8001')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = int(os.environ.get("TRAIN_THREADS", "16"))
# Event streams are long requests; gthread workers heartbeat independently of them.
timeout = 60
graceful_timeout = 10
keepalive = 5
# The app writes one JSON line per request itself; gunicorn's access log would double it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
proc_name = "digits-train"
# gunicorn's control socket (for `gunicornc`) defaults to one path under $HOME for every instance,
# so two services on one machine would fight over it, and in the image $HOME is read-only.
# Workers are managed by signals and the orchestrator here: no control interface.
control_socket_disable = True

# Prometheus' multiprocess mode: every worker writes its samples to files in this folder and
# /metrics sums them. It must be set before a worker imports prometheus_client, and start empty.
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="digits-train-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    os.makedirs(_metrics_dir, exist_ok=True)
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db"):
            os.remove(os.path.join(_metrics_dir, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """The service is shutting down (the master, not a worker restart): stop its local jobs."""
    stop_local_jobs(server)
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def stop_local_jobs(server):
    from train.config import Settings

    settings = Settings.from_env()
    if settings.executor != "local":
        return  # Kubernetes Jobs are independent of the service's pod
    from train.executors.local import stop_local_jobs as stop

    left = stop(settings.model_dir)
    if left:
        server.log.warning("training jobs still stopping at exit: %s", ", ".join(left))

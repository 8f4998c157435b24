# ruff: noqa: N999 - gunicorn's config file name is fixed by the shared contract
"""gunicorn settings for the train service.

Run as `gunicorn --config train/gunicorn.conf.py "train:create_app()"` from the repository root.

Threads, not processes: training never runs in a web worker (each run is its own job), and
server-sent event streams each hold a thread while they last.
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8001')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = int(os.environ.get("TRAIN_THREADS", "16"))
# Event streams are long requests; gthread workers heartbeat independently of them.
timeout = 60
graceful_timeout = 10
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# gunicorn's control socket (for `gunicornc`) defaults to one path under $HOME for every instance,
# so two services on one machine would fight over it, and in the image $HOME is read-only.
# Workers are managed by signals and the orchestrator here: no control interface.
control_socket_disable = True


def on_exit(server):
    """The service is shutting down (the master, not a worker restart): stop its local jobs."""
    if (os.environ.get("TRAIN_EXECUTOR") or "local") != "local":
        return  # Kubernetes Jobs are independent of the service's pod
    from train import settings
    from train.executors.local import stop_local_jobs

    left = stop_local_jobs(settings.model_dir())
    if left:
        server.log.warning("training jobs still stopping at exit: %s", ", ".join(left))

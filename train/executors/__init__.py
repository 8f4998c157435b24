"""Executors start a run's job outside the web workers and tell whether it is still alive.

An executor has:
- `name`;
- `start(run) -> dict`: start `python -m train.job <run_id>`; returns what it needs to find the
  job again (stored in the run as `executor`);
- `failure(run) -> str | None`: None while the job may still be working (or has finished and
  reported itself), else a message saying why the job is gone without reporting a result;
- `stop(run)`: called after `stop_requested` was set; the job stops itself between batches, the
  executor only ends a job that does not.
"""

from __future__ import annotations

import os
from pathlib import Path

EXECUTORS = ("local", "kubernetes")


def make_executor(name: str, model_dir: Path):
    if name == "local":
        from train.executors.local import LocalExecutor

        return LocalExecutor(model_dir)
    if name == "kubernetes":
        from train.executors.kubernetes import KubernetesExecutor

        return KubernetesExecutor.from_environment(model_dir)
    raise ValueError(f"TRAIN_EXECUTOR={name!r}: choose one of {', '.join(EXECUTORS)}")


def executor_name() -> str:
    return os.environ.get("TRAIN_EXECUTOR") or "local"

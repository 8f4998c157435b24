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

import dataclasses

from train.config import KubernetesSettings, Settings


def make_executor(settings: Settings):
    """The executor `settings.executor` names (config.py has checked that it exists)."""
    if settings.executor == "kubernetes":
        from train.executors.kubernetes import KubernetesExecutor

        # The run's Job mounts the volume where this service has it (test_config may move it).
        kubernetes = dataclasses.replace(
            settings.kubernetes or KubernetesSettings.from_environment(settings.model_dir),
            model_dir=str(settings.model_dir))
        return KubernetesExecutor.connect(kubernetes)
    from train.executors.local import LocalExecutor

    return LocalExecutor(settings.model_dir, settings.stop_grace_seconds)

"""What the routes do: start, stop, look up and reconcile runs; delete models.

One active run at a time: starting checks for an active run and creates the new one under the
store's creation lock, shared by every worker and process using the volume.
"""

from __future__ import annotations

import time
from pathlib import Path

from train.params import TrainParams, resolve
from train.runs import ACTIVE_STATES, RunStore, is_active, new_run_id, now_iso
from train.volume import metadata_path, model_names, model_path

# A queued run whose job has not started within this time is marked failed.
START_TIMEOUT_SECONDS = 300


class ActiveRunError(Exception):
    def __init__(self, run: dict):
        self.run = run
        super().__init__(f"run {run['id']} is {run['state']}; one run at a time")


class RunNotActiveError(Exception):
    def __init__(self, run: dict):
        self.run = run
        super().__init__(f"run {run['id']} is already {run['state']}")


def new_run(run_id: str, params: TrainParams) -> dict:
    return {
        "id": run_id, "state": "queued", "params": params.to_dict(), "created_at": now_iso(),
        "started_at": None, "finished_at": None, "updated_at": now_iso(), "phase": "queued",
        "epoch": 0, "epochs": params.epochs, "step": 0, "steps": None, "progress": 0.0,
        "eta_seconds": None, "metrics": {}, "history": [], "model": None, "error": None,
        "stop_requested": False, "executor": None,
    }


class TrainingService:
    def __init__(self, model_dir: Path, executor):
        self.model_dir = Path(model_dir)
        self.store = RunStore(self.model_dir)
        self.executor = executor

    # ------------------------------------------------------------------ runs

    def start(self, request: dict) -> dict:
        """Validate `request`, create the run and start its job; ActiveRunError if one runs."""
        with self.store.creation_lock():
            active = self.active_run()
            if active is not None:
                raise ActiveRunError(active)
            params = resolve(request, self.model_dir, taken_names=self.reserved_names())
            run = self.store.save(new_run(new_run_id(), params))
            try:
                info = self.executor.start(run)
            except Exception as error:
                return self.fail(run["id"], f"the job could not be started: {error}")
            return self.store.update(run["id"], lambda current: {**current, "executor": info})

    def reserved_names(self) -> set[str]:
        """Model names that active runs will write (no second run may claim them)."""
        return {run["params"]["name"] for run in self.store.all() if is_active(run)}

    def get(self, run_id: str) -> dict | None:
        run = self.store.get(run_id)
        return self.reconciled(run) if run else None

    def runs(self) -> list[dict]:
        return [self.reconciled(run) for run in self.store.all()]

    def active_run(self) -> dict | None:
        for run in self.store.all():
            if is_active(run) and is_active(self.reconciled(run)):
                return self.store.get(run["id"])
        return None

    def latest_run(self) -> dict | None:
        runs = self.runs()
        return runs[0] if runs else None

    def stop(self, run_id: str) -> dict | None:
        """Ask the run's job to stop; RunNotActiveError if it has already finished."""
        run = self.get(run_id)
        if run is None:
            return None
        if not is_active(run):
            raise RunNotActiveError(run)

        def request_stop(current: dict) -> dict | None:
            if not is_active(current):
                return None
            return {**current, "stop_requested": True, "stop_requested_at": now_iso(),
                    "state": "stopping", "phase": "stopping"}

        run = self.store.update(run_id, request_stop)
        if is_active(run):
            self.executor.stop(run)
        return run

    # ------------------------------------------------------------------ reconciliation

    def reconciled(self, run: dict) -> dict:
        """The run, marked failed if its job is gone without having reported a result."""
        if not is_active(run):
            return run
        if run.get("executor") is None:
            if age_seconds(run) < START_TIMEOUT_SECONDS:
                return run
            message = "the job did not start"
        else:
            message = self.executor.failure(run)
            if message is None:
                return run
        return self.fail(run["id"], message)

    def fail(self, run_id: str, message: str) -> dict:
        """Record that the run's job is gone: `stopped` if a stop was asked for, else `failed`."""
        def mark_ended(current: dict) -> dict | None:
            if current.get("state") not in ACTIVE_STATES:
                return None  # it reported a result meanwhile
            if current.get("stop_requested"):
                return {**current, "state": "stopped", "phase": "stopped", "message": message,
                        "finished_at": now_iso(), "eta_seconds": None}
            return {**current, "state": "failed", "phase": "failed", "error": message,
                    "finished_at": now_iso(), "eta_seconds": None}

        return self.store.update(run_id, mark_ended)

    # ------------------------------------------------------------------ models

    def models(self) -> list[str]:
        return model_names(self.model_dir)

    def delete_model(self, name: str) -> bool:
        """Remove `<name>.keras` and `<name>.json`; False if there is no such model."""
        target = model_path(self.model_dir, name)
        if name not in self.models():
            return False
        target.unlink(missing_ok=True)
        metadata_path(self.model_dir, name).unlink(missing_ok=True)
        return True


def age_seconds(run: dict) -> float:
    from datetime import datetime

    try:
        created = datetime.fromisoformat(run["created_at"].replace("Z", "+00:00"))
    except (KeyError, ValueError, AttributeError):
        return float("inf")
    return time.time() - created.timestamp()

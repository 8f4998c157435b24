"""What the routes do: start, stop, look up and reconcile runs; find and delete models.

Every route goes through this layer; it raises domain errors (below, and params'
InvalidParamsError), which errors.py maps to HTTP. One active run at a time: starting checks for
an active run and creates the new one under the store's creation lock, shared by every worker and
process using the volume. State changes are lifecycle.py's transitions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from train import lifecycle
from train.lifecycle import is_active
from train.params import options, resolve
from train.runs import RunStore, new_run_id
from train.timeutil import parse_iso, seconds_since
from train.volume import (
    is_valid_name,
    lite_path,
    metadata_path,
    model_names,
    model_path,
    read_json,
)

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


class NoActiveRunError(Exception):
    """A stop of "the active run" while none is active."""


class RunNotFoundError(Exception):
    def __init__(self, run_id: str):
        self.run_id = run_id
        super().__init__(f"there is no run {run_id!r}")


class ModelNotFoundError(Exception):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"there is no model {name!r}")


class NoModelError(Exception):
    """The volume holds no model at all."""


class TrainingService:
    def __init__(self, model_dir: Path, executor,
                 on_started: Callable[[dict], None] | None = None):
        self.model_dir = Path(model_dir)
        self.store = RunStore(self.model_dir)
        self.executor = executor
        # Told about each run whose job was started (the metrics count them).
        self.on_started = on_started or (lambda run: None)

    # ------------------------------------------------------------------ runs

    def start(self, request: dict) -> dict:
        """Validate `request`, create the run and start its job; ActiveRunError if one runs."""
        with self.store.creation_lock():
            active = self.active_run()
            if active is not None:
                raise ActiveRunError(active)
            # Under the one-active-run rule no other run can be about to write a model, so the
            # names on the volume are all the names that are taken.
            params = resolve(request, self.model_dir)
            run = self.store.save(lifecycle.new_run(new_run_id(), params))
            try:
                info = self.executor.start(run)
            except Exception as error:
                run = self.fail(run["id"], f"the job could not be started: {error}")
            else:
                run = self.store.update(run["id"], lambda current: {**current, "executor": info})
        self.on_started(run)
        return run

    def get(self, run_id: str) -> dict | None:
        run = self.store.get(run_id)
        return self.reconciled(run) if run else None

    def require(self, run_id: str) -> dict:
        """The run, reconciled; RunNotFoundError if there is none."""
        run = self.get(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run

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

    def current_run(self) -> dict | None:
        """The active run, else the latest one, else None (what the earlier API shows)."""
        run = self.active_run() or self.latest_run()
        return self.require(run["id"]) if run else None

    def stop(self, run_id: str) -> dict:
        """Ask the run's job to stop; RunNotFoundError, or RunNotActiveError if it has ended."""
        run = self.require(run_id)
        if not is_active(run):
            raise RunNotActiveError(run)
        run = self.store.update(run_id, lifecycle.request_stop)
        if is_active(run):
            self.executor.stop(run)
        return run

    def stop_active(self) -> dict:
        """Stop whichever run is active; NoActiveRunError if none is (or it has just ended)."""
        active = self.active_run()
        if active is None:
            raise NoActiveRunError()
        try:
            return self.stop(active["id"])
        except RunNotActiveError:
            raise NoActiveRunError() from None

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
        return self.store.update(run_id, lambda run: lifecycle.job_gone(run, message))

    def options(self) -> dict:
        """The architectures and data sets on offer, their defaults and the parameter bounds."""
        return options(self.model_dir)

    # ------------------------------------------------------------------ models

    def models(self) -> list[str]:
        return model_names(self.model_dir)

    def newest_model(self) -> tuple[str, dict | None] | None:
        """The newest model (by its metadata's created_at, else by file time) and its metadata;
        None if the volume holds none."""
        candidates = []
        for name in self.models():
            metadata = read_json(metadata_path(self.model_dir, name))
            created = model_created(self.model_dir, name, metadata)
            if created is not None:
                candidates.append((created, name, metadata))
        if not candidates:
            return None
        _, name, metadata = max(candidates, key=lambda candidate: candidate[:2])
        return name, metadata

    def require_newest_model(self) -> tuple[str, dict | None]:
        """As newest_model; NoModelError if the volume holds no model."""
        newest = self.newest_model()
        if newest is None:
            raise NoModelError()
        return newest

    def delete_model(self, name: str) -> None:
        """Remove `<name>.keras`, `<name>.json` and its TFLite copy; ModelNotFoundError if there
        is no such model."""
        if not is_valid_name(name) or name not in self.models():
            raise ModelNotFoundError(name)
        model_path(self.model_dir, name).unlink(missing_ok=True)
        metadata_path(self.model_dir, name).unlink(missing_ok=True)
        lite_path(self.model_dir, name).unlink(missing_ok=True)


def model_created(model_dir: Path, name: str, metadata: dict | None) -> datetime | None:
    """When the model was made: its metadata's created_at, else its file's time (None: gone)."""
    try:
        file_time = model_path(model_dir, name).stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        return parse_iso((metadata or {}).get("created_at"))
    except ValueError:
        return datetime.fromtimestamp(file_time, UTC)


def age_seconds(run: dict) -> float:
    age = seconds_since(run.get("created_at"))
    return float("inf") if age is None else age


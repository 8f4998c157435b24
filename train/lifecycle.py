"""A training run's states and the only transitions between them.

    queued ──► running ──► succeeded
      │          │
      │          ├──► failed        (the job reported an error, or is gone without a result)
      │          ▼
      └──► stopping ──► stopped     (stop requested; the job ends after its current batch)

A stop may be asked for while the run is still queued (its job then ends it `stopped` without
training); a job that is gone ends its run `failed`, or `stopped` if a stop had been asked for; a
job that finishes its last batch while stopping still records `succeeded`.

Each transition is a pure function `run -> new run | None` for `RunStore.update`: None means
"not allowed from the run's current state, leave it as it is", so a late writer (the service
reconciling, the job reporting) never overwrites an outcome that is already recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from train.timeutil import utc_now_iso

if TYPE_CHECKING:
    from train.params import TrainParams

ACTIVE_STATES = ("queued", "running", "stopping")
FINAL_STATES = ("stopped", "succeeded", "failed")
STATES = ACTIVE_STATES + FINAL_STATES


def is_active(run: dict) -> bool:
    return run.get("state") in ACTIVE_STATES


def new_run(run_id: str, params: TrainParams) -> dict:
    """A run that has just been created: `queued`, nothing done yet."""
    now = utc_now_iso()
    return {
        "id": run_id, "state": "queued", "params": params.to_dict(), "created_at": now,
        "started_at": None, "finished_at": None, "updated_at": now, "phase": "queued",
        "epoch": 0, "epochs": params.epochs, "step": 0, "steps": None, "progress": 0.0,
        "eta_seconds": None, "metrics": {}, "history": [], "model": None, "error": None,
        "stop_requested": False, "executor": None,
    }


def start_running(run: dict, pid: int) -> dict | None:
    """queued → running: the job (process `pid`) has picked the run up."""
    if run.get("state") != "queued":
        return None
    return {**run, "state": "running", "phase": "loading data", "started_at": utc_now_iso(),
            "pid": pid}


def record_progress(run: dict, snapshot: dict) -> dict | None:
    """No transition: the job's latest progress, while the run is active."""
    if not is_active(run):
        return None
    # Progress never goes backwards, whatever order writes happen in.
    if snapshot.get("progress", 0) < run.get("progress", 0):
        return None
    merged = {**run, **snapshot}
    if run.get("stop_requested"):
        merged["phase"] = "stopping"
    return merged


def request_stop(run: dict) -> dict | None:
    """queued | running | stopping → stopping: the job is asked to end after its current batch."""
    if not is_active(run):
        return None
    return {**run, "stop_requested": True, "stop_requested_at": utc_now_iso(),
            "state": "stopping", "phase": "stopping"}


def succeed(run: dict, model: str, **results) -> dict | None:
    """active → succeeded: the model `model` is saved; `results` are its accuracy, history..."""
    return finished(run, "succeeded", model=model, **results)


def stop(run: dict, **fields) -> dict | None:
    """active → stopped: the run ended on request and wrote no model."""
    return finished(run, "stopped", **fields)


def fail(run: dict, error: str) -> dict | None:
    """active → failed, with the reason."""
    return finished(run, "failed", error=error)


def job_gone(run: dict, message: str) -> dict | None:
    """The run's job ended without reporting a result: `stopped` if a stop was asked for (the
    message says how it ended), else `failed` with the message as the error."""
    if run.get("stop_requested"):
        return stop(run, message=message)
    return fail(run, message)


def finished(run: dict, state: str, **fields) -> dict | None:
    """active → `state`, one of FINAL_STATES."""
    if not is_active(run):
        return None
    return {**run, **fields, "state": state, "phase": state, "finished_at": utc_now_iso(),
            "eta_seconds": None}

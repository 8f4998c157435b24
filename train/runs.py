"""The run store: one `runs/<run_id>.json` per training run, on the model volume.

The web service and the job both change a run file, so every change is a read-modify-write under
an exclusive `flock` on the run's dot-prefixed lock file, followed by an atomic replace. That way a
stop request written by the service is never lost under a progress update written by the job.
What a change may be is lifecycle.py's business; the store only keeps the files.
"""

from __future__ import annotations

import contextlib
import fcntl
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from train.timeutil import utc_now_iso
from train.volume import read_json, runs_dir, write_json_atomic


def new_run_id() -> str:
    """Sortable by creation time and unique: `20261122-143205-3fa9c1`."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class RunStore:
    def __init__(self, model_dir: Path):
        self.folder = runs_dir(Path(model_dir))

    def path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """An exclusive lock shared by every process that uses this volume."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f".{name}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def creation_lock(self):
        """Held while checking that no run is active and creating one (one active run at most)."""
        return self.locked("create")

    def get(self, run_id: str) -> dict | None:
        if not is_run_id(run_id):
            return None
        return read_json(self.path(run_id))

    def all(self) -> list[dict]:
        """Every run, newest first."""
        if not self.folder.is_dir():
            return []
        runs = [read_json(path) for path in self.folder.glob("*.json")
                if not path.name.startswith(".")]
        return sorted((run for run in runs if run and "id" in run),
                      key=lambda run: (run.get("created_at", ""), run["id"]), reverse=True)

    def save(self, run: dict) -> dict:
        with self.locked(run["id"]):
            write_json_atomic(self.path(run["id"]), run)
        return run

    def update(self, run_id: str, change: Callable[[dict], dict | None]) -> dict | None:
        """Apply `change` to the current run under its lock; it returns the new run or None to
        leave it as it is. Returns the run as stored afterwards (None if there is no such run)."""
        with self.locked(run_id):
            run = read_json(self.path(run_id))
            if run is None:
                return None
            changed = change(dict(run))
            if changed is None or changed == run:
                return run
            changed["updated_at"] = utc_now_iso()
            write_json_atomic(self.path(run_id), changed)
            return changed


def is_run_id(run_id: str) -> bool:
    """Run ids are made by new_run_id; anything else (e.g. `../x`) can't name a run file."""
    return (isinstance(run_id, str) and 0 < len(run_id) <= 64
            and all(c.isalnum() or c == "-" for c in run_id))

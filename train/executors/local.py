"""The `local` executor: one detached subprocess per run.

The job runs in its own session (`start_new_session=True`), so it neither receives the signals
meant for the web server nor dies with the worker that started it. A run whose process is gone
without having reported a final state is marked failed. Process identity is checked through
/proc: a zombie counts as gone, and a reused process id is told apart by its start time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from train.config import DEFAULT_STOP_GRACE_SECONDS

REPO_ROOT = Path(__file__).resolve().parents[2]


def process_start_ticks(pid: int) -> int | None:
    """The process' start time (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces; fields after its closing ')' are fixed.
    fields = stat[stat.rindex(")") + 2:].split()
    state, start_ticks = fields[0], int(fields[19])
    return None if state in ("Z", "X") else start_ticks


def describe_exit(pid: int, returncode: int | None) -> str:
    if returncode is None:
        return f"the training process (pid {pid}) ended without reporting a result"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the training process (pid {pid}) was killed by {name} before it finished"
    return f"the training process (pid {pid}) exited with status {returncode} without a result"


class LocalExecutor:
    name = "local"

    def __init__(self, model_dir: Path, stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS):
        self.model_dir = Path(model_dir)
        self.stop_grace_seconds = stop_grace_seconds
        # Our own children, kept to reap them (a dead child stays a zombie until waited for)
        # and to learn their exit status.
        self.children: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def command(self, run_id: str) -> list[str]:
        return [sys.executable, "-m", "train.job", run_id]

    def start(self, run: dict) -> dict:
        # The job inherits the service's environment (it reads its settings the same way),
        # with the volume this executor was given.
        env = {**os.environ, "MODEL_DIR": str(self.model_dir)}
        process = subprocess.Popen(
            self.command(run["id"]), cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
        with self.lock:
            self.children[process.pid] = process
        return {"name": self.name, "pid": process.pid,
                "start_ticks": process_start_ticks(process.pid)}

    def returncode(self, pid: int) -> int | None:
        """The exit status of a child of this process that has ended (None if not ours)."""
        with self.lock:
            process = self.children.get(pid)
        if process is None:
            return None
        try:
            return process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None

    def failure(self, run: dict) -> str | None:
        info = run.get("executor") or {}
        pid = info.get("pid")
        if not isinstance(pid, int):
            return "the run has no training process (it was never started)"
        ticks = process_start_ticks(pid)
        if ticks is not None and info.get("start_ticks") in (None, ticks):
            return None
        # Gone (or a zombie): reaping our own child tells how it ended.
        return describe_exit(pid, self.returncode(pid))

    def stop(self, run: dict) -> None:
        """The job ends itself after the current batch; one that is stuck (in a download, say)
        is killed after the grace period, and the next look at the run marks it stopped."""
        timer = threading.Timer(self.stop_grace_seconds, self.kill_if_alive, args=(run,))
        timer.daemon = True
        timer.start()

    def kill_if_alive(self, run: dict) -> None:
        info = run.get("executor") or {}
        pid = info.get("pid")
        if isinstance(pid, int) and self.failure(run) is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def stop_local_jobs(model_dir: Path, wait_seconds: float = 8.0) -> list[str]:
    """The whole service is shutting down: ask its local jobs to stop, and wait a little.

    Jobs outlive a web worker by design, but when the service itself ends (Ctrl-C on `make run`,
    `docker stop`), an orphaned training would keep the CPU busy with nobody to watch it. Each
    active local run gets `stop_requested` and its job a SIGTERM (which it takes as a stop
    request), so it ends `stopped` after its current batch and writes no model.
    """
    import time

    from train import lifecycle
    from train.lifecycle import is_active
    from train.runs import RunStore

    store = RunStore(model_dir)
    stopping = []
    for run in store.all():
        info = run.get("executor") or {}
        if not is_active(run) or info.get("name") != "local" or not isinstance(info.get("pid"),
                                                                                int):
            continue
        store.update(run["id"], lifecycle.request_stop)
        ticks = process_start_ticks(info["pid"])
        if ticks is not None and info.get("start_ticks") in (None, ticks):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info["pid"], signal.SIGTERM)
            stopping.append(run["id"])
    deadline = time.monotonic() + wait_seconds
    while stopping and time.monotonic() < deadline:
        stopping = [run_id for run_id in stopping if is_active(store.get(run_id) or {})]
        time.sleep(0.2)
    return stopping

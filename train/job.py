"""`python -m train.job <run_id>`: one training run, started by an executor.

Reads the run's params from `runs/<run_id>.json`, trains through the same code as the CLI, writes
progress there at least once a second, stops between batches once `stop_requested` is set (or on
SIGTERM, e.g. when Kubernetes deletes the Job), and records the outcome: `succeeded` with the
model's name, `stopped` (on request), or `failed` with a message (also when SIGTERM came without
a stop request). A stopped or failed run writes no model.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback

from train import lifecycle
from train.config import Settings
from train.runs import RunStore
from train.timeutil import utc_now_iso

WRITE_INTERVAL_SECONDS = 0.5
TERMINATED = ("the training job was ended from outside (SIGTERM: its pod deleted or evicted, its "
              "node drained, or its process signalled) before it finished; no model was saved")


class RunReporter:
    """Keeps the latest progress snapshot and writes it to the run file from a background thread.

    Writing from a thread keeps the interval steady even when one batch takes longer than a
    second, and keeps file I/O out of the training loop. Each write also reads back
    `stop_requested`, so `should_stop` is a cheap in-memory check between batches.
    """

    def __init__(self, store: RunStore, run_id: str):
        self.store = store
        self.run_id = run_id
        self.latest: dict = {}
        self.stop_event = threading.Event()
        self.terminated = False  # SIGTERM arrived (see terminate)
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.loop, name="progress-writer", daemon=True)

    def start(self) -> RunReporter:
        self.thread.start()
        return self

    def report(self, snapshot: dict) -> None:
        with self.lock:
            self.latest = {**snapshot, "phase": "training"}

    def set_phase(self, phase: str) -> None:
        with self.lock:
            self.latest = {**self.latest, "phase": phase}

    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def request_stop(self) -> None:
        self.stop_event.set()

    def terminate(self) -> None:
        """SIGTERM: stop as on request, and remember that the process was told to end."""
        self.terminated = True
        self.request_stop()

    def flush(self) -> None:
        with self.lock:
            snapshot = dict(self.latest)
        snapshot["heartbeat_at"] = utc_now_iso()
        run = self.store.update(self.run_id,
                                lambda run: lifecycle.record_progress(run, snapshot))
        if run is None or run.get("stop_requested"):
            self.stop_event.set()

    def loop(self) -> None:
        while not self.done.wait(WRITE_INTERVAL_SECONDS):
            try:
                self.flush()
            except OSError as error:  # a full or flaky volume must not kill the training
                print(f"progress write failed: {error}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)


def record(store: RunStore, run_id: str, transition, *args, **fields) -> dict | None:
    """Apply one of lifecycle's transitions to the run file (under its lock)."""
    return store.update(run_id, lambda run: transition(run, *args, **fields))


def stopped_or_terminated(run: dict, terminated: bool) -> dict | None:
    """The run's end once training stopped: `stopped` when a stop was asked for, `failed`
    (TERMINATED) when SIGTERM came without one."""
    if terminated and not run.get("stop_requested"):
        return lifecycle.fail(run, TERMINATED)
    return lifecycle.stop(run)


def run_job(run_id: str) -> int:
    from train.params import TrainParams

    settings = Settings.from_env()
    model_dir = settings.model_dir
    store = RunStore(model_dir)
    run = store.get(run_id)
    if run is None:
        print(f"no run {run_id!r} in {store.folder}", file=sys.stderr)
        return 2
    if run.get("stop_requested"):
        record(store, run_id, lifecycle.stop)
        return 0
    run = record(store, run_id, lifecycle.start_running, os.getpid())
    if run is None or run.get("state") != "running":
        print(f"run {run_id} is not queued; nothing to do", file=sys.stderr)
        return 2

    reporter = RunReporter(store, run_id).start()
    # SIGTERM ends the job after its current batch, writing no model: the executors send it
    # after setting `stop_requested` (a stop, the service shutting down), and Kubernetes when
    # the pod goes for another reason (deleted, evicted, its node drained), which fails the run.
    signal.signal(signal.SIGTERM, lambda *_: reporter.terminate())
    try:
        from train.datasets import DatasetUnavailableError
        from train.training import TrainingStopped, VolumeFullError, train_model

        params = TrainParams.from_dict(run["params"])
        try:
            metadata = train_model(params, model_dir, reporter, verbose=2,
                                   precision=settings.train_precision)
        except TrainingStopped:
            reporter.close()
            ended = record(store, run_id, stopped_or_terminated, reporter.terminated)
            return 1 if ended and ended["state"] == "failed" else 0
        except DatasetUnavailableError as error:
            reporter.close()
            record(store, run_id, lifecycle.fail,
                   f"data set {params.dataset!r} is not available: {error}")
            return 1
        except VolumeFullError as error:
            reporter.close()
            record(store, run_id, lifecycle.fail, error.strerror)
            return 1
        reporter.close()
        reporter.flush()
        record(store, run_id, lifecycle.succeed, metadata["name"], progress=1.0,
               test_accuracy=metadata["test_accuracy"], history=metadata["history"])
        return 0
    except Exception as error:
        traceback.print_exc()
        reporter.close()
        record(store, run_id, lifecycle.fail,
               f"training failed: {type(error).__name__}: {error}")
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m train.job <run_id>", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return run_job(argv[0])


if __name__ == "__main__":
    sys.exit(main())

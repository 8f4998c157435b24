"""Progress of a training run, reported by a Keras callback to a `Reporter`.

The callback builds a snapshot (epoch, step, progress, ETA, latest metrics, per-epoch history)
after every batch and asks the reporter whether to stop; the reporter decides where the snapshot
goes (the run file, a terminal) and how often.
"""

from __future__ import annotations

import time
from typing import Protocol

import keras


class Reporter(Protocol):
    def report(self, snapshot: dict) -> None:
        """Take the latest progress snapshot (called after every batch and epoch)."""

    def should_stop(self) -> bool:
        """True once a stop was requested; checked between batches."""

    def set_phase(self, phase: str) -> None:
        """What the run is doing outside the batches: loading data, evaluating, saving."""


class NullReporter:
    def report(self, snapshot: dict) -> None:
        pass

    def set_phase(self, phase: str) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def rounded(logs: dict | None) -> dict:
    return {key: round(float(value), 6) for key, value in (logs or {}).items()
            if isinstance(value, int | float) or hasattr(value, "__float__")}


class ProgressCallback(keras.callbacks.Callback):
    """Feeds a Reporter from Keras' training loop and stops training when it asks to."""

    def __init__(self, reporter: Reporter, epochs: int, steps: int):
        super().__init__()
        self.reporter = reporter
        self.epochs = epochs
        self.steps = steps
        self.history: list[dict] = []
        self.stopped = False
        self.started = time.monotonic()
        self.epoch_started = self.started
        self.epoch = 0

    def snapshot(self, step: int, metrics: dict) -> dict:
        done = min(1.0, (self.epoch * self.steps + step) / (self.epochs * self.steps))
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (1 - done) if done > 0 else None
        return {"epoch": self.epoch + 1, "epochs": self.epochs, "step": step, "steps": self.steps,
                "progress": round(done, 6), "eta_seconds": None if eta is None else round(eta, 1),
                "elapsed_seconds": round(elapsed, 1), "metrics": metrics,
                "history": list(self.history)}

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()
        self.reporter.report(self.snapshot(0, {}))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.reporter.report(self.snapshot(batch + 1, rounded(logs)))
        if self.reporter.should_stop():
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        metrics = rounded(logs)
        entry = {"epoch": epoch + 1, **{key: metrics.get(key) for key in
                 ("loss", "accuracy", "val_loss", "val_accuracy")},
                 "seconds": round(time.monotonic() - self.epoch_started, 2)}
        if not self.stopped:
            self.history.append(entry)
        self.reporter.report(self.snapshot(self.steps, metrics))

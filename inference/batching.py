"""Micro-batching: requests that arrive together share one forward call.

No batching thread: the request thread that finds no forward call running becomes the leader.
It optionally waits `window_s` for company, takes up to `max_batch` waiting images (its own
first), runs one forward call and hands every caller its row. Whoever arrived meanwhile waits;
when the leader is done it makes the first of them the next leader. So a lone request runs its
forward call at once in its own thread (no hand-off, no added latency), and under load each
call serves everyone who queued up during the previous one.

Whether this pays on 2 cores is measured by `make bench`; `BATCH_WINDOW_MS=off` skips it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np


class _Pending:
    __slots__ = ("image", "done", "result", "error", "lead")

    def __init__(self, image: np.ndarray):
        self.image = image
        self.done = threading.Event()
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None
        self.lead = False  # set instead of a result: "your turn to run the next batch"


class MicroBatcher:
    def __init__(self, forward: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 32,
                 window_s: float = 0.0):
        self._forward = forward
        self._max_batch = max_batch
        self._window_s = window_s
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._running = False

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Probabilities for one (28, 28, 1) image; blocks until its batch has run."""
        mine = _Pending(image)
        with self._cond:
            self._queue.append(mine)
            self._cond.notify_all()  # a leader gathering during its window may stop waiting
            leading = not self._running
            if leading:
                self._running = True
        while not leading:
            mine.done.wait()
            if not mine.lead:
                break
            mine.done.clear()
            mine.lead, leading = False, True
        if leading:
            self._lead(mine)
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _lead(self, mine: _Pending) -> None:
        batch = self._gather(mine)
        try:
            results = self._forward(np.stack([p.image for p in batch]))
            for pending, row in zip(batch, results, strict=True):
                pending.result = row
        except Exception as exc:  # noqa: BLE001 - every caller in the batch must be answered
            for pending in batch:
                pending.error = exc
        with self._cond:
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._running = False
            else:
                successor.lead = True
        for pending in batch:
            if pending is not mine:
                pending.done.set()
        if successor is not None:
            successor.done.set()

    def _gather(self, mine: _Pending) -> list[_Pending]:
        with self._cond:
            if self._window_s > 0:
                deadline = time.monotonic() + self._window_s
                while len(self._queue) < self._max_batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            # Our own image first, whatever its place in the queue.
            self._queue.remove(mine)
            batch = [mine]
            while self._queue and len(batch) < self._max_batch:
                batch.append(self._queue.popleft())
            return batch

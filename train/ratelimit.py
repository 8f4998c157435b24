"""A per-client rate limit for the one open writing route, `POST /api/feedback`.

A sliding window of one minute per client address, in the worker's memory: with the train
service's single gunicorn worker (its default) that is exact; with WEB_CONCURRENCY=n a client
could get up to n times the limit. That bound is enough for what it is for (a script filling the
volume), and it needs no shared store. flask-limiter would do the same with its memory storage
(per worker too) but brings a dozen packages into the image for one route.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

WINDOW_SECONDS = 60.0
# Addresses not seen for a window are forgotten once the table holds this many.
MAX_CLIENTS = 10_000


class RateLimiter:
    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self.hits: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Count one request of `client`: None if allowed, else the seconds until it will be."""
        if self.per_minute <= 0:
            return None
        now = self.clock()
        with self.lock:
            if len(self.hits) >= MAX_CLIENTS:
                self.forget_idle(now)
            hits = self.hits.setdefault(client, deque())
            while hits and hits[0] <= now - WINDOW_SECONDS:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(1, math.ceil(hits[0] + WINDOW_SECONDS - now))
            hits.append(now)
            return None

    def forget_idle(self, now: float) -> None:
        for client in [c for c, hits in self.hits.items()
                       if not hits or hits[-1] <= now - WINDOW_SECONDS]:
            del self.hits[client]

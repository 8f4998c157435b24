"""A per-client rate limit for the one open writing route, `POST /api/feedback`.

The counting is the `limits` library's moving window (the engine under flask-limiter) in its
in-memory storage, per gunicorn worker: with the train service's single worker (its default)
that is exact; with WEB_CONCURRENCY=n a client could get up to n times the limit. That bound is
enough for what it is for (a script filling the volume), and it needs no shared store.
flask-limiter itself would add its decorators and a dozen more packages for one route.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

NAMESPACE = "feedback"


class RateLimiter:
    def __init__(self, per_minute: int):
        self.item = RateLimitItemPerMinute(per_minute) if per_minute > 0 else None
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """Count one request of `client`: None if allowed, else the seconds until it will be."""
        if self.item is None:
            return None
        if self.limiter.hit(self.item, NAMESPACE, client):
            return None
        stats = self.limiter.get_window_stats(self.item, NAMESPACE, client)
        return max(1, math.ceil(stats.reset_time - time.time()))

"""A deadline for receiving a request body, against clients that trickle it in.

The socket's timeout (BODY_READ_TIMEOUT) catches a client that stops sending, but not one that
sends a byte every few seconds: each read then succeeds in time, and the thread is held for as long
as the client likes (slowloris). So the whole body must also arrive by a deadline: the timeout,
plus the body's length at a minimum rate. One watchdog thread per worker process cuts the reading
side of a late request's socket; the read then ends and the request gets 408.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time

# Slower than any real upload (a 5 MiB photo at this rate takes 5 minutes), fast enough that a
# trickle can't hold a thread for long.
MIN_BYTES_PER_SECOND = 16 * 1024


class BodyDeadlines:
    def __init__(self):
        self._condition = threading.Condition()
        self._pending: dict[int, tuple[float, socket.socket]] = {}
        self._cut: set[int] = set()
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, seconds: float) -> int:
        """Cut `sock`'s reading side if `done()` is not called within `seconds`."""
        with self._condition:
            if self._thread is None or not self._thread.is_alive():  # one per process (fork)
                self._thread = threading.Thread(target=self._run, name="body-deadlines",
                                                daemon=True)
                self._thread.start()
            token = next(self._tokens)
            self._pending[token] = (time.monotonic() + seconds, sock)
            self._condition.notify()
            return token

    def done(self, token: int) -> bool:
        """The body has been read (or given up on): True if the deadline had cut it off."""
        with self._condition:
            self._pending.pop(token, None)
            if token in self._cut:
                self._cut.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                for token, (deadline, sock) in list(self._pending.items()):
                    if deadline <= now:
                        del self._pending[token]
                        self._cut.add(token)
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RD)  # the blocked read returns at once
                nearest = min((deadline for deadline, _ in self._pending.values()), default=None)
                self._condition.wait(None if nearest is None else max(nearest - now, 0.01))


deadlines = BodyDeadlines()


def seconds_for(length: int, timeout: float) -> float:
    """How long a body of `length` bytes may take to arrive."""
    return timeout + length / MIN_BYTES_PER_SECOND

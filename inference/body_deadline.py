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
# With nothing to watch, the watchdog still wakes this often: a new deadline later than its next
# wake-up then needs no wake-up call (see watch()).
IDLE_WAKE_SECONDS = 5.0


class BodyDeadlines:
    def __init__(self):
        self._condition = threading.Condition()
        self._pending: dict[int, tuple[float, socket.socket]] = {}
        self._cut: set[int] = set()
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None
        self._next_wake = 0.0  # when the watchdog wakes next on its own (monotonic)

    def watch(self, sock: socket.socket, seconds: float) -> int:
        """Cut `sock`'s reading side if `done()` is not called within `seconds`."""
        with self._condition:
            if self._thread is None or not self._thread.is_alive():  # one per process (fork)
                self._thread = threading.Thread(target=self._run, name="body-deadlines",
                                                daemon=True)
                self._thread.start()
            token = next(self._tokens)
            deadline = time.monotonic() + seconds
            self._pending[token] = (deadline, sock)
            # Every request registers a deadline; waking the watchdog for each would cost a
            # thread switch and a turn of the GIL per request. It only needs waking for a
            # deadline before the moment it wakes anyway.
            if deadline < self._next_wake:
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
                self._next_wake = min((deadline for deadline, _ in self._pending.values()),
                                      default=now + IDLE_WAKE_SECONDS)
                self._condition.wait(max(self._next_wake - now, 0.01))


deadlines = BodyDeadlines()


def seconds_for(length: int, timeout: float) -> float:
    """How long a body of `length` bytes may take to arrive."""
    return timeout + length / MIN_BYTES_PER_SECOND

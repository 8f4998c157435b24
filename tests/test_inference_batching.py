"""The micro-batcher on its own: every caller gets its own row back, however the requests are
grouped, and a failing forward call fails every request of its batch (and only those)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from inference_support import REPO  # noqa: F401 - puts the repository on sys.path

from inference.batching import MicroBatcher


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


def tagged(value: float) -> np.ndarray:
    return np.full((28, 28, 1), value, np.float32)


def echo_forward(calls: list[int], gate: threading.Event | None = None):
    def forward(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        if gate is not None:
            gate.wait(10)
        return np.repeat(images[:, 0, 0, :], 10, axis=1)  # row i = the tag of image i, ×10
    return forward


@pytest.mark.parametrize("window_s", [0.0, 0.001])
def test_concurrent_callers_each_get_their_own_answer(window_s):
    calls: list[int] = []
    batcher = MicroBatcher(echo_forward(calls), max_batch=32, window_s=window_s)
    wrong = []

    def client(number: int):
        for i in range(40):
            tag = number * 1000 + i
            if batcher.probabilities(tagged(tag))[0] != tag:
                wrong.append(tag)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not wrong
    assert sum(calls) == 8 * 40
    assert max(calls) <= 32


def test_requests_queued_during_a_forward_call_share_the_next_one():
    calls: list[int] = []
    gate = threading.Event()
    batcher = MicroBatcher(echo_forward(calls, gate), max_batch=32)
    results = {}

    def client(tag: int):
        results[tag] = batcher.probabilities(tagged(tag))[0]

    first = threading.Thread(target=client, args=(0,))
    first.start()
    wait_until(lambda: calls)  # the first request is inside its forward call, held by the gate
    others = [threading.Thread(target=client, args=(tag,)) for tag in range(1, 6)]
    for thread in others:
        thread.start()
    wait_until(lambda: len(batcher._queue) == 5)  # all five wait for the running call
    gate.set()
    for thread in [first, *others]:
        thread.join(10)
    assert results == {tag: tag for tag in range(6)}
    assert calls == [1, 5]


def test_a_failing_forward_call_fails_its_requests_and_the_next_ones_still_work():
    failing = {"now": True}

    def forward(images):
        if failing["now"]:
            raise RuntimeError("model exploded")
        return np.repeat(images[:, 0, 0, :], 10, axis=1)

    batcher = MicroBatcher(forward)
    with pytest.raises(RuntimeError, match="model exploded"):
        batcher.probabilities(tagged(1))
    failing["now"] = False
    assert batcher.probabilities(tagged(2))[0] == 2

"""The handwriting benchmark's "drawn" digits, drawn with the mouse on the real page (issue 11).

The digits are the drawn set's (bench/handwriting/drawn.py): MNIST test digits (here the packaged
mnist-5k's 500, as `make test` has no full MNIST) thinned, traced into strokes and placed on the
pad at the set's seeded size and place. Each stroke is replayed with Playwright's mouse on the
page's canvas, through the real nginx and services with the session's starter-recipe model; the
digit the page shows must be right for at least 95% of them.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from browser_fixtures import DESKTOP
from playwright.sync_api import expect
from test_ui_browser import wait_for_models

pytestmark = pytest.mark.browser

# The drawn set's first COUNT digits. A starter is trained afresh (random seed) each session, and
# on 60 digits the 95% asked for left it one or two digits of margin: one CI run's starter read
# 93.3%. Replayed offline the same way (pad.py at the page's pen, preprocessing version 2), four
# starters read 97.0-98.0% of the first 200, and one read 96.5% of them on the page: 200 digits
# measure the starter, not the luck of a few hard ones, at ~2.5 minutes of mouse.
COUNT = 200
REQUIRED = 0.95
PREDICT_TIMEOUT = 30_000  # ms: the first prediction loads the model into inference
SETTLED_MS = 250  # no /api/predict request started or running for this long: the answer shown
# Every MOUSE_STEP-th of the drawn set's points along a stroke (they are 0.02 of the pad apart):
# the pad smooths its strokes with curves through the midpoints, and each mouse move is a round
# trip to the browser (~5 ms, most of the test's time), so fewer points keep the test quick.
# Offline, every 4th point reads the same digits as every 2nd within one digit in 200.
MOUSE_STEP = 4


@pytest.fixture(scope="module")
def drawn_digits() -> list[tuple[int, list[np.ndarray]]]:
    """(label, strokes as (x, y) fractions of the pad) of the drawn set's first COUNT digits."""
    from bench.handwriting import SEEDS, drawn
    from bench.handwriting.sets import image_rng
    from bench.handwriting.source import load_mnist_5k

    source = load_mnist_5k()
    seed = SEEDS[drawn.NAME]
    digits = []
    for n, index in enumerate(source.pick(COUNT, seed)):
        rng = image_rng(seed, n)  # the set's own draws: size, pen (the page has its own), place
        size, pen = rng.uniform(*drawn.SIZE_RANGE), rng.uniform(*drawn.PEN_RANGE)
        lines = drawn.place(drawn.digit_strokes(source.images[index]), size, pen, rng)
        digits.append((int(source.labels[index]),
                       [np.concatenate([line[:-1:MOUSE_STEP], line[-1:]]) for line in lines]))
    return digits


class PredictRequests:
    """Counts the page's /api/predict requests, to know when the last answer has been shown."""

    def __init__(self, page):
        self.page = page
        self.running = 0
        self.last_change = time.monotonic()
        page.on("request", lambda request: self._change(request, +1))
        page.on("requestfinished", lambda request: self._change(request, -1))
        page.on("requestfailed", lambda request: self._change(request, -1))

    def _change(self, request, step: int) -> None:
        if "/api/predict" in request.url:
            self.running += step
            self.last_change = time.monotonic()

    def wait_until_settled(self, timeout: float = PREDICT_TIMEOUT / 1000) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.page.wait_for_timeout(50)  # lets Playwright deliver the events
            if self.running == 0 and time.monotonic() - self.last_change > SETTLED_MS / 1000:
                return
        raise AssertionError("the page's predictions did not settle")


def replay(page, box: dict, lines: list[np.ndarray]) -> None:
    """Each stroke as a person draws it: press, move through its points, release."""
    for line in lines:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in line]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point)
        page.mouse.up()


def test_drawn_digits_are_read_right_on_the_page(open_page, drawn_digits):
    page = open_page("predict", viewport=DESKTOP)
    wait_for_models(page)
    box = page.get_by_test_id("draw-canvas").bounding_box()
    assert box and box["width"] > 100, box
    requests = PredictRequests(page)
    shown = []
    for label, lines in drawn_digits:
        replay(page, box, lines)
        requests.wait_until_settled()
        result = page.get_by_test_id("result-digit")
        expect(result).to_be_visible(timeout=PREDICT_TIMEOUT)
        shown.append((label, result.inner_text().strip()))
        page.get_by_test_id("clear-button").click()
        expect(result).to_be_hidden()
    wrong = [(label, text) for label, text in shown if text != str(label)]
    accuracy = 1 - len(wrong) / len(shown)
    print(f"{accuracy:.1%} of {len(shown)} drawn digits read right; wrong (true, shown): {wrong}")
    assert accuracy >= REQUIRED, f"{accuracy:.1%} right; wrong (true, shown): {wrong}"

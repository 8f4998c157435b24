"""Fixtures for the page's browser tests: the whole system (real gunicorn services behind the real
nginx, started by the same launcher as `make run`) and Debian's Chromium driven by Playwright.

Loaded from conftest.py as a plugin. Every page a test opens fails the test if the browser logs
a console error or the page throws.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ARTIFACTS, REPO, SEED_MODEL_NAME, free_port

from scripts.launcher import running_system

if str(REPO) not in sys.path:  # `pytest` (not `python -m pytest`) leaves the repo root out
    sys.path.insert(0, str(REPO))  # the tests take MNIST digits from train.datasets

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = ARTIFACTS / "screenshots"
# A copy of the seed model under another name: the picker must be able to switch to it.
SECOND_MODEL_NAME = "mnist5k-cnn-copy"


def copy_model(source_dir: Path, source: str, target_dir: Path, target: str) -> None:
    """A model copied under a new name (with its TFLite copy), its metadata's name changed to
    match."""
    if (source_dir / f"{source}.tflite").is_file():
        shutil.copy2(source_dir / f"{source}.tflite", target_dir / f"{target}.tflite")
    shutil.copy2(source_dir / f"{source}.keras", target_dir / f"{target}.keras")
    metadata = source_dir / f"{source}.json"
    if metadata.is_file():
        document = json.loads(metadata.read_text())
        document["name"] = target
        (target_dir / f"{target}.json").write_text(json.dumps(document))


@pytest.fixture(scope="module")
def ui_volume(tmp_path_factory, seed_model_dir) -> Path:
    """A volume shared by one test module: the seed model and a copy under a second name."""
    volume = tmp_path_factory.mktemp("ui-volume")
    copy_model(seed_model_dir, SEED_MODEL_NAME, volume, SEED_MODEL_NAME)
    copy_model(seed_model_dir, SEED_MODEL_NAME, volume, SECOND_MODEL_NAME)
    return volume


@pytest.fixture(scope="module")
def ui_system(ui_volume, request):
    """Train, inference and nginx as `make run` starts them, on free ports, for one module."""
    log_dir = ARTIFACTS / "logs" / request.module.__name__
    shutil.rmtree(log_dir, ignore_errors=True)
    with running_system(ui_volume, free_port(), free_port(), free_port(),
                        log_dir=log_dir) as system:
        yield system


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium, headless; Playwright never downloads a browser here."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class BrowserProblems:
    """Console errors and uncaught exceptions seen by a page.

    Chromium logs every HTTP error answer as a console error ("Failed to load resource"); a test
    that provokes one on purpose names it with `expect_failed_request`, and only that is let pass.
    """

    def __init__(self):
        self.messages: list[str] = []
        self.expected: list[tuple[str, re.Pattern]] = []

    def expect_failed_request(self, path: str, status: str = r"4\d\d") -> None:
        self.expected.append((path, re.compile(rf"status of {status}\b")))

    def is_expected(self, message) -> bool:
        url = message.location.get("url", "")
        return any(url.endswith(path) and pattern.search(message.text)
                   for path, pattern in self.expected)

    def watch(self, page) -> None:
        page.on("console", lambda message: self.on_console(message))
        page.on("pageerror", lambda error: self.messages.append(f"page error: {error}"))

    def on_console(self, message) -> None:
        if message.type == "error" and not self.is_expected(message):
            self.messages.append(f"console error: {message.text} ({message.location})")


@pytest.fixture
def open_page(chromium, ui_system) -> Iterator:
    """open_page(view="predict", viewport=DESKTOP, **context_options) -> a Playwright page on
    that view (context_options go to Playwright's new_context: has_touch, is_mobile, ...).

    The test fails if any page it opened logged a console error or threw.
    """
    problems = BrowserProblems()
    contexts = []

    def opener(view: str = "predict", viewport: dict = DESKTOP, **context_options):
        context = chromium.new_context(viewport=viewport,
                                       **{"device_scale_factor": 1, **context_options})
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        problems.watch(page)
        page.goto(f"{ui_system.url}/#{view}")
        return page

    opener.expect_failed_request = problems.expect_failed_request
    yield opener
    for context in contexts:
        context.close()
    assert not problems.messages, "the browser reported:\n" + "\n".join(problems.messages)


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/ and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

"""The page on an empty volume, as `make run` first shows it: the services are up, the starter
model is training as a run, and the page says so and fills the picker when the model is saved.

Bad states tried: no model and no run (the picker says so, no waiting text), a run that is
training (the text with its name and progress), the run's end (the text goes, the model is
picked).
"""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

RUN_NAME = "first-model"


@pytest.fixture(scope="module")
def ui_volume(tmp_path_factory):
    """This module's volume holds no model (overrides the seeded one of browser_fixtures)."""
    return tmp_path_factory.mktemp("empty-volume")


def test_an_empty_volume_shows_the_model_in_training_and_picks_it_when_saved(open_page,
                                                                              ui_system):
    page = open_page("predict")
    picker = page.get_by_test_id("model-select")
    waiting = page.get_by_test_id("model-waiting")
    expect(picker).to_contain_text("No models yet")
    expect(waiting).to_be_hidden()

    started = requests.post(f"{ui_system.train_url}/api/train/runs", timeout=30, json={
        "dataset": "mnist-5k", "epochs": 2, "limit": 1000, "name": RUN_NAME})
    assert started.status_code == 202, started.text

    expect(waiting).to_contain_text(f"“{RUN_NAME}” is training", timeout=60_000)
    expect(waiting).to_contain_text("of 2")
    expect(picker).to_have_value(RUN_NAME, timeout=300_000)
    expect(waiting).to_be_hidden()
    expect(picker).to_be_enabled()

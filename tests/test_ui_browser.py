"""The page in headless Chromium, through the real nginx in front of the real services.

Each test does what a person would: draw with the mouse, upload a file, pick a model, start and
stop training, look at the models. Any console error or page error fails the test (see
`open_page`). The last tests save screenshots of every view at desktop and phone size.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import tarfile

import pytest
import requests
from browser_fixtures import DESKTOP, PHONE, SECOND_MODEL_NAME, screenshot
from conftest import SEED_MODEL_NAME
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PREDICT_TIMEOUT = 30_000  # ms: the first prediction loads the model into inference
RUN_TIMEOUT = 300_000  # ms: a 1-epoch mnist-5k run, TensorFlow start included, on 2 busy cores


# ------------------------------------------------------------------ helpers


def wait_for_models(page) -> None:
    """The picker is filled once /api/models answered.

    The page starts with a disabled "Loading models…" placeholder, so wait for an option that
    names a model: an enabled picker alone raced the first fetch and failed a CI run.
    """
    select = page.get_by_test_id("model-select")
    expect(select).to_be_enabled()
    expect(select.locator("option:not([value=''])")).not_to_have_count(0)


def canvas_box(page) -> dict:
    box = page.get_by_test_id("draw-canvas").bounding_box()
    assert box and box["width"] > 100, box
    return box


def draw_path(page, points: list[tuple[float, float]]) -> None:
    """One stroke with the mouse through points given as fractions of the pad's size."""
    box = canvas_box(page)

    def at(point):
        return box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"]

    page.mouse.move(*at(points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(point), steps=3)
    page.mouse.up()


def draw_vertical_stroke(page) -> None:
    draw_path(page, [(0.5, 0.15 + 0.7 * i / 20) for i in range(21)])


def draw_closed_loop(page) -> None:
    draw_path(page, [(0.5 + 0.22 * math.sin(2 * math.pi * i / 40),
                      0.5 - 0.32 * math.cos(2 * math.pi * i / 40)) for i in range(42)])


def expect_full_result(page, digit: str) -> None:
    """The digit, a confidence in percent, ten bars and the 28x28 image the model saw."""
    expect(page.get_by_test_id("result-digit")).to_have_text(digit, timeout=PREDICT_TIMEOUT)
    expect(page.get_by_test_id("result-confidence")).to_have_text(re.compile(r"^\d{1,3}\.\d%$"))
    expect(page.get_by_test_id("probability-bars").locator("li")).to_have_count(10)
    image = page.get_by_test_id("preprocessed-image")
    expect(image).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [28, 28]


def png_bytes(image) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mnist_test_digits(ui_system, tmp_path_factory) -> list[tuple[int, bytes]]:
    """Three MNIST test digits (2, 7 and 4) as PNG files, from mnist-5k's test split.

    The page test is about showing the answer, not about the model's accuracy, so each is the
    first test digit of its class that the seed model reads right when asked directly.
    """
    from train.datasets import load_dataset

    dataset = load_dataset("mnist-5k", tmp_path_factory.mktemp("datasets"))
    chosen = []
    for label in (2, 7, 4):
        for index in [i for i, y in enumerate(dataset.y_test) if int(y) == label][:10]:
            data = png_bytes(dataset.x_test[index])
            answer = requests.post(f"{ui_system.inference_url}/api/predict",
                                   files={"image": ("digit.png", data, "image/png")},
                                   data={"model": SEED_MODEL_NAME}, timeout=60).json()
            if answer["digit"] == label:
                chosen.append((label, data))
                break
    assert len(chosen) == 3, "the seed model reads none of ten test digits of a class right"
    return chosen


# ------------------------------------------------------------------ predict


def test_vertical_stroke_reads_as_one(open_page):
    page = open_page("predict")
    wait_for_models(page)
    draw_vertical_stroke(page)
    expect_full_result(page, "1")


def test_closed_loop_reads_as_zero_and_clear_empties_the_result(open_page):
    page = open_page("predict")
    wait_for_models(page)
    draw_closed_loop(page)
    expect_full_result(page, "0")
    page.get_by_test_id("clear-button").click()
    expect(page.get_by_test_id("result-digit")).to_be_hidden()
    expect(page.get_by_test_id("clear-button")).to_be_disabled()


def pad_pixels(page) -> str:
    return page.get_by_test_id("draw-canvas").evaluate("canvas => canvas.toDataURL()")


def test_undo_removes_the_last_stroke(open_page):
    page = open_page("predict")
    wait_for_models(page)
    draw_vertical_stroke(page)
    expect(page.get_by_test_id("result-digit")).to_have_text("1", timeout=PREDICT_TIMEOUT)
    only_the_one = pad_pixels(page)
    draw_path(page, [(0.2 + 0.6 * i / 10, 0.12) for i in range(11)])  # a bar across the top
    assert pad_pixels(page) != only_the_one
    undo = page.get_by_test_id("undo-button")
    undo.click()
    assert pad_pixels(page) == only_the_one
    expect(page.get_by_test_id("result-digit")).to_have_text("1", timeout=PREDICT_TIMEOUT)
    undo.click()
    expect(page.get_by_test_id("result-digit")).to_be_hidden()
    expect(undo).to_be_disabled()


def test_uploaded_mnist_digits_are_read_right(open_page, mnist_test_digits, tmp_path):
    page = open_page("predict")
    wait_for_models(page)
    for label, data in mnist_test_digits:
        path = tmp_path / f"digit-{label}.png"
        path.write_bytes(data)
        page.get_by_test_id("file-input").set_input_files(str(path))
        expect_full_result(page, str(label))


GIVE_FILE_JS = """([how, base64]) => {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], "digit.png", { type: "image/png" }));
    const options = { bubbles: true, cancelable: true };
    if (how === "drop") {
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, ...options }));
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, ...options }));
    } else {
        document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, ...options }));
    }
}"""


def test_a_digit_dropped_on_the_pad_or_pasted_is_read(open_page, mnist_test_digits):
    """Drag and drop and paste deliver the file the same way a person's drop or Ctrl+V does:
    as a DataTransfer in the event, which is what the page reads."""
    page = open_page("predict")
    wait_for_models(page)
    for how, (label, data) in zip(("drop", "paste"), mnist_test_digits[:2], strict=True):
        page.evaluate(GIVE_FILE_JS, [how, base64.b64encode(data).decode()])
        expect_full_result(page, str(label))


def test_a_file_that_is_not_an_image_is_refused_in_words(open_page, tmp_path):
    """Bad input tried: a text file given to the file picker (and a PNG-named text file to the
    API through the page): the page says so in words, never a blank result."""
    page = open_page("predict")
    wait_for_models(page)
    fake = tmp_path / "notes.txt"
    fake.write_text("not a picture")
    page.get_by_test_id("file-input").set_input_files(str(fake))
    expect(page.get_by_test_id("result-error")).to_contain_text("not an image")
    open_page.expect_failed_request("/api/predict")  # the API's refusal is logged by Chromium
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture either")
    page.get_by_test_id("file-input").set_input_files(str(broken))
    error = page.get_by_test_id("result-error")
    expect(error).to_be_visible(timeout=PREDICT_TIMEOUT)
    assert len(error.inner_text().split()) >= 3, error.inner_text()


def test_picker_switches_models_and_the_result_names_the_chosen_one(open_page):
    page = open_page("predict")
    wait_for_models(page)
    select = page.get_by_test_id("model-select")
    names = select.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert {SEED_MODEL_NAME, SECOND_MODEL_NAME} <= set(names)
    label = select.locator(f"option[value='{SEED_MODEL_NAME}']").inner_text()
    assert re.search(r"\d+\.\d%", label), f"no accuracy in the picker's label: {label!r}"
    draw_vertical_stroke(page)
    for name in (SECOND_MODEL_NAME, SEED_MODEL_NAME):
        select.select_option(name)
        expect(page.get_by_test_id("result-model")).to_have_text(name, timeout=PREDICT_TIMEOUT)
        expect(page.get_by_test_id("result-digit")).to_have_text("1")


# ------------------------------------------------------------------ train


def fill_run_form(page, epochs: int, name: str) -> None:
    expect(page.get_by_test_id("train-start")).to_be_enabled(timeout=PREDICT_TIMEOUT)
    page.get_by_test_id("train-architecture").select_option("simple")
    page.get_by_test_id("train-dataset").select_option("mnist-5k")
    page.get_by_test_id("train-epochs").fill(str(epochs))
    page.get_by_test_id("train-name").fill(name)


def test_a_one_epoch_run_from_the_page_reaches_100_percent_and_joins_the_picker(open_page):
    page = open_page("train")
    fill_run_form(page, epochs=1, name="page-run-1")
    page.get_by_test_id("train-start").click()
    expect(page.get_by_test_id("train-stop")).to_be_enabled()
    expect(page.get_by_test_id("train-state")).to_have_text("succeeded", timeout=RUN_TIMEOUT)
    progress = page.get_by_test_id("train-progress")
    expect(progress).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#overall-text")).to_have_text("100%")
    expect(page.get_by_test_id("train-test-accuracy")).to_have_text(re.compile(r"\d+\.\d\d%"))
    expect(page.get_by_test_id("train-stop")).to_be_disabled()
    # The new model is in the picker without reloading the page.
    page.get_by_test_id("nav-predict").click()
    expect(page.get_by_test_id("model-select").locator("option[value='page-run-1']")).to_have_count(1)


def test_a_longer_run_is_stopped_from_the_page(open_page):
    page = open_page("train")
    fill_run_form(page, epochs=30, name="page-run-stopped")
    page.get_by_test_id("train-start").click()
    # Let two epochs finish, so the curves have something to show, then stop.
    expect(page.locator("#epoch-text")).to_have_text(re.compile(r"^([3-9]|\d\d) of 30$"),
                                                     timeout=RUN_TIMEOUT)
    page.get_by_test_id("train-stop").click()
    expect(page.get_by_test_id("train-state")).to_have_text("stopped", timeout=RUN_TIMEOUT)
    expect(page.get_by_test_id("train-result")).to_contain_text("no model was saved")
    expect(page.get_by_test_id("train-start")).to_be_enabled()
    page.get_by_test_id("nav-predict").click()
    wait_for_models(page)
    expect(page.get_by_test_id("model-select").locator("option[value='page-run-stopped']")) \
        .to_have_count(0)


# ------------------------------------------------------------------ models


def test_models_table_sorts_and_shows_details(open_page, ui_system):
    page = open_page("models")
    table = page.get_by_test_id("models-table")
    expect(table.locator(f"tbody tr[data-model='{SEED_MODEL_NAME}']")).to_have_count(1)
    page.get_by_role("button", name="Name", exact=True).click()
    names = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.model)")
    assert names == sorted(names, key=str.lower)
    page.get_by_role("button", name="Name", exact=True).click()
    names = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.model)")
    assert names == sorted(names, key=str.lower, reverse=True)
    page.get_by_role("button", name=f"Details of {SEED_MODEL_NAME}", exact=True).click()
    details = page.get_by_test_id("model-details")
    expect(details.locator("#details-title")).to_have_text(SEED_MODEL_NAME)
    metadata = json.loads((ui_system.model_dir / f"{SEED_MODEL_NAME}.json").read_text())
    expect(detail(details, "Training precision")).to_have_text(metadata["training_precision"])
    version = metadata["preprocessing"]["version"]
    expect(detail(details, "Preprocessing version")).to_have_text(str(version))
    expect(page.get_by_test_id("confusion-matrix").locator("tbody td")).to_have_count(100)
    expect(page.get_by_test_id("per-class-accuracy").locator("li")).to_have_count(10)


def detail(details, term: str):
    """The value beside `term` in a model's details."""
    return details.locator("#details-facts > div").filter(
        has=details.page.locator("dt", has_text=term)).locator("dd")


def test_the_export_button_downloads_the_model_as_a_tar_gz(open_page):
    page = open_page("models")
    page.get_by_role("button", name=f"Details of {SEED_MODEL_NAME}", exact=True).click()
    with page.expect_download(timeout=180_000) as started:
        page.get_by_test_id("model-export").click()
    download = started.value
    assert download.suggested_filename == f"{SEED_MODEL_NAME}-savedmodel.tar.gz"
    with tarfile.open(download.path(), "r:gz") as archive:
        names = set(archive.getnames())
    assert {f"{SEED_MODEL_NAME}/config.pbtxt",
            f"{SEED_MODEL_NAME}/1/model.savedmodel/saved_model.pb"} <= names


def test_deleting_a_model_asks_first(open_page, ui_system):
    from browser_fixtures import copy_model

    copy_model(ui_system.model_dir, SEED_MODEL_NAME, ui_system.model_dir, "delete-me")
    page = open_page("models")
    row = page.get_by_test_id("models-table").locator("tbody tr[data-model='delete-me']")
    expect(row).to_have_count(1)
    page.get_by_role("button", name="Details of delete-me", exact=True).click()
    page.get_by_test_id("model-delete").click()
    page.get_by_role("button", name="Keep it").click()
    expect(row).to_have_count(1)
    page.get_by_test_id("model-delete").click()
    page.get_by_test_id("delete-confirm").click()
    expect(row).to_have_count(0)
    assert not (ui_system.model_dir / "delete-me.keras").exists()


# ------------------------------------------------------------------ screenshots


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_screenshots_of_every_view(open_page, viewport):
    size = f"{viewport['width']}x{viewport['height']}"
    page = open_page("predict", viewport)
    wait_for_models(page)
    page.get_by_test_id("model-select").select_option(SEED_MODEL_NAME)  # the 12-epoch model
    draw_closed_loop(page)
    expect(page.get_by_test_id("result-digit")).to_have_text("0", timeout=PREDICT_TIMEOUT)
    screenshot(page, f"predict-{size}")

    page.get_by_test_id("nav-train").click()
    expect(page.get_by_test_id("train-start")).to_be_enabled(timeout=PREDICT_TIMEOUT)
    expect(page.get_by_test_id("train-state")).not_to_have_text("idle")
    screenshot(page, f"train-{size}")

    page.get_by_test_id("nav-models").click()
    page.get_by_role("button", name=f"Details of {SEED_MODEL_NAME}", exact=True).click()
    expect(page.get_by_test_id("confusion-matrix").locator("tbody td")).to_have_count(100)
    screenshot(page, f"models-{size}")

"""Versioned preprocessing (issue 11, point 3): a model's metadata says which version of the
inference service's preprocessing it was trained for, and the service applies that version.

- Version 1 is the preprocessing as it was before versions existed, byte for byte, for every
  model whose metadata names no version (golden hashes of its output on fixed uploads).
- Version 2 flattens uneven light on dark ink on light paper and normalises the stroke width of
  the 28×28 digit (inference/stroke_width.py; training does not apply it: measured, it did not
  pay, docs/handwriting.md).
- Version 3 is version 2 on a copy of a large picture (both sides 256 px or more) box-averaged
  to 128-255 px on its shorter side, with the ink level taken among the pixels that stand out
  from the paper: version 2's digit at a fraction of the cost, and a small digit in a big photo
  found (docs/inference.md). Versions 1 and 2 stay as they were (golden hashes).
- The loaded model carries its version; /api/predict answers with `preprocessing_version`, and
  /api/models lists it; the Open Inference Protocol's `image` input gets the same version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image, ImageDraw

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from inference import preprocess as pre  # noqa: E402
from inference import stroke_width as inference_strokes  # noqa: E402
from inference.runtime import CompiledModel  # noqa: E402

# sha256 (first 16 hex digits) of preprocess(upload).image's float32 bytes, made by the code of
# commit 2e91c33 (the last before versions) on the uploads of `uploads()` below: version 1 must
# keep giving exactly these.
V1_GOLDEN = {
    "mnist-0": "0d93527121c7e3f6",
    "mnist-1": "8dbdf2bdc8a66b33",
    "mnist-2": "e42a5383a86b5486",
    "drawn-0": "aa8af5d276baa57e",
    "drawn-1": "2167240125cf2e71",
    "other writers-0": "c298a3faf66179bf",
    "other writers-1": "5c8edf430c6fe937",
    "photos-0": "d5697fec9c1bd0bf",
    "photos-1": "362d6ade26762de1",
    "thick-0": "bde2d4b61cd4919b",
    "thick-1": "750f6826d118a3f1",
    "thin-0": "c8eca4e78f40b7e1",
    "thin-1": "ab4ba25249e13830",
}

# The same for version 2, made by the code of commit 840e29e (the last before version 3).
V2_GOLDEN = {
    "mnist-0": "97284d340d9b1218",
    "mnist-1": "8dbdf2bdc8a66b33",
    "mnist-2": "9b47097123f58cab",
    "drawn-0": "d137f0b22800be67",
    "drawn-1": "2167240125cf2e71",
    "other writers-0": "913ce58605375df7",
    "other writers-1": "63e9d1fa3da19360",
    "photos-0": "eb6b9786dbbb4585",
    "photos-1": "0878eabdb80a4b99",
    "thick-0": "d6bdfd62899930b4",
    "thick-1": "96433044bacfa8a5",
    "thin-0": "c06fc93546aeb956",
    "thin-1": "bf036e4014d2166f",
}


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def source():
    from bench.handwriting.source import load_mnist_5k

    return load_mnist_5k()


@pytest.fixture(scope="module")
def uploads(source) -> dict[str, bytes]:
    """Three mnist-5k test digits as PNGs and two uploads of each other handwriting set."""
    from bench.handwriting import SEEDS, drawn, other_writers, photos, thick, thin

    files = {f"mnist-{i}": png(source.images[i]) for i in range(3)}
    for module in (drawn, other_writers, photos, thick, thin):
        for i, data in enumerate(module.generate(source, 2, SEEDS[module.NAME]).files):
            files[f"{module.NAME}-{i}"] = data
    return files


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image, np.float32).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------- the versions themselves


def test_version_1_is_the_preprocessing_before_versions_byte_for_byte(uploads):
    assert set(uploads) == set(V1_GOLDEN)
    for name, data in uploads.items():
        default, pinned = pre.preprocess(data), pre.preprocess(data, 1)
        assert default.version == pinned.version == 1
        assert digest(default.image) == digest(pinned.image) == V1_GOLDEN[name], name


def test_version_2_is_as_it_was_before_version_3_byte_for_byte(uploads):
    for name, data in uploads.items():
        assert digest(pre.preprocess(data, 2).image) == V2_GOLDEN[name], name


def test_version_2_normalises_the_stroke_width_of_version_1s_digit_when_no_light_to_flatten(
        uploads):
    # White-on-black uploads have no paper to flatten: version 2 is version 1's digit with its
    # stroke width normalised.
    for name in ("mnist-0", "drawn-0", "thick-0", "thin-0"):
        v1 = pre.preprocess(uploads[name], 1).image[..., 0]
        v2 = pre.preprocess(uploads[name], 2)
        assert v2.version == 2 and v2.image.shape == (28, 28, 1)
        assert np.array_equal(v2.image[..., 0], inference_strokes.normalise_stroke_width(v1)), name


def test_thick_digits_are_thinned_and_thin_ones_thickened(uploads):
    def width(data, version):
        image = pre.preprocess(data, version).image[..., 0]
        return float(inference_strokes.stroke_widths(image[None])[0])

    for name in ("thick-0", "thick-1"):
        assert width(uploads[name], 2) < width(uploads[name], 1) - 0.5
    for name in ("thin-0", "thin-1"):
        assert width(uploads[name], 2) > width(uploads[name], 1) + 0.3


def correlation(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.corrcoef(first.ravel(), second.ravel())[0, 1])


def same_digit(first: np.ndarray, second: np.ndarray) -> float:
    """The correlation of two 28×28 digits, the second moved by up to a pixel each way: a
    digit's centre of mass rounds to the next pixel after a small change upstream."""
    first = first.reshape(28, 28)
    return max(correlation(first, np.roll(second.reshape(28, 28), (dy, dx), (0, 1)))
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def sheet_with_a_shadow(digit: np.ndarray, side: int) -> bytes:
    """`digit` dark on light paper, half the sheet's side tall in its middle, with a shadow
    (light 0.65, as deep as the photos set's 0.6-0.88) over the sheet's left 30%: its edge
    runs beside the digit."""
    half = side // 2
    ink = np.asarray(Image.fromarray(digit).resize((half, half), Image.Resampling.BICUBIC))
    sheet = np.full((side, side), 230.0, np.float32)
    sheet[side // 4: side // 4 + half, side // 4: side // 4 + half] -= (
        ink.astype(np.float32) * (200.0 / 255.0))
    sheet[:, : side * 3 // 10] *= 0.65
    return png(np.clip(sheet, 0, 255).astype(np.uint8))


def test_version_2_flattens_a_shadow_on_paper(source):
    """Version 1 takes the shadow for ink (the digit ends up small in a corner), version 2
    finds the digit."""
    upload = sheet_with_a_shadow(source.images[0], 200)
    clean = pre.preprocess(png(source.images[0]), 1).image
    assert correlation(clean, pre.preprocess(upload, 1).image) < 0.5
    assert correlation(clean, pre.preprocess(upload, 2).image) > 0.8


def test_version_3_gives_version_2s_digit_for_every_kind_of_upload(uploads):
    # The sets' uploads are 28 to 176 px (not reduced), the drawings 280 (the page's pad).
    for name, data in uploads.items():
        v2, v3 = pre.preprocess(data, 2), pre.preprocess(data, 3)
        assert v3.version == 3
        assert same_digit(v2.image, v3.image) > 0.9, name  # another digit or crop: < 0.6


def photo_of_a_small_digit(digit: np.ndarray, side: int, height: int) -> bytes:
    """A `digit` `height` px tall, dark on light grey paper with sensor noise, in a photo of
    side × side px: a digit on a sheet, photographed without cropping."""
    rng = np.random.default_rng(side + height)
    paper = np.full((side, side), 215.0, np.float32) + rng.normal(0, 4, (side, side))
    ink = np.asarray(Image.fromarray(digit).resize((height, height), Image.Resampling.BICUBIC),
                     np.float32) / 255.0
    top = left = side // 3
    paper[top: top + height, left: left + height] *= 1.0 - 0.8 * ink
    return png(np.clip(paper, 0, 255).astype(np.uint8))


def test_version_3_finds_a_small_digit_in_a_big_photo(source):
    """At 15% of a 1000-px photo's height the digit's ink is under half a percent of the
    picture: versions 1 and 2 took the paper for the ink level and found no digit or a speck
    of noise; version 3 finds the digit."""
    clean = pre.preprocess(png(source.images[0]), 1).image
    upload = photo_of_a_small_digit(source.images[0], 1000, 150)
    for version in (1, 2):
        try:
            found = pre.preprocess(upload, version).image
        except pre.ImageError:
            continue
        assert correlation(clean, found) < 0.5, version
    assert correlation(clean, pre.preprocess(upload, 3).image) > 0.8


def test_version_3_takes_a_few_specks_on_blank_paper_for_no_digit():
    rng = np.random.default_rng(5)
    paper = np.full((400, 400), 220.0, np.float32) + rng.normal(0, 3, (400, 400))
    paper[100:102, 200:202] = 40  # dust: 4 dark pixels
    with pytest.raises(pre.NoDigitFoundError):
        pre.preprocess(png(np.clip(paper, 0, 255).astype(np.uint8)), 3)


def test_version_3_finds_the_same_digit_in_a_large_picture(source):
    """A photo of a digit on paper at 280 px (the size `make bench` sends) and at 1,000 px, and
    a pad drawing at 280 px: version 3 works on a reduced copy and gives version 2's digit."""
    from bench.handwriting import drawn
    from bench.person_upload import as_person_upload

    rng = np.random.default_rng(3)
    photo = as_person_upload(source.images[1], rng)
    big = Image.open(io.BytesIO(photo)).resize((1000, 1000), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    for upload in (photo, buffer.getvalue(), drawn.draw(source.images[2], rng)):
        assert same_digit(pre.preprocess(upload, 2).image, pre.preprocess(upload, 3).image) > 0.95
    for shape, reduced in (((255, 255), (255, 255)), ((256, 256), (128, 128)),
                           ((280, 280), (140, 140)), ((1000, 1000), (143, 143)),
                           ((768, 1024), (128, 171)), ((128, 1024), (128, 1024))):
        assert pre._reduced(np.zeros(shape, np.uint8)).shape == reduced, shape


def test_version_3_flattens_a_shadow_on_a_large_sheet(source):
    """The shadow of version 2's test, on a 600-px sheet that version 3 reduces to 150 px."""
    upload = sheet_with_a_shadow(source.images[0], 600)
    clean = pre.preprocess(png(source.images[0]), 1).image
    assert correlation(clean, pre.preprocess(upload, 1).image) < 0.5
    assert correlation(clean, pre.preprocess(upload, 3).image) > 0.8


def test_unknown_versions_are_refused():
    for version in (0, 4, "2", None, True, 2.5):
        with pytest.raises(ValueError):
            pre.check_version(version)
    assert pre.check_version(3) == 3 and pre.LATEST_VERSION == 3


# ---------------------------------------------------------------- the stroke width


def test_mnists_stroke_is_in_the_range_the_thresholds_assume(source):
    digits = source.images[:300].astype(np.float32) / 255.0
    widths = inference_strokes.stroke_widths(digits)
    assert 2.0 < float(np.median(widths)) < 3.2  # MNIST's stroke, in these units


def test_new_models_are_for_the_newest_version_and_train_on_the_digits_as_they_are(
        tmp_path, monkeypatch):
    """Normalising the training digits too measured worse (docs/handwriting.md): training
    passes the data set's digits to the model untouched, whatever the version."""
    from train import training
    from train.datasets import Dataset

    assert training.PREPROCESSING_VERSION == pre.LATEST_VERSION
    assert not (REPO / "train" / "stroke_width.py").exists()
    seen = {}
    dataset = Dataset("x", np.full((8, 28, 28), 7, np.uint8), np.arange(8) % 10,
                      np.full((4, 28, 28), 7, np.uint8), np.arange(4))

    def fake_training_data(params, model_dir):
        return dataset, None

    def stop_at_the_pipeline(data, batch_size, augment, seed, epochs):
        seen["x_train"] = data.x_train
        raise training.TrainingStopped("enough")

    monkeypatch.setattr(training, "training_data", fake_training_data)
    monkeypatch.setattr(training, "input_pipelines", stop_at_the_pipeline)
    from train.params import resolve

    params = resolve({"dataset": "mnist-5k", "epochs": 1, "name": "x"}, tmp_path)
    with pytest.raises(training.TrainingStopped):
        training.train_model(params, tmp_path, seed=1)
    assert seen["x_train"] is dataset.x_train


def test_the_skeleton_is_one_pixel_wide_and_connected_like_the_stroke():
    mask = np.zeros((1, 28, 28), bool)
    mask[0, 4:24, 10:16] = True  # a bar 6 px wide, 20 px tall
    skeleton = inference_strokes.skeleton(mask)[0]
    assert skeleton.sum() >= 12 and skeleton.sum(axis=1).max() <= 2
    assert 4.5 < float(inference_strokes.stroke_widths(mask.astype(np.float32))[0]) < 9


def zhang_suen_pixel_by_pixel(mask: np.ndarray) -> np.ndarray:
    """Zhang and Suen's thinning as their paper states it, one pixel at a time: the slow,
    obvious reading that the service's bitboard version must agree with."""
    image = np.pad(mask.astype(int), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            remove = []
            for y, x in zip(*np.nonzero(image), strict=True):
                p = [image[y - 1, x], image[y - 1, x + 1], image[y, x + 1], image[y + 1, x + 1],
                     image[y + 1, x], image[y + 1, x - 1], image[y, x - 1], image[y - 1, x - 1]]
                rises = sum(p[k] == 0 and p[(k + 1) % 8] == 1 for k in range(8))
                p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
                spared = (p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0) if step == 0 else \
                    (p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0)
                if 2 <= sum(p) <= 6 and rises == 1 and spared:
                    remove.append((y, x))
            for y, x in remove:
                image[y, x] = 0
            changed = changed or bool(remove)
    return image[1:-1, 1:-1].astype(bool)


def test_the_skeleton_is_zhang_and_suens_pixel_for_pixel():
    # Tried: digits of different widths, random masks of every density (blobs, lines, noise),
    # a mask that is not square, ink touching the border, and an empty mask.
    rng = np.random.default_rng(7)
    digits = [drawn_stroke_mask(rng) for _ in range(8)]
    noise = list(rng.random((24, 28, 28)) < rng.random((24, 1, 1)))
    masks = [*digits, *noise, rng.random((13, 37)) < 0.6, np.ones((28, 28), bool),
             np.zeros((28, 28), bool)]
    for number, mask in enumerate(masks):
        expected = zhang_suen_pixel_by_pixel(mask)
        assert np.array_equal(inference_strokes.skeleton(mask[None])[0], expected), number


def drawn_stroke_mask(rng) -> np.ndarray:
    """A drawn digit-like stroke of a random width, as the mask the stroke width is taken of."""
    image = Image.new("L", (28, 28))
    draw = ImageDraw.Draw(image)
    points = [tuple(int(v) for v in rng.integers(4, 24, 2)) for _ in range(4)]
    draw.line(points, fill=255, width=int(rng.integers(1, 6)))
    return np.asarray(image) > 127


# ---------------------------------------------------------------- the service applies it


def write_model(volume, name: str, metadata: dict | None) -> None:
    """A stand-in model file (the loader below never opens it) and its metadata."""
    import zipfile

    with zipfile.ZipFile(volume / f"{name}.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    if metadata is not None:
        (volume / f"{name}.json").write_text(json.dumps({"name": name, **metadata}))


def first_pixel_model(batch: np.ndarray) -> np.ndarray:
    """A 'model' that answers the digit from the image's ink: enough to route requests."""
    out = np.zeros((len(batch), 10), np.float32)
    out[:, 3] = 1.0
    return out


@pytest.fixture
def app(tmp_path):
    from inference import create_app

    write_model(tmp_path, "old", {"created_at": "2026-01-01T00:00:00Z"})
    write_model(tmp_path, "bare", None)
    write_model(tmp_path, "v2", {"created_at": "2026-01-02T00:00:00Z",
                                 "preprocessing": {"version": 2}})
    write_model(tmp_path, "new", {"created_at": "2026-01-02T00:00:00Z",
                                  "preprocessing": {"version": 3}})
    write_model(tmp_path, "future", {"created_at": "2026-01-03T00:00:00Z",
                                     "preprocessing": {"version": 99}})
    application = create_app({"model_dir": tmp_path, "load_default": False,
                              "default_model": "new"})
    application.extensions["model_cache"]._loader = lambda path: CompiledModel(first_pixel_model)
    return application


def test_each_model_gets_its_own_version(app):
    cache = app.extensions["model_cache"]
    assert cache.get("old").preprocessing_version == 1
    assert cache.get("bare").preprocessing_version == 1
    assert cache.get("v2").preprocessing_version == 2
    assert cache.get("new").preprocessing_version == 3
    from inference.model_cache import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="preprocessing version 99"):
        cache.get("future")


def test_predict_applies_the_models_version_and_says_which(app, uploads):
    client = app.test_client()
    data = uploads["drawn-0"]  # 280 px: each version gives another digit image
    for model, version in (("old", 1), ("bare", 1), ("v2", 2), ("new", 3)):
        response = client.post("/api/predict", json={
            "image": base64.b64encode(data).decode(), "model": model})
        assert response.status_code == 200, response.get_json()
        answer = response.get_json()
        assert answer["preprocessing_version"] == version
        seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(
            answer["preprocessed"].split(",", 1)[1]))), np.float32) / 255.0
        expected = pre.preprocess(data, version).image[..., 0]
        assert np.abs(seen - expected).max() <= 0.5 / 255 + 1e-6, model
    future = client.post("/api/predict", json={"image": base64.b64encode(data).decode(),
                                               "model": "future"})
    assert future.status_code == 503


def test_the_models_list_says_each_models_version(app):
    models = {m["name"]: m for m in app.test_client().get("/api/models").get_json()["models"]}
    assert models["old"]["preprocessing_version"] == 1
    assert models["bare"]["preprocessing_version"] == 1
    assert models["v2"]["preprocessing_version"] == 2
    assert models["new"]["preprocessing_version"] == 3
    assert models["future"]["preprocessing_version"] == 99


def test_the_inference_protocol_applies_the_models_version_to_image_inputs(app, uploads):
    seen = []

    def recording_model(batch):
        seen.append(batch.copy())
        return first_pixel_model(batch)

    app.extensions["model_cache"]._loader = lambda path: CompiledModel(recording_model)
    data = uploads["drawn-1"]
    for model, version in (("old", 1), ("v2", 2), ("new", 3)):
        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                            "data": [base64.b64encode(data).decode()]}]}
        response = app.test_client().post(f"/v2/models/{model}/infer", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert np.array_equal(seen[-1][0], pre.preprocess(data, version).image), model

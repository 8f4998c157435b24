"""The handwriting benchmark (bench/handwriting/, issue 11): a small, fast run for correctness.

Each set's generator makes images of the right size and range, the same bytes for the same seed,
with the source digits' labels; the drawn set's tracing turns simple strokes back into the
polylines they were; the pad is drawn as the page draws it; the cache returns what it stored;
and a run of the whole benchmark on 20 images per set with the session's seed model prints the
table and writes the report. The figures themselves come from `make bench-handwriting`.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, SEED_MODEL_NAME
from PIL import Image, ImageDraw

from bench.handwriting import SEEDS, SETS, cache, drawn, other_writers, pad, report, strokes
from bench.handwriting.scoring import score
from bench.handwriting.service import REFUSED, preprocess_uploads
from bench.handwriting.source import load_mnist_5k
from inference.preprocess import LATEST_VERSION

COUNT = 6
# Each set's uploads: (format, size); None where the size varies.
EXPECTED = {"MNIST test": ("PNG", (28, 28)), "drawn": ("PNG", (280, 280)),
            "other writers": ("PNG", (176, 176)), "photos": ("JPEG", (160, 160)),
            "thick": ("PNG", (112, 112)), "thin": ("PNG", (112, 112))}


@pytest.fixture(scope="module")
def source():
    return load_mnist_5k()


@pytest.fixture(scope="module")
def uploads(source):
    return {module.NAME: module.generate(source, COUNT, SEEDS[module.NAME]) for module in SETS}


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# ---------------------------------------------------------------- the generators


def test_every_set_is_listed_once_with_a_seed():
    assert [module.NAME for module in SETS] == list(EXPECTED)
    assert len(set(SEEDS.values())) == len(SETS)


@pytest.mark.parametrize("module", SETS, ids=lambda module: module.NAME)
def test_generator_makes_uploads_of_the_right_format_size_and_range(module, uploads):
    made = uploads[module.NAME]
    fmt, size = EXPECTED[module.NAME]
    assert len(made.files) == len(made.labels) == COUNT
    for data in made.files:
        image = decoded(data)
        assert image.format == fmt and image.size == size
        gray = np.asarray(image.convert("L"))
        assert gray.dtype == np.uint8
        assert int(gray.max()) - int(gray.min()) > 100  # ink against paper, not a blank


@pytest.mark.parametrize("module", SETS, ids=lambda module: module.NAME)
def test_generator_is_deterministic_for_a_seed(module, source, uploads):
    seed = SEEDS[module.NAME]
    again = module.generate(source, COUNT, seed)
    assert again.files == uploads[module.NAME].files
    assert np.array_equal(again.labels, uploads[module.NAME].labels)
    # A smaller run is the start of the larger one: image i depends only on the seed and i.
    assert module.generate(source, 2, seed).files == uploads[module.NAME].files[:2]
    if module.NAME != "MNIST test":  # the test digits in order, whatever the seed
        assert module.generate(source, 2, seed + 1).files != uploads[module.NAME].files[:2]


@pytest.mark.parametrize("module", [m for m in SETS if m is not other_writers],
                         ids=lambda module: module.NAME)
def test_mnist_based_sets_keep_the_source_digits_labels(module, source, uploads):
    made = uploads[module.NAME]
    seed = SEEDS[module.NAME]
    index = np.arange(COUNT) if module.NAME == "MNIST test" else source.pick(COUNT, seed)
    assert np.array_equal(made.labels, source.labels[index])


def test_mnist_test_uploads_are_the_digits_themselves(source, uploads):
    for data, digit in zip(uploads["MNIST test"].files, source.images[:COUNT], strict=True):
        assert np.array_equal(np.asarray(decoded(data)), digit)


def test_other_writers_are_optdigits_with_their_labels(uploads):
    blocks, labels = other_writers.load_optdigits()
    assert len(labels) == other_writers.DEFAULT_COUNT == 1797
    made = uploads["other writers"]
    for data, label in zip(made.files, made.labels, strict=True):
        gray = np.asarray(decoded(data).convert("L"), np.float32)
        assert np.median(gray) > 180  # light paper, dark ink
        assert label in labels
    order = np.random.default_rng([SEEDS["other writers"], 0x5EED]).permutation(len(labels))
    assert np.array_equal(made.labels, labels[order[:COUNT]])


def test_thick_and_thin_strokes_differ_from_mnist(uploads):
    def ink_share(name):
        return np.mean([(np.asarray(decoded(d)) > 127).mean() for d in uploads[name].files])

    assert ink_share("thick") > 1.6 * ink_share("thin")


def test_the_service_makes_a_digit_of_every_upload(uploads):
    for made in uploads.values():
        inputs, refused = preprocess_uploads(made.files)
        assert inputs.shape == (COUNT, 28, 28) and inputs.dtype == np.float32
        assert inputs.min() >= 0.0 and inputs.max() <= 1.0
        assert not refused.any()


# ---------------------------------------------------------------- strokes and the pad


def stroke_mask(draw_on) -> np.ndarray:
    """A 112×112 stroke drawn with a 10-px pen, thinned to its skeleton."""
    image = Image.new("F", (112, 112), 0.0)
    draw_on(ImageDraw.Draw(image))
    return strokes.skeleton(np.asarray(image))


def test_tracing_a_drawn_one_gives_one_polyline_end_to_end():
    mask = stroke_mask(lambda d: d.line([(52, 14), (60, 96)], fill=1.0, width=10))
    lines = strokes.trace(mask)
    assert len(lines) == 1
    ends = sorted([tuple(lines[0][0]), tuple(lines[0][-1])], key=lambda p: p[1])
    assert np.hypot(ends[0][0] - 52, ends[0][1] - 14) < 9
    assert np.hypot(ends[1][0] - 60, ends[1][1] - 96) < 9


def test_tracing_a_corner_and_a_loop():
    corner = strokes.trace(stroke_mask(lambda d: d.line([(20, 20), (20, 90), (90, 90)],
                                                        fill=1.0, width=10, joint="curve")))
    assert len(corner) == 1 and len(strokes.simplify(corner[0], 3.0)) == 3  # two straight legs
    ring = strokes.trace(stroke_mask(lambda d: d.ellipse((20, 15, 90, 95), outline=1.0,
                                                         width=9)))
    assert len(ring) == 1 and np.array_equal(ring[0][0], ring[0][-1])  # closed


def test_a_digits_strokes_redrawn_cover_the_digit(source):
    digit = source.images[0]
    lines = drawn.digit_strokes(digit)
    assert lines and all(line.shape[1] == 2 for line in lines)
    # The strokes run inside the original ink (at 4×).
    ink = np.asarray(Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC))
    points = np.rint(np.concatenate(lines)).astype(int)
    assert (ink[points[:, 1], points[:, 0]] > 60).mean() > 0.95


def test_the_pad_draws_a_round_capped_line_of_its_pen_width():
    pixels = pad.render([np.array([[0.25, 0.5], [0.75, 0.5]])])
    assert pixels.shape == (pad.EXPORT_SIZE, pad.EXPORT_SIZE) and pixels.dtype == np.uint8
    pen = pad.STROKE_WIDTH * pad.EXPORT_SIZE  # 21 px
    column = pixels[:, pad.EXPORT_SIZE // 2] / 255.0
    assert abs(column.sum() - pen) < 1.0
    row = pixels[pad.EXPORT_SIZE // 2] / 255.0
    assert abs(row.sum() - (0.5 * pad.EXPORT_SIZE + pen)) < 1.5  # half a pen beyond each end
    # A one-point stroke is a dot of the pen's diameter.
    dot = pad.render([np.array([[0.5, 0.5]])]) / 255.0
    assert abs(dot.sum() - np.pi * (pen / 2) ** 2) < 0.03 * dot.sum()


def test_the_pads_smoothing_passes_through_the_ends_and_midpoints():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    path = pad.smoothed_path(points)
    assert np.array_equal(path[0], points[0]) and np.array_equal(path[-1], points[-1])
    assert np.any(np.all(np.isclose(path, [1.0, 0.5]), axis=1))  # a midpoint on the curve


def test_the_export_is_an_opaque_png_as_a_canvas_sends():
    pixels = pad.render([np.array([[0.3, 0.3], [0.7, 0.7]])])
    image = decoded(pad.export_png(pixels))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (280, 280)
    assert np.asarray(image)[..., 3].min() == 255
    assert np.array_equal(np.asarray(image.convert("L")), pixels)


# ---------------------------------------------------------------- cache, scores, report


def test_the_cache_returns_what_it_stored(source, tmp_path):
    module = SETS[1]
    made = cache.prepare(module, source, 4, 5, tmp_path)
    assert not made.cached
    stored = list(tmp_path.glob("drawn-v1-s5-mnist-5k-n4-p1.npz"))
    assert len(stored) == 1
    again = cache.prepare(module, source, 4, 5, tmp_path)
    assert again.cached
    for field in ("inputs", "labels", "refused", "samples"):
        assert np.array_equal(getattr(again, field), getattr(made, field))
    assert cache.load(stored[0], module, "another-preprocessing") is None
    fresh = cache.prepare(module, source, 4, 5, tmp_path, refresh=True)
    assert not fresh.cached and np.array_equal(fresh.inputs, made.inputs)


def test_the_cache_keeps_each_preprocessing_version_apart(source, tmp_path):
    module = SETS[4]  # thick: stroke-width normalisation changes every one of its digits
    v1 = cache.prepare(module, source, 3, 5, tmp_path)
    v2 = cache.prepare(module, source, 3, 5, tmp_path, preprocessing=2)
    assert sorted(path.name for path in tmp_path.glob("*.npz")) == [
        "thick-v1-s5-mnist-5k-n3-p1.npz", "thick-v1-s5-mnist-5k-n3-p2.npz"]
    uploads = module.generate(source, 3, 5).files
    assert np.array_equal(v1.inputs, preprocess_uploads(uploads)[0])
    assert np.array_equal(v2.inputs, preprocess_uploads(uploads, 2)[0])
    assert not np.array_equal(v1.inputs, v2.inputs)


def test_scores_count_refusals_as_wrong_and_rank_confusions():
    labels = np.array([1, 1, 1, 7, 7, 4, 9, 9])
    predicted = np.array([1, 7, 7, 1, 7, 9, 9, 4])
    refused = np.array([False, False, False, False, True, False, False, False])
    result = score("x", labels, predicted, refused)
    assert (result.images, result.correct, result.refused) == (8, 2, 1)
    assert result.confusions == [(1, 7, 2), (4, 9, 1), (7, REFUSED, 1)]
    assert "7→no digit: 1" in report.table([result])


def test_the_report_keeps_other_models_and_peoples_text(tmp_path):
    doc = tmp_path / "handwriting.md"
    report.write_doc(doc, "sets v1", "model-a", "A first")
    doc.write_text(doc.read_text().replace("Nothing measured yet.", "Our notes."))
    report.write_doc(doc, "sets v2", "model-b", "B")
    report.write_doc(doc, "sets v3", "model-a", "A again")
    text = doc.read_text()
    assert "sets v3" in text and "sets v1" not in text and "sets v2" not in text
    assert "A again" in text and "A first" not in text and "B" in text
    assert text.index("A again") < text.index("\nB\n")  # kept in place
    assert "Our notes." in text


# ---------------------------------------------------------------- the whole benchmark


def test_a_small_run_prints_the_table_and_writes_the_report(seed_model_dir, tmp_path):
    doc = tmp_path / "docs" / "handwriting.md"
    command = [sys.executable, str(REPO / "bench" / "bench_handwriting.py"),
               "--model", SEED_MODEL_NAME, "--model-dir", str(seed_model_dir),
               "--mnist-npz", str(tmp_path / "absent.npz"), "--count", "20",
               "--cache-dir", str(tmp_path / "cache"), "--doc", str(doc)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = re.findall(r"^\| (MNIST test|drawn|other writers|photos|thick|thin) \| (\d+) \| "
                      r"([\d.]+)% \|", result.stdout, re.M)
    assert [row[0] for row in rows] == list(EXPECTED)
    assert all(row[1] == "20" for row in rows)
    accuracy = {name: float(value) for name, _, value in rows}
    assert accuracy["MNIST test"] >= 80.0  # the seed model reads its own kind of digits
    assert "mnist-5k" in result.stdout  # the fallback is said
    # The seed model's metadata asks for the newest preprocessing: the sets are made with it.
    assert f"preprocessing, version {LATEST_VERSION}" in result.stdout
    text = doc.read_text()
    assert SEED_MODEL_NAME in text and "| photos | 20 |" in text and "mnist-5k" in text
    samples = doc.parent / "handwriting-samples.png"
    assert samples.is_file() and samples.stat().st_size < 150_000
    # The second run scores the cached images: the same table.
    again = subprocess.run(command + ["--no-doc"], cwd=REPO, capture_output=True, text=True,
                           timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "from the cache" in again.stdout
    assert re.findall(r"^\|.*\|$", again.stdout, re.M) == re.findall(r"^\|.*\|$",
                                                                      result.stdout, re.M)

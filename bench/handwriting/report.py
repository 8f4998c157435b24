"""The benchmark's table, its sample sheet and docs/handwriting.md.

docs/handwriting.md is written in parts between markers: the sets' part and one part per model
(replaced when the same model is measured again, others kept). Text outside the markers is the
people's and is kept as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .cache import THUMBNAIL, slug
from .service import REFUSED

SAMPLE_COLUMNS = 6
LABEL_WIDTH = 120
GAP = 6


def confusion_text(confusions: list[tuple[int, int, int]]) -> str:
    if not confusions:
        return "–"
    return ", ".join(f"{true}→{'no digit' if guess == REFUSED else guess}: {count}"
                     for true, guess, count in confusions)


def table(scores) -> str:
    lines = ["| set | images | accuracy | worst confusions (true→predicted: count) |",
             "| --- | ---: | ---: | --- |"]
    for each in scores:
        lines.append(f"| {each.name} | {each.images:,} | {each.accuracy:.2%} | "
                     f"{confusion_text(each.confusions)} |")
    return "\n".join(lines)


def sets_table(prepared_sets) -> str:
    lines = ["| set | images | how it is made |", "| --- | ---: | --- |"]
    for prepared in prepared_sets:
        lines.append(f"| {prepared.name} | {len(prepared):,} | {prepared.description} |")
    return "\n".join(lines)


def sample_sheet(prepared_sets, path: Path) -> None:
    """One row per set: the first uploads as sent, each beside the 28×28 input the model saw."""
    cell = 2 * THUMBNAIL + GAP
    width = LABEL_WIDTH + SAMPLE_COLUMNS * (cell + 2 * GAP)
    height = len(prepared_sets) * (THUMBNAIL + 2 * GAP)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    for row, prepared in enumerate(prepared_sets):
        top = row * (THUMBNAIL + 2 * GAP) + GAP
        draw.text((GAP, top + THUMBNAIL // 2 - 8), prepared.name, fill=(0, 0, 0), font=font)
        for column in range(min(SAMPLE_COLUMNS, len(prepared.samples))):
            left = LABEL_WIDTH + column * (cell + 2 * GAP)
            sheet.paste(Image.fromarray(prepared.samples[column]), (left, top))
            seen = np.rint(prepared.inputs[column] * 255).astype(np.uint8)
            seen = Image.fromarray(seen, "L").resize((THUMBNAIL, THUMBNAIL),
                                                     Image.Resampling.NEAREST)
            sheet.paste(seen.convert("RGB"), (left + THUMBNAIL + GAP, top))
    path.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours are plenty for gray digits and a few photos, and keep the file small.
    sheet.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)


SKELETON = """# Reading everyone's handwriting: the handwriting benchmark

Issue 11. A model's accuracy on MNIST's test set says little about the digits people draw on the
page or photograph on paper. `make bench-handwriting` measures a model on sets made to look like
those, each generated from a seed and cached, so every run scores the same images. Each set is
sent through the inference service's own preprocessing, as the page would send it.

`make bench-handwriting` trains the quick starter (`cnn` on `mnist-5k`) in a temporary volume and
measures it; `make bench-handwriting MODEL=name` measures `$MODEL_DIR/name.keras` instead
(`python bench/bench_handwriting.py --help` for the rest). This file's generated parts lie between
`<!-- handwriting:... -->` markers; text outside them is kept.

<!-- handwriting:sets -->
<!-- /handwriting:sets -->

## Results

One section per model, the newest measurement of each. Accuracy counts an upload the service
refused ("no digit found") as wrong: such a confusion reads `7→no digit`.

<!-- handwriting:results -->
<!-- /handwriting:results -->

## What the recipe changes did (issue 11, point 2)

Nothing measured yet.
"""


def _block(name: str, body: str) -> str:
    return f"<!-- handwriting:{name} -->\n{body.strip()}\n<!-- /handwriting:{name} -->"


def _replace_block(text: str, name: str, body: str) -> str | None:
    pattern = re.compile(rf"<!-- handwriting:{re.escape(name)} -->.*?"
                         rf"<!-- /handwriting:{re.escape(name)} -->", re.S)
    if not pattern.search(text):
        return None
    return pattern.sub(lambda _: _block(name, body), text, count=1)


def write_doc(path: Path, sets_body: str, result_key: str, result_body: str) -> None:
    text = path.read_text() if path.is_file() else SKELETON
    if "<!-- handwriting:results -->" not in text:
        text = SKELETON
    text = _replace_block(text, "sets", sets_body)
    key = f"result {slug(result_key)}"
    updated = _replace_block(text, key, result_body)
    if updated is None:
        end = "<!-- /handwriting:results -->"
        updated = text.replace(end, _block(key, result_body) + "\n\n" + end, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated)

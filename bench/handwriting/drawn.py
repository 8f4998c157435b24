"""drawn: MNIST test digits turned into pen strokes and drawn again on the page's pad.

Each digit is upscaled, thinned to a skeleton and traced into polylines (strokes.py); the strokes
are placed on the pad at a random size (the digit's longer side 35–85% of the pad) and place,
with a pen of 5.5–9.5% of the pad (the page's own is 7.5%), drawn the way the pad draws (pad.py)
and exported as the page's 280×280 PNG.
"""

from __future__ import annotations

import numpy as np

from . import pad, strokes
from .service import upscale
from .sets import Uploads, uploads_of

NAME = "drawn"
VERSION = 1
DEFAULT_COUNT = 2000
DESCRIPTION = ("MNIST test digits thinned to a skeleton, traced into strokes and re-drawn the "
               "way the page's pad draws them (quadratic smoothing, round caps and joins, "
               "anti-aliased, white on black, 280×280 PNG): the digit's longer side 35–85% of "
               "the pad, anywhere on it, pen 5.5–9.5% of the pad (the page's is 7.5%).")

SIZE_RANGE = (0.35, 0.85)
PEN_RANGE = (0.055, 0.095)
SIMPLIFY_PX = 1.0  # Douglas-Peucker tolerance at the 112-px working size
POINT_SPACING = 0.02  # of the pad: pointer events every ~5 px of a 280-px pad


def digit_strokes(digit: np.ndarray) -> list[np.ndarray]:
    """The strokes of one 28×28 digit, in working pixels (x, y)."""
    ink = upscale(digit[None], 28 * strokes.UPSCALE)[0]
    lines = strokes.trace(strokes.skeleton(ink))
    return [strokes.simplify(line, SIMPLIFY_PX) for line in lines]


def place(lines: list[np.ndarray], size: float, pen: float,
          rng: np.random.Generator) -> list[np.ndarray]:
    """Scale the strokes so their longer side is `size` of the pad; put them somewhere on it."""
    points = np.concatenate(lines)
    low, high = points.min(axis=0), points.max(axis=0)
    extent = max(float((high - low).max()), 1.0)
    scale = size / extent
    span = (high - low) * scale
    margin = pen / 2 + 0.01
    room = np.maximum(1.0 - 2 * margin - span, 0.0)
    offset = margin + rng.uniform(0.0, 1.0, 2) * room
    return [strokes.resample((line - low) * scale + offset, POINT_SPACING) for line in lines]


def draw(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    size = rng.uniform(*SIZE_RANGE)
    pen = rng.uniform(*PEN_RANGE)
    lines = digit_strokes(digit)
    if not lines:  # nothing to trace: an empty pad (the service will refuse it)
        return pad.export_png(np.zeros((pad.EXPORT_SIZE, pad.EXPORT_SIZE), np.uint8))
    return pad.export_png(pad.render(place(lines, size, pen, rng), width=pen))


def generate(source, count: int, seed: int) -> Uploads:
    return uploads_of(source, count, seed, draw)

"""photos: MNIST test digits as a phone photo of a digit written on paper.

Per image, from its own seed: the digit (upscaled, 70–115 px) turned by up to ±10° and seen
in perspective (each corner moved by up to 7% of the picture), written in dark ink (black, blue or
grey) on off-white paper in a 160×160 colour picture; light that falls off across the sheet (up
to ±18%), in two of three pictures a soft-edged shadow across part of it (light down to 60–88%),
a slight blur (radius 0.3–1.4 px), sensor noise (σ 2–7 levels) and JPEG compression (quality
35–90). Uploaded as the JPEG.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .service import jpeg_bytes, upscale
from .sets import Uploads, uploads_of

NAME = "photos"
VERSION = 1
DEFAULT_COUNT = 2000
DESCRIPTION = ("MNIST test digits as photos of paper: dark ink (black, blue or grey) on off-white "
               "paper, rotated ±10°, in perspective, uneven light, a soft shadow on two of three, "
               "blur, sensor noise, JPEG quality 35–90; 160×160 colour JPEG.")

PICTURE = 160
DIGIT_RANGE = (70, 115)
MAX_ROTATION = 10.0
MAX_CORNER_SHIFT = 0.07
INKS = np.array([[25, 25, 30], [30, 40, 110], [70, 70, 75]], np.float32)  # black, blue, grey


def _perspective_coefficients(source: np.ndarray, target: np.ndarray) -> list[float]:
    """Pillow's 8 PERSPECTIVE coefficients mapping output corners `target` to input `source`."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return np.linalg.solve(np.asarray(rows, np.float64), source.reshape(-1)).tolist()


def _coverage(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage 0–1 on the whole picture: placed, turned, in perspective."""
    size = int(rng.integers(*DIGIT_RANGE, endpoint=True))
    ink = Image.fromarray(upscale(digit[None], size)[0], "F")
    ink = ink.rotate(rng.uniform(-MAX_ROTATION, MAX_ROTATION), Image.Resampling.BICUBIC)
    field = Image.new("F", (PICTURE, PICTURE), 0.0)
    left, top = (int(v) for v in rng.integers(0, PICTURE - size, 2, endpoint=True))
    field.paste(ink, (left, top))
    corners = np.array([[0, 0], [PICTURE, 0], [PICTURE, PICTURE], [0, PICTURE]], np.float64)
    moved = corners + rng.uniform(-1, 1, (4, 2)) * MAX_CORNER_SHIFT * PICTURE
    field = field.transform((PICTURE, PICTURE), Image.Transform.PERSPECTIVE,
                            _perspective_coefficients(corners, moved), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(field, np.float32), 0.0, 1.0)


def _light(rng: np.random.Generator) -> np.ndarray:
    """How much light falls on each pixel: a gentle slope, a broad bright spot, maybe a shadow."""
    y, x = np.mgrid[0:PICTURE, 0:PICTURE].astype(np.float32) / PICTURE - 0.5
    slope = rng.uniform(-0.18, 0.18, 2)
    light = 1.0 + slope[0] * x + slope[1] * y
    spot = rng.uniform(-0.5, 0.5, 2)
    light += rng.uniform(0.0, 0.1) * np.exp(-((x - spot[0]) ** 2 + (y - spot[1]) ** 2) / 0.15)
    if rng.random() < 2 / 3:  # a shadow (a hand, the phone) with a soft edge across the sheet
        angle = rng.uniform(0, 2 * np.pi)
        distance = np.cos(angle) * x + np.sin(angle) * y - rng.uniform(-0.25, 0.4)
        softness = rng.uniform(0.02, 0.1)
        depth = 1.0 - rng.uniform(0.6, 0.88)
        light *= 1.0 - depth / (1.0 + np.exp(-distance / softness))
    return light


def photograph(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    coverage = _coverage(digit, rng)[..., None]
    paper = rng.uniform(205, 245) - rng.uniform(0, 15, 3).astype(np.float32)  # off-white tints
    ink = INKS[rng.integers(len(INKS))] + rng.uniform(-10, 10, 3).astype(np.float32)
    picture = (paper * (1.0 - coverage) + ink * coverage) * _light(rng)[..., None]
    blurred = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), "RGB")
    blurred = blurred.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.4)))
    noisy = np.asarray(blurred, np.float32) + rng.normal(0.0, rng.uniform(2, 7), picture.shape)
    return jpeg_bytes(np.clip(np.rint(noisy), 0, 255).astype(np.uint8),
                      int(rng.integers(35, 90, endpoint=True)))


def generate(source, count: int, seed: int) -> Uploads:
    return uploads_of(source, count, seed, photograph)

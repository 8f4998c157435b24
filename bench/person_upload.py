"""A 28×28 MNIST digit as a person's upload: the one body that the inference tests and
`make bench` both send as "a photo of a digit" (tests/inference_support.py re-exports it)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png_bytes(pixels: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


def as_person_upload(digit: np.ndarray, rng: np.random.Generator, canvas: int = 280) -> bytes:
    """A 28×28 MNIST digit as a person's photo/scan: dark ink on light paper, 280×280 RGB PNG,
    the digit at a random size (90 to 260 px) and position, paper and ink of random shades,
    with sensor noise."""
    size = int(rng.integers(90, 261))
    scaled = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    ink = np.zeros((canvas, canvas), np.float32)
    top, left = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
    ink[top: top + size, left: left + size] = np.asarray(scaled, np.float32) / 255
    paper, pen = rng.uniform(205, 245), rng.uniform(10, 70)
    photo = paper + (pen - paper) * ink + rng.normal(0, 4, ink.shape)
    return png_bytes(np.clip(photo, 0, 255).astype(np.uint8), "RGB")

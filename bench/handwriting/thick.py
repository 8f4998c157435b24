"""thick: MNIST test digits with strokes much thicker than MNIST's.

At upload size (the digit upscaled to 112×112, 4×) the ink is dilated with a disk of radius 5–9
px; MNIST's stroke there is ~10 px wide, so it becomes two to three times as wide, as a felt pen
or a finger on a phone would write. Uploaded as a white-on-black PNG, so only the stroke differs
from the MNIST test set.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import strokes
from .service import png_bytes, upscale
from .sets import Uploads, uploads_of

NAME = "thick"
VERSION = 1
DEFAULT_COUNT = 2000
DESCRIPTION = ("MNIST test digits with strokes 2–3× MNIST's: the ink dilated by a disk of radius "
               "5–9 px at 112×112 (MNIST's stroke there is ~10 px); white-on-black PNG.")

UPLOAD_SIZE = 28 * strokes.UPSCALE
RADIUS_RANGE = (5.0, 9.0)


def disk(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r: r + 1, -r: r + 1]
    return x * x + y * y <= radius * radius


def thicken(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ink = upscale(digit[None], UPLOAD_SIZE)[0]
    thick = ndimage.grey_dilation(ink, footprint=disk(rng.uniform(*RADIUS_RANGE)))
    return np.rint(thick * 255).astype(np.uint8)


def generate(source, count: int, seed: int) -> Uploads:
    return uploads_of(source, count, seed, lambda digit, rng: png_bytes(thicken(digit, rng)))

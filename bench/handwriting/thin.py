"""thin: MNIST test digits with strokes much thinner than MNIST's.

At upload size (112×112, 4×) the digit is thinned to its skeleton (scikit-image) and given back
a pen 2–4 px wide — a third of MNIST's ~10 px or less — as a fine pen or a stylus would write
(the edge anti-aliased over a pixel). Uploaded as a white-on-black PNG.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import strokes
from .service import png_bytes, upscale
from .sets import Uploads, uploads_of

NAME = "thin"
VERSION = 1
DEFAULT_COUNT = 2000
DESCRIPTION = ("MNIST test digits with strokes a third of MNIST's or less: thinned to a skeleton "
               "at 112×112 and redrawn with a 2–4 px pen; white-on-black PNG.")

UPLOAD_SIZE = 28 * strokes.UPSCALE
WIDTH_RANGE = (2.0, 4.0)


def thin(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ink = upscale(digit[None], UPLOAD_SIZE)[0]
    skeleton = strokes.skeleton(ink)
    width = rng.uniform(*WIDTH_RANGE)
    # The pen's footprint: pixels closer to the skeleton than half its width, edge over 1 px.
    distance = ndimage.distance_transform_edt(~skeleton)
    pen = np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)
    return np.rint(pen * 255).astype(np.uint8)


def generate(source, count: int, seed: int) -> Uploads:
    return uploads_of(source, count, seed, lambda digit, rng: png_bytes(thin(digit, rng)))

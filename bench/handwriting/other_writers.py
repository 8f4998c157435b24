"""other writers: UCI's optdigits as shipped in scikit-learn, uploaded as dark ink on paper.

`sklearn.datasets.load_digits()`: 1,797 digits by 43 people who are not MNIST's writers, each
32×32 bitmap counted down to 8×8 blocks of 0–16 ink pixels. Each is scaled up to 128×128
(bicubic and a slight blur: smooth, not blocks), given a pen's edge back (a steep curve around
40% ink), set on a 176×176 sheet of light paper with dark ink (levels drawn per image) and
uploaded as an 8-bit gray PNG.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from .service import png_bytes
from .sets import Uploads, image_rng

NAME = "other writers"
VERSION = 2
DEFAULT_COUNT = 1797
USES_MNIST = False  # the cache key does not depend on the MNIST source
DESCRIPTION = ("The 1,797 digits of UCI's optdigits that ship in scikit-learn (43 writers not "
               "in MNIST, 8×8 at 17 levels), scaled up smoothly to 128 px with a pen's sharp "
               "edge and uploaded as dark ink on light paper (176×176 gray PNG).")

DIGIT_SIZE = 128
SHEET_SIZE = 176
BLUR = 0.25  # of an 8×8 block
INK_LEVEL = 0.4
STEEPNESS = 14.0


def load_optdigits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.float32) / 16.0, digits.target.astype(np.int64)


def render(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 8×8 digit (ink 0–1) as a sheet of paper, uint8 gray."""
    ink = Image.fromarray(block.astype(np.float32), "F")
    ink = ink.resize((DIGIT_SIZE, DIGIT_SIZE), Image.Resampling.BICUBIC)
    ink = ndimage.gaussian_filter(np.asarray(ink), DIGIT_SIZE / 8 * BLUR)
    # A block's level is the share of its pixels that were ink: a steep curve around half
    # gives a pen's sharp (anti-aliased) edge back instead of a blur.
    coverage = 1.0 / (1.0 + np.exp(-(ink - INK_LEVEL) * STEEPNESS))
    sheet = np.zeros((SHEET_SIZE, SHEET_SIZE), np.float32)
    top, left = rng.integers(0, SHEET_SIZE - DIGIT_SIZE + 1, 2)
    sheet[top: top + DIGIT_SIZE, left: left + DIGIT_SIZE] = coverage
    paper, dark = rng.uniform(215, 250), rng.uniform(10, 70)
    return np.rint(paper + (dark - paper) * sheet).astype(np.uint8)


def generate(source, count: int, seed: int) -> Uploads:
    """The first `count` optdigits in a seeded order (`source` is not used: these are not MNIST)."""
    blocks, labels = load_optdigits()
    order = np.random.default_rng([seed, 0x5EED]).permutation(len(labels))[:count]
    files = [png_bytes(render(blocks[i], image_rng(seed, n))) for n, i in enumerate(order)]
    return Uploads(files, labels[order])

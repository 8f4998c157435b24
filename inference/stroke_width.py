"""Stroke-width normalisation of 28×28 digits: the last step of preprocessing version 2.

A change to this function is a new preprocessing version (inference/preprocess.py). Training
does not use it: normalising the training digits too was measured and does not pay
(docs/handwriting.md, "Versioned preprocessing").

A digit's stroke width is estimated as its ink pixels over its skeleton's pixels (Zhang-Suen
thinning of the pixels brighter than INK): MNIST's median is ~2.5 px. A digit wider than WIDE
loses a pixel of width (a 2×2 grey erosion), one narrower than THIN gains one (a 2×2 grey
dilation); the others are left as they are. Only numpy.
"""

from __future__ import annotations

import numpy as np

INK = 0.5  # of the [0, 1] range: what counts as ink for the width estimate
# Eroded above WIDE, dilated below THIN (px). The offline measurement (docs/handwriting.md) used
# scikit-image's skeleton and 3.5 / 1.6; this skeleton is a little longer on MNIST's strokes, and
# 3.4 / 1.4 select the same shares of MNIST test's digits (~16% and ~3%).
WIDE = 3.4
THIN = 1.4


def _neighbours(padded: np.ndarray) -> list[np.ndarray]:
    """P2..P9 of Zhang and Suen (north, then clockwise) of every inner pixel of (N, H+2, W+2)
    masks with a one-pixel frame: views, so they follow later changes to `padded`."""
    height, width = padded.shape[1] - 2, padded.shape[2] - 2

    def at(dy: int, dx: int) -> np.ndarray:
        return padded[:, 1 + dy: 1 + dy + height, 1 + dx: 1 + dx + width]

    return [at(-1, 0), at(-1, 1), at(0, 1), at(1, 1), at(1, 0), at(1, -1), at(0, -1),
            at(-1, -1)]


def _removable(step: int) -> np.ndarray:
    """Zhang and Suen's test for one sub-iteration, for each of the 256 neighbourhoods: bit k of
    the index is neighbour P(k+2) (P2 = north, then clockwise). A pixel is removed when it has 2
    to 6 neighbours, exactly one 0 → 1 transition around the ring, and (step 0) not P2·P4·P6 nor
    P4·P6·P8, or (step 1) not P2·P4·P8 nor P2·P6·P8."""
    table = np.zeros(256, bool)
    for code in range(256):
        p = [(code >> bit) & 1 for bit in range(8)]
        transitions = sum(p[i] == 0 and p[(i + 1) % 8] == 1 for i in range(8))
        p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
        if step == 0:
            spare = not (p2 and p4 and p6) and not (p4 and p6 and p8)
        else:
            spare = not (p2 and p4 and p8) and not (p2 and p6 and p8)
        table[code] = 2 <= sum(p) <= 6 and transitions == 1 and spare
    return table


# Looked up per pixel: one table read instead of ~40 array operations per sub-iteration.
_REMOVABLE = (_removable(0), _removable(1))


def _neighbourhood_codes(neighbours: list[np.ndarray]) -> np.ndarray:
    """Each pixel's 8 neighbours packed into one byte, bit k = P(k+2)."""
    codes = neighbours[0].view(np.uint8).copy()
    for bit, neighbour in enumerate(neighbours[1:], start=1):
        codes |= neighbour.view(np.uint8) << bit
    return codes


def skeleton(masks: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning (1984) of a stack of boolean masks (N, H, W), all at once."""
    masks = np.asarray(masks, dtype=bool)
    padded = np.zeros((masks.shape[0], masks.shape[1] + 2, masks.shape[2] + 2), bool)
    inner = padded[:, 1:-1, 1:-1]  # a view: pixels removed here change the neighbours' views
    inner[...] = masks
    neighbours = _neighbours(padded)
    while True:
        changed = False
        for removable in _REMOVABLE:
            remove = inner & removable[_neighbourhood_codes(neighbours)]
            if remove.any():
                inner &= ~remove
                changed = True
        if not changed:
            return inner.copy()


def stroke_widths(images: np.ndarray) -> np.ndarray:
    """Each image's stroke width in pixels: ink pixels over skeleton pixels (0 when blank)."""
    ink = np.asarray(images) > INK
    ink_pixels = ink.sum(axis=(1, 2))
    skeleton_pixels = skeleton(ink).sum(axis=(1, 2))
    return ink_pixels / np.maximum(skeleton_pixels, 1)


def _window(images: np.ndarray, reduce, before: bool) -> np.ndarray:
    """min or max over each pixel's 2×2 window: the pixel and the one above, left and
    above-left of it (`before`), or below, right and below-right of it; edges repeated."""
    pad = ((0, 0), (1, 0), (1, 0)) if before else ((0, 0), (0, 1), (0, 1))
    padded = np.pad(images, pad, mode="edge")
    height, width = images.shape[1:]
    out = padded[:, :height, :width]
    for dy, dx in ((0, 1), (1, 0), (1, 1)):
        out = reduce(out, padded[:, dy: dy + height, dx: dx + width])
    return out


def normalise_stroke_width(images: np.ndarray) -> np.ndarray:
    """Digits (N, 28, 28) or one (28, 28), float in [0, 1]: the wide ones thinned, the thin
    ones thickened, the rest unchanged. Returns float32 of the same shape."""
    images = np.asarray(images, dtype=np.float32)
    single = images.ndim == 2
    batch = images[None] if single else images
    widths = stroke_widths(batch)
    out = batch.copy()
    wide, thin = widths > WIDE, (widths < THIN) & (widths > 0)
    if wide.any():
        out[wide] = _window(batch[wide], np.minimum, before=True)
    if thin.any():
        out[thin] = _window(batch[thin], np.maximum, before=False)
    return out[0] if single else out

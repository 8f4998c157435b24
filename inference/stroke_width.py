"""Stroke-width normalisation of 28×28 digits: the last step of preprocessing version 2.

A change to this function is a new preprocessing version (inference/preprocess.py). Training
does not use it: normalising the training digits too was measured and does not pay
(docs/handwriting.md, "Versioned preprocessing").

A digit's stroke width is estimated as its ink pixels over its skeleton's pixels (Zhang-Suen
thinning of the pixels brighter than INK): MNIST's median is ~2.5 px. A digit wider than WIDE
loses a pixel of width (a 2×2 grey erosion), one narrower than THIN gains one (a 2×2 grey
dilation); the others are left as they are. Only numpy and Python integers.
"""

from __future__ import annotations

import functools
import operator

import numpy as np

INK = 0.5  # of the [0, 1] range: what counts as ink for the width estimate
# Eroded above WIDE, dilated below THIN (px). The offline measurement (docs/handwriting.md) used
# scikit-image's skeleton and 3.5 / 1.6; this skeleton is a little longer on MNIST's strokes, and
# 3.4 / 1.4 select the same shares of MNIST test's digits (~16% and ~3%).
WIDE = 3.4
THIN = 1.4


# Zhang-Suen on bitboards: a mask with a one-pixel empty frame, read row by row into one Python
# integer (bit y·(W+2) + x is pixel (y, x) of the framed mask). Shifting the integer by a
# neighbour's offset gives every pixel that neighbour at once, and the test of a sub-iteration
# becomes ~60 operations on ~900-bit integers: ~3× faster than the same test with numpy arrays
# of 28×28 (whose per-call cost dominates at this size). The output is the same, pixel for
# pixel: a test holds it to the rule applied one pixel at a time, and version 2's golden hashes
# hold.


@functools.lru_cache(maxsize=8)
def _layout(height: int, width: int) -> tuple[int, tuple[int, ...]]:
    """The framed mask's inner pixels as a bitboard, and the offsets of P2..P9 of Zhang and
    Suen (north, then clockwise) in it."""
    row = width + 2
    offsets = (-row, -row + 1, 1, row + 1, row, row - 1, -1, -row - 1)
    return _to_board(np.ones((height, width), bool)), offsets


def _to_board(mask: np.ndarray) -> int:
    """`mask` (H, W) in a one-pixel empty frame, as a bitboard."""
    framed = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), bool)
    framed[1:-1, 1:-1] = mask
    return int.from_bytes(np.packbits(framed, bitorder="little").tobytes(), "little")


def _from_board(board: int, height: int, width: int) -> np.ndarray:
    size = (height + 2) * (width + 2)
    raw = np.frombuffer(board.to_bytes((size + 7) // 8, "little"), np.uint8)
    bits = np.unpackbits(raw, bitorder="little")[:size].reshape(height + 2, width + 2)
    return bits[1:-1, 1:-1].astype(bool)


def _at_least_two(boards: list[int]) -> int:
    """The pixels set in at least two of `boards`."""
    once = twice = 0
    for board in boards:
        twice |= once & board
        once |= board
    return twice


def _thin(mask: np.ndarray) -> int:
    """Zhang-Suen thinning (1984) of one boolean mask (H, W): its skeleton as a bitboard.

    A pixel is removed in a sub-iteration when it has 2 to 6 neighbours, exactly one 0 → 1
    transition around its ring P2..P9, and (first sub-iteration) not P2·P4·P6 nor P4·P6·P8, or
    (second) not P2·P4·P8 nor P2·P6·P8; until a whole iteration removes nothing."""
    height, width = mask.shape
    inner, offsets = _layout(height, width)
    board = _to_board(mask)
    while True:
        before = board
        for step in (0, 1):
            # Bit i of ring[k] is P(k+2) of pixel i. Bits outside the mask do not matter (only
            # the mask's pixels can be removed), and the frame keeps rows from wrapping.
            ring = [board >> offset if offset > 0 else board << -offset for offset in offsets]
            empty = [inner & ~neighbour for neighbour in ring]
            two_to_six = _at_least_two(ring) & _at_least_two(empty)
            rises = [empty[k] & ring[(k + 1) % 8] for k in range(8)]
            one_rise = functools.reduce(operator.or_, rises) & ~_at_least_two(rises)
            p2, p4, p6, p8 = ring[0], ring[2], ring[4], ring[6]
            if step == 0:
                spared = ~(p2 & p4 & p6) & ~(p4 & p6 & p8)
            else:
                spared = ~(p2 & p4 & p8) & ~(p2 & p6 & p8)
            board &= ~(two_to_six & one_rise & spared)
        if board == before:
            return board


def skeleton(masks: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a stack of boolean masks (N, H, W)."""
    masks = np.asarray(masks, dtype=bool)
    skeletons = np.zeros_like(masks)
    for number, mask in enumerate(masks):
        skeletons[number] = _from_board(_thin(mask), *mask.shape)
    return skeletons


def stroke_widths(images: np.ndarray) -> np.ndarray:
    """Each image's stroke width in pixels: ink pixels over skeleton pixels (0 when blank)."""
    ink = np.asarray(images) > INK
    ink_pixels = ink.sum(axis=(1, 2))
    skeleton_pixels = np.array([_thin(mask).bit_count() for mask in ink], dtype=np.int64)
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

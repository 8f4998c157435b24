"""Plain PNGs decoded by libspng (pyspng): the same pixels as Pillow's, at a fraction of the time.

Every drawing the page sends is a PNG: 280×280 RGBA from the pad, and photos arrive as PNGs
too. Pillow's PNG decoder took ~540 µs for the pad's drawing and ~1.9 ms for a 280×280 photo;
libspng takes ~120 µs and ~0.9-1.2 ms (docs/benchmarks.md). PNG is lossless, so any correct
decoder gives the same pixels, and `tests/test_png_decode.py` checks that it does.

Only plain PNGs take this path: 8 bits per channel, grey, RGB or RGBA, not interlaced, and no
chunk that could change what Pillow would make of the picture (a palette, a transparent colour,
EXIF or XMP text that may carry an orientation, animation). Everything else returns None and is
decoded by Pillow, as before.

pyspng tells libspng to ignore the chunks' checksums (it was written for trusted datasets), and
a corrupted upload must be refused, not read as noise: so every chunk's CRC is checked here
first (~40 µs for a 75 KB photo). A file that fails anything here, or that libspng refuses, is
left to Pillow, whose errors the service already turns into clear answers.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pyspng
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IHDR's colour types with 8 bits per channel, and the Pillow mode each decodes to. Not grey +
# alpha (4): pyspng refuses it ("invalid format"), so it stays with Pillow.
_MODES = {0: "L", 2: "RGB", 6: "RGBA"}
# Chunks that change nothing Pillow or the preprocessing makes of the pixels. Not here: PLTE and
# tRNS (palettes, transparent colours), eXIf and the text chunks (Pillow reads an orientation
# from EXIF and from XMP, which may come in any text chunk), acTL/fcTL/fdAT (animation).
_HARMLESS_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"pHYs", b"sRGB", b"gAMA", b"cHRM",
                              b"iCCP", b"sBIT", b"bKGD", b"tIME"})
_IHDR_END = 33  # signature (8) + length, type, 13 bytes of header, CRC


def decode_plain_png(data: bytes) -> Image.Image | None:
    """The picture in `data` if it is a plain PNG that libspng decodes, else None."""
    mode = _plain_mode(data)
    if mode is None or not _chunks_intact(data):
        return None
    try:
        pixels = pyspng.load(data)
    except (RuntimeError, ValueError, MemoryError):
        return None  # Pillow decodes it, or says in its words what is wrong with it
    image = Image.fromarray(np.ascontiguousarray(pixels))
    return image if image.mode == mode else None


def _plain_mode(data: bytes) -> str | None:
    """The Pillow mode of a non-interlaced 8-bit grey/RGB(A) PNG, from its header; else None."""
    if len(data) < _IHDR_END or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        return None
    bit_depth, colour_type, interlace = data[24], data[25], data[28]
    if bit_depth != 8 or interlace != 0:
        return None
    return _MODES.get(colour_type)


def _chunks_intact(data: bytes) -> bool:
    """Every chunk is a harmless one, complete, with its CRC right, up to IEND."""
    view = memoryview(data)
    position, end = len(SIGNATURE), len(data)
    while position + 12 <= end:
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4:position + 8]
        crc_at = position + 8 + length
        if kind not in _HARMLESS_CHUNKS or crc_at + 4 > end:
            return False
        if zlib.crc32(view[position + 4:crc_at]) != struct.unpack_from(">I", data, crc_at)[0]:
            return False
        if kind == b"IEND":
            return True
        position = crc_at + 4
    return False

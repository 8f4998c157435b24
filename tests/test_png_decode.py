"""Plain PNGs are decoded by libspng (inference/png_decode.py): the same pixels as Pillow's, and
everything else is left to Pillow.

Bad or unusual inputs tried: a flipped byte inside the image data (a CRC mismatch), a file
cut before IEND, a complete file whose compressed stream stops early (checksums right);
palette, 1-bit, 16-bit and grey + alpha PNGs, a transparent colour (tRNS), EXIF and text
chunks, an interlaced header and an animated PNG. Each must take Pillow's path, and uploads
Pillow refuses stay refused with the same error.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from conftest import REPO  # noqa: F401 (puts the repository on sys.path)
from PIL import Image, ImageDraw, PngImagePlugin

from inference.png_decode import decode_plain_png
from inference.preprocess import ImageError, open_image, preprocess


def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def pillow_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image)


def page_drawing() -> Image.Image:
    """A digit as the page's pad exports it: 280×280 RGBA, opaque, a white stroke on black."""
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    pen = ImageDraw.Draw(canvas)
    pen.line([(140, 40), (100, 150), (160, 240)], fill=(255, 255, 255, 255), width=21,
             joint="curve")
    return canvas


def noise(mode: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (57, 83, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    found, position = [], 8
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        found.append((data[position + 4:position + 8], data[position + 8:position + 8 + length]))
        position += 12 + length
    return found


def rebuilt(data: bytes, replace) -> bytes:
    """`data` with each chunk's body passed through `replace(kind, body)`, CRCs made right."""
    return data[:8] + b"".join(chunk(kind, replace(kind, body)) for kind, body in chunks(data))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("compress_level", [0, 1, 9])
def test_plain_pngs_decode_to_pillows_pixels(mode, compress_level):
    for seed in range(3):
        data = png(noise(mode, seed), compress_level=compress_level)
        decoded = decode_plain_png(data)
        assert decoded is not None, "a plain PNG must take libspng's path"
        assert decoded.mode == mode
        assert np.array_equal(np.asarray(decoded), pillow_pixels(data))


def test_the_pages_drawing_takes_libspngs_path_with_the_same_pixels_and_digit():
    data = png(page_drawing())
    decoded = decode_plain_png(data)
    assert decoded is not None and decoded.mode == "RGBA" and decoded.size == (280, 280)
    assert np.array_equal(np.asarray(decoded), pillow_pixels(data))
    assert np.array_equal(np.asarray(open_image(data)), pillow_pixels(data))


def test_harmless_chunks_keep_the_fast_path():
    data = png(noise("RGB", 1), dpi=(300, 300), icc_profile=b"\0" * 64)
    assert {b"pHYs", b"iCCP"} <= {kind for kind, _ in chunks(data)}
    assert decode_plain_png(data) is not None


def unusual_pngs() -> dict[str, bytes]:
    gray = noise("L", 2)
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "a digit")
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [noise("RGB", 3), noise("RGB", 4)]
    animated = io.BytesIO()
    frames[0].save(animated, "PNG", save_all=True, append_images=frames[1:])
    return {
        "palette": png(noise("RGB", 5).convert("P")),
        "grey and alpha": png(noise("LA", 5)),
        "1-bit": png(gray.convert("1")),
        "16-bit": png(Image.fromarray(np.asarray(gray).astype(np.uint16) * 257)),
        "transparent colour": png(noise("RGB", 6), transparency=(0, 0, 0)),
        "text": png(gray, pnginfo=text),
        "EXIF": png(gray, exif=exif),
        "interlaced": rebuilt(png(gray), lambda kind, body:
                              body[:12] + b"\x01" if kind == b"IHDR" else body),
        "animated": animated.getvalue(),
    }


@pytest.mark.parametrize("name", list(unusual_pngs()))
def test_unusual_pngs_are_left_to_pillow(name):
    data = unusual_pngs()[name]
    assert decode_plain_png(data) is None


def test_an_exif_orientation_in_a_png_is_still_applied():
    """Pillow reads the orientation of a PNG's eXIf chunk; libspng's path must not drop it."""
    upright = Image.new("L", (60, 100), 0)
    ImageDraw.Draw(upright).rectangle([10, 10, 25, 90], fill=255)  # a tall bar: a "1"
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # shown upright after orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = preprocess(png(stored, exif=exif), 3).image
    assert np.array_equal(sideways, preprocess(png(upright), 3).image)


def test_a_flipped_byte_in_the_image_data_is_refused_as_before():
    # Stored (uncompressed) image data: the flipped byte is a pixel's, the stream stays valid
    # and only the checksums tell. pyspng alone would decode it into a different picture.
    data = bytearray(png(page_drawing(), compress_level=0))
    idat = bytes(data).index(b"IDAT")
    data[idat + 5000] ^= 0xFF
    data = bytes(data)
    assert decode_plain_png(data) is None, "a CRC mismatch must not be decoded as noise"
    with pytest.raises(ImageError) as refused:
        open_image(data)
    assert refused.value.code == "invalid_image"


def test_a_short_compressed_stream_with_right_checksums_is_refused_as_before():
    whole = png(noise("RGB", 7), compress_level=1)
    data = rebuilt(whole, lambda kind, body: body[:len(body) // 2] if kind == b"IDAT" else body)
    assert decode_plain_png(data) is None
    with pytest.raises(ImageError) as refused:
        open_image(data)
    assert refused.value.code in ("invalid_image", "truncated_image")


def test_a_png_cut_before_its_end_decodes_as_pillow_decodes_it():
    whole = png(noise("L", 8))
    cut = whole[:-12]  # no IEND: Pillow reads the complete image data anyway
    assert decode_plain_png(cut) is None
    assert np.array_equal(np.asarray(open_image(cut)), pillow_pixels(whole))

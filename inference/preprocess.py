"""Turn any photo, scan or drawing of one digit into the 28×28 image an MNIST model expects.

MNIST's digits are white ink on black, the ink's bounding box scaled to fit 20×20 keeping its
aspect ratio, then placed in a 28×28 field so that the centre of mass is at the centre. Models
trained on MNIST only work on images made the same way, so that is what happens here:

decode (guarded; plain PNGs by libspng, png_decode.py) → EXIF orientation → transparency
flattened → grayscale → polarity: ink bright on black → background noise suppressed → crop to
the ink → longer side to 20 px → centre of mass at the centre of 28×28 → values in [0, 1].

What can go wrong is raised as an `ImageError` (a stable `code` and a message for people);
errors.py maps each kind to its HTTP status. Nothing here knows about HTTP or requests: the
bytes come from request_image.py.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageFilter, UnidentifiedImageError

from .png_decode import decode_plain_png
from .stroke_width import normalise_stroke_width

# Pillow's own bomb guard: warn above, refuse above twice this. We refuse above it ourselves,
# from the header's size, before a single pixel is decoded.
MAX_PIXELS = 30_000_000  # a 24-megapixel phone photo fits; a 40000×40000 "PNG" does not
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Formats that are images of a digit. Others Pillow could open (EPS runs Ghostscript, PSD,
# ICNS...) are refused as unsupported rather than handed to a rarely used decoder.
READABLE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
READABLE_NAMES = "PNG, JPEG, GIF, BMP, WebP, TIFF or PPM"

# Work on at most this many pixels per side: plenty to find a digit that ends up 20 px tall.
WORKING_SIZE = 1024
FIELD = 28
BOX = 20
# Below this contrast between ink and paper (of 255) there is no digit, only noise or a blank.
MIN_CONTRAST = 40
# Pixels fainter than this share of the ink's brightness are paper texture, noise or shadows.
NOISE_FLOOR = 0.25

# Preprocessing versions (a model's metadata says which one it was trained for; none → 1).
# 1: the recipe below. 2: 1, plus the light flattened on dark ink on light paper (before the
# ink is found) and the stroke width normalised (on the 28×28 result). 3: 2 on a copy reduced
# to REDUCED_SIDE or more px per side (the same digit, found at a quarter of the cost), with the
# ink level taken among the pixels that stand out from the paper (a small digit in a big photo).
PREPROCESSING_VERSIONS = (1, 2, 3)
LATEST_VERSION = PREPROCESSING_VERSIONS[-1]
# Version 2's light flattening: the paper's brightness is a grey closing of the picture (the
# ink removed) over a square FLATTEN_STROKES times the ink's stroke width (at least FLATTEN_MIN
# px), on a copy of at most FLATTEN_WORKING px per side, blurred; the picture is divided by it.
FLATTEN_STROKES = 3.0
FLATTEN_MIN = 9
FLATTEN_WORKING = 256
# Version 3: a picture whose sides are both at least twice REDUCED_SIDE px is box-averaged by
# the largest whole factor that keeps the shorter side at REDUCED_SIDE or more (a 280×280
# upload → 140): a digit as tall as the picture still spans several times the 20 px it ends up
# in, and every later step costs pixels. The shorter side, so that a long strip keeps its height.
REDUCED_SIDE = 128
# Version 3: the ink level is the brightest half percent of the pixels at least MIN_CONTRAST
# brighter than the paper, not of all pixels: a digit covering less than half a percent of a
# photo (a digit 15% of the frame's height) left that level on the paper, and the digit was
# lost. Fewer than MIN_INK_PIXELS such pixels are specks, not a digit.
MIN_INK_PIXELS = 20

_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Signatures of image formats people send that we do not read: 415, not "not an image".
_UNSUPPORTED_SIGNATURES = (
    (b"%PDF", "PDF"),
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"icns", "ICNS"),
)
_UNSUPPORTED_FTYP = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"mif1": "HEIF",
                     b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


class ImageError(ValueError):
    """An image this service can't make a digit of; `code` is the stable error code."""

    code = "invalid_image"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code


class UnreadableImageError(ImageError):
    """Empty, truncated or not an image at all."""


class ImageTooLargeError(ImageError):
    code = "image_too_large"


class UnsupportedImageFormatError(ImageError):
    code = "unsupported_image_format"


class NoDigitFoundError(ImageError):
    code = "no_digit_found"


@dataclass
class Preprocessed:
    image: np.ndarray  # (28, 28, 1) float32 in [0, 1], white ink on black
    version: int = 1  # the preprocessing version that made it

    def png_data_url(self) -> str:
        """The 28×28 image the model saw, as a PNG data URL."""
        pixels = np.rint(self.image[..., 0] * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, "L").save(buffer, "PNG", compress_level=1)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------------- decoding


def open_image(data: bytes) -> Image.Image:
    """Decode `data` into pixels, refusing bombs, truncated files and unsupported formats."""
    if not data:
        raise UnreadableImageError("The image is empty.", "empty_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=READABLE_FORMATS)
            _refuse_bombs(image)
            if image.format == "PNG":
                decoded = decode_plain_png(data)  # libspng: the same pixels, faster
                if decoded is not None:
                    return decoded
            # JPEG can decode at 1/2, 1/4 or 1/8 scale directly: a 12-megapixel photo then
            # costs a fraction of the time and memory.
            if image.format == "JPEG":
                image.draft("L", (WORKING_SIZE, WORKING_SIZE))
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels() from None
    except UnidentifiedImageError:
        raise _unreadable(data) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
            raise UnreadableImageError("The image file is truncated: part of it is missing.",
                                       "truncated_image") from None
        raise UnreadableImageError(f"The image can't be decoded: {exc}") from None
    return image


def _refuse_bombs(image: Image.Image) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise UnreadableImageError("The image has no pixels.")
    if width * height > MAX_PIXELS:
        raise _too_many_pixels(width, height)


def _too_many_pixels(width: int | None = None, height: int | None = None) -> ImageError:
    size = f" ({width}×{height})" if width else ""
    return ImageTooLargeError(f"The image has too many pixels{size}; the limit is {MAX_PIXELS:,}.")


def _unreadable(data: bytes) -> ImageError:
    fmt = _unsupported_format(data)
    if fmt:
        return UnsupportedImageFormatError(
            f"{fmt} images are not supported; send {READABLE_NAMES}.")
    return UnreadableImageError(
        f"The file is not an image this service can read ({READABLE_NAMES}).")


def _unsupported_format(data: bytes) -> str | None:
    head = data[:512]
    for signature, name in _UNSUPPORTED_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[4:8] == b"ftyp" and head[8:12] in _UNSUPPORTED_FTYP:
        return _UNSUPPORTED_FTYP[head[8:12]]
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG"
    try:  # one Pillow can identify but that is not on our list (PSD, ICNS, DDS, EPS...)
        with Image.open(io.BytesIO(data)) as other:
            return other.format
    except Exception:  # noqa: BLE001 - anything else is simply "not an image"
        return None


# ---------------------------------------------------------------------- the MNIST recipe


def preprocess(data: bytes, version: int = 1) -> Preprocessed:
    """Bytes of an uploaded image → the 28×28 float image an MNIST model expects.

    `version` is the preprocessing the model was trained for (its metadata's
    `preprocessing.version`; 1 when it says none): 1 is the recipe above, unchanged; 2 also
    flattens uneven light on dark-ink-on-light-paper pictures before finding the ink, and
    normalises the stroke width of the 28×28 result (stroke_width.py); 3 is 2 on a reduced copy
    of a large picture (REDUCED_SIDE), with the ink level taken among the pixels that stand out
    from the paper (MIN_INK_PIXELS).
    """
    version = check_version(version)
    image = open_image(data)
    image = _upright(_bounded(image), _orientation(image))
    gray = _grayscale(image)
    if version >= 3:
        gray = _reduced(gray)
    if version >= 2:
        gray = _flatten_light(gray, version)
    ink = _ink_bright_on_black(gray, version)
    digit = _crop_to_ink(ink)
    field = _centre_in_field(_scale_to_box(digit))
    if version >= 2:
        field = normalise_stroke_width(field)
    return Preprocessed(field[..., None], version)


def check_version(version) -> int:
    """`version` as a known preprocessing version, else ValueError."""
    if isinstance(version, bool) or version not in PREPROCESSING_VERSIONS:
        raise ValueError(f"unknown preprocessing version {version!r}; this service knows "
                         f"{', '.join(map(str, PREPROCESSING_VERSIONS))}")
    return int(version)


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - broken EXIF is no reason to refuse the picture
        return 1


def _bounded(image: Image.Image) -> Image.Image:
    """At most WORKING_SIZE px per side (a photo's detail beyond that is not needed)."""
    if max(image.size) <= WORKING_SIZE:
        return image
    if image.mode not in ("L", "LA", "RGB", "RGBA", "F", "I"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    image = image.copy()
    image.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.Resampling.BOX)
    return image


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    """Apply the EXIF orientation, as phone photos are stored sideways."""
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def _grayscale(image: Image.Image) -> np.ndarray:
    """Gray levels as uint8, transparency flattened onto a contrasting background.

    A canvas drawing is often ink on fully transparent pixels whose hidden colour is black;
    flattening onto a fixed colour would lose either black or white ink, so the background is
    the opposite of the visible ink's brightness.
    """
    if not _has_alpha(image):
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float scans
            values = np.asarray(image, dtype=np.float32)
            low, high = float(values.min()), float(values.max())
            return np.rint((values - low) * (255.0 / ((high - low) or 1.0))).astype(np.uint8)
        return np.asarray(image.convert("L"))
    # Opaque after all (the page's drawings are): the gray levels as they are, at a fraction of
    # the cost of the float blend below (which would give the same).
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] == 255:
        return np.asarray(image.convert("L"))
    pixels = np.asarray(image.convert("LA"), dtype=np.float32)
    gray, alpha = pixels[..., 0], pixels[..., 1] / 255.0
    if alpha.min() >= 1.0:
        return gray.astype(np.uint8)
    weight = float(alpha.sum())
    visible_mean = float((gray * alpha).sum() / weight) if weight else 0.0
    background = 255.0 if visible_mean < 128 else 0.0
    return np.rint(gray * alpha + background * (1.0 - alpha)).astype(np.uint8)


def _reduced(gray: np.ndarray) -> np.ndarray:
    """Version 3: `gray` box-averaged by a whole factor to REDUCED_SIDE px or more per side."""
    factor = min(gray.shape) // REDUCED_SIDE
    if factor < 2:
        return gray
    return np.asarray(Image.fromarray(gray, "L").reduce(factor))


def _level(values: np.ndarray, share: float) -> int:
    """The gray level below which `share` of `values` (uint8) lie: a percentile in O(n)."""
    cumulative = np.cumsum(np.bincount(values.ravel(), minlength=256))
    return int(np.searchsorted(cumulative, share * cumulative[-1]))


def _ink_bright_on_black(gray: np.ndarray, version: int) -> np.ndarray:
    """Ink in [0, 1] on 0: inverted when the paper is light, paper level and noise removed.

    The paper is what the border mostly shows (a digit is drawn inside its picture); the ink
    level is the brightest half percent after inverting (version 3: of the pixels that stand out
    from the paper). Everything fainter than NOISE_FLOOR of the way from paper to ink is set to
    0: paper texture, JPEG noise, faint shadows.
    """
    background = _level(_border(gray), 0.5)
    if background > 127:
        gray = 255 - gray
        background = 255 - background
    ink_level = _ink_level(gray, background) if version >= 3 else _level(gray, 0.995)
    if ink_level - background < MIN_CONTRAST:
        raise _no_digit()
    ink = (gray.astype(np.float32) - background) * (1.0 / (ink_level - background))
    np.clip(ink, 0.0, 1.0, out=ink)
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def _ink_level(gray: np.ndarray, background: int) -> int:
    """Version 3's ink level: the brightest half percent of the pixels that stand out from the
    paper (bright ink on dark, as `_ink_bright_on_black` has turned it)."""
    standing_out = gray[gray >= background + MIN_CONTRAST]
    if standing_out.size < MIN_INK_PIXELS:
        raise _no_digit()
    return _level(standing_out, 0.995)


def _flatten_light(gray: np.ndarray, version: int) -> np.ndarray:
    """Version 2: dark ink on light paper divided by the paper's own brightness, so that a
    shadow or light falling off across the sheet is not taken for ink. White-on-black pictures
    (the page's drawings) and pictures without a digit are returned as they are.

    The paper's brightness is a grey closing (a max filter, then a min filter) over a square
    several strokes wide: the ink, narrower than the square, is filled with the paper around it.
    The stroke width comes from a first pass of version 1 (ink pixels over boundary pixels × 2).
    """
    if _level(_border(gray), 0.5) <= 127:
        return gray
    try:
        ink = _ink_bright_on_black(gray, version)
    except ImageError:
        return gray
    mask = ink > 0.5
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    boundary = int(mask.sum()) - int(inner.sum())
    if boundary == 0:
        return gray
    stroke = 2.0 * float(mask.sum()) / boundary
    # Work on a reduced copy: the light varies slowly, and the filters cost size² per pixel.
    height, width = gray.shape
    scale = min(1.0, FLATTEN_WORKING / max(height, width))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(gray, "L")
    if scale < 1.0:
        small = small.resize(small_size, Image.Resampling.BOX)
    window = int(min(max(FLATTEN_MIN * scale, FLATTEN_STROKES * stroke * scale),
                     max(small_size))) // 2 * 2 + 1
    closed = _square_filter(_square_filter(np.asarray(small), window, np.max), window, np.min)
    background = Image.fromarray(closed, "L").filter(ImageFilter.GaussianBlur(window / 5))
    if scale < 1.0:
        background = background.resize((width, height), Image.Resampling.BILINEAR)
    paper = np.maximum(np.asarray(background, np.float32), 1.0)
    flat = gray.astype(np.float32) * (255.0 / paper)
    return np.rint(np.clip(flat, 0.0, 255.0)).astype(np.uint8)


def _square_filter(values: np.ndarray, size: int, reduce) -> np.ndarray:
    """max or min (`reduce` is np.max or np.min) over a size×size square (odd size) around each
    pixel, edges repeated: one dimension at a time."""
    pair = np.maximum if reduce is np.max else np.minimum
    return _along_rows(_along_rows(values, size, pair).T, size, pair).T


def _along_rows(values: np.ndarray, size: int, pair) -> np.ndarray:
    """Each pixel's extreme over the `size` rows centred on it, in log2(size) whole-array steps
    (a sparse table): after the loop a row holds the extreme of the `span` rows from it, and two
    overlapping spans cover any window from span to 2 × span rows. A window of 25 on 256×256
    costs ~0.1 ms, where a sliding window's reduce cost ~5 ms."""
    half = size // 2
    # Edges repeated; np.pad does the same at ~10× the cost on arrays this small.
    padded = np.concatenate([np.repeat(values[:1], half, axis=0), values,
                             np.repeat(values[-1:], half, axis=0)])
    span, extreme = 1, padded
    while span * 2 <= size:
        extreme = pair(extreme[:-span], extreme[span:])
        span *= 2
    rows = values.shape[0]
    return pair(extreme[:rows], extreme[size - span: size - span + rows])


def _border(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    band = max(1, min(height, width) // 20)
    return np.concatenate([gray[:band].ravel(), gray[-band:].ravel(),
                           gray[:, :band].ravel(), gray[:, -band:].ravel()])


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        raise _no_digit()
    cols = np.flatnonzero(ink.any(axis=0))
    return ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def _scale_to_box(digit: np.ndarray) -> np.ndarray:
    """Longer side to 20 px, aspect ratio kept (Pillow's resampling is area-aware)."""
    height, width = digit.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return digit
    resized = Image.fromarray(digit, "F").resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _centre_in_field(digit: np.ndarray) -> np.ndarray:
    """Place `digit` in 28×28 so that its centre of mass falls on the centre of the field."""
    height, width = digit.shape
    mass = float(digit.sum())
    if mass <= 0:
        raise _no_digit()
    centre_row = float(digit.sum(axis=1) @ np.arange(height, dtype=np.float32)) / mass
    centre_col = float(digit.sum(axis=0) @ np.arange(width, dtype=np.float32)) / mass
    middle = FIELD / 2  # where MNIST has it: its mean centre of mass is at index 14.0
    top = min(max(round(middle - centre_row), 0), FIELD - height)
    left = min(max(round(middle - centre_col), 0), FIELD - width)
    field = np.zeros((FIELD, FIELD), np.float32)
    field[top: top + height, left: left + width] = digit
    return field


def _no_digit() -> ImageError:
    return NoDigitFoundError("No digit found: the image is blank or has too little contrast.")

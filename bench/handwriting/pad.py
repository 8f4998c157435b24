"""The page's drawing pad (ui/static/js/drawpad.js), replayed in Python.

Strokes are kept in pad coordinates from 0 to 1. The pad draws each one as a path through its
points smoothed with quadratic curves (each point a control point, the midpoints the curve's
ends), stroked with `lineCap = lineJoin = "round"` and a pen `STROKE_WIDTH` of the pad's size; it
sends the model a 280×280 PNG (`EXPORT_SIZE`) of white ink on black, from `toDataURL`.

A round-capped, round-joined stroke is the path swept by a disk, so here it is drawn as that
union: a wide segment between every two points of the flattened curve and a disk on every
point, at 4× the size, then box-filtered down (anti-aliasing as the browser's canvas does).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

STROKE_WIDTH = 0.075  # drawpad.js: of the pad's width
EXPORT_SIZE = 280  # drawpad.js: the PNG the page sends
SUPERSAMPLE = 4
CURVE_STEPS = 6  # line segments per quadratic curve


def smoothed_path(points: np.ndarray) -> np.ndarray:
    """drawStrokes()' path, flattened: moveTo p0, quadraticCurveTo(p_i, mid(p_i, p_i+1)) for
    the inner points, lineTo the last point."""
    points = np.asarray(points, np.float64)
    if len(points) < 3:
        return points
    t = np.linspace(0.0, 1.0, CURVE_STEPS + 1)[1:, None]
    out = [points[:1]]
    start = points[0]
    for i in range(1, len(points) - 1):
        control, end = points[i], (points[i] + points[i + 1]) / 2
        out.append((1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end)
        start = end
    out.append(points[-1:])
    return np.concatenate(out)


def render(strokes: list[np.ndarray], width: float = STROKE_WIDTH,
           size: int = EXPORT_SIZE) -> np.ndarray:
    """uint8 (size, size): the strokes (0–1 coordinates) in white on black, anti-aliased."""
    big = size * SUPERSAMPLE
    image = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(image)
    pen = width * big
    radius = pen / 2
    for stroke in strokes:
        path = smoothed_path(np.asarray(stroke, np.float64) * big)
        flat = [tuple(point) for point in path]
        if len(flat) > 1:
            draw.line(flat, fill=255, width=max(1, round(pen)))
        for x, y in flat:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(image.resize((size, size), Image.Resampling.BOX))


def export_png(pixels: np.ndarray) -> bytes:
    """The pad's `toDataURL("image/png")` bytes: an opaque RGBA PNG, as a canvas exports."""
    rgba = np.empty((*pixels.shape, 4), np.uint8)
    rgba[..., :3] = pixels[..., None]
    rgba[..., 3] = 255
    buffer = io.BytesIO()
    # How hard the PNG is compressed changes its size, not its pixels: the fastest level.
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()

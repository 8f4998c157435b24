"""Digits as pen strokes: thin an image to a one-pixel skeleton and trace it into polylines.

`skeleton()` upscales a 28×28 digit (bicubic), thresholds it and thins it with scikit-image.
`trace()` walks the skeleton's pixels as a graph: pixels with one neighbour are stroke ends,
with three or more are junctions, and each run of two-neighbour pixels between them is one
polyline; loops with no end (an "0") are walked round once. Short spurs that thinning leaves on
a thick stroke are dropped, and polylines that meet end to end are joined again, so a drawn "1"
comes back as one stroke.
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize

UPSCALE = 4  # 28 px → 112 px before thinning: the skeleton's path is smoother
THRESHOLD = 0.4  # of the digit's brightest level: what counts as ink
SPUR_SHARE = 0.12  # a branch that ends free and is shorter than this share of the digit: a spur

_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def skeleton(ink: np.ndarray) -> np.ndarray:
    """bool skeleton of one upscaled digit (float in [0, 1], any size)."""
    level = float(ink.max())
    if level <= 0:
        return np.zeros(ink.shape, bool)
    return skeletonize(ink >= THRESHOLD * level)


def _neighbours(pixels: set, pixel: tuple[int, int]) -> list[tuple[int, int]]:
    """8-neighbours, but not a diagonal one also reached through a shared 4-neighbour.

    Without that rule every diagonal step of the skeleton is a small triangle whose corners all
    look like junctions.
    """
    row, col = pixel
    found = []
    for dr, dc in _OFFSETS:
        other = (row + dr, col + dc)
        if other not in pixels:
            continue
        if dr and dc and ((row + dr, col) in pixels or (row, col + dc) in pixels):
            continue
        found.append(other)
    return found


def _walk_graph(mask: np.ndarray) -> tuple[list[list], dict]:
    pixels = {(int(r), int(c)) for r, c in zip(*np.nonzero(mask), strict=True)}
    graph = {pixel: _neighbours(pixels, pixel) for pixel in sorted(pixels)}
    nodes = [pixel for pixel, near in graph.items() if len(near) != 2]
    used: set = set()
    paths: list[list] = []

    def edge(a, b):
        return (a, b) if a <= b else (b, a)

    def follow(start, step):
        path = [start, step]
        used.add(edge(start, step))
        previous, current = start, step
        while len(graph[current]) == 2:
            ahead = [p for p in graph[current] if p != previous and edge(current, p) not in used]
            if not ahead:
                break
            previous, current = current, ahead[0]
            used.add(edge(previous, current))
            path.append(current)
        return path

    for node in nodes:
        if not graph[node]:
            paths.append([node])  # a lone pixel: a dot
        for near in graph[node]:
            if edge(node, near) not in used:
                paths.append(follow(node, near))
    for pixel, near in graph.items():  # loops: every pixel has two neighbours
        if len(near) == 2 and edge(pixel, near[0]) not in used:
            paths.append(follow(pixel, near[0]))  # ends back on `pixel`: closed
    degree = {pixel: len(near) for pixel, near in graph.items()}
    return paths, degree


def _length(path) -> float:
    points = np.asarray(path, np.float64)
    return float(np.hypot(*np.diff(points, axis=0).T).sum()) if len(points) > 1 else 0.0


def _prune_spurs(paths: list[list], degree: dict, extent: float) -> list[list]:
    limit = SPUR_SHARE * extent
    if len(paths) < 2:
        return paths
    kept = []
    for path in paths:
        ends = (degree[path[0]], degree[path[-1]])
        free_end = 1 in ends and max(ends) >= 3  # one end free, the other on a junction
        if free_end and _length(path) < limit:
            continue
        kept.append(path)
    return kept or paths


def _join(paths: list[list]) -> list[list]:
    """Join polylines whose ends meet where no third polyline ends (left after pruning)."""
    paths = [list(path) for path in paths]
    changed = True
    while changed:
        changed = False
        ends: dict = {}
        for index, path in enumerate(paths):
            if len(path) > 1 and path[0] != path[-1]:
                for end in (path[0], path[-1]):
                    ends.setdefault(end, []).append(index)
        for end, members in ends.items():
            if len(members) != 2 or members[0] == members[1]:
                continue
            first, second = (paths[i] for i in members)
            if first[-1] != end:
                first.reverse()
            if second[0] != end:
                second.reverse()
            paths[members[0]] = first + second[1:]
            del paths[members[1]]
            changed = True
            break
    return paths


def trace(mask: np.ndarray, min_pixels: int = 3) -> list[np.ndarray]:
    """Polylines of a skeleton: float (k, 2) arrays of (x, y) pixel centres, longest first."""
    if not mask.any():
        return []
    paths, degree = _walk_graph(mask)
    rows, cols = np.nonzero(mask)
    extent = float(max(np.ptp(rows), np.ptp(cols)) + 1)
    paths = [path for path in paths if len(path) >= min_pixels] or paths
    paths = _join(_prune_spurs(paths, degree, extent))
    polylines = [np.asarray([(c, r) for r, c in path], np.float64) for path in paths]
    return sorted(polylines, key=lambda line: -_length(line[:, ::-1]))


def simplify(line: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker: the fewest points within `tolerance` of the polyline."""
    from skimage.measure import approximate_polygon

    if len(line) < 3:
        return line
    return approximate_polygon(line, tolerance)


def resample(line: np.ndarray, spacing: float) -> np.ndarray:
    """Extra points so that no two in a row are further apart than `spacing` (as pointer
    events along a stroke arrive every few pixels)."""
    if len(line) < 2:
        return line
    out = [line[:1]]
    for a, b in zip(line[:-1], line[1:], strict=True):
        pieces = max(1, int(np.ceil(np.hypot(*(b - a)) / spacing)))
        steps = np.linspace(0.0, 1.0, pieces + 1)[1:, None]
        out.append(a + (b - a) * steps)
    return np.concatenate(out)

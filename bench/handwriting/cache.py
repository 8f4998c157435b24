"""Generated sets, kept: the preprocessed 28×28 inputs and labels of every set, by set, version,
seed, MNIST source and size, so each run scores exactly the same images without making them again.

Files: `<cache dir>/<set>-v<version>-s<seed>-<source>-n<count>-p<preprocessing>.npz` (the
set's version, and the service's preprocessing version the inputs were made with; default cache dir
`~/.cache/digits/handwriting`, or `$XDG_CACHE_HOME/digits/handwriting`). Each holds the digest
of the service's preprocessing code that made it and the file's FORMAT: a set made by other
preprocessing, or stored another way, is made again.
"""

from __future__ import annotations

import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .service import preprocess_uploads, preprocessing_digest

# What a cache file holds and how (the samples' thumbnails too): a new FORMAT makes every set again.
FORMAT = 2
SAMPLES = 8  # uploads kept as pictures, for the sample sheet
THUMBNAIL = 84


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digits" / "handwriting"


@dataclass
class PreparedSet:
    name: str
    description: str
    inputs: np.ndarray  # float32 (N, 28, 28): what the model sees
    labels: np.ndarray  # int64 (N,)
    refused: np.ndarray  # bool (N,): the service found no digit (an error, not an answer)
    samples: np.ndarray  # uint8 (SAMPLES, THUMBNAIL, THUMBNAIL, 3): the first uploads, as sent
    seconds: float  # how long making the set took (0 for a set read from the cache)
    cached: bool = False

    def __len__(self) -> int:
        return len(self.labels)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def cache_path(cache_dir: Path, module, seed: int, source, count: int,
               preprocessing: int = 1) -> Path:
    source_name = source.name if getattr(module, "USES_MNIST", True) else "own"
    return Path(cache_dir) / (f"{slug(module.NAME)}-v{module.VERSION}-s{seed}-"
                              f"{slug(source_name)}-n{count}-p{preprocessing}.npz")


def thumbnail(data: bytes) -> np.ndarray:
    """An upload as a THUMBNAIL² RGB picture (aspect kept, on grey), larger side filling it."""
    with Image.open(io.BytesIO(data)) as image:
        picture = image.convert("RGB")
    scale = THUMBNAIL / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    # Small uploads (a 28×28 PNG) are enlarged with hard pixel edges, large ones shrunk smoothly.
    picture = picture.resize(size, Image.Resampling.NEAREST if scale > 1
                             else Image.Resampling.LANCZOS)
    sheet = Image.new("RGB", (THUMBNAIL, THUMBNAIL), (128, 128, 128))
    sheet.paste(picture, ((THUMBNAIL - picture.width) // 2, (THUMBNAIL - picture.height) // 2))
    return np.asarray(sheet)


def store(path: Path, prepared: PreparedSet, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        np.savez_compressed(handle, inputs=prepared.inputs, labels=prepared.labels,
                            refused=prepared.refused, samples=prepared.samples,
                            seconds=np.float64(prepared.seconds), digest=np.str_(digest))
    temporary.replace(path)


def load(path: Path, module, digest: str) -> PreparedSet | None:
    """The set stored at `path`, or None when it is missing, unreadable or made by other code."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if str(archive["digest"]) != digest:
                return None
            return PreparedSet(module.NAME, module.DESCRIPTION, archive["inputs"],
                               archive["labels"], archive["refused"], archive["samples"],
                               float(archive["seconds"]), cached=True)
    except (OSError, KeyError, ValueError):
        return None


def make(module, source, count: int, seed: int, preprocessing: int = 1) -> PreparedSet:
    """Generate a set's uploads and run the service's preprocessing (that version) on each."""
    started = time.perf_counter()
    uploads = module.generate(source, count, seed)
    inputs, refused = preprocess_uploads(uploads.files, preprocessing)
    samples = np.stack([thumbnail(data) for data in uploads.files[:SAMPLES]])
    return PreparedSet(module.NAME, module.DESCRIPTION, inputs, uploads.labels, refused,
                       samples, time.perf_counter() - started)


def prepare(module, source, count: int, seed: int, cache_dir: Path | None,
            refresh: bool = False, preprocessing: int = 1) -> PreparedSet:
    """The set from the cache, or made (and stored) when the cache lacks it or `refresh`;
    its inputs made by the service's preprocessing version `preprocessing`."""
    digest = f"{preprocessing_digest()}-f{FORMAT}"
    path = (cache_path(cache_dir, module, seed, source, count, preprocessing) if cache_dir
            else None)
    if path is not None and not refresh:
        found = load(path, module, digest)
        if found is not None:
            return found
    prepared = make(module, source, count, seed, preprocessing)
    if path is not None:
        store(path, prepared, digest)
    return prepared

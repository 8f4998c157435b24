"""The feedback store: users' corrected digits on the model volume, under `feedback/`.

One sample is up to three files named by its id, the first 24 hex digits of the sha256 of its
28×28 pixels (so the same image is stored once, whoever sends it again):

- `<id>.png`   the 28×28 image exactly as the model saw it (white ink on black, as MNIST)
- `<id>.orig`  the original upload, when one came (its type is in the record), so that a later,
               better preprocessing can be applied to it again
- `<id>.json`  the record: label, what the model said, review state. Written last: it is what
               makes a sample exist. A crash before it leaves at most image files without a
               record, which no reader lists and the next add of the same image overwrites.

Every file is written atomically (volume.py). Changes (add, review, delete, the cap) happen under
one `flock` shared by every process on the volume. The train service is the only writer; the
inference service and the training jobs only read.

The split is fixed per sample: a sample whose id hashes into the lowest TEST_PERCENT of 100
buckets is in the feedback *test* split, forever, so a model trained on feedback is never scored
on a sample it saw.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.timeutil import utc_now_iso
from train.volume import read_json, write_bytes_atomic, write_json_atomic

FEEDBACK_FOLDER = "feedback"
ID_LENGTH = 24
ID_PATTERN = re.compile(rf"^[0-9a-f]{{{ID_LENGTH}}}$")
TEST_PERCENT = 20
RACY_NS = 1_000_000_000
IMAGE_SIDE = 28
# The record's fields kept on disk; `correct`, `split` and the URLs are derived when shown.
RECORD_FIELDS = ("id", "label", "predicted", "confidence", "model", "preprocessing_version",
                 "created_at", "reviewed", "reviewed_at", "original_type")


class SampleNotFoundError(Exception):
    def __init__(self, sample_id: str):
        self.sample_id = sample_id
        super().__init__(f"there is no feedback sample {sample_id!r}")


class FeedbackVolumeFullError(OSError):
    """The volume has no room for the sample; nothing of it was kept."""


def feedback_dir(model_dir: Path) -> Path:
    return Path(model_dir) / FEEDBACK_FOLDER


def sample_id(pixels: np.ndarray) -> str:
    """The id of a 28×28 uint8 image: the same pixels always get the same id."""
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()[
        :ID_LENGTH]


def is_sample_id(value: str) -> bool:
    return isinstance(value, str) and bool(ID_PATTERN.fullmatch(value))


def split_of(sample_id: str) -> str:
    """`test` for a fixed TEST_PERCENT of ids (by a hash of the id), `train` for the others."""
    bucket = int(hashlib.sha256(f"split:{sample_id}".encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < TEST_PERCENT else "train"


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="L").save(
        buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def png_pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


def is_disk_full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Added:
    sample: dict
    duplicate: bool


class FeedbackStore:
    def __init__(self, model_dir: Path, max_samples: int = 10_000):
        self.folder = feedback_dir(model_dir)
        self.max_samples = max_samples
        # (the folder's mtime, its records newest first): see all().
        self.cache: tuple[int, list[dict]] | None = None

    # ------------------------------------------------------------------ files

    def record_path(self, sample_id: str) -> Path:
        return self.folder / f"{sample_id}.json"

    def image_path(self, sample_id: str) -> Path:
        return self.folder / f"{sample_id}.png"

    def original_path(self, sample_id: str) -> Path:
        return self.folder / f"{sample_id}.orig"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One exclusive lock for every change, shared by all processes using the volume."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ reading

    def get(self, sample_id: str) -> dict | None:
        if not is_sample_id(sample_id):
            return None
        record = read_json(self.record_path(sample_id))
        return record if record and record.get("id") == sample_id else None

    def require(self, sample_id: str) -> dict:
        record = self.get(sample_id)
        if record is None:
            raise SampleNotFoundError(sample_id)
        return record

    def all(self) -> list[dict]:
        """Every sample's record, newest first (dot-files are temporaries, never records).

        Reading 10,000 records takes a second or two, so the list is kept while the folder's
        mtime stays the same: every change is a rename or an unlink in the folder, which sets it.
        A listing made less than a second after the last change is not kept, since two changes
        within one tick of the file system's clock would leave the same mtime (git's "racy" rule).
        """
        try:
            changed = self.folder.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        cached = self.cache
        if cached is not None and cached[0] == changed:
            return list(cached[1])
        records = self.read_all()
        if time.time_ns() - changed > RACY_NS:
            self.cache = (changed, records)
        return list(records)

    def read_all(self) -> list[dict]:
        records = []
        for path in self.folder.glob("*.json"):
            if path.name.startswith(".") or not is_sample_id(path.stem):
                continue
            record = read_json(path)
            if record and record.get("id") == path.stem:
                records.append(record)
        return sorted(records, key=lambda r: (r.get("created_at", ""), r["id"]), reverse=True)

    def count_records(self) -> int:
        """How many records there are, from their names alone (cheap: nothing is read)."""
        if not self.folder.is_dir():
            return 0
        return sum(1 for path in self.folder.glob("*.json")
                   if not path.name.startswith(".") and is_sample_id(path.stem))

    def image(self, sample_id: str) -> bytes:
        self.require(sample_id)
        try:
            return self.image_path(sample_id).read_bytes()
        except FileNotFoundError:
            raise SampleNotFoundError(sample_id) from None

    def original(self, sample_id: str) -> tuple[bytes, str]:
        """The original upload and its media type; SampleNotFoundError when there is none."""
        record = self.require(sample_id)
        if not record.get("original_type"):
            raise SampleNotFoundError(sample_id)
        try:
            return self.original_path(sample_id).read_bytes(), record["original_type"]
        except FileNotFoundError:
            raise SampleNotFoundError(sample_id) from None

    # ------------------------------------------------------------------ changing

    def add(self, pixels: np.ndarray, fields: dict, original: tuple[bytes, str] | None) -> Added:
        """Store a sample; an image already stored is not stored again (`duplicate`).

        Raises FeedbackVolumeFullError when the volume is full: then whatever this call wrote
        is removed again and nothing else was touched.
        """
        new_id = sample_id(pixels)
        with self.locked():
            existing = self.get(new_id)
            if existing is not None:
                return Added(existing, duplicate=True)
            record = {"id": new_id, **fields, "created_at": utc_now_iso(), "reviewed": False,
                      "reviewed_at": None, "original_type": original[1] if original else None}
            self.write_new(new_id, pixels, record, original)
            self.enforce_cap()
        return Added(record, duplicate=False)

    def write_new(self, new_id: str, pixels: np.ndarray, record: dict,
                  original: tuple[bytes, str] | None) -> None:
        """Image, original, then the record (which makes the sample exist), each atomically."""
        written: list[Path] = []
        try:
            for path, data in ((self.image_path(new_id), png_bytes(pixels)),
                               (self.original_path(new_id), original[0] if original else None)):
                if data is not None:
                    write_bytes_atomic(path, data)
                    written.append(path)
            write_json_atomic(self.record_path(new_id), record)
        except OSError as error:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            if not is_disk_full(error):
                raise
            raise FeedbackVolumeFullError(
                error.errno, "the model volume is full: the sample was not stored (nothing "
                "else was changed); free some space, e.g. delete old models or samples") from error

    def update(self, sample_id: str, change: Callable[[dict], dict]) -> dict:
        with self.locked():
            record = self.require(sample_id)
            changed = change(dict(record))
            try:
                write_json_atomic(self.record_path(sample_id), changed)
            except OSError as error:
                if not is_disk_full(error):
                    raise
                raise FeedbackVolumeFullError(
                    error.errno, "the model volume is full: the sample was left as it was; free "
                    "some space, e.g. delete old models or samples") from error
            return changed

    def review(self, sample_id: str, label: int | None) -> dict:
        """Accept the sample's label, or set a new one; either way it is reviewed now."""
        def reviewed(record: dict) -> dict:
            return {**record, "label": record["label"] if label is None else label,
                    "reviewed": True, "reviewed_at": utc_now_iso()}

        return self.update(sample_id, reviewed)

    def delete(self, sample_id: str) -> None:
        with self.locked():
            self.require(sample_id)
            self.remove(sample_id)

    def remove(self, sample_id: str) -> None:
        # The record first: once it is gone the sample no longer exists for any reader.
        for path in (self.record_path(sample_id), self.image_path(sample_id),
                     self.original_path(sample_id)):
            path.unlink(missing_ok=True)

    def enforce_cap(self) -> list[str]:
        """Over max_samples: drop the oldest unreviewed samples first, then the oldest reviewed.

        Called under the lock. Returns the ids removed.
        """
        if self.count_records() <= self.max_samples:  # the usual case: no record read
            return []
        records = self.all()
        excess = len(records) - self.max_samples
        if excess <= 0:
            return []
        oldest_first = sorted(records, key=lambda r: (r.get("reviewed", False),
                                                      r.get("created_at", ""), r["id"]))
        removed = [record["id"] for record in oldest_first[:excess]]
        for old_id in removed:
            self.remove(old_id)
        return removed

    # ------------------------------------------------------------------ data

    def selected(self, include_unreviewed: bool) -> list[dict]:
        """The samples a data set uses: the reviewed ones, or all, oldest first (stable)."""
        return [record for record in reversed(self.all())
                if include_unreviewed or record.get("reviewed")]

    def arrays(self, records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(x uint8 N×28×28, y int64, split `<U5`, ids) of the records whose image is readable."""
        images, labels, splits, ids = [], [], [], []
        for record in records:
            try:
                pixels = png_pixels(self.image_path(record["id"]).read_bytes())
            except (OSError, ValueError):  # removed meanwhile, or unreadable: not a sample
                continue
            if pixels.shape != (IMAGE_SIDE, IMAGE_SIDE):
                continue
            images.append(pixels)
            labels.append(int(record["label"]))
            splits.append(split_of(record["id"]))
            ids.append(record["id"])
        x = (np.stack(images) if images
             else np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8))
        return x, np.asarray(labels, dtype=np.int64), np.asarray(splits, dtype="<U5"), ids


def public(record: dict) -> dict:
    """A sample as the API shows it: the record, whether the model was right, split and URLs."""
    sample = {field: record.get(field) for field in RECORD_FIELDS if field != "original_type"}
    sample["reviewed"] = bool(record.get("reviewed"))
    sample["correct"] = record.get("label") == record.get("predicted")
    sample["split"] = split_of(record["id"])
    sample["image_url"] = f"/api/feedback/{record['id']}/image"
    sample["original_url"] = (f"/api/feedback/{record['id']}/original"
                              if record.get("original_type") else None)
    return sample


def counts(records: list[dict]) -> dict:
    return {"total": len(records),
            "wrong": sum(1 for r in records if r.get("label") != r.get("predicted")),
            "unreviewed": sum(1 for r in records if not r.get("reviewed"))}


def ids_sha256(ids: list[str]) -> str:
    """One digest naming a set of samples (sorted ids, one per line)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


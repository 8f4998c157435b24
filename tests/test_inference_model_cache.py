"""The model cache when a model file is written over in place while a request waits to load it.

A person's plain `cp` over a model truncates the file, then grows it. A request that was
waiting for the model's load lock (another thread loading the version before) must not try to
load the half-written file, fail, and remember that failure: the version loaded before answers
until the copy is whole. (Seen once under load in tests/test_reliability_faults.py's "models
written while clients predict" as five 503s; here the same order of events, made certain.)
"""

from __future__ import annotations

import os
import sys
import threading
import zipfile

import pytest
from conftest import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from inference.model_cache import CacheEvents, ModelCache, ModelUnavailableError  # noqa: E402
from inference.runtime import CompiledModel  # noqa: E402
from inference.volume import ModelVolume  # noqa: E402


def write_model(path, text: str) -> bytes:
    """A stand-in `.keras` file: a whole zip archive holding `text`, with a newer mtime than
    the file it replaces (a real replacement's; the clock may not have moved between two)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", text)
    if before:
        os.utime(path, ns=(before + 10**9, before + 10**9))
    return path.read_bytes()


class Misses(CacheEvents):
    """Counts cache misses: a request that misses has checked the file and goes on to queue for
    the model's load lock."""

    def __init__(self):
        self.count = 0
        self.changed = threading.Condition()

    def cache_miss(self, name: str) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.count >= count, timeout=10), self.count


class GatedLoader:
    """Loads a stand-in model file as Keras would (a file that is not a whole zip fails), but
    holds the first load of `gated_text` until released, so a second request can queue behind
    it, and then fails it, as a read of a file overwritten meanwhile does."""

    def __init__(self, gated_text: str):
        self.gated_text = gated_text
        self.loading = threading.Event()
        self.release = threading.Event()
        self.loads = []

    def __call__(self, path):
        if not zipfile.is_zipfile(path):
            raise ValueError(f"File not found: filepath={path}")  # what Keras says then
        text = zipfile.ZipFile(path).read("config.json").decode()
        self.loads.append(text)
        if text == self.gated_text and not self.loading.is_set():
            self.loading.set()
            assert self.release.wait(10)
            raise OSError("the file changed under the reader")
        # The "forward call" says which version answered.
        return CompiledModel(forward=lambda images: text)


def test_a_request_queued_behind_a_load_is_answered_by_the_previous_version_while_a_copy_runs(
        tmp_path):
    model = tmp_path / "live.keras"
    write_model(model, "v1")
    loader = GatedLoader(gated_text="v2")
    misses = Misses()
    cache = ModelCache(ModelVolume(tmp_path), loader=loader, events=misses)
    assert cache.get("live").forward(None) == "v1"

    v2 = write_model(model, "v2")
    first = threading.Thread(target=lambda: answers.append(cache.get("live").forward(None)))
    answers: list[str] = []
    first.start()
    assert loader.loading.wait(10)  # the first request is loading v2, holding the load lock
    waiting: list[object] = []

    def second_request():
        try:
            waiting.append(cache.get("live").forward(None))
        except ModelUnavailableError as error:
            waiting.append(error)

    second = threading.Thread(target=second_request)
    second.start()
    misses.wait_for(3)  # v1's load, the first request's, the second's: it is queued on the lock
    with model.open("wb") as handle:  # `cp v3 live.keras` begins: truncated, a first chunk
        handle.write(v2[:40])
        handle.flush()
        loader.release.set()  # the first load fails on the changed file
        first.join(10)
        second.join(10)
        partial = model.read_bytes()
        assert answers == ["v1"] and waiting == ["v1"], (answers, waiting)
        assert not zipfile.is_zipfile(model) and partial == v2[:40]
        handle.write(v2[40:])  # the copy completes
    assert cache.get("live").forward(None) == "v2"
    assert loader.loads.count("v2") >= 2  # loaded again once whole, no failure remembered


def test_a_file_that_never_becomes_whole_is_unavailable_once_the_write_is_old(tmp_path,
                                                                               monkeypatch):
    import inference.model_cache as model_cache

    model = tmp_path / "live.keras"
    write_model(model, "v1")
    cache = ModelCache(ModelVolume(tmp_path), loader=GatedLoader(gated_text="never"))
    assert cache.get("live").forward(None) == "v1"
    model.write_bytes(b"PK\x03\x04 half a zip")
    assert cache.get("live").forward(None) == "v1"  # while it is being written
    monkeypatch.setattr(model_cache, "WRITE_IN_PROGRESS_SECONDS", 0.0)
    with pytest.raises(ModelUnavailableError):
        cache.get("live")

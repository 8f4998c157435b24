"""Faults while feedback samples are written (issue 13): a crash mid-write, a full volume.

- A crash: a process storing a sample through the store's own code is killed (`os._exit`, as a
  SIGKILL or a power cut would end it) at each point of the write: while the image's temporary
  file is written, after the image and before the original, while the record's temporary file is
  written, after the record and before the cap. Then the real train service serves the volume:
  the samples stored earlier are all there and byte-identical, no half sample is listed, and
  sending the same sample again works.
- A full volume: a small tmpfs as MODEL_DIR, filled but for 64 kB, gets a sample carrying a
  200 kB original: 507 `volume_full` with a message in words, nothing of the sample kept,
  nothing else touched; a review with not a byte left is refused the same way, the record
  unchanged; once space is freed the same request is stored.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import requests
from conftest import REPO, run_service
from test_feedback_api import MODEL, data_url, png, sample_body
from test_reliability_faults import FAULTS, fill_up, small_volume  # noqa: F401 - a fixture

CRASH_POINTS = {
    "writing the image": "fsync 1",
    "after the image, before the original": "fsync 2",
    "writing the record": "fsync 3",
    "after the record, before the cap": "cap",
}
# A child that stores one sample and is killed at `point` (see CRASH_POINTS).
CRASHING_WRITER = textwrap.dedent("""
    import os, sys
    import numpy as np
    import train.feedback as feedback
    import train.volume as volume

    folder, point, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    calls = {"fsync": 0}
    real_fsync = volume.fsync_file

    def fsync_then_maybe_die(path):
        calls["fsync"] += 1
        if point == f"fsync {calls['fsync']}":
            os._exit(9)  # no cleanup, no finally: as a SIGKILL
        real_fsync(path)

    volume.fsync_file = fsync_then_maybe_die
    if point == "cap":
        feedback.FeedbackStore.enforce_cap = lambda self: os._exit(9)
    pixels = np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)
    feedback.FeedbackStore(folder).add(
        pixels, {"label": 5, "predicted": 3, "confidence": 0.5, "model": "m",
                 "preprocessing_version": 1}, (b"\\x89PNG original bytes", "image/png"))
    sys.exit(0)
""")


def digests(folder) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir()) if path.is_file() and path.name != ".lock"}


def crash_writing(volume, point: str, seed: int) -> int:
    result = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(volume), point,
                             str(seed)], cwd=REPO, capture_output=True, text=True, timeout=60,
                            check=False)
    return result.returncode


@pytest.mark.reliability(FAULTS, "a crash while a feedback sample is written")
def test_a_crash_mid_write_loses_no_sample_and_lists_no_half_one(tmp_path, observed):
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / f"{MODEL}.keras").write_bytes(b"a stand-in: only its name is used")
    seen = []
    with run_service("train", volume, tmp_path / "logs", ready_path="/readyz",
                     FEEDBACK_RATE_LIMIT="0") as train:
        earlier = requests.post(train.url("/api/feedback"), json=sample_body(), timeout=30)
        assert earlier.status_code == 201
        for seed, (where, point) in enumerate(CRASH_POINTS.items(), start=100):
            before = digests(volume / "feedback")
            listed_before = {s["id"] for s in requests.get(
                train.url("/api/feedback"), timeout=10).json()["items"]}
            assert crash_writing(volume, point, seed) == 9, where
            after = digests(volume / "feedback")
            # Everything stored before is there, byte for byte.
            assert {name: after.get(name) for name in before} == before, where
            listing = requests.get(train.url("/api/feedback"), timeout=10).json()["items"]
            listed = {sample["id"] for sample in listing}
            committed = point == "cap"  # the record was in place when the process died
            assert len(listed - listed_before) == (1 if committed else 0), where
            for sample in listing:  # every listed sample is whole
                image = requests.get(train.url(sample["image_url"]), timeout=10)
                assert image.status_code == 200 and len(image.content) > 60, where
            export = requests.get(train.url("/api/feedback/export?include_unreviewed=true"),
                                  timeout=30)
            assert export.status_code == 200, where
            # The same sample again: stored now (or found, if the crash came after its record).
            pixels = np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)
            again = requests.post(train.url("/api/feedback"), json=sample_body(pixels),
                                  timeout=30)
            assert again.status_code == (200 if committed else 201), (where, again.text)
            leftovers = sorted(name for name in after if name not in before)
            seen.append(f"{where}: left {', '.join(leftovers) or 'nothing'}; "
                        f"listed {'the sample' if committed else 'no new sample'}; "
                        f"resent → {again.status_code}")
    observed("killed at each point of a sample's write; every earlier sample byte-identical "
             "and listed, no half sample listed, each resent sample stored: " + "; ".join(seen))


@pytest.mark.reliability(FAULTS, "the volume fills up while a feedback sample is stored")
def test_a_full_volume_refuses_the_sample_clearly_and_touches_nothing(
        small_volume, tmp_path, observed):  # noqa: F811 - the imported fixture
    volume = small_volume
    (volume / f"{MODEL}.keras").write_bytes(b"a stand-in: only its name is used")
    original = png(np.random.default_rng(7).integers(0, 256, (460, 460), dtype=np.uint8))
    assert 180_000 < len(original) <= 256 * 1024
    body = sample_body(original=data_url(original))
    with run_service("train", volume, tmp_path / "logs", ready_path="/healthz",
                     FEEDBACK_RATE_LIMIT="0") as train:
        first = requests.post(train.url("/api/feedback"), json=sample_body(), timeout=30)
        assert first.status_code == 201
        filler = fill_up(volume, 64 * 1024)
        before = {**digests(volume), **digests(volume / "feedback")}
        refused = requests.post(train.url("/api/feedback"), json=body, timeout=30)
        assert refused.status_code == 507, refused.text
        error = refused.json()["error"]
        assert error["code"] == "volume_full" and "full" in error["message"], error
        assert {**digests(volume), **digests(volume / "feedback")} == before
        assert [p.name for p in (volume / "feedback").iterdir() if p.name.startswith(".")] == \
            [".lock"]  # not even a temporary file left
        listed = requests.get(train.url("/api/feedback"), timeout=10).json()
        assert [s["id"] for s in listed["items"]] == [first.json()["id"]]

        # Not a byte left: a review can't rewrite the record, and says so; the record stays.
        record = volume / "feedback" / f"{first.json()['id']}.json"
        kept = record.read_bytes()
        filler = filler.rename(volume / "filler-1.bin")  # fill_up writes filler.bin afresh
        last_bytes = fill_up(volume, 0)
        review = requests.post(train.url(f"/api/feedback/{first.json()['id']}/review"),
                               json={"label": 0}, timeout=30)
        assert review.status_code == 507, review.text
        assert review.json()["error"]["code"] == "volume_full"
        assert record.read_bytes() == kept
        last_bytes.unlink()

        filler.unlink()
        stored = requests.post(train.url("/api/feedback"), json=body, timeout=30)
        assert stored.status_code == 201, stored.text
        assert requests.get(train.url(stored.json()["original_url"]),
                            timeout=10).content == original
    observed(f"a 16 MB tmpfs with 64 kB left, a sample with a {len(original) // 1000} kB "
             f"original: 507 volume_full “{error['message']}”; no file added or changed, no "
             "temporary left, the earlier sample still listed; a review with no byte left: 507, "
             "the record unchanged; with the space freed the same request got 201")

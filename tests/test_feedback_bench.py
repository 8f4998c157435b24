"""`make bench-feedback` (bench/bench_feedback.py): a small, fast run for correctness only.

The figures come from the benchmark itself (docs/handwriting.md); here: the split is two
disjoint halves, the corrections are stored as the feedback route stores samples, and a run of
one epoch on a few digits trains one model without and one with corrections and prints a row
for each. Bad input tried: more corrections than the pool holds (a clear exit, no training).
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from conftest import REPO

from bench import bench_feedback
from train.feedback import FeedbackStore, split_of


def test_the_split_is_two_disjoint_halves_the_same_every_time():
    pool, held_out = bench_feedback.split(1797)
    assert len(pool) == 898 and len(held_out) == 899
    assert not set(pool) & set(held_out)
    assert sorted([*pool, *held_out]) == list(range(1797))
    again, _ = bench_feedback.split(1797)
    assert np.array_equal(pool, again)


def test_corrections_are_stored_as_feedback_samples(tmp_path):
    inputs = np.random.default_rng(0).random((12, 28, 28)).astype(np.float32)
    labels = np.arange(12) % 10
    bench_feedback.store_corrections(tmp_path, inputs, labels, version=3)
    records = FeedbackStore(tmp_path).all()
    assert sorted(record["label"] for record in records) == sorted(labels.tolist())
    assert {record["preprocessing_version"] for record in records} == {3}
    # The store's own split decides which of them training may see.
    assert {record["id"] for record in records if split_of(record["id"]) == "train"}


def run(tmp_path, *args):
    command = [sys.executable, str(REPO / "bench" / "bench_feedback.py"),
               "--mnist-npz", str(tmp_path / "absent.npz"), "--count", "60",
               "--cache-dir", str(tmp_path / "cache"), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900,
                          check=False)


def test_a_small_run_trains_with_and_without_corrections_and_prints_a_row_each(tmp_path):
    result = run(tmp_path, "--corrections", "0,20", "--seeds", "1", "--epochs", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trained = re.search(r"20 corrections, seed 1: trained on (\d+) of them", result.stdout)
    assert trained and 0 < int(trained.group(1)) <= 20
    assert "0 corrections, seed 1: the starter itself" in result.stdout
    header = re.search(r"^\| corrections \| seeds \| other writers, held out \(30\) \|(.*)\|$",
                       result.stdout, re.M)
    assert header, result.stdout[-2000:]
    assert [name.strip() for name in header.group(1).split("|")] == [
        "MNIST test", "drawn", "photos", "thick", "thin"]
    rows = re.findall(r"^\| (\d+) \| 1 \| (.*) \|$", result.stdout, re.M)
    assert [row[0] for row in rows] == ["0", "20"]
    for _, cells in rows:
        values = [float(cell.strip().rstrip("%")) for cell in cells.split("|")]
        assert len(values) == 6 and all(0.0 <= value <= 100.0 for value in values)


def test_more_corrections_than_the_pool_holds_is_refused_before_training(tmp_path):
    result = run(tmp_path, "--corrections", "31", "--seeds", "1", "--epochs", "1")
    assert result.returncode != 0
    assert "at most 30 corrections" in result.stderr
    assert "trained on" not in result.stdout

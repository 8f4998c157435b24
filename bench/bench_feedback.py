"""`make bench-feedback`: how many people's corrections close the other writers' gap.

The handwriting benchmark's hardest set is other writers (optdigits: 43 people not in MNIST),
read ~94% right by the starter. The product's answer is the feedback loop: people correct the
digits it misreads, and the next model trains on MNIST plus their corrections. This measures it:
the other writers' digits, as the inference service preprocesses their uploads, are split at
random (SPLIT_SEED) into a pool of corrections and a held-out half (new digits of the same
people). For each N of --corrections, N of the pool are stored as feedback samples on a fresh
volume (train's own FeedbackStore, as the feedback route stores them) and the starter's recipe
trains on `mnist-5k+feedback` through `train_model` (every sample, reviewed or not, repeated
`feedback_weight` times; the store keeps a fifth of the samples, by their ids, as the feedback
test split, which training never sees). Each model is scored on the held-out half and on the
benchmark's other sets. N = 0 is the starter itself. Prints one table, the mean of the seeds.

    python bench/bench_feedback.py [--corrections 0,100,300] [--seeds 1,2,3] [--epochs N]
        [--mnist-npz PATH] [--count N] [--cache-dir DIR]     (make bench-feedback)

The benchmark's own digits never train a recipe: this is a measurement, not a training set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.handwriting import cache, each_prepared_set, other_writers, scoring  # noqa: E402
from bench.handwriting.service import latest_version  # noqa: E402
from bench.handwriting.source import load_source  # noqa: E402

SPLIT_SEED = 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_feedback.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corrections", default="0,100,300",
                   help="how many corrections each model trains on, comma-separated "
                        "(default: %(default)s; at most half of the other writers' digits)")
    p.add_argument("--seeds", default="1,2,3", help="training seeds (default: %(default)s)")
    p.add_argument("--epochs", type=int, help="override the starter's epochs (for a quick run)")
    p.add_argument("--mnist-npz", type=Path, help="the full MNIST for the MNIST-based sets")
    p.add_argument("--count", type=int,
                   help="at most this many images per set (other writers too: the pool of "
                        "corrections and the held-out digits are its two halves)")
    p.add_argument("--cache-dir", type=Path, default=cache.default_cache_dir(),
                   help="where generated sets are kept (default: %(default)s)")
    return p


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def prepared_sets(args, version: int) -> list:
    source = load_source(args.mnist_npz)
    print(f"digits from {source.description}", flush=True)
    return list(each_prepared_set(source, args.count, args.cache_dir, version))


def split(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool of corrections, held out): the two halves of a random order of `size` digits."""
    order = np.random.default_rng(SPLIT_SEED).permutation(size)
    return order[: size // 2], order[size // 2:]


def store_corrections(volume: Path, inputs: np.ndarray, labels: np.ndarray,
                      version: int) -> None:
    """Each 28×28 input as a feedback sample, the way the feedback route stores one."""
    from train.feedback import FeedbackStore
    from train.params import STARTER

    store = FeedbackStore(volume)
    for pixels, label in zip(inputs, labels, strict=True):
        pixels = np.rint(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
        # What the model had answered does not change training; no model read these digits.
        fields = {"label": int(label), "predicted": int(label), "confidence": 1.0,
                  "model": STARTER["name"], "preprocessing_version": version}
        store.add(pixels, fields, None)


def train(volume: Path, corrections: int, seed: int, epochs: int | None) -> Path:
    """The starter's recipe on mnist-5k, plus the stored corrections when there are any."""
    from train.params import STARTER, resolve
    from train.training import train_model

    request = {**STARTER, "name": f"feedback-{corrections}-s{seed}"}
    if corrections:
        request.update(dataset="mnist-5k+feedback", include_unreviewed=True)
    if epochs is not None:
        request["epochs"] = epochs
    params = resolve(request, volume)
    metadata = train_model(params, volume, seed=seed)
    trained_on = (metadata.get("feedback") or {}).get("samples", 0)
    kept = (f"trained on {trained_on} of them (the rest: the feedback test split)"
            if corrections else "the starter itself")
    print(f"  {corrections} corrections, seed {seed}: {kept}, {metadata['test_accuracy']:.2%} "
          f"on mnist-5k's test digits", flush=True)
    return volume / f"{params.name}.keras"


def accuracy(model, inputs: np.ndarray, labels: np.ndarray, refused: np.ndarray) -> float:
    """The benchmark's own scoring: an upload the service refused counts as wrong."""
    return scoring.score("", labels, scoring.predict(model, inputs), refused).accuracy


def measure(args) -> tuple[dict[int, list[list[float]]], list[str], int]:
    """({corrections: one row per seed: [held-out other writers, then every other set]},
    the other sets' names, the number of held-out digits)."""
    version = latest_version()
    sets = prepared_sets(args, version)
    writers = next(prepared for prepared in sets if prepared.name == other_writers.NAME)
    others = [prepared for prepared in sets if prepared is not writers]
    pool, held_out = split(len(writers))
    wanted = numbers(args.corrections)
    if max(wanted, default=0) > len(pool) or min(wanted, default=0) < 0:
        sys.exit(f"at most {len(pool)} corrections: half of the other writers' digits")
    rows: dict[int, list[list[float]]] = {}
    for corrections in wanted:
        for seed in numbers(args.seeds):
            with tempfile.TemporaryDirectory(prefix="bench-feedback-") as scratch:
                volume = Path(scratch)
                chosen = pool[:corrections]
                store_corrections(volume, writers.inputs[chosen], writers.labels[chosen],
                                  version)
                model = scoring.load_model(train(volume, corrections, seed, args.epochs))
                row = [accuracy(model, writers.inputs[held_out], writers.labels[held_out],
                                writers.refused[held_out])]
                row += [accuracy(model, each.inputs, each.labels, each.refused)
                        for each in others]
                print(f"    the held-out other writers: {row[0]:.2%}", flush=True)
                rows.setdefault(corrections, []).append(row)
    return rows, [other.name for other in others], len(held_out)


def table(rows: dict[int, list[list[float]]], names: list[str], held_out: int) -> str:
    header = [f"other writers, held out ({held_out:,})", *names]
    lines = ["| corrections | seeds | " + " | ".join(header) + " |",
             "| ---: | ---: |" + " ---: |" * len(header)]
    for corrections, per_seed in rows.items():
        means = [statistics.fmean(column) for column in zip(*per_seed, strict=True)]
        lines.append(f"| {corrections} | {len(per_seed)} | "
                     + " | ".join(f"{value:.2%}" for value in means) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    rows, names, held_out = measure(args)
    print()
    print(table(rows, names, held_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

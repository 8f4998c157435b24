"""`make bench-handwriting`: how well a model reads handwriting that is not MNIST's (issue 11).

Six sets, each generated from a seed and cached (bench/handwriting/): MNIST test, drawn (MNIST
digits as pen strokes replayed on the page's pad), other writers (scikit-learn's optdigits),
photos, thick and thin. Each image goes through the inference service's preprocessing as an
upload; the model reads the resulting 28×28 inputs. Prints one table — set, images, accuracy, the
three worst confusions — and writes it, with the date, the model, the machine's load and a sheet
of sample images, into docs/handwriting.md (one section per model, replaced on re-measuring).

    python bench/bench_handwriting.py --train-starter            # the starter, trained now
    python bench/bench_handwriting.py --model NAME [--model-dir DIR]
        [--mnist-npz PATH] [--count N] [--cache-dir DIR | --no-cache] [--refresh]
        [--doc PATH | --no-doc] [--samples PATH] [--label TEXT] [--key KEY]
        [--preprocessing-version N]

The full MNIST comes from <repo>/../shared/data/mnist/mnist.npz (or --mnist-npz); without it the
MNIST-based sets are made from mnist-5k's 500 test digits, and the report says so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.handwriting import cache, each_prepared_set, report, scoring  # noqa: E402
from bench.handwriting.service import latest_version  # noqa: E402
from bench.handwriting.source import DEFAULT_MNIST_NPZ, load_source  # noqa: E402

STARTER_NAME = "starter-cnn-mnist5k"
DEFAULT_DOC = REPO / "docs" / "handwriting.md"
DEFAULT_SAMPLES = REPO / "docs" / "handwriting-samples.png"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_handwriting.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--generate-only", action="store_true",
                       help="make (and cache) the sets, measure nothing")
    which.add_argument("--model", help="measure <model-dir>/<MODEL>.keras")
    which.add_argument("--train-starter", action="store_true",
                       help="train the starter (python -m train --starter) in a "
                            "temporary volume and measure it")
    p.add_argument("--model-dir", type=Path,
                   default=Path(os.environ.get("MODEL_DIR", REPO / "model-volume")),
                   help="the model volume (default: $MODEL_DIR or ./model-volume)")
    p.add_argument("--train-seed", type=int, help="--seed for the starter's training")
    p.add_argument("--mnist-npz", type=Path,
                   help=f"the full MNIST (default: {DEFAULT_MNIST_NPZ}; mnist-5k when absent)")
    p.add_argument("--count", type=int,
                   help="at most this many images per set (default: each set's full size)")
    p.add_argument("--cache-dir", type=Path, default=cache.default_cache_dir(),
                   help="where generated sets are kept (default: %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="generate every set, keep nothing")
    p.add_argument("--refresh", action="store_true", help="generate every set again, and cache it")
    p.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="default: %(default)s")
    p.add_argument("--no-doc", action="store_true", help="print the table only")
    p.add_argument("--samples", type=Path, help="the sample sheet (default: beside --doc, "
                                                "handwriting-samples.png)")
    p.add_argument("--label", help="the model's heading in the report (default: its name)")
    p.add_argument("--preprocessing-version", type=int,
                   help="send the sets through this version of the service's preprocessing "
                        "(default: the model's, as its metadata says: 1 when it says none; "
                        "with --generate-only, the newest)")
    p.add_argument("--key", help="the model's section in the report (default: its name)")
    return p


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def train_starter(volume: Path, seed: int | None) -> tuple[Path, float]:
    """The starter recipe, through the real CLI, into `volume`; (model path, seconds)."""
    command = [sys.executable, "-m", "train", "--starter", "--model-dir", str(volume)]
    if seed is not None:
        command += ["--seed", str(seed)]
    print("training the starter:", " ".join(command[1:]), flush=True)
    env = {**os.environ, "MODEL_DIR": str(volume), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=3600, check=False)
    if result.returncode != 0:
        sys.exit(f"training the starter failed ({result.returncode}):\n"
                 f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    print(result.stdout.strip().splitlines()[-1], flush=True)
    return volume / f"{STARTER_NAME}.keras", time.perf_counter() - started


def model_version(path: Path) -> int:
    """The preprocessing version the model's metadata asks for, as the service reads it."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return 1
    preprocessing = meta.get("preprocessing") if isinstance(meta, dict) else None
    if isinstance(preprocessing, dict) and "version" in preprocessing:
        return int(preprocessing["version"])
    return 1


def describe_model(path: Path) -> str:
    """'`name`: cnn on mnist (60,000 training digits, 8 epochs, augmentation on), 99.41% on its
    own test split', from the model's metadata."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return f"`{path.stem}`"
    dataset = meta.get("dataset") or {}
    if not isinstance(dataset, dict):
        dataset = {"name": dataset}
    recipe = meta.get("hyperparameters") or {}
    details = []
    if dataset.get("train"):
        details.append(f"{dataset['train']:,} training digits")
    if recipe.get("epochs"):
        details.append(f"{recipe['epochs']} epochs")
    if recipe.get("augment") is not None:
        details.append(f"augmentation {'on' if recipe['augment'] else 'off'}")
    text = f"`{path.stem}`: {meta.get('architecture', '?')} on {dataset.get('name', '?')}"
    if details:
        text += f" ({', '.join(details)})"
    if meta.get("test_accuracy") is not None:
        text += f", {meta['test_accuracy']:.2%} on its own test split"
    return text


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.model and not (args.model_dir / f"{args.model}.keras").is_file():
        sys.exit(f"no model {args.model_dir / f'{args.model}.keras'}")
    load_before = load_average()
    started = datetime.datetime.now(datetime.UTC)
    source = load_source(args.mnist_npz)
    print(f"digits from {source.description}", flush=True)
    cache_dir = None if args.no_cache else args.cache_dir

    with tempfile.TemporaryDirectory(prefix="bench-handwriting-") as scratch:
        model_path, trained = None, ""
        if args.train_starter:
            model_path, train_seconds = train_starter(Path(scratch), args.train_seed)
            trained = f", trained for this run in {train_seconds:.0f} s"
        elif args.model:
            model_path = args.model_dir / f"{args.model}.keras"
        version = args.preprocessing_version or (model_version(model_path) if model_path
                                                 else latest_version())
        print(f"the service's preprocessing, version {version}", flush=True)
        prepared_sets = []
        for prepared in each_prepared_set(source, args.count, cache_dir, version,
                                          refresh=args.refresh):
            how = "from the cache" if prepared.cached else f"made in {prepared.seconds:.1f} s"
            print(f"  {prepared.name:<14} {len(prepared):>6,} images  {how}  "
                  f"({int(prepared.refused.sum())} refused by the preprocessing)", flush=True)
            prepared_sets.append(prepared)
        if args.generate_only:
            return 0
        model = scoring.load_model(model_path)
        model_text = (describe_model(model_path) + trained
                      + f", preprocessing version {version}")
        scores = [scoring.score_set(model, prepared) for prepared in prepared_sets]

    table = report.table(scores)
    load_after = load_average()
    print()
    print(table)
    print(f"\nmodel {model_text}; load average (1/5/15 min) before {load_before}, "
          f"after {load_after} on {os.cpu_count()} cores")
    if args.no_doc:
        return 0

    samples = args.samples or args.doc.parent / "handwriting-samples.png"
    report.sample_sheet(prepared_sets, samples)
    sets_body = "\n\n".join([
        "## The sets",
        f"The MNIST-based sets are made from {source.description.replace(str(REPO.parent), '..')}."
        " Each set has its own seed; the cache (`~/.cache/digits/handwriting/`) keeps the "
        "preprocessed inputs, and is made again when a set's version or the service's "
        "preprocessing changes.",
        report.sets_table(prepared_sets),
        f"Each row of the sample sheet: the first uploads of a set as sent, each beside the "
        f"28×28 image the model sees after the service's preprocessing.\n\n"
        f"![samples]({os.path.relpath(samples, args.doc.parent)})",
    ])
    label = args.label or (f"the starter ({STARTER_NAME}, trained fresh)" if args.train_starter
                           else args.model)
    result_body = "\n\n".join([
        f"### {label}",
        f"Measured {started:%Y-%m-%d %H:%M} UTC. Model {model_text}. MNIST-based sets from "
        f"{'the full MNIST' if source.name == 'mnist' else source.name}. Machine: "
        f"{os.cpu_count()} cores ({platform.machine()}), load average (1/5/15 min) "
        f"{load_before} before, {load_after} after.",
        table,
    ])
    key = args.key or (STARTER_NAME if args.train_starter else args.model)
    report.write_doc(args.doc, sets_body, key, result_body)
    print(f"wrote {args.doc} and {samples}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

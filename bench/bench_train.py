"""`make bench-train`: train `cnn` and `simple` on the full MNIST on this machine, one run.

The full MNIST (default ../shared/data/mnist/mnist.npz beside the repository, or MNIST_NPZ /
--mnist-npz) is copied into a temporary volume's `datasets/mnist.npz`; each architecture trains
with its recipe defaults (or --cnn-epochs / --simple-epochs) through the same code as the CLI and
the job (train.training.train_model). Per epoch it prints the wall time, the time so far and the
test accuracy (the 10,000 MNIST test digits are the validation data); at the end a summary, and the
load average before and after, since the CPU may be shared.

Goal: cnn ≥ 99.5% test accuracy within 5 minutes of training on 2 cores.

    python bench/bench_train.py [--mnist-npz PATH] [--cnn-epochs N] [--simple-epochs N]
                                [--only cnn|simple]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Where developer and CI machines keep the full MNIST: the shared folder beside the checkout.
DEFAULT_NPZ = REPO.parent / "shared" / "data" / "mnist" / "mnist.npz"
GOAL_ACCURACY = 0.995
GOAL_SECONDS = 300


class EpochPrinter:
    """A train.progress Reporter that prints one line per finished epoch."""

    def __init__(self, label: str):
        self.label = label
        self.printed = 0
        self.total = 0.0

    def report(self, snapshot: dict) -> None:
        for entry in snapshot["history"][self.printed:]:
            self.total += entry["seconds"]
            print(f"{self.label:>7} epoch {entry['epoch']:>3}/{snapshot['epochs']:<3} "
                  f"{entry['seconds']:7.1f} s  (total {self.total:6.1f} s)  "
                  f"test accuracy {entry['val_accuracy']:.4f}  loss {entry['loss']:.4f}",
                  flush=True)
        self.printed = len(snapshot["history"])

    def should_stop(self) -> bool:
        return False

    def set_phase(self, phase: str) -> None:
        pass


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def train(architecture: str, epochs: int | None, volume: Path) -> dict:
    from train.params import resolve
    from train.training import train_model

    request = {"architecture": architecture, "dataset": "mnist", "name": f"bench-{architecture}"}
    if epochs:
        request["epochs"] = epochs
    params = resolve(request, volume)
    print(f"\n{architecture}: {params.epochs} epochs, batch {params.batch_size}, learning rate "
          f"{params.learning_rate:g}, augment {params.augment}", flush=True)
    started = time.monotonic()
    metadata = train_model(params, volume, EpochPrinter(architecture), seed=1)
    metadata["wall_seconds"] = time.monotonic() - started
    return metadata


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist-npz", type=Path,
                        default=Path(os.environ.get("MNIST_NPZ") or DEFAULT_NPZ))
    parser.add_argument("--cnn-epochs", type=int)
    parser.add_argument("--simple-epochs", type=int)
    parser.add_argument("--only", choices=("cnn", "simple"))
    args = parser.parse_args()
    if not args.mnist_npz.is_file():
        print(f"no MNIST at {args.mnist_npz}: set MNIST_NPZ=/path/to/mnist.npz", file=sys.stderr)
        return 2

    print(f"before: {load_average()}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as volume:
        volume = Path(volume)
        (volume / "datasets").mkdir()
        shutil.copy(args.mnist_npz, volume / "datasets" / "mnist.npz")
        for architecture, epochs in (("cnn", args.cnn_epochs), ("simple", args.simple_epochs)):
            if args.only in (None, architecture):
                results[architecture] = train(architecture, epochs, volume)
    print(f"\nafter: {load_average()}\n")
    print(f"{'model':<8}{'epochs':>7}{'params':>9}{'train s':>9}{'s/epoch':>9}{'test acc':>10}")
    for architecture, metadata in results.items():
        epochs = len(metadata["history"])
        print(f"{architecture:<8}{epochs:>7}{metadata['parameter_count']:>9,}"
              f"{metadata['train_seconds']:>9.1f}{metadata['train_seconds'] / epochs:>9.1f}"
              f"{metadata['test_accuracy']:>10.4f}")
    if "cnn" in results:
        cnn = results["cnn"]
        met = cnn["test_accuracy"] >= GOAL_ACCURACY and cnn["train_seconds"] <= GOAL_SECONDS
        print(f"\ngoal (cnn ≥ {GOAL_ACCURACY:.1%} within {GOAL_SECONDS} s of training): "
              f"{'met' if met else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m train`: train one model from the command line, with a progress bar.

The same code path as a run's job (train.training.train_model), writing `<name>.keras` and
`<name>.json` into `$MODEL_DIR` (default ./model-volume). Exit status 0 on success, 2 for bad
parameters, 1 when training can't happen (e.g. the data set is unavailable).

`--starter --if-empty` is how every deployment seeds a new volume: the starter model
(params.STARTER), unless the volume already holds a model. With `--service URL` the training is
a run of that train service instead (train.remote), which is how `make run` seeds: the page is
up while the starter trains, and shows it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from train.architectures import ARCHITECTURES
from train.params import STARTER


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train",
        description="Train a digit recognizer and save it (with metadata) to the model volume.")
    p.add_argument("--starter", action="store_true",
                   help=f"the starter model: {STARTER['architecture']} on {STARTER['dataset']}, "
                        f"named {STARTER['name']} (the flags below still override it)")
    p.add_argument("--if-empty", action="store_true",
                   help="do nothing (exit 0) when the volume already holds a model")
    p.add_argument("--dataset", help="mnist, mnist-5k or the name of a datasets/<name>.npz "
                                     "(default: mnist if the volume holds it, else mnist-5k)")
    p.add_argument("--architecture", choices=sorted(ARCHITECTURES), help="default: cnn")
    p.add_argument("--epochs", type=int, help="1..100 (default: the architecture's)")
    p.add_argument("--batch-size", type=int, help="16..1024")
    p.add_argument("--learning-rate", type=float, help="in (0, 1]")
    p.add_argument("--limit", type=int, help="train on only this many digits (at least 100)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="random shifts, rotations, zoom and stroke thickness (default: the "
                        "architecture's)")
    p.add_argument("--name", help="model name (default: <architecture>-<date>-<time>)")
    p.add_argument("--model-dir", type=Path,
                   help="the model volume (default: $MODEL_DIR or ./model-volume)")
    p.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    p.add_argument("--service", metavar="URL",
                   help="start the training as a run of the train service at URL (e.g. "
                        "http://127.0.0.1:8001) and follow it, instead of training here; "
                        "sends $TRAIN_API_TOKEN when set")
    return p


def requested_params(args: argparse.Namespace) -> dict:
    """The parameters the flags ask for: the starter's (with --starter), overridden by flags."""
    given = {"dataset": args.dataset, "architecture": args.architecture, "epochs": args.epochs,
             "batch_size": args.batch_size, "learning_rate": args.learning_rate,
             "limit": args.limit, "augment": args.augment, "name": args.name}
    return {**(STARTER if args.starter else {}),
            **{field: value for field, value in given.items() if value is not None}}


def model_dir_of(args: argparse.Namespace) -> Path:
    from train.config import Settings

    return (args.model_dir or Settings.from_env().model_dir).resolve()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train.config import precision
    from train.datasets import DatasetUnavailableError
    from train.params import InvalidParamsError, resolve
    from train.volume import model_names

    model_dir = model_dir_of(args)
    try:
        train_precision = precision(os.environ)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.if_empty and model_names(model_dir):
        print(f"a model is on the volume ({', '.join(model_names(model_dir))}): nothing to train")
        return 0
    try:
        params = resolve(requested_params(args), model_dir)
    except InvalidParamsError as error:
        for field, message in error.errors.items():
            print(f"error: --{field.replace('_', '-')} {message}", file=sys.stderr)
        return 2
    if args.service:
        return train_as_run(args, model_dir)
    if args.if_empty:
        # What a new user sees first from `make run`: why they wait before the page is up.
        print(f"No model in {model_dir}: training one first, so the page can predict at once.")
    print(f"training {params.architecture} on {params.dataset} for {params.epochs} epochs "
          f"(batch {params.batch_size}, learning rate {params.learning_rate:g}, augment "
          f"{'on' if params.augment else 'off'}) → {model_dir}/{params.name}.keras", flush=True)
    # TensorFlow loads only once the request is valid.
    from train.training import VolumeFullError, train_model
    try:
        metadata = train_model(params, model_dir, verbose=1, seed=args.seed,
                               precision=train_precision)
    except DatasetUnavailableError as error:
        print(f"error: data set {params.dataset!r} is not available: {error}", file=sys.stderr)
        return 1
    except VolumeFullError as error:
        print(f"error: {error.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no model written", file=sys.stderr)
        return 130
    print(f"saved {params.name}: test accuracy {metadata['test_accuracy']:.4f} on "
          f"{metadata['dataset']['test']} digits, {metadata['train_seconds']:.0f} s of training")
    return 0


def train_as_run(args: argparse.Namespace, model_dir: Path) -> int:
    """Train through the train service's API; the run shows on the page while it trains."""
    from train.remote import ServiceError, follow_run, start_run

    if args.seed is not None:
        print("error: --seed works only when training here, not with --service",
              file=sys.stderr)
        return 2
    try:
        run = start_run(args.service, requested_params(args),
                        os.environ.get("TRAIN_API_TOKEN") or None)
        if args.if_empty:
            print(f"No model in {model_dir}: the starter model is training as run {run['id']};"
                  " the page shows it (Train view) and can predict once it is saved.",
                  flush=True)
        run = follow_run(args.service, run)
    except ServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if run["state"] != "succeeded":
        print(f"run {run['id']} {run['state']}: {run.get('error') or 'no model written'}",
              file=sys.stderr)
        return 1
    accuracy = run.get("test_accuracy")
    print(f"saved {run['model']}" + (f": test accuracy {accuracy:.4f}" if accuracy else ""))
    return 0

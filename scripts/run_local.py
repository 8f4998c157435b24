"""`make run`: the whole system on this machine, in the foreground, until Ctrl-C or SIGTERM.

1. Seed the volume: `python -m train --starter --if-empty` trains the quick starter model (its
   progress bar shows) when the volume holds no model, so the page can predict at once.
2. Start train and inference under their real gunicorn command (HOST=127.0.0.1) and the real nginx
   with the ui's config template, rendered for local upstreams into a private temporary folder
   (main config, pid file, temp paths and logs there: no root needed, nothing in /etc touched).
3. Wait until all three answer, print the URL, and on Ctrl-C / SIGTERM stop all three.

How processes are started and stopped is `scripts.launcher`, shared with the tests and benchmarks.

    python -m scripts.run_local [--model-dir DIR] [--ui-port N] [--inference-port N]
                                [--train-port N]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts.launcher import REPO, check_ports_free, running_system, service_env

# The one entry point that seeds an empty volume; Compose's `seed` and the Kubernetes
# `train-default` Job run the same command.
SEED_COMMAND = ("-m", "train", "--starter", "--if-empty")


def seed_volume(model_dir: Path) -> None:
    """Train the starter model when the volume holds none (the train CLI decides and says so)."""
    command = [sys.executable, *SEED_COMMAND]
    result = subprocess.run(command, cwd=REPO, env=service_env(model_dir, 0), check=False)
    if result.returncode != 0:
        raise SystemExit(f"training the starter model failed (exit {result.returncode}): "
                         f"{' '.join(command)}")


class StopRequested(Exception):  # noqa: N818 (a request, not an error)
    """Raised from the signal handler to leave the foreground wait."""


def raise_stop(signum, _frame) -> None:
    # Once: a second Ctrl-C must not interrupt the orderly shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise StopRequested(signal.Signals(signum).name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path,
                        default=Path(env.get("MODEL_DIR", REPO / "model-volume")))
    parser.add_argument("--ui-port", type=int, default=int(env.get("UI_PORT", 8080)))
    parser.add_argument("--inference-port", type=int,
                        default=int(env.get("INFERENCE_PORT", 8000)))
    parser.add_argument("--train-port", type=int, default=int(env.get("TRAIN_PORT", 8001)))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = args.model_dir.resolve()
    model_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, raise_stop)
    signal.signal(signal.SIGINT, raise_stop)
    try:
        # Before the minute of training, so a busy port is said at once.
        check_ports_free(args.ui_port, args.inference_port, args.train_port)
        seed_volume(model_dir)
        with running_system(model_dir, args.ui_port, args.inference_port,
                            args.train_port) as system:
            print(f"\ndigits is running: open {system.url}   (models in {model_dir}; "
                  "Ctrl-C stops it)\n", flush=True)
            while not any(process.exited() for process in system.processes):
                time.sleep(0.5)
            gone = [process.name for process in system.processes if process.exited()]
            print(f"{', '.join(gone)} stopped on its own; stopping the rest.", file=sys.stderr)
            return 1
    except StopRequested as stop:
        print(f"\n{stop}: stopped nginx, inference and train.", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

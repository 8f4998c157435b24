"""`make run`: the whole system on this machine, in the foreground, until Ctrl-C or SIGTERM.

1. Start train and inference under their real gunicorn command (HOST=127.0.0.1) and the real nginx
   with the ui's config template, rendered for local upstreams into a private temporary folder
   (main config, pid file, temp paths and logs there: no root needed, nothing in /etc touched).
2. Wait until all three answer and print the URL: the page is up within seconds.
3. Seed the volume: `python -m train --starter --if-empty --service <train>` starts the quick
   starter model as a run of the train service when the volume holds no model, and prints its
   progress. The page shows the run live meanwhile, and its picker fills when the model is saved
   (the inference service picks up new models on its own). Training first and serving after
   kept a new user looking at nothing for the ~20 s the starter takes.
4. On Ctrl-C / SIGTERM stop all three (the train service stops a run still training).

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


def start_seeding(model_dir: Path, train_url: str) -> subprocess.Popen:
    """Start the starter model's training as a run of the train service when the volume holds
    no model (the train CLI decides and says so); the page serves meanwhile."""
    command = [sys.executable, *SEED_COMMAND, "--service", train_url]
    return subprocess.Popen(command, cwd=REPO, env=service_env(model_dir, 0))


def report_seeding(seeder: subprocess.Popen) -> None:
    if seeder.returncode != 0:
        print(f"make run: training the starter model failed (exit {seeder.returncode}); the "
              "page still works: train a model in its Train view.", file=sys.stderr, flush=True)


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


def serve_until_stopped(system, model_dir: Path) -> int:
    """Seed an empty volume while serving; return 1 if a process stops on its own."""
    seeder = start_seeding(model_dir, system.train_url)
    try:
        while not any(process.exited() for process in system.processes):
            if seeder and seeder.poll() is not None:
                report_seeding(seeder)
                seeder = None
            time.sleep(0.5)
    finally:
        # Its progress line would only report the service going away.
        if seeder and seeder.poll() is None:
            seeder.terminate()
            seeder.wait(timeout=10)
    gone = [process.name for process in system.processes if process.exited()]
    print(f"{', '.join(gone)} stopped on its own; stopping the rest.", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = args.model_dir.resolve()
    model_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, raise_stop)
    signal.signal(signal.SIGINT, raise_stop)
    try:
        check_ports_free(args.ui_port, args.inference_port, args.train_port)
        with running_system(model_dir, args.ui_port, args.inference_port,
                            args.train_port) as system:
            print(f"\ndigits is running: open {system.url}   (models in {model_dir}; "
                  "Ctrl-C stops it)\n", flush=True)
            return serve_until_stopped(system, model_dir)
    except StopRequested as stop:
        print(f"\n{stop}: stopped nginx, inference and train.", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

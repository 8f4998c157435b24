"""`make bench-memory`: an inference worker's resident memory with 1 to 4 models in its cache.

The service under its real gunicorn command on a temporary volume holding four copies of one
model under four names (each is loaded on its own, as four different models would be), twice
side by side: with the TFLite copies the train service saves beside its models (LiteRT serves
them; no TensorFlow in the worker), and without them (Keras and TensorFlow serve). After
start-up (the default model warm) and after a prediction with each further model, it prints
every worker's RSS, read from /proc, and the largest. The cache holds 4 models by default
(MODEL_CACHE_SIZE), so 4 is the most a worker keeps.

Goal (issue 15): a worker with 4 models cached ≤ 600 MB.

    python bench/bench_memory.py [--model-dir DIR --model NAME]   (default: train the starter)
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.launcher import free_port, gunicorn, running  # noqa: E402

GOAL_MB = 600
COPIES = 4


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages (TensorFlow's libraries) split between the sharers."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tensorflow_import_mb() -> float:
    """RSS of a bare Python that imported TensorFlow: the floor under every worker."""
    code = ("import tensorflow; print([l.split()[1] for l in open('/proc/self/status') "
            "if l.startswith('VmRSS')][0])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return int(result.stdout.split()[-1]) / 1024


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def digit_png() -> str:
    from PIL import Image, ImageDraw

    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line([(14, 4), (14, 24)], fill=255, width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def predict_on_every_worker(base_url: str, model: str, workers: int) -> None:
    """Enough requests, each on a new connection, that every worker has loaded `model`."""
    body = json.dumps({"image": digit_png(), "model": model}).encode()
    for _ in range(8 * workers):
        request = urllib.request.Request(base_url + "/api/predict", data=body,
                                         headers={"Content-Type": "application/json",
                                                  "Connection": "close"})
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            response.read()


def volume_with_copies(source_dir: Path, source: str, volume: Path, lite: bool) -> list[str]:
    """COPIES copies of the model under new names; with `lite`, each with the TFLite copy the
    train service saved beside it (served through LiteRT), else without (served through Keras)."""
    names = [f"model-{number}" for number in range(1, COPIES + 1)]
    suffixes = (".keras", ".tflite") if lite else (".keras",)
    for name in names:
        for suffix in suffixes:
            shutil.copyfile(source_dir / f"{source}{suffix}", volume / f"{name}{suffix}")
        metadata = source_dir / f"{source}.json"
        if metadata.is_file():
            document = json.loads(metadata.read_text())
            document["name"] = name
            (volume / f"{name}.json").write_text(json.dumps(document))
    return names


def runtimes(base_url: str) -> set[str]:
    with urllib.request.urlopen(base_url + "/api/models", timeout=30) as response:  # noqa: S310
        return {model.get("runtime", "?") for model in json.load(response)["models"]}


def measure(volume: Path, names: list[str], log_path: Path) -> dict:
    """Every worker's RSS and PSS after each further model is cached, and the master's RSS."""
    process = gunicorn("inference", volume, free_port(), log_path=log_path,
                       extra_env={"DEFAULT_MODEL": names[0]})
    with running(process):
        workers = worker_pids(process.popen.pid)
        rows = []
        for cached, name in enumerate(names, start=1):
            predict_on_every_worker(process.base_url, name, len(workers))
            sizes = [rss_mb(pid) for pid in workers]
            rows.append((cached, sizes, [pss_mb(pid) for pid in workers]))
            print(f"  {cached} model(s) cached: worker RSS " +
                  ", ".join(f"{size:.0f} MB" for size in sizes), flush=True)
        return {"rows": rows, "master": rss_mb(process.popen.pid),
                "runtimes": runtimes(process.base_url)}


def train_starter(volume: Path) -> tuple[Path, str]:
    subprocess.run([sys.executable, "-m", "train", "--starter", "--model-dir", str(volume)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return volume, "starter-cnn-mnist5k"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--model")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="digits-bench-memory-") as tmp:
        tmp = Path(tmp)
        (tmp / "source").mkdir()
        (tmp / "volume").mkdir()
        if args.model:
            source_dir, source = args.model_dir, args.model
        else:
            print("training the starter model to measure with (about a minute)...", flush=True)
            source_dir, source = train_starter(tmp / "source")
        has_copy = (source_dir / f"{source}.tflite").is_file()
        if not has_copy:
            print(f"{source} has no TFLite copy (trained before train saved one): only Keras")
        results = {}
        for label, lite in (("TFLite copies, LiteRT", True), ("Keras", False)):
            if lite and not has_copy:
                continue
            volume = tmp / f"volume-{'lite' if lite else 'keras'}"
            volume.mkdir()
            print(f"{label}:", flush=True)
            results[label] = measure(volume, volume_with_copies(source_dir, source, volume, lite),
                                     tmp / f"inference-{volume.name}.log")
    print("\n| served through | models cached | largest worker RSS | every worker's RSS | "
          "every worker's PSS |")
    print("| --- | ---: | ---: | --- | --- |")
    for label, result in results.items():
        for cached, sizes, shares in result["rows"]:
            print(f"| {label} ({', '.join(sorted(result['runtimes']))}) | {cached} | "
                  f"{max(sizes):.0f} MB | {', '.join(f'{s:.0f}' for s in sizes)} MB "
                  f"| {', '.join(f'{s:.0f}' for s in shares)} MB |")
    print(f"\nA bare `import tensorflow`: {tensorflow_import_mb():.0f} MB RSS.")
    for label, result in results.items():
        largest = max(result["rows"][-1][1])
        print(f"{label}: gunicorn's master {result['master']:.0f} MB; with {COPIES} models cached "
              f"the largest worker holds {largest:.0f} MB: goal ≤ {GOAL_MB} MB "
              f"{'met' if largest <= GOAL_MB else 'NOT met'}.")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

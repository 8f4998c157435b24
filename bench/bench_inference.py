"""`make bench`: the inference service against a seed-style reference, on this machine, in one run.

1. A model: the newest in MODEL_DIR (default ./model-volume), else one trained now on mnist-5k
   with the train CLI into a temporary volume.
2. One request body for everyone: a 28×28 MNIST test digit as a PNG, multipart field `image`.
3. The service under its real gunicorn command, once per BATCH_WINDOW_MS variant (micro-batching
   off; on, taking only what is waiting; on, gathering for 1 ms), and bench/reference_server.py
   (Flask's development server, grayscale + resize + normalise, `model.predict` per request), on
   the same model, all running at once.
4. `wrk` at concurrency 1 and 8 against each, in interleaved rounds (the CPU may be shared: a
   busy moment then hurts every target alike): the median requests/s, p50 and p99 over the
   rounds, and the ratio to the reference.
5. The in-process ceiling: decode + preprocess + batched forward (32), images/s, no HTTP.

    python bench/bench_inference.py [--duration 5] [--rounds 3] [--windows off,0,1]
                                    [--model-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from scripts.launcher import Process, free_port, gunicorn, running  # noqa: E402 (after the path)

BOUNDARY = "digitsbench"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=%(boundary)s"
local f = io.open("%(body)s", "rb"); wrk.body = f:read("*all"); f:close()
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.timeout
  io.write(string.format("RESULT %%d %%d %%f %%f %%d %%d\\n", summary.requests, summary.duration,
           latency:percentile(50), latency:percentile(99), errors, summary.errors.status))
end
"""


def load_average() -> str:
    return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def find_or_train_model(model_dir: Path, scratch: Path) -> tuple[Path, str]:
    models = sorted((p for p in model_dir.glob("*.keras") if not p.name.startswith(".")),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    if models:
        return model_dir, models[0].stem
    volume = scratch / "volume"
    volume.mkdir()
    print(f"no model in {model_dir}: training one on mnist-5k (about a minute)...", flush=True)
    env = dict(os.environ, MODEL_DIR=str(volume), TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-m", "train", "--dataset", "mnist-5k", "--architecture",
                    "simple", "--epochs", "12", "--name", "bench"], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return volume, "bench"


def request_body(scratch: Path) -> tuple[Path, bytes, int]:
    """A 28×28 PNG of the first mnist-5k test digit, as a multipart body; and its label."""
    import io

    from PIL import Image

    from train.datasets import load_dataset

    dataset = load_dataset("mnist-5k", scratch)
    buffer = io.BytesIO()
    Image.fromarray(dataset.x_test[0]).save(buffer, "PNG")
    png = buffer.getvalue()
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"digit.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    body += png + f"\r\n--{BOUNDARY}--\r\n".encode()
    path = scratch / "body.bin"
    path.write_bytes(body)
    return path, png, int(dataset.y_test[0])


def wrk(url: str, script: Path, connections: int, duration: int, warm_up: bool) -> dict:
    threads = min(connections, 2)
    if warm_up:  # connection set-up, lazy imports, CPU caches
        subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", "-d2s", "-s", str(script),
                        url], capture_output=True, check=True)
    result = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
                             "--timeout", "10s", "-s", str(script), url],
                            capture_output=True, text=True, check=True)
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+) (\d+)", result.stdout)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}\n{result.stderr}")
    count, micros, p50, p99, errors, non_2xx = match.groups()
    return {"rps": int(count) / (int(micros) / 1e6), "p50_ms": float(p50) / 1000,
            "p99_ms": float(p99) / 1000, "requests": int(count), "errors": int(errors),
            "non_2xx": int(non_2xx)}


def median_run(runs: list[dict]) -> dict:
    def median(values):
        ordered = sorted(values)
        return ordered[len(ordered) // 2]
    return {"rps": median(r["rps"] for r in runs), "p50_ms": median(r["p50_ms"] for r in runs),
            "p99_ms": median(r["p99_ms"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "errors": sum(r["errors"] for r in runs), "non_2xx": sum(r["non_2xx"] for r in runs),
            "rounds": len(runs)}


def check_answer(url: str, png: bytes, label: int) -> None:
    answer = requests.post(url, files={"image": ("d.png", png)}, timeout=60).json()
    if answer.get("digit") != label:
        raise RuntimeError(f"{url} answered {answer}, expected digit {label}")


def in_process_ceiling(model_path: Path, png: bytes, seconds: float = 5.0) -> dict:
    """Decode + preprocess + batched forward (32 per call) in this one process, no HTTP."""
    import numpy as np

    from inference.preprocess import preprocess
    from inference.runtime import load_compiled

    forward = load_compiled(model_path).forward
    batch = 32

    def one_batch():
        images = np.stack([preprocess(png).image for _ in range(batch)])
        return forward(images)

    one_batch()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        one_batch()
        done += batch
    elapsed = time.perf_counter() - started
    # The same, split: how much of it is preprocessing.
    started = time.perf_counter()
    for _ in range(500):
        preprocess(png)
    preprocess_us = (time.perf_counter() - started) / 500 * 1e6
    return {"images_per_s": done / elapsed, "preprocess_us": preprocess_us}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds over all targets (the median is reported)")
    parser.add_argument("--windows", default="off,0,1",
                        help="BATCH_WINDOW_MS variants of the service, comma-separated")
    parser.add_argument("--model-dir", type=Path,
                        default=Path(os.environ.get("MODEL_DIR", REPO / "model-volume")))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: `make bench` installs it (apt-get install wrk)")
        return 2

    results: dict = {"load_before": load_average(), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="digits-bench-") as tmp:
        scratch = Path(tmp)
        model_dir, model_name = find_or_train_model(args.model_dir, scratch)
        model_path = model_dir / f"{model_name}.keras"
        body_path, png, label = request_body(scratch)
        script = scratch / "post.lua"
        script.write_text(WRK_SCRIPT % {"boundary": BOUNDARY, "body": body_path})
        print(f"model {model_path} · body {body_path.stat().st_size} bytes (a 28×28 PNG) · "
              f"{results['load_before']} · {os.cpu_count()} cores", flush=True)

        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", HOST="127.0.0.1")
        targets = {}  # name -> URL; all run at once, measured in interleaved rounds
        with ExitStack() as stack:
            for window in [w.strip() for w in args.windows.split(",") if w.strip()]:
                service = gunicorn("inference", model_dir, free_port(),
                                   log_path=scratch / f"service-{window}.log",
                                   extra_env={"DEFAULT_MODEL": model_name,
                                              "BATCH_WINDOW_MS": window})
                stack.enter_context(running(service, timeout=300))
                targets[f"service[batch={window}]"] = service.base_url
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            reference = Process(
                name="reference", args=[sys.executable, str(REPO / "bench" / "reference_server.py"),
                                        str(model_path), str(port)],
                env=env, health_url=base + "/healthz", log_path=scratch / "reference.log",
                base_url=base)
            stack.enter_context(running(reference, timeout=300))
            targets["reference"] = base
            for base in targets.values():
                check_answer(base + "/api/predict", png, label)
            # The CPU is shared: every target gets a turn in every round, so that a busy
            # moment hurts them all alike; the median over the rounds is reported.
            runs: dict[str, list[dict]] = {}
            for round_number in range(1, args.rounds + 1):
                for name, base in targets.items():
                    for connections in (1, 8):
                        key = f"{name} c={connections}"
                        run = wrk(base + "/api/predict", script, connections, args.duration,
                                  warm_up=round_number == 1)
                        runs.setdefault(key, []).append(run)
                        print(f"  round {round_number} {key}: {format_run(run)}", flush=True)
            for key, measured in runs.items():
                results[key] = median_run(measured)

        results["ceiling"] = in_process_ceiling(model_path, png)
    results["load_after"] = load_average()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def format_run(run: dict) -> str:
    problems = f" ({run['errors']} errors, {run['non_2xx']} non-2xx!)" \
        if run["errors"] or run["non_2xx"] else ""
    return (f"{run['rps']:8.1f} req/s   p50 {run['p50_ms']:7.2f} ms   "
            f"p99 {run['p99_ms']:7.2f} ms{problems}")


def report(results: dict) -> None:
    print("\n=== inference benchmark (wrk, same model, same 28×28 PNG multipart body; "
          "median of the rounds) ===")
    runs = {k: v for k, v in results.items() if isinstance(v, dict) and "rps" in v}
    for key, run in runs.items():
        print(f"{key:28s} {format_run(run)}")
    reference = {c: results[f"reference c={c}"] for c in (1, 8)}
    services = sorted({k.split(" c=")[0] for k in runs if k.startswith("service")})
    print()
    for service in services:
        for connections in (1, 8):
            run = results[f"{service} c={connections}"]
            ratio = run["rps"] / reference[connections]["rps"]
            print(f"{service} c={connections}: {ratio:6.1f}× the reference's throughput")
    best_c8 = max(services, key=lambda s: results[f"{s} c=8"]["rps"])
    best_c1 = min(services, key=lambda s: results[f"{s} c=1"]["p50_ms"])
    ratio = results[f"{best_c8} c=8"]["rps"] / reference[8]["rps"]
    p50 = results[f"{best_c1} c=1"]["p50_ms"]
    ceiling = results["ceiling"]
    print(f"in-process ceiling (1 process, decode+preprocess+forward in batches of 32, no "
          f"HTTP): {ceiling['images_per_s']:.0f} images/s; preprocess alone "
          f"{ceiling['preprocess_us']:.0f} µs/image")
    print(f"goal ≥ 50× at c=8: {ratio:.1f}× ({best_c8}) {'MET' if ratio >= 50 else 'NOT MET'}")
    print(f"goal p50 ≤ 3 ms at c=1: {p50:.2f} ms ({best_c1}) "
          f"{'MET' if p50 <= 3 else 'NOT MET'}")
    print(f"{results['load_before']} before, {results['load_after']} after "
          f"(the CPU is shared: figures vary with it)")


if __name__ == "__main__":
    sys.exit(main())

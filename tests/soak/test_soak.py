"""Soak (issue 6): `make soak` runs this folder; `make test` leaves it out (tests/conftest.py).

The whole system as `make run` starts it (train, inference and the real nginx config, through
scripts/launcher.py), on a volume holding the session's model:

- capacity first: `wrk` at 8 connections for 10 s through nginx, after a warm-up; then
  SOAK_SECONDS (default 60) at LOAD_FRACTION (80%) of it, paced by a schedule in wrk's Lua (one
  request every 1/rate s), through nginx: zero errors, no worker replaced, and each inference
  worker's resident memory (VmRSS) grows by less than 5% from after the warm-up to the end;
- the model file replaced 50 times (a copy renamed over it, as the train service writes), each
  time until both workers have reloaded it: resident memory stays bounded.

Each is a row of docs/reliability.md, section "Soak".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import ARTIFACTS, SEED_MODEL_NAME, child_pids, free_port
from inference_support import copy_seed_model, mnist_test_digits, png_bytes

from scripts.launcher import running_system

SOAK = "Soak"
SOAK_SECONDS = int(os.environ.get("SOAK_SECONDS", "60"))
LOAD_FRACTION = 0.8
RSS_GROWTH_LIMIT = 0.05
RELOADS = 50
BOUNDARY = "digitssoak"

# wrk: one multipart body for every request; with `interval_ms` set, requests start on a fixed
# schedule (one every interval_ms across the thread's connections) instead of back to back.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=%(boundary)s"
local f = io.open("%(body)s", "rb"); wrk.body = f:read("*all"); f:close()
local interval = %(interval_ms)f
if interval > 0 then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
    int clock_gettime(int clock, soak_timespec *now);
  ]]
  local now = ffi.new("soak_timespec")
  local function clock_ms()
    ffi.C.clock_gettime(1, now)  -- CLOCK_MONOTONIC
    return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
  end
  local next_slot = nil
  -- Each request takes the next free slot of the schedule; slots missed while every connection
  -- was busy are caught up (at most 1 s of them), so the rate is the schedule's on average.
  delay = function()
    local t = clock_ms()
    if next_slot == nil then next_slot = t end
    if next_slot < t - 1000 then next_slot = t - 1000 end
    local wait = math.max(0, next_slot - t)
    next_slot = next_slot + interval
    return math.floor(wait + 0.5)
  end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d %%f %%f\\n", summary.requests,
           summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
           summary.errors.timeout, summary.errors.status, latency:percentile(50),
           latency:percentile(99)))
end
"""


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))


def metric_sum(url: str, prefix: str) -> float:
    text = requests.get(url, timeout=10).text
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith(prefix))


@pytest.fixture(scope="module")
def volume(seed_model_dir, tmp_path_factory) -> Path:
    volume = tmp_path_factory.mktemp("soak-volume")
    copy_seed_model(seed_model_dir, volume)
    return volume


@pytest.fixture(scope="module")
def system(volume):
    """Train, inference and nginx as `make run` starts them, on free ports."""
    log_dir = ARTIFACTS / "logs" / "soak"
    shutil.rmtree(log_dir, ignore_errors=True)
    with running_system(volume, free_port(), free_port(), free_port(),
                        log_dir=log_dir) as running:
        yield running


@pytest.fixture(scope="module")
def inference_master(system) -> int:
    return next(p for p in system.processes if p.name == "inference").popen.pid


@pytest.fixture(scope="module")
def body(tmp_path_factory) -> Path:
    """A multipart body with one 28×28 mnist-5k test digit."""
    scratch = tmp_path_factory.mktemp("soak-body")
    images, _ = mnist_test_digits(scratch)
    payload = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
               f"filename=\"digit.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    payload += png_bytes(images[0]) + f"\r\n--{BOUNDARY}--\r\n".encode()
    path = scratch / "body.bin"
    path.write_bytes(payload)
    return path


def wrk(url: str, body: Path, seconds: int, connections: int, threads: int,
        interval_ms: float = 0.0) -> dict:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: `make wrk` (Debian's package)")
    script = body.with_name(f"wrk-{interval_ms:g}.lua")
    script.write_text(WRK_SCRIPT % {"boundary": BOUNDARY, "body": body,
                                    "interval_ms": interval_ms})
    result = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                             "--timeout", "10s", "-s", str(script), url],
                            capture_output=True, text=True, timeout=seconds + 60, check=True)
    match = re.search(r"RESULT " + " ".join([r"(\d+)"] * 7 + [r"([\d.]+)"] * 2), result.stdout)
    assert match, result.stdout + result.stderr
    count, micros, connect, read, write, timeout, status = map(int, match.groups()[:7])
    return {"requests": count, "seconds": micros / 1e6, "rps": count / (micros / 1e6),
            "socket_errors": connect + read + write + timeout, "non_2xx": status,
            "p50_ms": float(match[8]) / 1000, "p99_ms": float(match[9]) / 1000}


@pytest.mark.reliability(SOAK, "80% of the measured capacity through nginx")
def test_soak_at_80_percent_of_capacity_through_nginx(system, inference_master, body,
                                                       observed):
    url = system.url + "/api/predict"
    workers = child_pids(inference_master)
    assert len(workers) == 2
    # Warm-up (connections, lazy imports, both workers' model), then capacity, back to back.
    wrk(url, body, 3, connections=8, threads=2)
    capacity = wrk(url, body, 10, connections=8, threads=2)
    assert capacity["socket_errors"] == 0 and capacity["non_2xx"] == 0, capacity
    rss_before = {pid: rss_kib(pid) for pid in workers}

    target = LOAD_FRACTION * capacity["rps"]
    soak = wrk(url, body, SOAK_SECONDS, connections=32, threads=1, interval_ms=1000 / target)
    rss_after = {pid: rss_kib(pid) for pid in workers}
    growth = {pid: rss_after[pid] / rss_before[pid] - 1 for pid in workers}
    observed(f"capacity {capacity['rps']:.0f} req/s (8 connections, 10 s); then "
             f"{soak['seconds']:.0f} s paced at {target:.0f} req/s (32 connections): "
             f"{soak['requests']} requests, {soak['rps']:.0f} "
             f"req/s achieved ({soak['rps'] / capacity['rps']:.0%} of capacity), p50 "
             f"{soak['p50_ms']:.1f} ms, p99 {soak['p99_ms']:.0f} ms, "
             f"{soak['socket_errors']} socket errors, {soak['non_2xx']} non-2xx; workers' RSS "
             + ", ".join(f"{rss_before[pid] / 1024:.0f} → {rss_after[pid] / 1024:.0f} MiB "
                         f"({growth[pid]:+.1%})" for pid in sorted(workers)))
    assert soak["socket_errors"] == 0 and soak["non_2xx"] == 0, soak
    assert child_pids(inference_master) == workers, "a worker was replaced during the soak"
    assert soak["rps"] >= 0.6 * capacity["rps"], "the load generator fell far behind its pace"
    assert all(g < RSS_GROWTH_LIMIT for g in growth.values()), growth


@pytest.mark.reliability(SOAK, f"{RELOADS} reloads of a model file")
def test_fifty_reloads_of_a_model_keep_memory_bounded(system, volume, seed_model_dir,
                                                      inference_master, body, observed):
    """The default model's file is replaced 50 times; after each, requests go through nginx
    until both workers have loaded the new file (inference_model_load_seconds_count)."""
    workers = child_pids(inference_master)
    metrics_url = system.inference_url + "/metrics"
    loads = f'inference_model_load_seconds_count{{model="{SEED_MODEL_NAME}"}}'
    source = seed_model_dir / f"{SEED_MODEL_NAME}.keras"
    image = body.read_bytes()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    rss: dict[int, dict[int, int]] = {}
    errors = 0
    started = time.monotonic()
    for reload in range(1, RELOADS + 1):
        before = metric_sum(metrics_url, loads)
        temporary = volume / f".{SEED_MODEL_NAME}.keras.{reload}.tmp"
        shutil.copyfile(source, temporary)
        temporary.replace(volume / f"{SEED_MODEL_NAME}.keras")
        deadline = time.monotonic() + 120
        while metric_sum(metrics_url, loads) < before + len(workers):
            assert time.monotonic() < deadline, f"reload {reload}: the workers did not reload"
            # A new connection each time, so that both workers get requests.
            response = requests.post(system.url + "/api/predict", data=image, headers=headers,
                                     timeout=60)
            errors += response.status_code != 200
        if reload in (1, 10, 30, RELOADS):
            rss[reload] = {pid: rss_kib(pid) for pid in workers}
    seconds = time.monotonic() - started
    growth = {pid: rss[RELOADS][pid] / rss[10][pid] - 1 for pid in workers}
    observed(f"{RELOADS} replacements in {seconds:.0f} s, each reloaded by both workers, "
             f"{errors} errors; workers' RSS after reload 1 → 10 → 30 → {RELOADS}: "
             + "; ".join(" → ".join(f"{rss[n][pid] / 1024:.0f}" for n in (1, 10, 30, RELOADS))
                         + f" MiB ({growth[pid]:+.1%} over the last {RELOADS - 10})"
                         for pid in sorted(workers)))
    assert errors == 0
    assert child_pids(inference_master) == workers
    assert all(g < RSS_GROWTH_LIMIT for g in growth.values()), growth


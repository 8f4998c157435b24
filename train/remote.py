"""`python -m train --service URL`: the same training, as a run of a running train service.

`make run` starts the services first and seeds an empty volume this way, so the page is up at
once and shows the starter's training live (the Train view follows the run, the picker fills
when the model is saved), instead of waiting for a training that runs before anything serves.

Only the standard library: the CLI must work before anything but the train service's own
requirements is installed.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request

ACTIVE = ("queued", "running", "stopping")
POLL_SECONDS = 0.5


class ServiceError(Exception):
    """The train service refused the run or could not be reached; the message says why."""


def _request(url: str, *, token: str | None, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers,  # noqa: S310 (http URL)
                                     method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise ServiceError(_error_message(error)) from error
    except (urllib.error.URLError, OSError) as error:
        raise ServiceError(f"could not reach the train service at {url}: {error}") from error


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        body = json.load(error)
        problem = body["error"]
        fields = problem.get("fields") or {}
        details = "; ".join(f"{field} {text}" for field, text in fields.items())
        return f"{error.code} {problem['message']}" + (f" ({details})" if details else "")
    except (ValueError, KeyError, TypeError):
        return f"{error.code} {error.reason}"


def start_run(service_url: str, params: dict, token: str | None) -> dict:
    return _request(f"{service_url.rstrip('/')}/api/train/runs", token=token, body=params)


def follow_run(service_url: str, run: dict, *, out=sys.stdout) -> dict:
    """Print the run's progress on one line until it ends; return the run as it ended."""
    url = f"{service_url.rstrip('/')}/api/train/runs/{run['id']}"
    shown = ""
    while run["state"] in ACTIVE:
        time.sleep(POLL_SECONDS)
        run = _request(url, token=None)
        line = progress_line(run)
        if line != shown:
            out.write(f"\r{line}")
            out.flush()
            shown = line
    out.write("\n")
    return run


def progress_line(run: dict) -> str:
    accuracy = (run.get("metrics") or {}).get("accuracy")
    parts = [f"{run['state']}", f"epoch {run.get('epoch', 0)}/{run.get('epochs', '?')}",
             f"{100 * (run.get('progress') or 0):3.0f}%"]
    if accuracy is not None:
        parts.append(f"accuracy {accuracy:.3f}")
    return "  ".join(parts).ljust(60)

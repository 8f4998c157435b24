"""`make run`: the whole system on this machine, in the foreground, until Ctrl-C or SIGTERM.

1. When the model volume holds no `.keras` model, train a quick default one through the train CLI
   (its progress bar shows), so the page can predict at once.
2. Start train and inference under their real gunicorn command (HOST=127.0.0.1) and the real nginx
   with the ui's config template, rendered for local upstreams into a private temporary folder
   (main config, pid file, temp paths and logs there: no root needed, nothing in /etc touched).
3. Wait until all three answer, print the URL, and on Ctrl-C / SIGTERM stop all three.

The browser tests import `running_system` from here, so they exercise this very nginx config.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
NGINX = Path(os.environ.get("NGINX", "/usr/sbin/nginx"))
NGINX_TEMPLATE = REPO / "ui" / "nginx" / "default.conf.template"
STATIC_ROOT = REPO / "ui" / "static"
MIME_TYPES = Path("/etc/nginx/mime.types")
TEMPLATE_VARIABLES = ("HOST", "PORT", "STATIC_ROOT", "INFERENCE_URL", "TRAIN_URL",
                      "MAX_UPLOAD_BYTES")
DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024 * 1024
DEFAULT_MODEL_NAME = "starter-cnn-mnist5k"
# The default recipe (batch norm, augmentation): 99% on mnist-5k's test digits in ~40 s on 2 cores,
# and augmented with the stroke and position changes that drawn digits show.
DEFAULT_MODEL_ARGS = ("--dataset", "mnist-5k", "--architecture", "cnn")
LOCALHOST = "127.0.0.1"


# ------------------------------------------------------------------ nginx config


def render_template(template: str, values: dict[str, str]) -> str:
    """envsubst with a variable list: replace only `${NAME}` for our names, keep nginx's `$vars`."""
    missing = [name for name in TEMPLATE_VARIABLES if name not in values]
    if missing:
        raise ValueError(f"template variables without a value: {', '.join(missing)}")
    return re.sub(r"\$\{([A-Z_]+)\}",
                  lambda match: values.get(match.group(1), match.group(0)), template)


def nginx_main_config(workdir: Path, site_config: Path) -> str:
    """A main nginx.conf that keeps every file nginx writes inside `workdir`."""
    mime_types = f"include {MIME_TYPES};" if MIME_TYPES.is_file() else (
        "types { text/html html; text/css css; application/javascript js; "
        "image/svg+xml svg; image/png png; application/json json; }")
    return f"""# written by scripts/run_local.py for this run only
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    {mime_types}
    default_type application/octet-stream;
    access_log {workdir}/access.log;
    sendfile on;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {site_config};
}}
"""


def write_nginx_config(workdir: Path, ui_port: int, inference_port: int, train_port: int,
                       max_upload_bytes: int) -> Path:
    """Render the ui template for local upstreams; return the main config's path."""
    site = render_template(NGINX_TEMPLATE.read_text(), {
        "HOST": LOCALHOST,
        "PORT": str(ui_port),
        "STATIC_ROOT": str(STATIC_ROOT),
        "INFERENCE_URL": f"http://{LOCALHOST}:{inference_port}",
        "TRAIN_URL": f"http://{LOCALHOST}:{train_port}",
        "MAX_UPLOAD_BYTES": str(max_upload_bytes),
    })
    site_path = workdir / "default.conf"
    site_path.write_text(site)
    main_path = workdir / "nginx.conf"
    main_path.write_text(nginx_main_config(workdir, site_path))
    return main_path


# ------------------------------------------------------------------ processes


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the launcher dies without cleaning up (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    os.setsid()  # own process group: Ctrl-C reaches the launcher, which stops children in order


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    health_url: str
    log_path: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        output = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(self.args, cwd=REPO, env=self.env, stdout=output,
                                          stderr=subprocess.STDOUT if output else None,
                                          preexec_fn=die_with_parent)
        finally:
            if output is not None:
                output.close()

    def exited(self) -> bool:
        return self.popen is not None and self.popen.poll() is not None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(its output went to this terminal)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to its process group (gunicorn's workers, a training job), SIGKILL if stuck."""
        if self.popen is None or self.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own http URL)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_ready(processes: list[Process], timeout: float) -> None:
    """Poll every health URL until all answer 200; fail early, with its log, if one exits."""
    deadline = time.monotonic() + timeout
    waiting = list(processes)
    while waiting:
        for process in list(waiting):
            if process.exited():
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n"
                                   f"{process.log_tail()}")
            if answers_ok(process.health_url):
                waiting.remove(process)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(process.name for process in waiting)
            raise TimeoutError(f"not ready after {timeout:.0f}s: {names}")
        if waiting:
            time.sleep(0.2)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def service_env(model_dir: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"MODEL_DIR": str(model_dir), "HOST": LOCALHOST, "PORT": str(port),
                "PYTHONUNBUFFERED": "1"})
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def gunicorn(service: str, model_dir: Path, port: int, log_dir: Path | None,
             extra_env: dict[str, str]) -> Process:
    """The service's real command line, as in its Dockerfile."""
    return Process(
        name=service,
        args=[str(VENV_BIN / "gunicorn"), "--config", f"{service}/gunicorn.conf.py",
              f"{service}:create_app()"],
        env=service_env(model_dir, port, extra_env),
        health_url=f"http://{LOCALHOST}:{port}/readyz",
        log_path=log_dir / f"{service}.log" if log_dir else None,
    )


@dataclass
class System:
    """The running system: where to reach it and its processes."""

    url: str
    inference_url: str
    train_url: str
    model_dir: Path
    processes: list[Process]


def check_ports_free(*ports: int) -> None:
    busy = [port for port in ports if not port_is_free(port)]
    if busy:
        raise RuntimeError(f"port(s) {', '.join(map(str, busy))} on {LOCALHOST} are in use; "
                           "set UI_PORT, INFERENCE_PORT or TRAIN_PORT to free ones")


@contextlib.contextmanager
def nginx_process(ui_port: int, inference_port: int, train_port: int, *,
                  max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
                  log_dir: Path | None = None) -> Iterator[Process]:
    """nginx with the ui template rendered for local upstreams, config checked, not yet started.

    Its private folder (config, pid, temp paths, error log) is removed when the block ends; the
    caller starts and stops the process inside the block.
    """
    if not NGINX.is_file():
        raise RuntimeError(f"{NGINX} is missing: run `make system-deps` (Debian's nginx package)")
    nginx_dir = Path(tempfile.mkdtemp(prefix="digits-nginx-"))
    try:
        # When run as root, nginx's workers drop to `nobody`: they must reach the temp paths.
        nginx_dir.chmod(0o755)
        main_conf = write_nginx_config(nginx_dir, ui_port, inference_port, train_port,
                                       max_upload_bytes)
        args = [str(NGINX), "-p", str(nginx_dir), "-c", str(main_conf),
                "-e", str(nginx_dir / "error.log")]
        test = subprocess.run([*args, "-t", "-q"], capture_output=True, text=True, check=False)
        if test.returncode != 0:
            raise RuntimeError(f"nginx rejects the rendered config:\n{test.stderr}")
        yield Process(name="nginx", args=[*args, "-g", "daemon off;"], env=dict(os.environ),
                      health_url=f"http://{LOCALHOST}:{ui_port}/healthz",
                      log_path=log_dir / "nginx.log" if log_dir else None)
    finally:
        if log_dir is not None and (nginx_dir / "error.log").is_file():
            log_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(nginx_dir / "error.log", log_dir / "nginx-error.log")
        shutil.rmtree(nginx_dir, ignore_errors=True)


@contextlib.contextmanager
def running_system(model_dir: Path, ui_port: int, inference_port: int, train_port: int, *,
                   log_dir: Path | None = None, ready_timeout: float = 180.0,
                   service_env_extra: dict[str, str] | None = None) -> Iterator[System]:
    """Train, inference and nginx running until the block ends, then all three stopped."""
    check_ports_free(ui_port, inference_port, train_port)
    extra = dict(service_env_extra or {})
    max_upload = int(os.environ.get("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))
    with nginx_process(ui_port, inference_port, train_port, max_upload_bytes=max_upload,
                       log_dir=log_dir) as nginx:
        processes = [gunicorn("train", model_dir, train_port, log_dir, extra),
                     gunicorn("inference", model_dir, inference_port, log_dir,
                              {"MAX_UPLOAD_BYTES": str(max_upload), **extra}),
                     nginx]
        try:
            for process in processes:
                process.start()
            wait_until_ready(processes, ready_timeout)
            yield System(url=f"http://{LOCALHOST}:{ui_port}",
                         inference_url=f"http://{LOCALHOST}:{inference_port}",
                         train_url=f"http://{LOCALHOST}:{train_port}",
                         model_dir=model_dir, processes=processes)
        finally:
            # The proxy first, so no request reaches a service that is going away.
            for process in reversed(processes):
                process.stop()


# ------------------------------------------------------------------ the default model


def has_model(model_dir: Path) -> bool:
    return any(path.is_file() for path in model_dir.glob("[!.]*.keras"))


def train_default_model(model_dir: Path) -> None:
    """A quick, good model (the default `cnn` recipe on mnist-5k), so the page works at once."""
    print(f"No model in {model_dir}: training {DEFAULT_MODEL_NAME} on mnist-5k first "
          "(about a minute)...", flush=True)
    command = [sys.executable, "-m", "train", *DEFAULT_MODEL_ARGS, "--name", DEFAULT_MODEL_NAME]
    result = subprocess.run(command, cwd=REPO, env=service_env(model_dir, 0, {}), check=False)
    if result.returncode != 0:
        raise SystemExit(f"training the default model failed (exit {result.returncode}): "
                         f"{' '.join(command)}")


# ------------------------------------------------------------------ main


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
        if not has_model(model_dir):
            train_default_model(model_dir)
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

"""Helpers shared by the packaging tests: where the lint tools are, rendering k8s/, reading files.

The lint tools live in .venv-lint (`make lint-tools`, which `make test` runs first); kubectl comes
with the machine (kubectl kustomize renders k8s/). A missing tool fails the test that needs it
with the command that installs it: these tests never skip.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
LINT_BIN = REPO / ".venv-lint" / "bin"
KUBERNETES_VERSION = "1.31"

SERVICES = ("train", "inference", "ui")
PYTHON_SERVICES = ("train", "inference")
DOCKERFILES = {service: REPO / service / "Dockerfile" for service in SERVICES}
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if path.is_dir())
COMPONENTS = sorted(path.name for path in (K8S / "components").iterdir() if path.is_dir())
# What Kustomize renders: the base alone, and every overlay.
KUSTOMIZATIONS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]


def lint_tool(name: str) -> str:
    path = LINT_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make lint-tools` (make test does it first)")
    return str(path)


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is missing: it renders k8s/ (kubectl kustomize); "
                    "see `make lint-tools`")
    return path


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=kwargs.pop("timeout", 300), **kwargs)


@cache
def render_text(kustomization: str | Path) -> str:
    """`kubectl kustomize` of a folder (relative to k8s/, or absolute)."""
    result = run([kubectl(), "kustomize", str(K8S / kustomization)])
    assert result.returncode == 0, f"kubectl kustomize {kustomization}:\n{result.stderr}"
    return result.stdout


def render(kustomization: str | Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(render_text(kustomization)) if doc]


def load_yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def pod_spec(workload: dict) -> dict:
    """The pod template's spec of a Deployment or a Job."""
    return workload["spec"]["template"]["spec"]


def container_env(container: dict, config_maps: dict[str, dict]) -> dict[str, str]:
    """A container's environment as the kubelet builds it: envFrom ConfigMaps, then env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "configMapKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = config_maps[ref["name"]]["data"][ref["key"]]
    return env


def claim_mounted_at(pod: dict, path: str) -> str | None:
    """The PersistentVolumeClaim mounted at `path` in the pod's first container, if any."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for mount in pod["containers"][0].get("volumeMounts", []):
        if mount["mountPath"].rstrip("/") == path.rstrip("/"):
            claim = volumes[mount["name"]].get("persistentVolumeClaim")
            return claim["claimName"] if claim else None
    return None


def run_local_constant(name: str):
    """A constant of scripts/run_local.py (`make run`), read from its source without running it."""
    source = REPO / "scripts" / "run_local.py"
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == name for target in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{name} is not assigned in {source}")

"""The packaging passes its linters: hadolint, strict Kubernetes 1.31 schemas, checkov, compose.

Each linter is also shown a broken input, so that a test can't pass because its tool accepts
anything (an unknown field, an image run as root, a compose file with a typo).
"""

from __future__ import annotations

import os

import pytest
from packaging_support import (
    DOCKERFILES,
    K8S,
    KUBERNETES_VERSION,
    KUSTOMIZATIONS,
    REPO,
    lint_tool,
    render_text,
    run,
)


def kubernetes_validate(path_or_text: str, *, stdin: bool) -> tuple[int, str]:
    """Validate a file, or (stdin=True) the given YAML text."""
    args = [lint_tool("kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", "--quiet"]
    result = run([*args, "-"], input=path_or_text) if stdin else run([*args, path_or_text])
    return result.returncode, result.stdout + result.stderr


# ---------------------------------------------------------------- hadolint


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint_at_warning_threshold(service):
    result = run([lint_tool("hadolint"), "--failure-threshold", "warning",
                  str(DOCKERFILES[service])])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_apt_install(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.14-slim\nRUN apt-get update && apt-get install -y curl\n")
    result = run([lint_tool("hadolint"), "--failure-threshold", "warning", str(bad)])
    assert result.returncode != 0 and "DL3008" in result.stdout


# ---------------------------------------------------------------- strict schema validation


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_rendered_manifests_validate_strictly(kustomization):
    rendered = render_text(kustomization)
    assert "kind: Deployment" in rendered
    code, output = kubernetes_validate(rendered, stdin=True)
    assert code == 0, output


def test_every_component_renders_and_validates(tmp_path):
    """The base with every component at once (ingress is in no overlay of ours)."""
    def relative(path):  # Kustomize takes no absolute paths
        return os.path.relpath(path, tmp_path)

    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {relative(K8S / 'base')}\ncomponents:\n"
        + "".join(f"  - {relative(path)}\n" for path in sorted((K8S / "components").iterdir()))
    )
    rendered = render_text(tmp_path)
    for kind in ("HorizontalPodAutoscaler", "NetworkPolicy", "Ingress"):
        assert f"kind: {kind}" in rendered
    code, output = kubernetes_validate(rendered, stdin=True)
    assert code == 0, output


@pytest.mark.parametrize("path", sorted((K8S / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_job_manifests_validate_strictly(path):
    code, output = kubernetes_validate(str(path), stdin=False)
    assert code == 0, output


def test_strict_validation_rejects_an_unknown_field():
    rendered = render_text("base").replace("containerPort: 8000",
                                           "containerPort: 8000\n          hostPortt: 1", 1)
    code, output = kubernetes_validate(rendered, stdin=True)
    assert code != 0 and "hostPortt" in output


# ---------------------------------------------------------------- checkov


def checkov(*args: str):
    return run([lint_tool("checkov"), "--quiet", "--compact", "--skip-download", *args],
               timeout=600)


def test_checkov_passes_on_k8s():
    """Kubernetes and Kustomize frameworks: every file, the base and every overlay rendered."""
    result = checkov("-d", str(K8S))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "kustomize scan results" in result.stdout
    assert "Failed checks: 0" in result.stdout


def test_checkov_passes_on_the_dockerfiles():
    files = [arg for path in DOCKERFILES.values() for arg in ("-f", str(path))]
    result = checkov("--framework", "dockerfile", *files)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout


def test_checkov_fails_a_privileged_root_pod(tmp_path):
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: digits}\n"
        "spec:\n  containers:\n    - name: bad\n      image: busybox:1.36\n"
        "      securityContext: {privileged: true, runAsUser: 0}\n"
    )
    result = checkov("--framework", "kubernetes", "-d", str(tmp_path))
    assert result.returncode != 0 and "CKV_K8S_16" in result.stdout


# ---------------------------------------------------------------- docker-compose


def test_docker_compose_accepts_the_compose_file():
    result = run(["docker-compose", "--file", str(REPO / "docker-compose.yml"), "config",
                  "--quiet"])
    assert result.returncode == 0, result.stderr


def test_docker_compose_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((REPO / "docker-compose.yml").read_text()
                      .replace("condition: service_healthy", "condition: service_happy", 1))
    result = run(["docker-compose", "--file", str(broken), "config", "--quiet"])
    assert result.returncode != 0

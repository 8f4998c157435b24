"""Helpers of tests/cluster/: the local cluster of k8s/local-cluster/ with digits deployed on it.

Run by `make test-cluster`, which starts the cluster (`make cluster-up`: components, images,
`kubectl apply -k k8s/overlays/local`, the train-default Job, rollouts), runs these tests and
stops it again; never by `make test` (tests/conftest.py leaves this folder out). Against a
cluster that is already up: KUBECONFIG=/var/lib/digits-cluster/pki/admin.kubeconfig
.venv/bin/python -m pytest tests/cluster -m cluster.

Every request of a user goes through the page's NodePort on 127.0.0.1; the cluster's state is
read with the `kubernetes` client (the one the train service's executor uses) and kubectl.
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
from pathlib import Path

from shared_helpers import wait_for as wait_for_condition

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "cluster"
NAMESPACE = "digits"
PAGE = os.environ.get("DIGITS_PAGE_URL", "http://127.0.0.1:30080")
KUBECONFIG = os.environ.get("KUBECONFIG", "/var/lib/digits-cluster/pki/admin.kubeconfig")
# The model volume's folder on the node: the hostPath of the PersistentVolume cluster.sh makes.
VOLUME = Path(os.environ.get("DIGITS_CLUSTER_VOLUME",
                             "/var/lib/digits-cluster/volumes/model-volume"))
API_SERVER = "https://10.217.0.1:6443"
CA = "/var/lib/digits-cluster/pki/ca.crt"
STARTER_MODEL = "starter-cnn-mnist5k"
DIGITS_ASKED = 50


def kubectl_command() -> list[str]:
    if os.environ.get("DIGITS_KUBECTL"):
        return shlex.split(os.environ["DIGITS_KUBECTL"])
    return ["kubectl", "--kubeconfig", KUBECONFIG]


def kubectl(*args: str, check: bool = True, timeout: float = 60,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([*kubectl_command(), *args], capture_output=True, text=True,
                            timeout=timeout, input=stdin, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


# Each poll may ask the API server or kubectl: once a second is enough.
wait_for = functools.partial(wait_for_condition, interval=1.0)


def url(path: str) -> str:
    return PAGE + path


def share_right(http, digits, model: str | None = None) -> float:
    right = 0
    for label, png in digits:
        body = {"image": png} | ({"model": model} if model else {})
        response = http.post(url("/api/predict"), json=body, timeout=60)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert len(answer["probabilities"]) == 10
        if model:
            assert answer["model"] == model
        right += answer["digit"] == label
    return right / len(digits)


def save_cluster_state(name: str) -> None:
    """Pods, events and the services' logs into test-artifacts/cluster/ (for a failing run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = [kubectl("get", "all,pvc,pv,networkpolicy", "-A", "-o", "wide", check=False).stdout,
           kubectl("-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp",
                   check=False).stdout]
    for app in ("train", "inference", "ui"):
        out.append(f"--- logs app={app}\n" + kubectl(
            "-n", NAMESPACE, "logs", "-l", f"app={app}", "--tail=80", "--prefix",
            check=False).stdout)
    (ARTIFACTS / f"{name}.txt").write_text("\n".join(out))

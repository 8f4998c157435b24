"""The `kubernetes` executor, without a cluster (none runs here).

It is checked on the exact Job body it sends and on how it reacts to the Job statuses the API
server reports, through a fake BatchV1Api that records calls and answers with the kubernetes
client's own model objects. The service's reconciliation (run marked failed or stopped) is
checked through the real TrainingService and run store on a temporary volume.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from train.executors.kubernetes import (
    KubernetesExecutor,
    KubernetesSettings,
    build_job_manifest,
    job_name,
)
from train.service import TrainingService

RUN_ID = "20261122-143205-3fa9c1"


class FakeBatchApi:
    """Records what the executor sends; answers with the Job status a test sets."""

    def __init__(self):
        self.created: list[tuple[str, dict]] = []
        self.deleted: list[tuple[str, str, str]] = []
        self.jobs: dict[str, client.V1Job] = {}

    def create_namespaced_job(self, namespace, body):
        self.created.append((namespace, body))
        self.jobs[body["metadata"]["name"]] = job_with(active=1)
        return body

    def read_namespaced_job_status(self, name, namespace):
        if name not in self.jobs:
            raise ApiException(status=404, reason="Not Found")
        return self.jobs[name]

    def delete_namespaced_job(self, name, namespace, propagation_policy=None):
        if name not in self.jobs:
            raise ApiException(status=404, reason="Not Found")
        self.deleted.append((name, namespace, propagation_policy))
        del self.jobs[name]


class FakeCoreApi:
    def __init__(self, terminated: client.V1ContainerStateTerminated | None = None):
        self.terminated = terminated
        self.selectors: list[str] = []

    def list_namespaced_pod(self, namespace, label_selector):
        self.selectors.append(label_selector)
        status = client.V1ContainerStatus(
            name="train", image="digits-train:dev", image_id="", ready=False, restart_count=0,
            state=client.V1ContainerState(terminated=self.terminated))
        pod = client.V1Pod(status=client.V1PodStatus(container_statuses=[status]))
        return client.V1PodList(items=[pod])


def job_with(active=None, failed=None, succeeded=None, conditions=()):
    return client.V1Job(status=client.V1JobStatus(
        active=active, failed=failed, succeeded=succeeded,
        conditions=[client.V1JobCondition(type=kind, status="True", reason=reason,
                                          message=message)
                    for kind, reason, message in conditions] or None))


def settings(**overrides) -> KubernetesSettings:
    values = {"namespace": "digits", "image": "digits-train:dev", "claim_name": "model-volume",
              "model_dir": "/models", "stop_grace_seconds": 30.0}
    return KubernetesSettings(**{**values, **overrides})


@pytest.fixture
def batch():
    return FakeBatchApi()


@pytest.fixture
def timers():
    return []


@pytest.fixture
def executor(batch, timers):
    return KubernetesExecutor(batch, settings(),
                              start_timer=lambda delay, callback: timers.append((delay, callback)))


@pytest.fixture
def service(tmp_path, executor):
    return TrainingService(tmp_path, executor)


# ---------------------------------------------------------------------------- the Job body

def test_job_manifest_is_exactly_this():
    job = build_job_manifest(run_id=RUN_ID, namespace="digits", image="digits-train:1.2",
                             claim_name="model-volume", model_dir="/models")
    labels = {"app.kubernetes.io/part-of": "digits", "app.kubernetes.io/component": "train-job",
              "app": "train-job", "digits.example/run-id": RUN_ID}
    assert job == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"train-run-{RUN_ID}", "namespace": "digits", "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "activeDeadlineSeconds": 21600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                        "fsGroup": 10001, "fsGroupChangePolicy": "OnRootMismatch",
                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "train",
                        "image": "digits-train:1.2",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-m", "train.job", RUN_ID],
                        "env": [{"name": "MODEL_DIR", "value": "/models"},
                                {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"},
                                {"name": "PYTHONUNBUFFERED", "value": "1"},
                                {"name": "TRAIN_PRECISION", "value": "float32"},
                                {"name": "KERAS_HOME", "value": "/tmp/.keras"}],
                        "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                      "limits": {"cpu": "2", "memory": "3Gi"}},
                        "securityContext": {
                            "allowPrivilegeEscalation": False, "privileged": False,
                            "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "model-volume", "mountPath": "/models"},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [
                        {"name": "model-volume",
                         "persistentVolumeClaim": {"claimName": "model-volume"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}],
                },
            },
        },
    }


def test_the_kubernetes_client_accepts_the_body():
    """The body deserializes into the client's V1Job model with nothing lost on the way."""
    body = build_job_manifest(run_id=RUN_ID, namespace="digits", image="digits-train:dev",
                              claim_name="model-volume")
    api = client.ApiClient()
    job = api.deserialize(json.dumps(body), "V1Job", "application/json")
    assert api.sanitize_for_serialization(job) == body


def test_job_names_are_dns_labels():
    assert job_name(RUN_ID) == f"train-run-{RUN_ID}"
    assert len(job_name("x" * 100)) <= 63


# ---------------------------------------------------------------------------- start and status

def test_start_creates_one_job_in_the_namespace_with_the_settings(service, batch):
    run = service.start({"epochs": 2, "dataset": "mnist-5k", "architecture": "simple"})
    assert run["state"] == "queued"
    ((namespace, body),) = batch.created
    assert namespace == "digits"
    assert body == build_job_manifest(run_id=run["id"], namespace="digits",
                                      image="digits-train:dev", claim_name="model-volume",
                                      model_dir="/models")
    assert run["executor"] == {"name": "kubernetes", "job": job_name(run["id"]),
                               "namespace": "digits"}


def test_a_running_job_leaves_the_run_alone(service, batch):
    run = service.start({})
    batch.jobs[job_name(run["id"])] = job_with(active=1)
    assert service.get(run["id"])["state"] == "queued"


def test_a_failed_job_marks_the_run_failed_with_the_reason(tmp_path, batch):
    core = FakeCoreApi(client.V1ContainerStateTerminated(exit_code=137, reason="OOMKilled"))
    service = TrainingService(tmp_path, KubernetesExecutor(batch, settings(), core_api=core))
    run = service.start({})
    batch.jobs[job_name(run["id"])] = job_with(failed=1, conditions=[
        ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")])
    failed = service.get(run["id"])
    assert failed["state"] == "failed"
    assert "BackoffLimitExceeded" in failed["error"]
    assert "OOMKilled, exit code 137" in failed["error"]
    assert core.selectors == [f"job-name={job_name(run['id'])}"]


def test_a_job_past_its_deadline_marks_the_run_failed(service, batch):
    run = service.start({})
    batch.jobs[job_name(run["id"])] = job_with(failed=1, conditions=[
        ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")])
    assert "DeadlineExceeded" in service.get(run["id"])["error"]


def test_a_deleted_job_marks_the_run_failed(service, batch):
    run = service.start({})
    del batch.jobs[job_name(run["id"])]
    failed = service.get(run["id"])
    assert failed["state"] == "failed"
    assert "gone" in failed["error"]
    assert service.active_run() is None


def test_a_complete_job_whose_run_never_reported_is_failed(service, batch):
    run = service.start({})
    batch.jobs[job_name(run["id"])] = job_with(succeeded=1, conditions=[("Complete", None, None)])
    assert service.get(run["id"])["state"] == "failed"


def test_a_run_that_reported_is_not_touched_by_its_job_status(service, batch):
    run = service.start({})
    service.store.update(run["id"], lambda r: {**r, "state": "succeeded", "model": "m"})
    del batch.jobs[job_name(run["id"])]
    assert service.get(run["id"])["state"] == "succeeded"


def test_second_start_while_the_job_runs_is_refused(service):
    from train.service import ActiveRunError

    run = service.start({})
    with pytest.raises(ActiveRunError) as refused:
        service.start({})
    assert refused.value.run["id"] == run["id"]


# ---------------------------------------------------------------------------- stop

def test_stop_sets_stop_requested_and_deletes_the_job_only_after_the_grace(service, batch,
                                                                            timers):
    run = service.start({})
    stopping = service.stop(run["id"])
    assert stopping["stop_requested"] is True
    assert stopping["state"] == "stopping"
    assert batch.deleted == []  # the job gets its chance to stop itself
    ((delay, callback),) = timers
    assert delay == 30.0
    callback()  # the grace period is over and the Job still runs
    assert batch.deleted == [(job_name(run["id"]), "digits", "Background")]
    stopped = service.get(run["id"])
    assert stopped["state"] == "stopped"
    assert stopped["error"] is None


def test_a_job_that_stopped_itself_is_not_deleted(service, batch, timers):
    run = service.start({})
    service.stop(run["id"])
    batch.jobs[job_name(run["id"])] = job_with(succeeded=1, conditions=[("Complete", None, None)])
    service.store.update(run["id"], lambda r: {**r, "state": "stopped"})
    ((_, callback),) = timers
    callback()
    assert batch.deleted == []


def test_an_overdue_stop_found_while_reconciling_deletes_the_job(service, batch):
    run = service.start({})
    service.stop(run["id"])
    long_ago = (datetime.now(UTC) - timedelta(seconds=31)).isoformat().replace("+00:00", "Z")
    service.store.update(run["id"], lambda r: {**r, "stop_requested_at": long_ago})
    stopped = service.get(run["id"])
    assert batch.deleted == [(job_name(run["id"]), "digits", "Background")]
    assert stopped["state"] == "stopped"
    assert "did not stop within 30 s" in stopped["message"]


# ---------------------------------------------------------------------------- settings

def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAIN_NAMESPACE", "ml")
    monkeypatch.setenv("TRAIN_IMAGE", "registry.example/digits-train:7")
    monkeypatch.setenv("MODEL_PVC", "models-claim")
    monkeypatch.setenv("TRAIN_JOB_MEMORY_LIMIT", "4Gi")
    monkeypatch.setenv("TRAIN_STOP_GRACE_SECONDS", "5")
    found = KubernetesSettings.from_environment(tmp_path)
    assert (found.namespace, found.image, found.claim_name, found.model_dir) == (
        "ml", "registry.example/digits-train:7", "models-claim", str(tmp_path))
    assert (found.memory_limit, found.stop_grace_seconds) == ("4Gi", 5.0)


def test_without_train_image_the_job_uses_the_service_pods_own_image(monkeypatch, batch):
    class PodReader:
        def read_namespaced_pod(self, name, namespace):
            assert (name, namespace) == ("train-5d8f-abc", "digits")
            return client.V1Pod(spec=client.V1PodSpec(containers=[
                client.V1Container(name="train", image="digits-train:from-pod")]))

    monkeypatch.setenv("HOSTNAME", "train-5d8f-abc")
    executor = KubernetesExecutor(batch, settings(image=None), core_api=PodReader())
    assert executor.manifest(RUN_ID)["spec"]["template"]["spec"]["containers"][0][
        "image"] == "digits-train:from-pod"

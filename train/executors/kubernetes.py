"""The `kubernetes` executor: one `batch/v1` Job per run, created with the `kubernetes` client.

The Job runs the service's own image (`python -m train.job <run_id>`) with the model volume's
claim mounted at MODEL_DIR, so the job reads its params from and writes progress and the model to
the same volume as the service. The run's state is still reported by the job itself through its
run file; the Job's status only tells the service when a job is gone without having reported.

Stop: the service sets `stop_requested` (the job ends itself after the current batch); if the
Job is still running after a grace period, it is deleted (its pod gets SIGTERM, which the job
also treats as a stop request).

`build_job_manifest` is a pure function, so the Job body can be checked without a cluster.
"""

from __future__ import annotations

import re
import threading

# KubernetesSettings is configuration (config.py reads every variable); the executor takes it.
from train.config import KubernetesSettings
from train.timeutil import seconds_since

RUN_ID_LABEL = "digits.example/run-id"
JOB_PREFIX = "train-run-"
CONTAINER_NAME = "train"


def job_name(run_id: str) -> str:
    """A DNS-1123 name for the run's Job (run ids are lowercase letters, digits and dashes)."""
    return (JOB_PREFIX + re.sub(r"[^a-z0-9-]", "-", run_id.lower()))[:63].rstrip("-")


def build_job_manifest(run_id: str, namespace: str, image: str, claim_name: str,
                       model_dir: str = "/models", image_pull_policy: str = "IfNotPresent",
                       cpu_request: str = "1", memory_request: str = "1Gi",
                       cpu_limit: str = "2", memory_limit: str = "3Gi",
                       ttl_seconds_after_finished: int = 3600,
                       active_deadline_seconds: int = 6 * 3600,
                       run_as_user: int = 10001, train_precision: str = "float32") -> dict:
    """The Job that trains run `run_id`: same image, claim at `model_dir`, restricted pod."""
    labels = {
        "app.kubernetes.io/part-of": "digits",
        "app.kubernetes.io/component": "train-job",
        "app": "train-job",
        RUN_ID_LABEL: run_id,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(run_id), "namespace": namespace, "labels": labels},
        "spec": {
            # A failed training is reported, not retried: the run is marked failed.
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": ttl_seconds_after_finished,
            "activeDeadlineSeconds": active_deadline_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    # The job talks to the volume only, never to the API server.
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": run_as_user,
                        "runAsGroup": run_as_user, "fsGroup": run_as_user,
                        "fsGroupChangePolicy": "OnRootMismatch",
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": CONTAINER_NAME,
                        "image": image,
                        "imagePullPolicy": image_pull_policy,
                        "command": ["python", "-m", "train.job", run_id],
                        "env": [
                            {"name": "MODEL_DIR", "value": model_dir},
                            {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"},
                            {"name": "PYTHONUNBUFFERED", "value": "1"},
                            {"name": "TRAIN_PRECISION", "value": train_precision},
                            # The root file system is read-only: Keras' config goes to /tmp.
                            {"name": "KERAS_HOME", "value": "/tmp/.keras"},  # noqa: S108
                        ],
                        "resources": {
                            "requests": {"cpu": cpu_request, "memory": memory_request},
                            "limits": {"cpu": cpu_limit, "memory": memory_limit},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False, "privileged": False,
                            "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [
                            {"name": "model-volume", "mountPath": model_dir},
                            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - emptyDir
                        ],
                    }],
                    "volumes": [
                        {"name": "model-volume",
                         "persistentVolumeClaim": {"claimName": claim_name}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}},
                    ],
                },
            },
        },
    }


def condition(job, kind: str):
    for item in (getattr(job.status, "conditions", None) or []):
        if item.type == kind and item.status == "True":
            return item
    return None


class KubernetesExecutor:
    name = "kubernetes"

    def __init__(self, batch_api, settings: KubernetesSettings, core_api=None,
                 start_timer=None):
        self.batch = batch_api
        self.core = core_api
        self.settings = settings
        # start_timer(delay, callback): tests pass one that runs at once; by default a thread.
        self.start_timer = start_timer or start_daemon_timer

    @classmethod
    def connect(cls, settings: KubernetesSettings) -> KubernetesExecutor:
        """An executor talking to the cluster this pod runs in (else the user's kubeconfig's)."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()  # outside a cluster: the user's kubeconfig
        return cls(client.BatchV1Api(), settings, core_api=client.CoreV1Api())

    # ------------------------------------------------------------------ start

    def image(self) -> str:
        """TRAIN_IMAGE, else the image this pod runs (same image as the service)."""
        if self.settings.image:
            return self.settings.image
        pod_name = self.settings.pod_name
        if self.core is not None and pod_name:
            pod = self.core.read_namespaced_pod(pod_name, self.settings.namespace)
            for container in pod.spec.containers:
                if container.name == CONTAINER_NAME or len(pod.spec.containers) == 1:
                    return container.image
        raise RuntimeError("TRAIN_IMAGE is not set and this pod's own image can't be read")

    def manifest(self, run_id: str) -> dict:
        s = self.settings
        return build_job_manifest(
            run_id=run_id, namespace=s.namespace, image=self.image(), claim_name=s.claim_name,
            model_dir=s.model_dir, image_pull_policy=s.image_pull_policy,
            cpu_request=s.cpu_request, memory_request=s.memory_request,
            cpu_limit=s.cpu_limit, memory_limit=s.memory_limit,
            ttl_seconds_after_finished=s.ttl_seconds_after_finished,
            train_precision=s.train_precision)

    def start(self, run: dict) -> dict:
        body = self.manifest(run["id"])
        self.batch.create_namespaced_job(namespace=self.settings.namespace, body=body)
        return {"name": self.name, "job": body["metadata"]["name"],
                "namespace": self.settings.namespace}

    # ------------------------------------------------------------------ status

    def read_job(self, run: dict):
        """The run's Job, or None if it no longer exists."""
        from kubernetes.client.exceptions import ApiException

        info = run.get("executor") or {}
        try:
            return self.batch.read_namespaced_job_status(
                name=info.get("job") or job_name(run["id"]),
                namespace=info.get("namespace") or self.settings.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def failure(self, run: dict) -> str | None:
        """None while the Job may still report; else why the run's Job ended without a result."""
        job = self.read_job(run)
        name = (run.get("executor") or {}).get("job") or job_name(run["id"])
        if job is None:
            return f"the Job {name} is gone (deleted) without the run reporting a result"
        failed = condition(job, "Failed")
        if failed is not None or (job.status.failed or 0) > 0:
            reason = failed.reason if failed is not None else "PodFailed"
            detail = failed.message if failed is not None and failed.message else ""
            pod = self.pod_reason(name)
            return (f"the Job {name} failed ({reason}{': ' + detail if detail else ''})"
                    f"{'; pod: ' + pod if pod else ''}")
        if condition(job, "Complete") is not None:
            return f"the Job {name} completed without the run reporting a result"
        if run.get("stop_requested") and self.stop_overdue(run):
            self.delete_job(run)
            return (f"the Job {name} did not stop within {self.settings.stop_grace_seconds:g} s "
                    "of the stop request and was deleted")
        return None

    def pod_reason(self, name: str) -> str | None:
        """Why the Job's pod ended (e.g. OOMKilled, exit code 137), when it can be read."""
        if self.core is None:
            return None
        try:
            pods = self.core.list_namespaced_pod(self.settings.namespace,
                                                 label_selector=f"job-name={name}").items
        except Exception:  # the reason is a nicety; its absence must not break reconciling
            return None
        for pod in pods:
            for status in (pod.status.container_statuses or []):
                ended = status.state.terminated if status.state else None
                if ended is not None:
                    return f"{ended.reason or 'terminated'}, exit code {ended.exit_code}"
        return None

    # ------------------------------------------------------------------ stop

    def stop_overdue(self, run: dict) -> bool:
        waited = seconds_since(run.get("stop_requested_at"))
        return waited is not None and waited >= self.settings.stop_grace_seconds

    def stop(self, run: dict) -> None:
        """The job stops itself; delete its Job only if it is still running after the grace."""
        self.start_timer(self.settings.stop_grace_seconds, lambda: self.delete_if_running(run))

    def delete_if_running(self, run: dict) -> None:
        job = self.read_job(run)
        if job is None or condition(job, "Complete") or condition(job, "Failed"):
            return
        self.delete_job(run)

    def delete_job(self, run: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        info = run.get("executor") or {}
        try:
            self.batch.delete_namespaced_job(
                name=info.get("job") or job_name(run["id"]),
                namespace=info.get("namespace") or self.settings.namespace,
                propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise


def start_daemon_timer(delay: float, callback) -> None:
    timer = threading.Timer(delay, callback)
    timer.daemon = True
    timer.start()

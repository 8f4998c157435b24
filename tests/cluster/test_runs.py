"""Training runs started through the page's API become Kubernetes Jobs (the train service's
`kubernetes` executor, talking to the real API server): one that succeeds and is served, one
stopped, one whose pod is deleted, one that outlives a restart of the train pod."""

from __future__ import annotations

import time

import pytest
from cluster_support import NAMESPACE, VOLUME, kubectl, share_right, url, wait_for

from train.executors.kubernetes import RUN_ID_LABEL

pytestmark = pytest.mark.cluster

FINAL_STATES = {"succeeded", "failed", "stopped"}
RUN_TIMEOUT = 900
# Model names are unique per session: the volume keeps the models of an earlier session when
# the tests are run again against the same cluster.
SUFFIX = time.strftime("%H%M%S")


def start_run(http, **params) -> dict:
    response = http.post(url("/api/train/runs"), timeout=30, json={
        "dataset": "mnist-5k", "architecture": "simple", **params})
    assert response.status_code == 202, response.text
    return response.json()


def get_run(http, run_id: str) -> dict:
    response = http.get(url(f"/api/train/runs/{run_id}"), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_final(http, run_id: str, timeout: float = RUN_TIMEOUT) -> dict:
    return wait_for(lambda: (run := get_run(http, run_id))["state"] in FINAL_STATES and run,
                    timeout, interval=2, what=f"run {run_id} to end")


def run_pods(core, run_id: str):
    return core.list_namespaced_pod(NAMESPACE, label_selector=f"{RUN_ID_LABEL}={run_id}").items


def run_jobs(batch, run_id: str):
    return batch.list_namespaced_job(NAMESPACE, label_selector=f"{RUN_ID_LABEL}={run_id}").items


def running_pod(core, run_id: str, timeout: float = 300):
    def check():
        pods = [p for p in run_pods(core, run_id) if p.status.phase == "Running"]
        return pods[0] if pods else None
    return wait_for(check, timeout, what=f"the pod of run {run_id} to run")


def inference_pods(core) -> dict[str, int]:
    return {p.metadata.name: sum(c.restart_count for c in p.status.container_statuses or [])
            for p in core.list_namespaced_pod(NAMESPACE, label_selector="app=inference").items}


@pytest.fixture(autouse=True)
def no_active_run(http):
    """Runs are one at a time: wait until an earlier test's run has ended."""
    def idle():
        response = http.get(url("/api/train/runs"), timeout=30)
        if response.status_code != 200:  # train restarting (an earlier test): not idle yet
            return False
        runs = response.json()
        items = runs["runs"] if isinstance(runs, dict) else runs
        return all(run["state"] in FINAL_STATES for run in items)
    wait_for(idle, 300, interval=2, what="no active run")


def test_a_short_run_from_the_page_becomes_a_job_that_succeeds_and_is_served(
        http, core, batch, test_digits):
    before = inference_pods(core)
    name = f"cluster-short-run-{SUFFIX}"
    # Eight epochs (a few seconds), polled four times a second: the Job writes its progress at
    # most once a second, and on a quiet machine one epoch of `simple` on mnist-5k ended before
    # any write.
    run = start_run(http, epochs=8, name=name)
    run_id = run["id"]

    jobs = wait_for(lambda: run_jobs(batch, run_id), 60, what="the run's Job")
    assert len(jobs) == 1
    pod = running_pod(core, run_id)
    # The pod as the API server has it: UID 10001, read-only root file system, no token.
    assert pod.spec.security_context.run_as_user == 10001
    container = pod.spec.containers[0]
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.allow_privilege_escalation is False
    assert pod.spec.automount_service_account_token is False
    # And as it runs: the process's UID, and a root file system that refuses a write.
    uid = kubectl("-n", NAMESPACE, "exec", pod.metadata.name, "--", "id", "-u", check=False)
    if uid.returncode == 0:  # the pod may have finished already: the run is short
        assert uid.stdout.strip() == "10001"
        write = kubectl("-n", NAMESPACE, "exec", pod.metadata.name, "--", "touch", "/probe",
                        check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr + write.stdout

    progress_seen = []

    def ended():
        current = get_run(http, run_id)
        if current["state"] == "running" and current.get("progress", 0) > 0:
            progress_seen.append(current["progress"])
        return current["state"] in FINAL_STATES and current
    final = wait_for(ended, RUN_TIMEOUT, interval=0.25, what=f"run {run_id} to end")
    assert final["state"] == "succeeded", final
    assert final["model"] == name
    assert progress_seen, "no progress arrived while the run ran"
    # The job writes its final state, then exits: its Job completes a moment later.
    wait_for(lambda: batch.read_namespaced_job(jobs[0].metadata.name, NAMESPACE).status.succeeded,
             120, what="the run's Job to complete")

    model = VOLUME / f"{name}.keras"
    assert model.is_file()
    assert model.stat().st_uid == 10001
    listing = http.get(url("/api/models"), timeout=30).json()
    assert name in [m["name"] for m in listing["models"]]
    assert share_right(http, test_digits, model=name) >= 0.6
    # Served by the same inference pods, none restarted.
    assert inference_pods(core) == before


def test_a_run_stopped_from_the_api_ends_stopped_its_job_ended_no_model(http, core, batch):
    name = f"cluster-stopped-{SUFFIX}"
    run_id = start_run(http, epochs=30, architecture="cnn", name=name)["id"]
    running_pod(core, run_id)
    wait_for(lambda: get_run(http, run_id)["state"] == "running", 300, what="running")
    stopped = http.post(url(f"/api/train/runs/{run_id}/stop"), timeout=30)
    assert stopped.status_code in (200, 202), stopped.text
    final = wait_final(http, run_id, timeout=300)
    assert final["state"] == "stopped", final
    # The job stops itself between batches and exits: its Job ends (kept for its TTL, as a
    # finished Job is), and the executor deletes it only when it is still running after the
    # stop grace. Either way nothing of the run runs any more.
    wait_for(lambda: all(not job.status.active for job in run_jobs(batch, run_id)), 120,
             what="the run's Job to end")
    wait_for(lambda: all(p.status.phase in ("Succeeded", "Failed") for p in run_pods(core, run_id)),
             120, what="the run's pod to end")
    assert not (VOLUME / f"{name}.keras").exists()
    listing = http.get(url("/api/models"), timeout=30).json()
    assert name not in [m["name"] for m in listing["models"]]


def test_a_run_whose_pod_is_deleted_ends_failed_with_a_reason(http, core):
    name = f"cluster-pod-deleted-{SUFFIX}"
    run_id = start_run(http, epochs=30, architecture="cnn", name=name)["id"]
    pod = running_pod(core, run_id)
    core.delete_namespaced_pod(pod.metadata.name, NAMESPACE, grace_period_seconds=0)
    final = wait_final(http, run_id, timeout=300)
    assert final["state"] == "failed", final
    assert final["error"], final
    print(f"run {run_id} failed with: {final['error']}")
    assert not (VOLUME / f"{name}.keras").exists()


def test_a_run_outlives_a_restart_of_the_train_pod(http, core, apps):
    name = f"cluster-train-restarted-{SUFFIX}"
    run_id = start_run(http, epochs=2, name=name)["id"]
    job_pod = running_pod(core, run_id)
    old = core.list_namespaced_pod(NAMESPACE, label_selector="app=train").items
    assert len(old) == 1
    core.delete_namespaced_pod(old[0].metadata.name, NAMESPACE)

    def new_train_ready():
        pods = core.list_namespaced_pod(NAMESPACE, label_selector="app=train").items
        return [p for p in pods if p.metadata.name != old[0].metadata.name
                and p.status.container_statuses
                and all(c.ready for c in p.status.container_statuses)]
    wait_for(new_train_ready, 300, interval=2, what="a new train pod, ready")
    # Ready is the kubelet's word; the page reaches the pod once kube-proxy has its endpoint
    # (until then nginx answers 503), which is what a person sees: wait for that too.
    wait_for(lambda: http.get(url(f"/api/train/runs/{run_id}"), timeout=30).status_code == 200,
             60, interval=0.5, what="the run answering through the page again")
    # The new train pod picks the run up from the volume; the Job never noticed.
    final = wait_final(http, run_id)
    assert final["state"] == "succeeded", final
    assert final["model"] == name
    assert job_pod.metadata.name not in [p.metadata.name for p in run_pods(core, run_id)
                                         if p.status.phase == "Failed"]
    listing = http.get(url("/api/models"), timeout=30).json()
    assert name in [m["name"] for m in listing["models"]]


def test_no_job_runs_on_after_its_run_ended(http, batch):
    runs = http.get(url("/api/train/runs"), timeout=30).json()
    items = runs["runs"] if isinstance(runs, dict) else runs
    for run in items:
        # A job writes its final state, then exits: its Job ends a moment later.
        wait_for(lambda run=run: all(not job.status.active for job in run_jobs(batch, run["id"])),
                 60, what=f"run {run['id']}'s Job ({run['state']}) to end")


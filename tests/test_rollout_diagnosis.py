"""Rollout diagnosis on the real local control plane, with no kubelet: the pod's status and events
are written through the API as a kubelet would, and ``wait_for_rollout`` must fail at once with the
reason and the events' text (what a user needs to see when an image or a mount is wrong)."""

from __future__ import annotations

import kubernetes
import pytest

from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.components.node.images import PLACEHOLDER_IMAGE
from pytest_k8s_sa.deploy import DeployError, describe_pod, failing_reason, wait_for_rollout


def _pod(api: kubernetes.client.ApiClient, namespace: str, app: str) -> str:
    pod = resources.create_placeholder_pod(api, namespace, app, "default", labels={"app": app})
    return pod.name


def _waiting(api: kubernetes.client.ApiClient, namespace: str, name: str, reason: str, message: str) -> None:
    """Set the container's state the way the kubelet reports it."""
    status = {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "main",
                "image": PLACEHOLDER_IMAGE,
                "imageID": "",
                "ready": False,
                "restartCount": 3 if reason == "CrashLoopBackOff" else 0,
                "state": {"waiting": {"reason": reason, "message": message}},
            }
        ],
    }
    resources.core(api).patch_namespaced_pod_status(name, namespace, {"status": status})


def _event(api: kubernetes.client.ApiClient, namespace: str, pod: str, reason: str, message: str) -> None:
    event = kubernetes.client.CoreV1Event(
        metadata=kubernetes.client.V1ObjectMeta(name=f"{pod}.{reason.lower()}"),
        involved_object=kubernetes.client.V1ObjectReference(kind="Pod", name=pod, namespace=namespace),
        reason=reason,
        message=message,
        type="Warning",
        source=kubernetes.client.V1EventSource(component="kubelet"),
    )
    resources.core(api).create_namespaced_event(namespace, event)


@pytest.mark.parametrize(
    ("reason", "waiting_message", "event_reason", "event_message"),
    [
        (
            "ImagePullBackOff",
            'Back-off pulling image "example.invalid/nope:1"',
            "Failed",
            'Failed to pull image "example.invalid/nope:1": not found',
        ),
        (
            "CrashLoopBackOff",
            "back-off 40s restarting failed container=main",
            "BackOff",
            "Back-off restarting failed container main in pod",
        ),
    ],
)
def test_failing_container_fails_the_rollout_at_once_with_the_event_text(
    k8s_client, k8s_namespace, reason, waiting_message, event_reason, event_message
) -> None:
    name = _pod(k8s_client, k8s_namespace, "broken")
    _waiting(k8s_client, k8s_namespace, name, reason, waiting_message)
    _event(k8s_client, k8s_namespace, name, event_reason, event_message)
    with pytest.raises(DeployError) as failure:
        wait_for_rollout(k8s_client, [(k8s_namespace, "broken")], timeout=120)
    text = str(failure.value)  # at the deadline it would say "workloads not ready" instead
    assert f"broken failed to start ({reason})" in text
    assert f"waiting {reason}: {waiting_message}" in text
    assert f"Warning {event_reason}: {event_message}" in text


def test_failed_mount_fails_the_rollout_with_the_event_text(k8s_client, k8s_namespace) -> None:
    name = _pod(k8s_client, k8s_namespace, "no-volume")
    message = 'MountVolume.SetUp failed for volume "code" : configmap "k8s-sa-workloads" not found'
    _event(k8s_client, k8s_namespace, name, "FailedMount", message)
    with pytest.raises(DeployError) as failure:
        wait_for_rollout(k8s_client, [(k8s_namespace, "no-volume")], timeout=60)
    assert "no-volume failed to start (FailedMount)" in str(failure.value)
    assert f"Warning FailedMount: {message}" in str(failure.value)


@pytest.mark.parametrize(
    "message",
    [
        'object "ns"/"kube-root-ca.crt" not registered',
        "Couldn't get configMap ns/k8s-sa-workloads: failed to sync configmap cache: timed out waiting "
        "for the condition",
    ],
)
def test_a_transient_mount_message_is_not_a_failure(k8s_client, k8s_namespace, message) -> None:
    """The kubelet's informers catching up with a fresh pod; the rollout waits it out."""
    name = _pod(k8s_client, k8s_namespace, "fresh")
    _event(k8s_client, k8s_namespace, name, "FailedMount", message)
    pod = resources.core(k8s_client).read_namespaced_pod(name, k8s_namespace)
    assert failing_reason(resources.core(k8s_client), pod) is None
    assert message in describe_pod(resources.core(k8s_client), pod)


def test_no_pod_at_all_says_so_at_the_deadline(k8s_client, k8s_namespace) -> None:
    with pytest.raises(DeployError, match=r"no pod of .*/ghost was created"):
        wait_for_rollout(k8s_client, [(k8s_namespace, "ghost")], timeout=2)

"""The one pod builder: every pod the suite creates (a SUT's callee and caller, the token tap, the
API cut) and the reference manifests' pods have this shape.

A *workload pod* is one container with ports, an environment, an optional readiness probe and
volumes. With ``module`` it runs this project's standard-library code: ``python -m
k8s_sa_workloads.<module>`` in the workloads' image, the code mounted from the ``k8s-sa-workloads``
ConfigMap at ``/app/k8s_sa_workloads`` (:func:`~.manifests.workload_code_configmap` makes one per
namespace; ``fixtures/manifests/20-workload-code.yaml`` is the same for the reference deployment).
Without ``module`` it runs a team's image as the image says (SUT pods). Keeping one builder means a
change to the shape (a limit, a probe period, the mount path) reaches every pod at once;
``tests/test_workload_pod.py`` proves the reference manifests' pods have the builder's shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CODE_CONFIGMAP = "k8s-sa-workloads"
CODE_VOLUME = "code"
CODE_MOUNT = "/app/k8s_sa_workloads"
CODE_WORKDIR = "/app"
CODE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
"""What every pod running the workloads' code sets: no ``.pyc`` next to a read-only ConfigMap mount,
unbuffered logs (the rollout diagnosis shows their tails)."""
MEMORY_LIMIT = "128Mi"
PROBE_PERIOD_SECONDS = 1


def http_probe(path: str, port: int) -> dict[str, Any]:
    """A readiness probe that GETs ``path`` (ready on 2xx/3xx), checked every second."""
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": PROBE_PERIOD_SECONDS}


def tcp_probe(port: int) -> dict[str, Any]:
    """A readiness probe that only connects (for a SUT without a health path)."""
    return {"tcpSocket": {"port": port}, "periodSeconds": PROBE_PERIOD_SECONDS}


def workload_pod(
    name: str,
    image: str,
    *,
    ports: Mapping[str, int],
    env: Mapping[str, str] | None = None,
    module: str | None = None,
    python: str = "python",
    probe: dict[str, Any] | None = None,
    service_account: str | None = None,
    automount_token: bool | None = None,
    enable_service_links: bool | None = None,
    memory_limit: str | None = MEMORY_LIMIT,
    mounts: Sequence[dict[str, Any]] = (),
    volumes: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The pod spec of one workload container ``name`` (a dict as the API takes it).

    ``module``: run ``<python> -m k8s_sa_workloads.<module>`` with the code ConfigMap mounted (and
    :data:`CODE_ENV` set after ``env``); None: the image's own entry point. ``automount_token``,
    ``enable_service_links`` and ``service_account`` are left to the cluster's defaults when None.
    """
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    all_env = dict(env or {})
    all_mounts = list(mounts)
    all_volumes = list(volumes)
    if module is not None:
        container["command"] = [python, "-m", f"k8s_sa_workloads.{module}"]
        container["workingDir"] = CODE_WORKDIR
        all_env.update(CODE_ENV)
        all_mounts.insert(0, {"name": CODE_VOLUME, "mountPath": CODE_MOUNT, "readOnly": True})
        all_volumes.insert(0, {"name": CODE_VOLUME, "configMap": {"name": CODE_CONFIGMAP}})
    container["env"] = [{"name": key, "value": value} for key, value in all_env.items()]
    container["ports"] = [{"name": port_name, "containerPort": port} for port_name, port in ports.items()]
    if probe is not None:
        container["readinessProbe"] = probe
    if memory_limit is not None:
        container["resources"] = {"limits": {"memory": memory_limit}}
    container["volumeMounts"] = all_mounts
    spec: dict[str, Any] = {}
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    if automount_token is not None:
        spec["automountServiceAccountToken"] = automount_token
    if enable_service_links is not None:
        spec["enableServiceLinks"] = enable_service_links
    spec["terminationGracePeriodSeconds"] = 1
    spec["containers"] = [container]
    if all_volumes:
        spec["volumes"] = all_volumes
    return spec


def deployment_doc(
    name: str, namespace: str, pod_spec: dict[str, Any], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A one-replica Deployment of ``pod_spec``, its pods labelled ``app=<name>`` (what
    :func:`~.pods.wait_for_rollout` waits for)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, **(labels or {})}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def service_doc(
    name: str,
    namespace: str,
    app: str,
    ports: Mapping[str, tuple[int, int]],
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Service ``name`` selecting ``app=<app>``; ``ports`` maps a port name to (port, target port)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "selector": {"app": app},
            "ports": [
                {"name": port_name, "port": port, "targetPort": target}
                for port_name, (port, target) in ports.items()
            ],
        },
    }


def projected_token_volume(
    name: str, filename: str, audience: str, expiration_seconds: int
) -> dict[str, Any]:
    """A projected service-account token volume (the caller's token file; the kubelet rotates it)."""
    return {
        "name": name,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": filename,
                        "audience": audience,
                        "expirationSeconds": expiration_seconds,
                    }
                }
            ]
        },
    }

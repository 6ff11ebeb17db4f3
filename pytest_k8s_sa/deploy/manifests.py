"""Deploy the reference workloads from ``fixtures/manifests`` (clusters whose kubelet runs pods).

The templated manifests are applied and the real kubelet projects and rotates the tokens
(fidelity ``real``). The image comes from the cluster's capabilities (a provider that builds its
own, like local-node, says which), ``$K8S_SA_WORKLOAD_IMAGE`` overrides it.
"""

from __future__ import annotations

import contextlib
import os
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import requests
import yaml

from ..base import paths
from ..base.waiting import WaitTimeout, wait_until
from ..cluster import resources
from ..cluster.cluster import Cluster
from ..cluster.tokens import BoundObject
from .cleanup import Cleanups
from .model import API_TOKEN_REFRESH_SECONDS, AUDIENCE, Deployment, Workload
from .pods import (
    DeployError,
    PortForward,
    file_reader,
    log_reader,
    rotate_by_kubelet_restart,
    wait_for_rollout,
)
from .workload_pod import CODE_CONFIGMAP

PACKAGE_DIR = Path(__file__).resolve().parent.parent
MANIFESTS_DIR = paths.manifests_dir()
"""The templated manifests: in the wheel, or at the checkout's top (``$K8S_SA_MANIFESTS`` overrides)."""
WORKLOADS_DIR = PACKAGE_DIR / "workloads"
SECRET_STORE_MANIFEST = "30-secret-store.yaml"  # noqa: S105 - a file name
WORKLOAD_CODE_CONFIGMAP = CODE_CONFIGMAP
DEFAULT_IMAGE = "python:3.11-slim"
"""The workloads' image where the provider names none (kind, real clusters); ``$K8S_SA_WORKLOAD_IMAGE``
overrides it, and providers that build their own image say so in ``Capabilities.default_workload_image``."""
_TOKEN_PATHS = {
    "api": "/var/run/secrets/tokens/api-token",
    "data-store": "/var/run/secrets/tokens/data-store-token",
    "secret-store": "/var/run/secrets/kubernetes.io/serviceaccount/token",
}
_PORTS = {"api": 8080, "secret-store": 8081, "data-store": 8082}


def manifests_dir() -> Path:
    """The folder of templated manifests in use (``$K8S_SA_MANIFESTS`` or the packaged one)."""
    return Path(os.environ.get("K8S_SA_MANIFESTS") or MANIFESTS_DIR)


def render_manifest(path: Path, values: dict[str, str]) -> list[dict[str, Any]]:
    """The documents of one manifest file, ``${NAME}`` placeholders filled from ``values``."""
    try:
        text = string.Template(path.read_text()).substitute(values)
    except KeyError as exc:
        raise DeployError(f"{path}: no value for the placeholder ${{{exc.args[0]}}}") from None
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    files = workload_files()
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == WORKLOAD_CODE_CONFIGMAP:
            doc["data"] = dict(files)
    return docs


def workload_files() -> dict[str, str]:
    """The standard-library workload package, one entry per file, as its ConfigMap holds it."""
    return {p.name: p.read_text() for p in sorted(WORKLOADS_DIR.glob("*.py"))}


def workload_code_configmap(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """The ``k8s-sa-workloads`` ConfigMap for ``namespace`` (``20-workload-code.yaml``'s, for one
    namespace): pods there mount it at ``/app/k8s_sa_workloads`` and run ``python -m k8s_sa_workloads.X``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": WORKLOAD_CODE_CONFIGMAP, "namespace": namespace, "labels": dict(labels)},
        "data": workload_files(),
    }


def render_manifests(directory: Path, values: dict[str, str]) -> list[dict[str, Any]]:
    """Every document of ``directory/*.yaml`` (sorted), ``${NAME}`` placeholders filled from ``values``."""
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        docs.extend(render_manifest(path, values))
    return docs


def workload_image(cluster: Cluster, image: str | None = None) -> str:
    """``image``, else ``$K8S_SA_WORKLOAD_IMAGE``, else the provider's image, else :data:`DEFAULT_IMAGE`."""
    return (
        image
        or os.environ.get("K8S_SA_WORKLOAD_IMAGE")
        or cluster.capabilities.default_workload_image
        or DEFAULT_IMAGE
    )


@contextlib.contextmanager
def deploy_manifests(
    cluster: Cluster,
    names: Callable[[str], str],
    workdir: Path,
    *,
    image: str | None = None,
    manifests_dir: Path | None = None,
    audience: str = AUDIENCE,
    timeout: float = 180.0,
    patch: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Iterator[Deployment]:
    """Apply the manifests on a cluster whose kubelet runs pods; delete what was created on exit.

    Waits for the rollout, opens a port-forward per workload on loopback and waits for the first
    authenticated call (API service -> secret store, 200). Fidelity ``real``: the kubelet projects
    and rotates the tokens. ``workdir`` is unused here (the same signature as ``deploy_processes``).
    ``patch`` may change the rendered documents (in place) before they are applied.
    """
    with Cleanups() as stack:
        yield _apply(cluster, names, stack, image, manifests_dir, audience, timeout, patch)


def _apply(
    cluster: Cluster,
    names: Callable[[str], str],
    stack: Cleanups,
    image: str | None,
    folder: Path | None,
    audience: str,
    timeout: float,
    patch: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Deployment:
    api_client = cluster.api_client
    stream_client = cluster.info.api_client()  # kubernetes.stream patches its client: a private one
    stack.defer(stream_client.close)
    values = {
        "RUN_ID": cluster.run_id,
        "API_NAMESPACE": names("api"),
        "SECRET_STORE_NAMESPACE": names("secret-store"),
        "DATA_STORE_NAMESPACE": names("data-store"),
        "AUTH_DELEGATOR_BINDING": names("k8s-sa-secret-store-auth-delegator"),
        "IMAGE": workload_image(cluster, image),
        "AUDIENCE": audience,
        "TOKEN_REFRESH_SECONDS": f"{API_TOKEN_REFRESH_SECONDS:g}",
    }
    docs = render_manifests(folder or manifests_dir(), values)
    if patch is not None:
        patch(docs)
    for doc in docs:
        if doc["kind"] == "Namespace":
            stack.defer(resources.delete_namespace, api_client, doc["metadata"]["name"])
        elif doc["kind"] == "ClusterRoleBinding":
            stack.defer(resources.delete_cluster_role_binding, api_client, doc["metadata"]["name"])
    namespaces = {
        "api": values["API_NAMESPACE"],
        "secret-store": values["SECRET_STORE_NAMESPACE"],
        "data-store": values["DATA_STORE_NAMESPACE"],
    }
    started = time.monotonic()
    for doc in docs:
        kubernetes.utils.create_from_dict(api_client, doc)
    pods = wait_for_rollout(api_client, [(namespaces[app], app) for app in _PORTS], timeout)
    rolled_out = time.monotonic() - started
    workloads: dict[str, Workload] = {}
    for app, port in _PORTS.items():
        pod = pods[app]
        forward = PortForward(stream_client, namespaces[app], pod.metadata.name, port)
        stack.defer(forward.close)
        workloads[app] = Workload(
            app,
            namespaces[app],
            pod.spec.service_account_name,
            forward.url,
            BoundObject("Pod", pod.metadata.name, pod.metadata.uid),
            read_token=file_reader(stream_client, namespaces[app], pod.metadata.name, _TOKEN_PATHS[app]),
            read_logs=log_reader(api_client, namespaces[app], pod.metadata.name),
        )
    deployment = Deployment(
        caller=workloads["api"],
        callee=workloads["secret-store"],
        intruder=workloads["data-store"],
        fidelity="real",
        audience=audience,
    )
    first_ok = _first_authenticated_call(deployment, timeout=60.0)
    deployment.timings = {
        "rollout_seconds": round(rolled_out, 2),
        "apply_to_first_authenticated_call_seconds": round(time.monotonic() - started, 2)
        if first_ok
        else -1.0,
    }
    rotate_by_kubelet_restart(deployment, cluster.node_control)
    return deployment


def _first_authenticated_call(deployment: Deployment, timeout: float) -> bool:
    def granted() -> bool:
        return deployment.caller.get("/", timeout=5).status_code == 200

    try:
        wait_until(granted, timeout, "first authenticated call", ignore=(requests.RequestException,))
    except WaitTimeout:
        return False
    return True

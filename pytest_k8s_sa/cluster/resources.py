"""Creating and cleaning up the Kubernetes objects the fixtures and the suite need.

Everything created carries the labels of :func:`run_labels`, so a run can find (and only ever
delete) what it made itself, even on a shared cluster reached through ``--kubeconfig``.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable

import kubernetes
from kubernetes.client import ApiException

from ..base.waiting import WaitTimeout, wait_until
from ..components.node.images import PLACEHOLDER_IMAGE
from . import rest
from .rest import Created
from .tokens import TokenReviewResult, review_token

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "pytest-k8s-sa"
RUN_LABEL = "pytest-k8s-sa/run"
WORKER_LABEL = "pytest-k8s-sa/worker"
KEPT_LABEL = "pytest-k8s-sa/kept"
LEGACY_TOKEN_TYPE = "kubernetes.io/service-account-token"  # noqa: S105 - a Secret type, not a secret


def worker_id() -> str:
    """The pytest-xdist worker (``gw0``, ...) or ``main``: objects are cleaned up per worker."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def run_labels(run_id: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, RUN_LABEL: run_id, WORKER_LABEL: worker_id()}


def _ignore_404(call: object, *args: object, **kwargs: object) -> None:
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except ApiException as exc:
        if exc.status != 404:
            raise


def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


def create_namespace(api_client: kubernetes.client.ApiClient, name: str, labels: dict[str, str]) -> Created:
    """The namespaces, service accounts, placeholder pods and secrets of a run are made with plain JSON
    (:mod:`.rest`): the first of them are on the path to the first check, and the client's
    ``CoreV1Api`` is still being imported then."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    return Created.from_object(rest.call(api_client, "POST", "/api/v1/namespaces", body))


def keep_namespace(api_client: kubernetes.client.ApiClient, name: str) -> None:
    """Mark a namespace as kept for inspection: no longer the run's, so no cleanup deletes it."""
    patch = {"metadata": {"labels": {RUN_LABEL: None, WORKER_LABEL: None, KEPT_LABEL: "true"}}}
    core(api_client).patch_namespace(name, patch)


def delete_namespace(api_client: kubernetes.client.ApiClient, name: str) -> None:
    _ignore_404(core(api_client).delete_namespace, name, propagation_policy="Background")


def wait_namespaces_gone(
    api_client: kubernetes.client.ApiClient, names: Iterable[str], timeout: float
) -> None:
    pending = set(names)

    def gone() -> bool:
        for name in list(pending):
            try:
                core(api_client).read_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                pending.discard(name)
        return not pending

    wait_until(gone, timeout, f"namespaces still terminating: {sorted(pending)}")


def create_service_account(
    api_client: kubernetes.client.ApiClient, namespace: str, name: str, labels: dict[str, str] | None = None
) -> Created:
    body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, labels)}
    return Created.from_object(
        rest.call(api_client, "POST", rest.path("/api/v1/namespaces/{}/serviceaccounts", namespace), body)
    )


def create_placeholder_pod(
    api_client: kubernetes.client.ApiClient,
    namespace: str,
    name: str,
    service_account: str,
    *,
    labels: dict[str, str] | None = None,
    image: str = PLACEHOLDER_IMAGE,
) -> Created:
    """A Pod that exists (and runs, where a kubelet is) so tokens can be bound to it."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(name, labels),
        "spec": {
            "serviceAccountName": service_account,
            "automountServiceAccountToken": False,
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}],
        },
    }
    return Created.from_object(
        rest.call(api_client, "POST", rest.path("/api/v1/namespaces/{}/pods", namespace), body)
    )


def create_secret(
    api_client: kubernetes.client.ApiClient, namespace: str, name: str, string_data: dict[str, str]
) -> Created:
    """An Opaque Secret (one tokens can be bound to)."""
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name), "stringData": string_data}
    return Created.from_object(
        rest.call(api_client, "POST", rest.path("/api/v1/namespaces/{}/secrets", namespace), body)
    )


def _meta(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"name": name, "labels": labels} if labels else {"name": name}


def delete_pod(
    api_client: kubernetes.client.ApiClient, namespace: str, name: str, *, wait: float = 60.0
) -> None:
    """Delete a pod at once (grace 0) and wait until the object is gone."""
    _ignore_404(core(api_client).delete_namespaced_pod, name, namespace, grace_period_seconds=0)

    def gone() -> bool:
        try:
            core(api_client).read_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    wait_until(gone, wait, f"pod {namespace}/{name} still exists")


def create_legacy_token_secret(
    api_client: kubernetes.client.ApiClient, namespace: str, service_account: str, name: str
) -> kubernetes.client.V1Secret:
    body = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(
            name=name, annotations={"kubernetes.io/service-account.name": service_account}
        ),
        type=LEGACY_TOKEN_TYPE,
    )
    return core(api_client).create_namespaced_secret(namespace, body)


def wait_legacy_token(
    api_client: kubernetes.client.ApiClient, namespace: str, name: str, timeout: float = 30.0
) -> str:
    """Wait until the tokens controller has filled the Secret and the apiserver accepts its token;
    return the decoded token.

    The second wait matters: the apiserver looks a legacy token's Secret up in its own informer cache
    first, which can still hold the Secret as created, without a token, a moment after a direct read
    shows it filled. Until the cache catches up, reviews refuse the token with "Token does not match
    server's copy", so a check that wants it refused for its own reason (its audience, its deleted
    Secret) would otherwise pass or fail for this one. Refusals are not cached by the apiserver.
    """
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout

    def filled() -> bool:
        data = core(api_client).read_namespaced_secret(name, namespace).data or {}
        if data.get("token"):
            found["token"] = base64.b64decode(data["token"]).decode()
        return bool(found)

    wait_until(
        filled,
        timeout,
        f"Secret {namespace}/{name} was not filled with a token; is kube-controller-manager running with "
        "--service-account-private-key-file (the tokens controller)?",
    )
    last: list[TokenReviewResult] = []

    def accepted() -> bool:
        last.append(review_token(api_client, found["token"]))
        return last[-1].authenticated

    try:
        wait_until(
            accepted, max(deadline - time.monotonic(), 1.0), "legacy token not accepted", max_interval=0.1
        )
    except WaitTimeout:
        raise WaitTimeout(
            f"the apiserver does not accept the legacy token of Secret {namespace}/{name} "
            f"(last review: {last[-1].error if last else 'none'}); its informer cache may not have "
            "seen the filled Secret, or the token's service account is gone"
        ) from None
    return found["token"]


def grant_auth_delegator(
    api_client: kubernetes.client.ApiClient,
    binding_name: str,
    namespace: str,
    service_account: str,
    labels: dict[str, str],
) -> None:
    """Bind ``system:auth-delegator`` (create tokenreviews) to a service account."""
    body = kubernetes.client.V1ClusterRoleBinding(
        metadata=kubernetes.client.V1ObjectMeta(name=binding_name, labels=labels),
        role_ref=kubernetes.client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
        ),
        subjects=[
            kubernetes.client.RbacV1Subject(kind="ServiceAccount", name=service_account, namespace=namespace)
        ],
    )
    kubernetes.client.RbacAuthorizationV1Api(api_client).create_cluster_role_binding(body)


ISSUER_DISCOVERY_ROLE = "system:service-account-issuer-discovery"
"""The bootstrap ClusterRole that reads ``/.well-known/openid-configuration`` and ``/openid/v1/jwks``."""


def grant_issuer_discovery(
    api_client: kubernetes.client.ApiClient, binding_name: str, labels: dict[str, str]
) -> None:
    """Bind :data:`ISSUER_DISCOVERY_ROLE` to ``system:unauthenticated`` (the Kubernetes docs' way to
    let offline verifiers without credentials fetch the discovery document and the key set)."""
    body = kubernetes.client.V1ClusterRoleBinding(
        metadata=kubernetes.client.V1ObjectMeta(name=binding_name, labels=labels),
        role_ref=kubernetes.client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=ISSUER_DISCOVERY_ROLE
        ),
        subjects=[
            kubernetes.client.RbacV1Subject(
                kind="Group", name="system:unauthenticated", api_group="rbac.authorization.k8s.io"
            )
        ],
    )
    kubernetes.client.RbacAuthorizationV1Api(api_client).create_cluster_role_binding(body)


def delete_cluster_role_binding(api_client: kubernetes.client.ApiClient, name: str) -> None:
    _ignore_404(kubernetes.client.RbacAuthorizationV1Api(api_client).delete_cluster_role_binding, name)


def delete_run_objects(
    api_client: kubernetes.client.ApiClient, run_id: str, *, wait: float = 0.0
) -> list[str]:
    """Delete the namespaces and ClusterRoleBindings this run (and this xdist worker) created.

    Other workers of the same run may still be using theirs, so the selector names the worker too.
    """
    selector = f"{RUN_LABEL}={run_id},{WORKER_LABEL}={worker_id()}"
    deleted: list[str] = []
    rbac = kubernetes.client.RbacAuthorizationV1Api(api_client)
    for crb in rbac.list_cluster_role_binding(label_selector=selector).items:
        delete_cluster_role_binding(api_client, crb.metadata.name)
        deleted.append(f"clusterrolebinding/{crb.metadata.name}")
    names = [ns.metadata.name for ns in core(api_client).list_namespace(label_selector=selector).items]
    for name in names:
        delete_namespace(api_client, name)
        deleted.append(f"namespace/{name}")
    if wait and names:
        wait_namespaces_gone(api_client, names, wait)
    return deleted

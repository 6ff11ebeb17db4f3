"""Pod mode: cut a callee pod off its Kubernetes API by re-pointing its in-cluster API address.

In-cluster clients (client-go ``rest.InClusterConfig()``, the Python client's
``load_incluster_config``, this project's workloads) dial ``https://$KUBERNETES_SERVICE_HOST:
$KUBERNETES_SERVICE_PORT`` and verify the apiserver's certificate for that host against the pod's
``ca.crt``. The suite changes exactly this in the callee's pod spec:

* ``env``: ``KUBERNETES_SERVICE_HOST=kubernetes`` and ``KUBERNETES_SERVICE_PORT=443`` (explicit
  container variables win over the kubelet's service variables: kubelet ``makeEnvironmentVariables``
  adds a service variable only when the container does not define it);
* ``enableServiceLinks: false``, so the kubelet's remaining docker-link variables
  (``KUBERNETES_PORT_443_TCP_ADDR`` ...) keep describing ``default/kubernetes``, as in any pod, rather
  than the Service below (kubelet ``getServiceEnvVarMap`` lets a same-namespace Service named
  ``kubernetes`` replace the default one when service links are on);

and adds, in the callee's namespace, a Service named ``kubernetes`` (port 443) selecting an
``api-cut`` pod: :mod:`pytest_k8s_sa.workloads.api_cut` in the workloads' python image, code from the
``k8s-sa-workloads`` ConfigMap, forwarding to the ClusterIP of ``default/kubernetes``. The name
``kubernetes`` resolves through the pod's DNS search path (``<namespace>.svc.cluster.local`` first,
``ndots:5``) to that Service; TLS still verifies, end to end, because the apiserver's serving
certificate carries the DNS name ``kubernetes`` (kubeadm and kind do; so does local-node's PKI).
The suite switches the cut through a port-forward to its control port.

The modes that answer garbage *over TLS* need a certificate for ``kubernetes`` that the callee trusts:
issued from the cluster's CA where the provider holds its key (local-node; kind reads kubeadm's);
elsewhere those outages are not played, and the checks say so. A callee that does not reach its API
through the re-pointed address (its own kubeconfig, a fixed address) is detected by the checks (no
traffic through the cut during a normal verdict) and they skip saying why.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import requests

from ...base.errors import K8sSAError
from ...cluster.cluster import Cluster
from ...workloads.api_cut import MODES, TLS_MODES
from ..manifests import workload_code_configmap, workload_image
from ..pods import DeployError, PortForward, wait_for_rollout
from ..workload_pod import deployment_doc, http_probe, service_doc, workload_pod

APP = "api-cut"
SERVICE = "kubernetes"
SERVICE_PORT = 443
CUT_PORT = 8443
CONTROL_PORT = 8444
START_TIMEOUT = 120.0
CALLEE_ENV = {"KUBERNETES_SERVICE_HOST": SERVICE, "KUBERNETES_SERVICE_PORT": str(SERVICE_PORT)}
HOW = (
    "pod mode: the in-cluster API address is re-pointed - the callee's container gets "
    "KUBERNETES_SERVICE_HOST=kubernetes and KUBERNETES_SERVICE_PORT=443, its pod enableServiceLinks: false; "
    "a Service `kubernetes` in its namespace selects the api-cut pod, which forwards to default/kubernetes "
    "(TLS end to end: the apiserver's certificate names `kubernetes`)"
)
JWKS_HOW = (
    "pod mode: ${JWKS_URL} is https://kubernetes:443/openid/v1/jwks; a Service `kubernetes` in the callee's "
    "namespace selects the api-cut pod, which forwards to default/kubernetes (TLS end to end: the "
    "apiserver's certificate names `kubernetes`; ${CA_FILE} is the pod's ca.crt)"
)


class ApiCutError(K8sSAError):
    """The cut pod did not answer its control port as expected."""


@dataclass
class PodApiCut:
    """The objects of one cut, and how the callee's pod spec changes for it."""

    namespace: str
    docs: list[dict[str, Any]]
    tls: bool
    unavailable: str | None = None
    """Why the callee cannot be cut (then ``docs`` is empty and the callee is left unchanged)."""
    upstream: str = field(default="")

    def patch_callee(self, pod_spec: dict[str, Any]) -> None:
        """Re-point the callee's in-cluster API address (nothing else of its spec changes)."""
        if self.unavailable:
            return
        pod_spec["enableServiceLinks"] = False
        for container in pod_spec["containers"]:
            container.setdefault("env", []).extend({"name": k, "value": v} for k, v in CALLEE_ENV.items())

    def start(self, api_client: kubernetes.client.ApiClient, timeout: float = START_TIMEOUT) -> str | None:
        """Create the cut and wait for its pod, *before* the callee exists; returns the pod's name.

        A cut that does not start (an image the cluster cannot pull, say) must not break the SUT's
        deployment: its Service and Deployment are deleted again (a Service named ``kubernetes`` left
        behind would reach an unpatched callee through the kubelet's service links), the callee is
        not re-pointed, and ``unavailable`` says why (the fail-closed checks skip with it).
        """
        if self.unavailable:
            return None
        for doc in self.docs:
            kubernetes.utils.create_from_dict(api_client, doc)
        try:
            return str(wait_for_rollout(api_client, [(self.namespace, APP)], timeout)[APP].metadata.name)
        except DeployError as exc:
            apps = kubernetes.client.AppsV1Api(api_client)
            core = kubernetes.client.CoreV1Api(api_client)
            with contextlib.suppress(kubernetes.client.ApiException):
                core.delete_namespaced_service(SERVICE, self.namespace)
            with contextlib.suppress(kubernetes.client.ApiException):
                apps.delete_namespaced_deployment(APP, self.namespace)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")
            self.unavailable = f"the api-cut pod did not start, so the callee's API is not cut: {first}"
            return None

    def connect(self, api_client: kubernetes.client.ApiClient, pod_name: str) -> RemoteApiCut:
        """A handle on the running cut pod (a port-forward to its control port); close it after use."""
        return RemoteApiCut(PortForward(api_client, self.namespace, pod_name, CONTROL_PORT))


def plan(
    cluster: Cluster,
    namespace: str,
    callee_env: dict[str, str],
    labels: dict[str, str],
    *,
    with_code: bool = True,
) -> PodApiCut:
    """The cut for a callee in ``namespace`` whose own env is ``callee_env``.

    ``with_code=False``: the namespace already has the ``k8s-sa-workloads`` ConfigMap (the reference
    manifests bring one)."""
    pinned = sorted(set(CALLEE_ENV) & set(callee_env))
    if pinned:
        return PodApiCut(
            namespace,
            [],
            False,
            unavailable=f"the SUT file sets {', '.join(pinned)} for the callee itself, so the suite does not "
            "re-point its in-cluster API address",
        )
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    real = core.read_namespaced_service("kubernetes", "default")
    port = next((p.port for p in real.spec.ports if p.name == "https"), real.spec.ports[0].port)
    upstream = f"{real.spec.cluster_ip}:{port}"
    env = {"UPSTREAM": upstream, "CUT_LISTEN_ADDR": f":{CUT_PORT}", "LISTEN_ADDR": f":{CONTROL_PORT}"}
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    docs: list[dict[str, Any]] = []
    if with_code:
        docs.append(workload_code_configmap(namespace, labels))
    ca = cluster.info.cluster_ca
    if ca is not None:
        pair = ca.issue(APP, dns_names=(SERVICE,), server=True)
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": APP, "namespace": namespace, "labels": labels},
                "data": {
                    "tls.crt": base64.b64encode(pair.cert_pem).decode(),
                    "tls.key": base64.b64encode(pair.key_pem).decode(),
                    # ``relay`` (KEY-004/005) verifies the apiserver with it, as the callee does
                    "ca.crt": base64.b64encode(ca.cert_pem).decode(),
                },
            }
        )
        env.update(
            CERT_FILE="/etc/api-cut/tls.crt",
            KEY_FILE="/etc/api-cut/tls.key",
            UPSTREAM_CA_FILE="/etc/api-cut/ca.crt",
            UPSTREAM_NAME=SERVICE,
        )
        mounts.append({"name": "tls", "mountPath": "/etc/api-cut", "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": APP}})
    pod_spec = workload_pod(
        APP,
        workload_image(cluster),
        module="api_cut",
        python="python3",
        env=env,
        ports={"https": CUT_PORT, "control": CONTROL_PORT},
        probe=http_probe("/healthz", CONTROL_PORT),
        automount_token=False,
        enable_service_links=False,
        mounts=mounts,
        volumes=volumes,
    )
    docs += [
        deployment_doc(APP, namespace, pod_spec, labels),
        service_doc(SERVICE, namespace, APP, {"https": (SERVICE_PORT, CUT_PORT)}, labels),
    ]
    return PodApiCut(namespace, docs, tls=ca is not None, upstream=upstream)


class ManifestsCut:
    """Manifests mode (the reference workloads, no SUT file): the same cut for the reference secret
    store, patched into the rendered manifests (``deploy_manifests(patch=...)``) and created with them.

    No "start first" here: the cut runs in the same image as the reference workloads, so a cluster
    that cannot run it cannot run them either.
    """

    def __init__(self, cluster: Cluster, labels: dict[str, str], app: str = "secret-store") -> None:
        self.cluster, self.labels, self.app = cluster, labels, app
        self.cut: PodApiCut | None = None

    def __call__(self, docs: list[dict[str, Any]]) -> None:
        store = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == self.app)
        spec = store["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value", "") for c in spec["containers"] for e in c.get("env", [])}
        self.cut = plan(self.cluster, store["metadata"]["namespace"], env, self.labels, with_code=False)
        self.cut.patch_callee(spec)
        docs.extend(self.cut.docs)

    def connect(
        self, api_client: kubernetes.client.ApiClient, stream_client: kubernetes.client.ApiClient
    ) -> RemoteApiCut | None:
        """Wait for the cut pod (applied with the manifests) and open its control port."""
        if self.cut is None or self.cut.unavailable:
            return None
        pod = wait_for_rollout(api_client, [(self.cut.namespace, APP)], START_TIMEOUT)[APP]
        return self.cut.connect(stream_client, str(pod.metadata.name))


class RemoteApiCut:
    """The suite's handle on a cut pod: switches it and reads its traffic over its control port."""

    how = HOW
    jwks_how = JWKS_HOW

    def __init__(self, forward: PortForward) -> None:
        self._forward = forward
        self._modes: tuple[str, ...] = tuple(self._state()["modes"])

    @property
    def modes(self) -> tuple[str, ...]:
        return self._modes

    def set_mode(self, mode: str, response: bytes = b"") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        path = f"/mode/{mode}" + (f"/{base64.urlsafe_b64encode(response).decode()}" if response else "")
        answer = requests.post(self._forward.url + path, timeout=15)
        if answer.status_code != 200:
            raise ApiCutError(
                f"the api-cut pod refused mode {mode!r}: {answer.status_code} {answer.text[:200]}"
            )

    def traffic(self) -> int:
        return int(self._state()["forwarded_bytes"])

    def reviews_answered(self) -> int:
        """TokenReviews the cut answered itself (mode ``review``)."""
        return int(self._state().get("reviews_answered", 0))

    def connections(self) -> int:
        """Connections the cut accepted so far, in any mode."""
        return int(self._state()["accepted"])

    def requests_by_path(self) -> dict[str, int]:
        """Requests the cut saw in mode ``relay``, by path."""
        return {str(k): int(v) for k, v in self._state().get("requests_by_path", {}).items()}

    @property
    def callee_url(self) -> str:
        return f"https://{SERVICE}:{SERVICE_PORT}"

    def _state(self) -> dict[str, Any]:
        answer = requests.get(self._forward.url + "/state", timeout=15)
        if answer.status_code != 200:
            raise ApiCutError(f"the api-cut pod's /state answered {answer.status_code}")
        state: dict[str, Any] = answer.json()
        return state

    def close(self) -> None:
        self._forward.close()


__all__ = [
    "APP",
    "CALLEE_ENV",
    "HOW",
    "TLS_MODES",
    "ApiCutError",
    "ManifestsCut",
    "PodApiCut",
    "RemoteApiCut",
    "plan",
]

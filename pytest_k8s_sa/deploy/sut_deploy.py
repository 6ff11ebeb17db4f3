"""Deploy a team's system under test (a SUT file, :mod:`pytest_k8s_sa.sut.model`) like the reference ones.

The suite creates what the SUT's pods would find in a cluster: three namespaces (the allowed caller
``api``, the callee ``secret-store``, the intruder ``data-store``), their service accounts, the
callee's ``system:auth-delegator`` ClusterRoleBinding and a Service for the callee. Then:

* **process mode** (local provider, ``command``): the callee runs as a local process with
  ``cwd`` = the SUT file's folder. ``${KUBECONFIG}`` is a JSON kubeconfig that authenticates as the
  callee's *own* service account (a token the emulated kubelet keeps fresh), so RBAC applies as in a
  pod; its server is a :class:`~pytest_k8s_sa.deploy.apicut.process_mode.FlakyApi` in front of the apiserver
  (forwarding, TLS end to end), which the fail-closed checks switch to refuse, hang or answer
  garbage. A caller runs the same way, with its projected token in ``${TOKEN_PATH}`` (emulated
  kubelet) and ``${CALLEE_URL}`` a token tap (:mod:`pytest_k8s_sa.workloads.tap`) on loopback in
  this process, which relays to the callee and notes which token the caller sends.
* **pod mode** (providers that run pods; ``image``): Deployments of the image (an ``image_archive``
  is loaded through ``cluster.node_control`` first), the callee with its automounted
  service-account token (in-cluster config), the caller with a projected token volume at
  ``token_path`` and ``${CALLEE_URL}`` the Service of the same token tap, run as a pod of the
  workloads' image next to the caller; the suite reads the noted ``jti`` from the tap's status port.
  The same rollout waiting and diagnostics (events, logs) as the reference manifests, port-forwards
  on loopback. Where the provider controls its node (local-node, kind) the caller's token file can
  be replaced on demand by restarting the kubelet, as with the reference manifests. For the
  fail-closed checks the callee's in-cluster API address is re-pointed at an ``api-cut`` pod in its
  namespace (:mod:`.apicut.pod_mode` says exactly what changes in its pod spec: two env variables and
  ``enableServiceLinks: false``).

Either way (a context manager) the result is a :class:`SutRun`: a
:class:`~pytest_k8s_sa.deploy.model.Deployment` (``secret_store`` is the callee; ``api`` the caller,
or only the allowed identity when the SUT has no caller; ``data_store`` the intruder identity the
suite plays itself) plus what the SUT-specific checks need.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import posixpath
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import requests

from ..base.ports import free_port
from ..base.process import Process
from ..base.waiting import WaitTimeout, wait_until
from ..cluster import resources
from ..cluster.cluster import Cluster
from ..cluster.tokens import BoundObject, request_token
from ..sut.model import CalleeSpec, Sut, SutError, WorkloadSpec, python_executable
from ..workloads.tap import LoopbackTap
from .apicut import pod_mode
from .apicut.process_mode import ApiCutControl, FlakyApi, make_test_ca
from .manifests import workload_code_configmap, workload_image
from .model import TOKEN_EXPIRATION_SECONDS, Deployment, Workload
from .pods import (
    DeployError,
    PortForward,
    file_reader,
    log_reader,
    rotate_by_kubelet_restart,
    wait_for_rollout,
)
from .processes import _project, _service_account_volume
from .projector import FIDELITY as EMULATED

CALLER_SA = "api"
CALLEE_SA = "secret-store"
INTRUDER_SA = "data-store"
START_TIMEOUT = 60.0
TAP = "token-tap"
TAP_PORT = 8080
TAP_STATUS_PORT = 8090
TOKEN_VOLUME = "tokens"  # noqa: S105 - a volume name, not a secret
"""The caller's projected token volume in pod mode (read on the node by :func:`_token_reader`)."""


@dataclass
class SutRun:
    """A deployed SUT: the workloads, and the handles the SUT checks use."""

    sut: Sut
    deployment: Deployment
    mode: str
    """``process``, ``pod``, or ``manifests`` (the reference workloads without a SUT file)."""
    binding: str | None = None
    """The callee's ``system:auth-delegator`` ClusterRoleBinding."""
    api_cut: ApiCutControl | None = None
    """The cut between the callee and its Kubernetes API (process mode: a loopback proxy named by its
    kubeconfig; pod mode: :mod:`.apicut.pod_mode`); None: the callee's API cannot be cut here."""
    caller_jti: Callable[[], str | None] | None = field(default=None, repr=False)
    """The ``jti`` of the token the caller sends now (None: cannot be observed here)."""
    labels: dict[str, str] = field(default_factory=dict)
    api_cut_unavailable: str | None = None
    """Pod mode: why ``api_cut`` is None (the SUT sets the address itself, or the cut did not start)."""

    @property
    def has_caller(self) -> bool:
        return self.sut.caller is not None


def find_auth_delegator_binding(
    api_client: kubernetes.client.ApiClient, namespace: str, name: str
) -> str | None:
    """The ClusterRoleBinding granting ``system:auth-delegator`` to ``namespace:name`` (None: none)."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(api_client)
    for binding in rbac.list_cluster_role_binding().items:
        if binding.role_ref.name != "system:auth-delegator":
            continue
        for subject in binding.subjects or []:
            if subject.kind == "ServiceAccount" and subject.namespace == namespace and subject.name == name:
                return str(binding.metadata.name)
    return None


def _values(sut: Sut, **overrides: str) -> dict[str, str]:
    values = {
        "PORT": "",
        "AUDIENCE": sut.callee.audience,
        "ALLOWED_SERVICE_ACCOUNTS": "",
        "KUBECONFIG": "",
        "NAMESPACE": "",
        "CALLEE_URL": "",
        "TOKEN_PATH": "",
        "PYTHON": python_executable(),
    }
    values.update(overrides)
    return values


def _health(spec: WorkloadSpec, port: int) -> Callable[[], bool]:
    if spec.health_path:
        url = f"http://127.0.0.1:{port}{spec.health_path}"
        return lambda: 200 <= requests.get(url, timeout=2).status_code < 300

    def connects() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    return connects


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, token_file: Path) -> Path:
    """A kubeconfig (JSON, which every kubeconfig reader accepts) for one service account's token file."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sut",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "sut", "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": "sut", "context": {"cluster": "sut", "user": "sut"}}],
        "current-context": "sut",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    path.chmod(0o600)
    return path


def _identities(
    cluster: Cluster, names: Callable[[str], str], labels: dict[str, str], cleanups: list[Callable[[], None]]
) -> dict[str, tuple[str, BoundObject]]:
    api_client = cluster.api_client
    out: dict[str, tuple[str, BoundObject]] = {}
    for stem in (CALLER_SA, CALLEE_SA, INTRUDER_SA):
        namespace = names(stem)
        resources.create_namespace(api_client, namespace, labels)
        cleanups.append(functools.partial(resources.delete_namespace, api_client, namespace))
        resources.create_service_account(api_client, namespace, stem)
        pod = resources.create_placeholder_pod(
            api_client, namespace, f"{stem}-identity", stem, labels={"app": f"{stem}-identity"}
        )
        out[stem] = (namespace, BoundObject("Pod", pod.metadata.name, pod.metadata.uid))
    return out


def first_verdict(callee_url: str, callee: CalleeSpec, token: str, timeout: float) -> float:
    """Seconds until the callee grants ``token`` (the allowed caller's): the deployment works."""
    started = time.monotonic()

    def granted() -> bool:
        answer = requests.get(callee_url + "/", headers=callee.credential_headers(token), timeout=10)
        return 200 <= answer.status_code < 300

    try:
        wait_until(
            granted,
            timeout,
            "the callee never granted the allowed caller's token",
            max_interval=1.0,
            ignore=(requests.RequestException,),
        )
    except WaitTimeout as exc:
        raise DeployError(
            f"{exc}: it is up, but answers no 2xx to a valid token of the allowed caller "
            "(check its audience, allow-list and credentials)"
        ) from None
    return time.monotonic() - started


def caller_first_grant(url: str, timeout: float) -> float:
    """Seconds until a call through the caller is granted end to end (-1: not within ``timeout``;
    ACC-001 then judges it). Waits out the Service's endpoints and proxy rules after a rollout."""
    started = time.monotonic()

    def granted() -> bool:
        return 200 <= requests.get(url, timeout=10).status_code < 300

    try:
        wait_until(granted, timeout, "no grant through the caller", ignore=(requests.RequestException,))
    except WaitTimeout:
        return -1.0
    return round(time.monotonic() - started, 2)


# --- process mode -----------------------------------------------------------------------------


@contextlib.contextmanager
def deploy_sut_processes(
    cluster: Cluster, names: Callable[[str], str], workdir: Path, sut: Sut
) -> Iterator[SutRun]:
    """Run the SUT's callee (and caller) as local processes against ``cluster`` (emulated kubelet)."""
    for spec, key in ((sut.callee, "callee"), (sut.caller, "caller")):
        if spec is not None and spec.command is None:
            raise SutError(
                f"{sut.path or 'the SUT'}: {key}.command is needed on the local provider, which runs the SUT "
                "as processes; or give --k8s-provider local-node, kind or kubeconfig (they run pods)"
            )
    api_client = cluster.api_client
    labels = resources.run_labels(cluster.run_id)
    cleanups: list[Callable[[], None]] = []
    started = time.monotonic()
    try:
        ids = _identities(cluster, names, labels, cleanups)
        (api_ns, api_pod), (store_ns, store_pod), (data_ns, data_pod) = (
            ids[CALLER_SA],
            ids[CALLEE_SA],
            ids[INTRUDER_SA],
        )
        binding = names("k8s-sa-sut-auth-delegator")
        resources.grant_auth_delegator(api_client, binding, store_ns, CALLEE_SA, labels)
        cleanups.append(functools.partial(resources.delete_cluster_role_binding, api_client, binding))

        ca, server_pair = make_test_ca()
        volume = _service_account_volume(
            cluster, store_ns, CALLEE_SA, store_pod, workdir / "callee" / "serviceaccount", ca.cert_pem
        )
        cleanups.append(volume.stop)
        server = urlsplit(api_client.configuration.host)
        proxy = FlakyApi(
            (server.hostname or "127.0.0.1", server.port or 443), server_pair, workdir / "api-proxy"
        )
        proxy.start()
        cleanups.append(proxy.stop)
        kubeconfig = write_kubeconfig(
            workdir / "callee" / "kubeconfig.json",
            proxy.url,
            (volume.directory / "ca.crt").read_bytes(),
            volume.path,
        )
        allowed = f"{api_ns}:{CALLER_SA}"
        port = free_port()
        values = _values(
            sut,
            PORT=str(port),
            ALLOWED_SERVICE_ACCOUNTS=allowed,
            KUBECONFIG=str(kubeconfig),
            NAMESPACE=store_ns,
        )
        callee_proc = _start_process("callee", sut.callee, values, sut, workdir, port)
        cleanups.append(callee_proc.stop)
        callee_url = f"http://127.0.0.1:{port}"
        probe = request_token(
            api_client,
            api_ns,
            CALLER_SA,
            audiences=[sut.callee.audience],
            expiration_seconds=3600,
            bound_object=api_pod,
        )
        verdict = first_verdict(callee_url, sut.callee, probe.raw, START_TIMEOUT)

        callee = Workload(CALLEE_SA, store_ns, CALLEE_SA, callee_url, store_pod, volume, callee_proc)
        caller = Workload(CALLER_SA, api_ns, CALLER_SA, "", api_pod)
        caller_jti: Callable[[], str | None] | None = None
        refresh = 60.0
        if sut.caller is not None:
            tap = LoopbackTap(callee_url, sut.callee.header)
            cleanups.append(tap.close)
            filename = posixpath.basename(sut.caller.token_path) or "token"
            projector = _project(
                cluster,
                api_ns,
                CALLER_SA,
                api_pod,
                workdir / "caller" / "tokens",
                filename,
                sut.callee.audience,
            )
            cleanups.append(projector.stop)
            caller_port = free_port()
            caller_values = _values(
                sut,
                PORT=str(caller_port),
                ALLOWED_SERVICE_ACCOUNTS=allowed,
                NAMESPACE=api_ns,
                CALLEE_URL=tap.url,
                TOKEN_PATH=str(projector.path),
            )
            caller_proc = _start_process("caller", sut.caller, caller_values, sut, workdir, caller_port)
            cleanups.append(caller_proc.stop)
            caller = Workload(
                CALLER_SA,
                api_ns,
                CALLER_SA,
                f"http://127.0.0.1:{caller_port}",
                api_pod,
                projector,
                caller_proc,
            )
            caller_jti = lambda: tap.last_jti  # noqa: E731
            refresh = sut.caller.token_refresh_seconds
        deployment = Deployment(
            caller=caller,
            callee=callee,
            intruder=Workload(INTRUDER_SA, data_ns, INTRUDER_SA, "", data_pod),
            fidelity=EMULATED,
            audience=sut.callee.audience,
            api_token_refresh_seconds=refresh,
            _cleanups=cleanups,
        )
        deployment.timings = {
            "deploy_seconds": round(time.monotonic() - started, 2),
            "callee_start_to_first_verdict_seconds": round(verdict, 2),
        }
        yield SutRun(sut, deployment, "process", binding, proxy, caller_jti, labels)
    finally:
        while cleanups:
            with contextlib.suppress(Exception):
                cleanups.pop()()


def _start_process(
    name: str, spec: WorkloadSpec, values: dict[str, str], sut: Sut, workdir: Path, port: int
) -> Process:
    try:
        argv = spec.argv(values)
        env = spec.environment(values)
    except SutError as exc:
        raise SutError(f"{sut.path or 'the SUT'}: {name}: {exc}") from None
    proc = Process(
        f"sut-{name}",
        argv,
        workdir / "logs" / f"{name}.log",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), **env},
        cwd=sut.base_dir,
        health=_health(spec, port),
    )
    try:
        proc.start(timeout=START_TIMEOUT)
    except FileNotFoundError as exc:
        raise SutError(
            f"{sut.path or 'the SUT'}: {name}.command: cannot run {argv[0]!r} from {sut.base_dir}: "
            f"{exc.strerror}"
        ) from None
    except PermissionError as exc:
        raise SutError(
            f"{sut.path or 'the SUT'}: {name}.command: {argv[0]!r} is not executable: {exc.strerror}"
        ) from None
    return proc


# --- pod mode ---------------------------------------------------------------------------------


def _container(
    name: str, spec: WorkloadSpec, values: dict[str, str], *, extra_mounts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    probe: dict[str, Any] = (
        {"httpGet": {"path": spec.health_path, "port": spec.port}}
        if spec.health_path
        else {"tcpSocket": {"port": spec.port}}
    )
    return {
        "name": name,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": k, "value": v} for k, v in spec.environment(values).items()],
        "ports": [{"name": "http", "containerPort": spec.port}],
        "readinessProbe": {**probe, "periodSeconds": 1},
        "volumeMounts": extra_mounts or [],
    }


def _deployment_doc(name: str, namespace: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def _tap_docs(
    namespace: str, callee_url: str, header: str, image: str, labels: dict[str, str]
) -> list[dict[str, Any]]:
    """The token tap between the caller and the callee, as a pod of the workloads' image.

    The caller's ``${CALLEE_URL}`` is the tap's Service; the tap relays to the callee's Service and
    notes the ``jti`` of the credential in ``header``, which the suite reads from its status port.
    The workload code comes from the ``k8s-sa-workloads`` ConfigMap in the caller's namespace, which
    goes with the namespace at cleanup.

    No readiness probe, on purpose: a restarted kubelet (the rotation on demand) reports every probed
    container unready until its probe passes again, and the tap's Service would then drop the very
    calls whose token ROT-001 must see. The tap is proven end to end instead: the deployment waits
    for the first call through the caller (and so through the tap) to be granted.
    """
    container = {
        "name": "tap",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "k8s_sa_workloads.tap"],
        "workingDir": "/app",
        "env": [
            {"name": "LISTEN_ADDR", "value": f":{TAP_PORT}"},
            {"name": "STATUS_ADDR", "value": f":{TAP_STATUS_PORT}"},
            {"name": "UPSTREAM_URL", "value": callee_url},
            {"name": "TOKEN_HEADER", "value": header},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "ports": [
            {"name": "http", "containerPort": TAP_PORT},
            {"name": "status", "containerPort": TAP_STATUS_PORT},
        ],
        "resources": {"limits": {"memory": "128Mi"}},
        "volumeMounts": [{"name": "code", "mountPath": "/app/k8s_sa_workloads", "readOnly": True}],
    }
    configmap = workload_code_configmap(namespace, labels)
    pod_spec = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 1,
        "containers": [container],
        "volumes": [{"name": "code", "configMap": {"name": configmap["metadata"]["name"]}}],
    }
    return [
        configmap,
        _deployment_doc(TAP, namespace, pod_spec),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": TAP, "namespace": namespace},
            "spec": {
                "selector": {"app": TAP},
                "ports": [{"name": "http", "port": TAP_PORT, "targetPort": TAP_PORT}],
            },
        },
    ]


def _tapped_jti(status_url: str) -> str | None:
    """The ``jti`` the tap pod noted last (through the port-forward to its status port)."""
    answer = requests.get(status_url + "/", timeout=10)
    answer.raise_for_status()
    jti = answer.json().get("jti")
    return str(jti) if jti else None


def _token_reader(
    cluster: Cluster, stream_client: kubernetes.client.ApiClient, pod: Any, token_path: str
) -> Callable[[], str]:
    """How the suite reads the caller's token file: on the node where the provider has one (so a
    distroless caller image without ``cat`` works), else with ``cat`` through exec in the pod."""
    node = cluster.node_control
    if node is None:
        return file_reader(stream_client, pod.metadata.namespace, pod.metadata.name, token_path)
    uid, filename = pod.metadata.uid, posixpath.basename(token_path)
    return lambda: node.read_projected_file(uid, TOKEN_VOLUME, filename)


def load_archives(cluster: Cluster, sut: Sut) -> list[str]:
    """Load ``image_archive`` files into the node (no registry); returns the image names loaded."""
    loaded: list[str] = []
    for spec, key in ((sut.callee, "callee"), (sut.caller, "caller")):
        if spec is None or spec.image_archive is None:
            continue
        node = cluster.node_control
        if node is None:
            raise SutError(
                f"{sut.path}: {key}.image_archive: the {cluster.provider} provider cannot load images into "
                "its node; push the image to a registry the cluster pulls from and drop image_archive"
            )
        loaded.extend(node.load_image_archive(spec.image_archive))
    return loaded


@contextlib.contextmanager
def deploy_sut_pods(
    cluster: Cluster, names: Callable[[str], str], workdir: Path, sut: Sut
) -> Iterator[SutRun]:
    """Run the SUT's image(s) as Deployments; everything created is removed on exit."""
    for spec, key in ((sut.callee, "callee"), (sut.caller, "caller")):
        if spec is not None and spec.image is None:
            raise SutError(
                f"{sut.path}: {key}.image is needed on the {cluster.provider} provider, which runs pods; "
                "or use --k8s-provider local with `command`"
            )
    api_client = cluster.api_client
    stream_client = cluster.info.api_client()  # kubernetes.stream patches its client: a private one
    labels = resources.run_labels(cluster.run_id)
    cleanups: list[Callable[[], None]] = [stream_client.close]
    started = time.monotonic()
    try:
        load_archives(cluster, sut)
        ids = _identities(cluster, names, labels, cleanups)
        (api_ns, api_pod), (store_ns, _), (data_ns, data_pod) = (
            ids[CALLER_SA],
            ids[CALLEE_SA],
            ids[INTRUDER_SA],
        )
        binding = names("k8s-sa-sut-auth-delegator")
        resources.grant_auth_delegator(api_client, binding, store_ns, CALLEE_SA, labels)
        cleanups.append(functools.partial(resources.delete_cluster_role_binding, api_client, binding))
        allowed = f"{api_ns}:{CALLER_SA}"
        callee_port = sut.callee.port
        callee_values = _values(
            sut, PORT=str(callee_port), ALLOWED_SERVICE_ACCOUNTS=allowed, NAMESPACE=store_ns
        )
        callee_spec = {
            "serviceAccountName": CALLEE_SA,
            "terminationGracePeriodSeconds": 1,
            "containers": [_container("callee", sut.callee, callee_values)],
        }
        # The fail-closed checks' cut: the callee's in-cluster API address re-pointed (see .apicut.pod_mode).
        cut = pod_mode.plan(cluster, store_ns, sut.callee.environment(callee_values), labels)
        cut_pod = cut.start(api_client)
        cut.patch_callee(callee_spec)
        docs: list[dict[str, Any]] = [
            _deployment_doc("callee", store_ns, callee_spec),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "callee", "namespace": store_ns},
                "spec": {
                    "selector": {"app": "callee"},
                    "ports": [{"name": "http", "port": callee_port, "targetPort": callee_port}],
                },
            },
        ]
        targets = [(store_ns, "callee")]
        if sut.caller is not None:
            callee_service = f"http://callee.{store_ns}.svc.cluster.local:{callee_port}"
            docs.extend(_tap_docs(api_ns, callee_service, sut.callee.header, workload_image(cluster), labels))
            targets.append((api_ns, TAP))
            token_dir, filename = posixpath.split(sut.caller.token_path)
            caller_values = _values(
                sut,
                PORT=str(sut.caller.port),
                ALLOWED_SERVICE_ACCOUNTS=allowed,
                NAMESPACE=api_ns,
                CALLEE_URL=f"http://{TAP}.{api_ns}.svc.cluster.local:{TAP_PORT}",
                TOKEN_PATH=sut.caller.token_path,
            )
            mount = {"name": TOKEN_VOLUME, "mountPath": token_dir or "/", "readOnly": True}
            caller_spec = {
                "serviceAccountName": CALLER_SA,
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 1,
                "containers": [_container("caller", sut.caller, caller_values, extra_mounts=[mount])],
                "volumes": [
                    {
                        "name": TOKEN_VOLUME,
                        "projected": {
                            "sources": [
                                {
                                    "serviceAccountToken": {
                                        "path": filename,
                                        "audience": sut.callee.audience,
                                        "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                                    }
                                }
                            ]
                        },
                    }
                ],
            }
            docs.append(_deployment_doc("caller", api_ns, caller_spec))
            targets.append((api_ns, "caller"))
        for doc in docs:
            kubernetes.utils.create_from_dict(api_client, doc)
        pods = wait_for_rollout(api_client, targets, timeout=180.0)
        rolled_out = time.monotonic() - started
        pod = pods["callee"]
        forward = PortForward(stream_client, store_ns, pod.metadata.name, callee_port)
        cleanups.append(forward.close)
        callee = Workload(
            CALLEE_SA,
            store_ns,
            CALLEE_SA,
            forward.url,
            BoundObject("Pod", pod.metadata.name, pod.metadata.uid),
            read_logs=log_reader(api_client, store_ns, pod.metadata.name),
        )
        probe = request_token(
            api_client,
            api_ns,
            CALLER_SA,
            audiences=[sut.callee.audience],
            expiration_seconds=3600,
            bound_object=api_pod,
        )
        verdict = first_verdict(forward.url, sut.callee, probe.raw, START_TIMEOUT)
        cut_control = None
        if cut_pod is not None:
            cut_control = cut.connect(stream_client, cut_pod)
            cleanups.append(cut_control.close)
        caller = Workload(CALLER_SA, api_ns, CALLER_SA, "", api_pod)
        caller_jti: Callable[[], str | None] | None = None
        refresh = 60.0
        if sut.caller is not None:
            tap_pod = pods[TAP]
            tap_forward = PortForward(stream_client, api_ns, tap_pod.metadata.name, TAP_STATUS_PORT)
            cleanups.append(tap_forward.close)
            caller_jti = functools.partial(_tapped_jti, tap_forward.url)
            cpod = pods["caller"]
            cforward = PortForward(stream_client, api_ns, cpod.metadata.name, sut.caller.port)
            cleanups.append(cforward.close)
            caller = Workload(
                CALLER_SA,
                api_ns,
                CALLER_SA,
                cforward.url,
                BoundObject("Pod", cpod.metadata.name, cpod.metadata.uid),
                read_token=_token_reader(cluster, stream_client, cpod, sut.caller.token_path),
                read_logs=log_reader(api_client, api_ns, cpod.metadata.name),
            )
            refresh = sut.caller.token_refresh_seconds
            # The Service's endpoints and the node's proxy rules follow the rollout by a moment.
            caller_verdict = caller_first_grant(cforward.url + sut.caller.call_path, START_TIMEOUT)
        deployment = Deployment(
            caller=caller,
            callee=callee,
            intruder=Workload(INTRUDER_SA, data_ns, INTRUDER_SA, "", data_pod),
            fidelity="real",
            audience=sut.callee.audience,
            api_token_refresh_seconds=refresh,
            _cleanups=cleanups,
        )
        deployment.timings = {
            "rollout_seconds": round(rolled_out, 2),
            "deploy_to_first_verdict_seconds": round(time.monotonic() - started, 2),
            "ready_to_first_verdict_seconds": round(verdict, 2),
        }
        if sut.caller is not None:
            deployment.timings["caller_first_grant_seconds"] = caller_verdict
            rotate_by_kubelet_restart(deployment, cluster.node_control)
        yield SutRun(
            sut,
            deployment,
            "pod",
            binding,
            cut_control,
            caller_jti,
            labels,
            api_cut_unavailable=cut.unavailable,
        )
    finally:
        while cleanups:
            with contextlib.suppress(Exception):
                cleanups.pop()()

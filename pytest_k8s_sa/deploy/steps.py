"""The small steps a deployment is composed of (:func:`.sut.deploy_sut` composes them).

Each step makes one thing and registers its undo on the run's one :class:`~.cleanup.Cleanups`
stack: the namespaces and identities, the callee's RBAC, the API cut, the callee, the token tap,
the caller, readiness. Process mode (no kubelet: local processes, an emulated kubelet for the token
files) and pod mode (Deployments the real kubelet runs, built by :func:`.workload_pod.workload_pod`)
differ only in the steps that start something; the identities, RBAC and readiness are shared.
"""

from __future__ import annotations

import os
import posixpath
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import requests

from ..base.kubeconfig import token_file_kubeconfig
from ..base.ports import free_port
from ..base.process import Process
from ..base.waiting import WaitTimeout, wait_until
from ..cluster import resources
from ..cluster.cluster import Cluster
from ..cluster.tokens import BoundObject, request_token
from ..sut.model import CalleeSpec, Sut, SutError, WorkloadSpec, allowed_service_accounts, python_executable
from ..workloads.tap import LoopbackTap
from .apicut import pod_mode as api_cut
from .apicut.process_mode import FlakyApi, make_test_ca
from .cleanup import Cleanups
from .manifests import workload_code_configmap, workload_image
from .model import TOKEN_EXPIRATION_SECONDS, Workload
from .pods import DeployError, PortForward, file_reader, log_reader, wait_for_rollout
from .projector import TokenProjector
from .workload_pod import (
    deployment_doc,
    http_probe,
    projected_token_volume,
    service_doc,
    tcp_probe,
    workload_pod,
)

CALLER_SA = "api"
CALLEE_SA = "secret-store"
INTRUDER_SA = "data-store"
START_TIMEOUT = 60.0
ROLLOUT_TIMEOUT = 180.0
TAP = "token-tap"
TAP_PORT = 8080
TAP_STATUS_PORT = 8090
TOKEN_VOLUME = "tokens"  # noqa: S105 - a volume name, not a secret
"""The caller's projected token volume in pod mode (read on the node by :func:`token_reader`)."""


@dataclass
class Target:
    """Where and what one deployment deploys, and the stack its steps register their undo on."""

    cluster: Cluster
    names: Callable[[str], str]
    workdir: Path
    sut: Sut
    stack: Cleanups
    labels: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    on_caller: Callable[[Identity], None] | None = None
    """Told the allowed caller's identity as soon as it exists (:func:`~.sut_deploy.deploy_sut`)."""

    @property
    def api_client(self) -> kubernetes.client.ApiClient:
        return self.cluster.api_client

    def stream_client(self) -> kubernetes.client.ApiClient:
        """A private API client for port-forwards and exec (``kubernetes.stream`` patches its client)."""
        client = self.cluster.info.api_client()
        self.stack.defer(client.close)
        return client


@dataclass(frozen=True)
class Identity:
    """A namespace, its service account and the placeholder pod tokens are bound to."""

    namespace: str
    service_account: str
    pod: BoundObject

    @property
    def allowed(self) -> str:
        """``${ALLOWED_SERVICE_ACCOUNTS}`` for this identity as the allowed caller (see
        :func:`~..sut.allowed_service_accounts`: with the dotted second entry beside it)."""
        return allowed_service_accounts(self.namespace, self.service_account)

    def workload(self, url: str = "", **parts: Any) -> Workload:
        return Workload(self.service_account, self.namespace, self.service_account, url, self.pod, **parts)


@dataclass(frozen=True)
class Identities:
    caller: Identity
    callee: Identity
    intruder: Identity


# --- namespaces, identities, RBAC (both modes) ------------------------------------------------


def identity(
    cluster: Cluster,
    stack: Cleanups,
    namespace: str,
    service_account: str,
    pod_name: str,
    labels: dict[str, str],
) -> Identity:
    """A namespace (deleted on exit) with ``service_account`` and a placeholder pod of it."""
    api_client = cluster.api_client
    resources.create_namespace(api_client, namespace, labels)
    stack.defer(resources.delete_namespace, api_client, namespace)
    resources.create_service_account(api_client, namespace, service_account)
    pod = resources.create_placeholder_pod(
        api_client, namespace, pod_name, service_account, labels={"app": pod_name}
    )
    return Identity(namespace, service_account, BoundObject("Pod", pod.name, pod.uid))


def identities(target: Target) -> Identities:
    """The caller's, the callee's and the intruder's namespaces and identities (``on_caller`` is told
    the caller's first)."""
    made = []
    for stem in (CALLER_SA, CALLEE_SA, INTRUDER_SA):
        names = target.names(stem)
        made.append(identity(target.cluster, target.stack, names, stem, f"{stem}-identity", target.labels))
        if stem == CALLER_SA and target.on_caller is not None:
            target.on_caller(made[0])
    return Identities(*made)


def cluster_ready(target: Target) -> None:
    """Wait until the cluster is fully ready (a cluster handed out while its apiserver still made its
    default roles; a no-op otherwise): workloads start only then."""
    target.cluster.wait_ready(START_TIMEOUT)


JWKS_PATH = "/openid/v1/jwks"
"""The apiserver's key-set endpoint (the discovery document's ``jwks_uri`` names it too)."""
POD_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
"""``${CA_FILE}`` in pod mode: the service-account volume's CA bundle (it verifies the cut too)."""


def grant_review_rights(target: Target, callee: Identity) -> str | None:
    """``system:auth-delegator`` for a TokenReview callee (it creates TokenReviews); returns the
    binding's name. A ``jwks`` callee gets none: it verifies offline and needs no API rights, and one
    that asks TokenReview all the same (a wrong declaration) fails to deploy rather than pass for it."""
    if target.sut.callee.verifies_offline:
        return None
    binding = target.names("k8s-sa-sut-auth-delegator")
    resources.grant_auth_delegator(
        target.api_client, binding, callee.namespace, callee.service_account, target.labels
    )
    target.stack.defer(resources.delete_cluster_role_binding, target.api_client, binding)
    return binding


def open_issuer_discovery(target: Target) -> str | None:
    """For a ``jwks`` callee, make issuer discovery and the key set readable without credentials,
    as the Kubernetes docs describe (``system:service-account-issuer-discovery`` bound to
    ``system:unauthenticated``), until the run ends; returns the binding's name (None: not needed).

    Why unauthenticated: an offline verifier (Envoy's ``jwt_authn``, a JWKS client library) fetches
    the key set with no Kubernetes credentials; the default binding only admits service accounts.
    """
    if not target.sut.callee.verifies_offline:
        return None
    binding = target.names("k8s-sa-issuer-discovery")
    resources.grant_issuer_discovery(target.api_client, binding, target.labels)
    target.stack.defer(resources.delete_cluster_role_binding, target.api_client, binding)
    return binding


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


# --- the SUT file's placeholders ----------------------------------------------------------------


def values(sut: Sut, **overrides: str) -> dict[str, str]:
    """What ``${NAME}`` fills in the SUT's ``command`` and ``env`` (see :data:`~..sut.PLACEHOLDERS`)."""
    filled = {
        "PORT": "",
        "AUDIENCE": sut.callee.audience,
        "ALLOWED_SERVICE_ACCOUNTS": "",
        "KUBECONFIG": "",
        "NAMESPACE": "",
        "CALLEE_URL": "",
        "TOKEN_PATH": "",
        "PYTHON": python_executable(),
        "ISSUER_URL": "",
        "JWKS_URL": "",
        "CA_FILE": "",
    }
    filled.update(overrides)
    return filled


def require(sut: Sut, key: str, why: str) -> None:
    """Fail with the SUT file's name when a workload lacks ``key`` (``command`` or ``image``)."""
    for spec, role in ((sut.callee, "callee"), (sut.caller, "caller")):
        if spec is not None and getattr(spec, key) is None:
            raise SutError(f"{sut.path or 'the SUT'}: {role}.{key} is needed {why}")


# --- process mode: token files, the cut, processes, the tap -------------------------------------


def project_tokens(
    cluster: Cluster,
    namespace: str,
    service_account: str,
    pod: BoundObject,
    directory: Path,
    filename: str,
    audience: str | None,
    extra: dict[str, bytes] | None = None,
) -> TokenProjector:
    """Start an emulated-kubelet token volume for a workload process (the caller stops it)."""
    projector = TokenProjector(
        cluster.api_client,
        namespace=namespace,
        service_account=service_account,
        pod=pod,
        directory=directory,
        filename=filename,
        audience=audience,
        expiration_seconds=TOKEN_EXPIRATION_SECONDS,
        extra_files=extra,
    )
    projector.start()
    return projector


def service_account_volume(
    cluster: Cluster,
    namespace: str,
    service_account: str,
    pod: BoundObject,
    directory: Path,
    extra_ca: bytes = b"",
) -> TokenProjector:
    """The volume every pod gets: a token for the API audiences, the cluster CA, the namespace.

    ``extra_ca`` is appended to ``ca.crt`` (for tests that put a TLS proxy in front of the API).
    """
    ca = Path(cluster.api_client.configuration.ssl_ca_cert).read_bytes()
    if extra_ca:
        ca = ca.rstrip(b"\n") + b"\n" + extra_ca
    return project_tokens(
        cluster,
        namespace,
        service_account,
        pod,
        directory,
        "token",
        None,
        {"ca.crt": ca, "namespace": namespace.encode()},
    )


@dataclass(frozen=True)
class ProcessCut:
    """Process mode's API cut: the callee's token volume and a kubeconfig naming the proxy."""

    proxy: FlakyApi
    volume: TokenProjector
    kubeconfig: Path


def process_cut(target: Target, callee: Identity) -> ProcessCut:
    """The callee's own credentials (its service account's token, the cluster CA plus the proxy's
    CA) and a loopback :class:`~..flaky_api.FlakyApi` in front of the apiserver that its kubeconfig
    names as the server."""
    ca, server_pair = make_test_ca()
    directory = target.workdir / "callee"
    volume = service_account_volume(
        target.cluster,
        callee.namespace,
        callee.service_account,
        callee.pod,
        directory / "serviceaccount",
        ca.cert_pem,
    )
    target.stack.defer(volume.stop)
    server = urlsplit(target.api_client.configuration.host)
    proxy = FlakyApi(
        (server.hostname or "127.0.0.1", server.port or 443),
        server_pair,
        target.workdir / "api-proxy",
        upstream_ca_file=target.api_client.configuration.ssl_ca_cert,
    )
    proxy.start()
    target.stack.defer(proxy.stop)
    kubeconfig = token_file_kubeconfig(
        proxy.url, (volume.directory / "ca.crt").read_bytes(), volume.path
    ).write(directory / "kubeconfig.json")
    return ProcessCut(proxy, volume, kubeconfig)


def _health(spec: WorkloadSpec, port: int) -> Callable[[], bool]:
    if spec.health_path:
        url = f"http://127.0.0.1:{port}{spec.health_path}"
        return lambda: 200 <= requests.get(url, timeout=2).status_code < 300

    def connects() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    return connects


def start_process(
    target: Target, role: str, spec: WorkloadSpec, filled: dict[str, str], port: int
) -> Process:
    """Run one SUT workload as a local process (cwd: the SUT file's folder) until it is healthy."""
    sut, workdir = target.sut, target.workdir
    try:
        argv = spec.argv(filled)
        env = spec.environment(filled)
    except SutError as exc:
        raise SutError(f"{sut.path or 'the SUT'}: {role}: {exc}") from None
    proc = Process(
        f"sut-{role}",
        argv,
        workdir / "logs" / f"{role}.log",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), **env},
        cwd=sut.base_dir,
        health=_health(spec, port),
    )
    try:
        proc.start(timeout=START_TIMEOUT)
    except FileNotFoundError as exc:
        raise SutError(
            f"{sut.path or 'the SUT'}: {role}.command: cannot run {argv[0]!r} from {sut.base_dir}: "
            f"{exc.strerror}"
        ) from None
    except PermissionError as exc:
        raise SutError(
            f"{sut.path or 'the SUT'}: {role}.command: {argv[0]!r} is not executable: {exc.strerror}"
        ) from None
    target.stack.stop_on_exit(proc)
    return proc


def process_callee(target: Target, ids: Identities, cut: ProcessCut) -> Workload:
    """The callee as a local process; ``${KUBECONFIG}`` authenticates as its own service account."""
    port = free_port()
    filled = values(
        target.sut,
        PORT=str(port),
        ALLOWED_SERVICE_ACCOUNTS=ids.caller.allowed,
        KUBECONFIG=str(cut.kubeconfig),
        NAMESPACE=ids.callee.namespace,
        ISSUER_URL=target.cluster.issuer,
        JWKS_URL=f"{cut.proxy.url}{JWKS_PATH}",
        CA_FILE=str(cut.volume.directory / "ca.crt"),
    )
    proc = start_process(target, "callee", target.sut.callee, filled, port)
    return ids.callee.workload(f"http://127.0.0.1:{port}", projector=cut.volume, process=proc)


def process_tap(target: Target, callee_url: str) -> LoopbackTap:
    """The token tap in this process, on loopback, relaying to the callee."""
    tap = LoopbackTap(callee_url, target.sut.callee.header)
    target.stack.defer(tap.close)
    return tap


def process_caller(target: Target, ids: Identities, callee_url: str) -> Workload:
    """The caller as a local process, its projected token kept fresh by an emulated kubelet."""
    sut = target.sut
    assert sut.caller is not None
    filename = posixpath.basename(sut.caller.token_path) or "token"
    caller = ids.caller
    projector = project_tokens(
        target.cluster,
        caller.namespace,
        caller.service_account,
        caller.pod,
        target.workdir / "caller" / "tokens",
        filename,
        sut.callee.audience,
    )
    target.stack.defer(projector.stop)
    port = free_port()
    filled = values(
        sut,
        PORT=str(port),
        ALLOWED_SERVICE_ACCOUNTS=caller.allowed,
        NAMESPACE=caller.namespace,
        CALLEE_URL=callee_url,
        TOKEN_PATH=str(projector.path),
    )
    proc = start_process(target, "caller", sut.caller, filled, port)
    return caller.workload(f"http://127.0.0.1:{port}", projector=projector, process=proc)


# --- pod mode: images, the cut, Deployments, port-forwards --------------------------------------


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


def sut_pod(
    spec: WorkloadSpec,
    role: str,
    filled: dict[str, str],
    *,
    service_account: str,
    token: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A SUT workload's pod: its image as the image says; ``token``: (token path, audience) of a
    projected token volume (the caller's), with the service-account token not automounted."""
    assert spec.image is not None
    probe = http_probe(spec.health_path, spec.port) if spec.health_path else tcp_probe(spec.port)
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    if token is not None:
        token_dir, filename = posixpath.split(token[0])
        mounts.append({"name": TOKEN_VOLUME, "mountPath": token_dir or "/", "readOnly": True})
        volumes.append(projected_token_volume(TOKEN_VOLUME, filename, token[1], TOKEN_EXPIRATION_SECONDS))
    return workload_pod(
        role,
        spec.image,
        ports={"http": spec.port},
        env=spec.environment(filled),
        probe=probe,
        service_account=service_account,
        automount_token=False if token is not None else None,
        memory_limit=None,
        mounts=mounts,
        volumes=volumes,
    )


@dataclass
class Rollout:
    """What pod mode creates in one go and waits for: documents, and the Deployments to be ready."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    targets: list[tuple[str, str]] = field(default_factory=list)

    def add(self, namespace: str, app: str, docs: list[dict[str, Any]]) -> None:
        self.docs.extend(docs)
        self.targets.append((namespace, app))

    def run(self, target: Target) -> dict[str, Any]:
        """Create the documents (they go with their namespaces) and wait for one ready pod of each."""
        for doc in self.docs:
            kubernetes.utils.create_from_dict(target.api_client, doc)
        return wait_for_rollout(target.api_client, self.targets, timeout=ROLLOUT_TIMEOUT)


def pod_callee(target: Target, ids: Identities, rollout: Rollout) -> tuple[api_cut.PodApiCut, str | None]:
    """The callee's Deployment and Service, re-pointed at the API cut, which is started first
    (:mod:`.api_cut`); returns the cut (``unavailable`` says why it is not there) and its pod."""
    sut, callee = target.sut, ids.callee
    port = sut.callee.port
    filled = values(
        sut,
        PORT=str(port),
        ALLOWED_SERVICE_ACCOUNTS=ids.caller.allowed,
        NAMESPACE=callee.namespace,
        ISSUER_URL=target.cluster.issuer,
        JWKS_URL=f"https://{api_cut.SERVICE}:{api_cut.SERVICE_PORT}{JWKS_PATH}",
        CA_FILE=POD_CA_FILE,
    )
    spec = sut_pod(sut.callee, "callee", filled, service_account=callee.service_account)
    cut = api_cut.plan(target.cluster, callee.namespace, sut.callee.environment(filled), target.labels)
    cut_pod = cut.start(target.api_client)
    cut.patch_callee(spec)
    rollout.add(
        callee.namespace,
        "callee",
        [
            deployment_doc("callee", callee.namespace, spec),
            service_doc("callee", callee.namespace, "callee", {"http": (port, port)}),
        ],
    )
    return cut, cut_pod


def tap_docs(
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
    pod_spec = workload_pod(
        "tap",
        image,
        module="tap",
        env={
            "LISTEN_ADDR": f":{TAP_PORT}",
            "STATUS_ADDR": f":{TAP_STATUS_PORT}",
            "UPSTREAM_URL": callee_url,
            "TOKEN_HEADER": header,
        },
        ports={"http": TAP_PORT, "status": TAP_STATUS_PORT},
        automount_token=False,
    )
    return [
        workload_code_configmap(namespace, labels),
        deployment_doc(TAP, namespace, pod_spec),
        service_doc(TAP, namespace, TAP, {"http": (TAP_PORT, TAP_PORT)}),
    ]


def pod_tap(target: Target, ids: Identities, rollout: Rollout) -> str:
    """The tap's Deployment in the caller's namespace, relaying to the callee's Service; returns
    the URL the caller gets as ``${CALLEE_URL}``."""
    namespace = ids.caller.namespace
    callee_service = f"http://callee.{ids.callee.namespace}.svc.cluster.local:{target.sut.callee.port}"
    docs = tap_docs(
        namespace, callee_service, target.sut.callee.header, workload_image(target.cluster), target.labels
    )
    rollout.add(namespace, TAP, docs)
    return f"http://{TAP}.{namespace}.svc.cluster.local:{TAP_PORT}"


def pod_caller(target: Target, ids: Identities, rollout: Rollout, callee_url: str) -> None:
    """The caller's Deployment, with its projected token at ``token_path``."""
    sut, caller = target.sut, ids.caller
    assert sut.caller is not None
    filled = values(
        sut,
        PORT=str(sut.caller.port),
        ALLOWED_SERVICE_ACCOUNTS=caller.allowed,
        NAMESPACE=caller.namespace,
        CALLEE_URL=callee_url,
        TOKEN_PATH=sut.caller.token_path,
    )
    spec = sut_pod(
        sut.caller,
        "caller",
        filled,
        service_account=caller.service_account,
        token=(sut.caller.token_path, sut.callee.audience),
    )
    rollout.add(caller.namespace, "caller", [deployment_doc("caller", caller.namespace, spec)])


def forward(target: Target, stream_client: kubernetes.client.ApiClient, pod: Any, port: int) -> PortForward:
    """A loopback port-forward to ``pod:port`` (closed on exit)."""
    opened = PortForward(stream_client, pod.metadata.namespace, pod.metadata.name, port)
    target.stack.defer(opened.close)
    return opened


def pod_workload(
    target: Target, identity: Identity, pod: Any, url: str, read_token: Callable[[], str] | None = None
) -> Workload:
    """A rolled-out pod as a :class:`Workload` (its logs read through the API)."""
    return Workload(
        identity.service_account,
        identity.namespace,
        identity.service_account,
        url,
        BoundObject("Pod", pod.metadata.name, pod.metadata.uid),
        read_token=read_token,
        read_logs=log_reader(target.api_client, identity.namespace, pod.metadata.name),
    )


def tapped_jti(status_url: str) -> str | None:
    """The ``jti`` the tap pod noted last (through the port-forward to its status port)."""
    answer = requests.get(status_url + "/", timeout=10)
    answer.raise_for_status()
    jti = answer.json().get("jti")
    return str(jti) if jti else None


def token_reader(
    cluster: Cluster, stream_client: kubernetes.client.ApiClient, pod: Any, token_path: str
) -> Callable[[], str]:
    """How the suite reads the caller's token file: on the node where the provider has one (so a
    distroless caller image without ``cat`` works), else with ``cat`` through exec in the pod."""
    node = cluster.node_control
    if node is None:
        return file_reader(stream_client, pod.metadata.namespace, pod.metadata.name, token_path)
    uid, filename = pod.metadata.uid, posixpath.basename(token_path)
    return lambda: node.read_projected_file(uid, TOKEN_VOLUME, filename)


# --- readiness (both modes) ---------------------------------------------------------------------


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


def callee_ready(target: Target, caller: Identity, callee_url: str) -> float:
    """Readiness: seconds until the callee grants a fresh token of the allowed caller."""
    probe = request_token(
        target.api_client,
        caller.namespace,
        caller.service_account,
        audiences=[target.sut.callee.audience],
        expiration_seconds=3600,
        bound_object=caller.pod,
    )
    return first_verdict(callee_url, target.sut.callee, probe.raw, START_TIMEOUT)


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

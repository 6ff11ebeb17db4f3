"""Deploy the reference workloads: the API service, the secret store and the data store.

Two ways, one result (:class:`Deployment`):

* :func:`deploy_processes` (local provider): the workloads run as local processes; Pod objects,
  service accounts, RBAC and tokens are real API objects, and :mod:`.projector` plays the kubelet
  for the projected token files (fidelity ``emulated-kubelet``).
* :func:`deploy_manifests` (clusters whose kubelet runs pods): the templated manifests in
  ``fixtures/manifests`` are applied and the real kubelet projects and rotates the tokens
  (fidelity ``real``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import socket
import string
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import requests
import yaml
from kubernetes.client import ApiException

from . import resources
from .cluster import Cluster
from .errors import K8sSAError
from .ports import free_port
from .process import Process
from .projector import FIDELITY as EMULATED
from .projector import TokenProjector
from .tokens import BoundObject, Token
from .waiting import WaitTimeout, wait_until

AUDIENCE = "secret-store"
TOKEN_EXPIRATION_SECONDS = 600
API_TOKEN_REFRESH_SECONDS = 2.0
"""How often the API service re-reads its token file in these deployments (the default is 60 s);
short so the rotation check sees the new token quickly. The 60 s default is what the article's
5-minute ticker got wrong; either way the value is recorded as evidence."""


@dataclass
class Workload:
    """One deployed workload: its identity and where the test process reaches it."""

    name: str
    namespace: str
    service_account: str
    url: str
    pod: BoundObject | None = None
    projector: TokenProjector | None = None
    process: Process | None = None
    read_token: Callable[[], str] | None = field(default=None, repr=False)
    """How to read the token file the workload uses now (real pods: ``cat`` in the container)."""
    read_logs: Callable[[], str] | None = field(default=None, repr=False)

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def current_token(self) -> Token:
        """The token in the workload's token file right now (emulated or real kubelet alike)."""
        if self.projector is not None:
            return self.projector.current
        if self.read_token is None:
            raise RuntimeError(f"{self.name}: no way to read its token file")
        return Token.from_raw(self.read_token().strip())

    def get(
        self, path: str = "/", headers: dict[str, str] | None = None, timeout: float = 15
    ) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=headers or {}, timeout=timeout)


@dataclass
class Deployment:
    """The three workloads of one run, and how to tear them down."""

    api: Workload
    secret_store: Workload
    data_store: Workload
    fidelity: str
    audience: str = AUDIENCE
    api_token_refresh_seconds: float = API_TOKEN_REFRESH_SECONDS
    _cleanups: list[Callable[[], None]] = field(default_factory=list, repr=False)
    rotate_on_demand: Callable[[], Token] | None = field(default=None, repr=False)
    """Real pods: a way to make the real kubelet replace the API token file now, where one exists."""
    rotation_trigger: str = "emulated kubelet refresh"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def workloads(self) -> list[Workload]:
        return [self.api, self.secret_store, self.data_store]

    @property
    def can_rotate_on_demand(self) -> bool:
        return self.api.projector is not None or self.rotate_on_demand is not None

    def rotate_api_token(self) -> Token:
        """Replace the API service's token file now and return the new token.

        Emulated kubelet: a refresh at once. Real kubelet (local-node): the kubelet is restarted,
        which empties its token cache, so it requests a new token and rewrites the file in the
        running pod. Elsewhere the real kubelet rotates only at 80% of the TTL (ROT-003).
        """
        if self.api.projector is not None:
            return self.api.projector.refresh_now()
        if self.rotate_on_demand is None:
            raise RuntimeError(
                "the kubelet of this cluster cannot be made to rotate on demand; it rotates at 80% of the TTL"
            )
        return self.rotate_on_demand()

    def logs(self) -> dict[str, str]:
        out = {}
        for workload in self.workloads:
            if workload.process is not None:
                with contextlib.suppress(OSError):
                    out[workload.name] = workload.process.log_path.read_text(errors="replace")
            elif workload.read_logs is not None:
                with contextlib.suppress(Exception):
                    out[workload.name] = workload.read_logs()
        return out

    def teardown(self) -> None:
        while self._cleanups:
            with contextlib.suppress(Exception):
                self._cleanups.pop()()


def _python_module(module: str) -> list[str]:
    return [sys.executable, "-m", f"pytest_k8s_sa.workloads.{module}"]


def _healthy(url: str) -> Callable[[], bool]:
    return lambda: requests.get(f"{url}/healthz", timeout=1).status_code == 200


def _project(
    cluster: Cluster,
    namespace: str,
    service_account: str,
    pod: BoundObject,
    directory: Path,
    filename: str,
    audience: str | None,
    extra: dict[str, bytes] | None = None,
) -> TokenProjector:
    """Start an emulated-kubelet token volume for a workload process."""
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


def _service_account_volume(
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
    return _project(
        cluster,
        namespace,
        service_account,
        pod,
        directory,
        "token",
        None,
        {"ca.crt": ca, "namespace": namespace.encode()},
    )


def _secret_store_env(
    cluster: Cluster, volume: TokenProjector, audience: str, allowed: str, api_url: str | None = None
) -> dict[str, str]:
    return {
        "K8S_API_URL": api_url or cluster.api_client.configuration.host,
        "K8S_CA_FILE": str(volume.directory / "ca.crt"),
        "K8S_TOKEN_FILE": str(volume.path),
        "AUDIENCE": audience,
        "ALLOWED_SERVICE_ACCOUNTS": allowed,
    }


def _run_workload(name: str, module: str, env: dict[str, str], workdir: Path, port: int) -> Process:
    """Start a workload module as a local process on ``port`` and wait for its ``/healthz``."""
    proc = Process(
        name,
        _python_module(module),
        workdir / "logs" / f"{name}.log",
        env={"PATH": "/usr/bin:/bin", **env, "LISTEN_ADDR": f"127.0.0.1:{port}"},
        health=_healthy(f"http://127.0.0.1:{port}"),
    )
    proc.start(timeout=30)
    return proc


@contextlib.contextmanager
def deploy_processes(
    cluster: Cluster, names: Callable[[str], str], workdir: Path, *, audience: str = AUDIENCE
) -> Iterator[Deployment]:
    """Run the three workloads as local processes against ``cluster`` (emulated kubelet)."""
    api_client = cluster.api_client
    labels = resources.run_labels(cluster.run_id)
    cleanups: list[Callable[[], None]] = []

    def identity(stem: str, sa_name: str) -> tuple[str, BoundObject]:
        namespace = names(stem)
        resources.create_namespace(api_client, namespace, labels)
        cleanups.append(lambda: resources.delete_namespace(api_client, namespace))
        resources.create_service_account(api_client, namespace, sa_name)
        pod = resources.create_placeholder_pod(
            api_client, namespace, sa_name, sa_name, labels={"app": sa_name}
        )
        return namespace, BoundObject("Pod", pod.metadata.name, pod.metadata.uid)

    def started(projector: TokenProjector) -> TokenProjector:
        cleanups.append(projector.stop)
        return projector

    def run(name: str, module: str, env: dict[str, str]) -> tuple[Process, str]:
        port = free_port()
        proc = _run_workload(name, module, env, workdir, port)
        cleanups.append(proc.stop)
        return proc, f"http://127.0.0.1:{port}"

    try:
        api_ns, api_pod = identity("api", "api")
        store_ns, store_pod = identity("secret-store", "secret-store")
        data_ns, data_pod = identity("data-store", "data-store")
        binding = names("k8s-sa-secret-store-auth-delegator")
        resources.grant_auth_delegator(api_client, binding, store_ns, "secret-store", labels)
        cleanups.append(lambda: resources.delete_cluster_role_binding(api_client, binding))

        # The secret store's own credentials: a token for the API audiences, as in every pod.
        store_volume = started(
            _service_account_volume(
                cluster, store_ns, "secret-store", store_pod, workdir / "secret-store/serviceaccount"
            )
        )
        api_projector = started(
            _project(cluster, api_ns, "api", api_pod, workdir / "api/tokens", "api-token", audience)
        )
        data_projector = started(
            _project(
                cluster,
                data_ns,
                "data-store",
                data_pod,
                workdir / "data-store/tokens",
                "data-store-token",
                audience,
            )
        )

        store_proc, store_url = run(
            "secret-store",
            "secret_store",
            _secret_store_env(cluster, store_volume, audience, f"{api_ns}:api"),
        )
        caller_env = {"SECRET_STORE_URL": store_url, "TOKEN_REFRESH_SECONDS": str(API_TOKEN_REFRESH_SECONDS)}
        api_proc, api_url = run("api", "api", {**caller_env, "TOKEN_PATH": str(api_projector.path)})
        data_proc, data_url = run(
            "data-store", "data_store", {**caller_env, "TOKEN_PATH": str(data_projector.path)}
        )

        deployment = Deployment(
            api=Workload("api", api_ns, "api", api_url, api_pod, api_projector, api_proc),
            secret_store=Workload(
                "secret-store", store_ns, "secret-store", store_url, store_pod, store_volume, store_proc
            ),
            data_store=Workload(
                "data-store", data_ns, "data-store", data_url, data_pod, data_projector, data_proc
            ),
            fidelity=EMULATED,
            audience=audience,
            _cleanups=cleanups,
        )
        yield deployment
    finally:
        while cleanups:
            with contextlib.suppress(Exception):
                cleanups.pop()()


def start_secret_store(
    cluster: Cluster,
    workdir: Path,
    *,
    namespace: str,
    service_account: str,
    pod: BoundObject,
    allowed: str,
    audience: str = AUDIENCE,
) -> tuple[Workload, Callable[[], None]]:
    """One more secret store under a given identity (e.g. one without auth-delegator).

    Where a kubelet runs pods, a real pod in ``namespace`` (which must hold the workload code, as
    the deployed secret store's namespace does); elsewhere a local process with an emulated kubelet.
    """
    if cluster.capabilities.runs_pods:
        return _secret_store_pod(cluster, namespace, service_account, allowed, audience)
    workload = start_secret_store_process(
        cluster,
        workdir,
        name=f"secret-store-{service_account}",
        namespace=namespace,
        service_account=service_account,
        pod=pod,
        allowed=allowed,
        audience=audience,
    )
    assert workload.process is not None
    assert workload.projector is not None
    process, volume = workload.process, workload.projector

    def stop() -> None:
        process.stop()
        volume.stop()

    return workload, stop


def start_secret_store_process(
    cluster: Cluster,
    workdir: Path,
    *,
    name: str,
    namespace: str,
    service_account: str,
    pod: BoundObject,
    allowed: str,
    audience: str = AUDIENCE,
    api_url: str | None = None,
    extra_ca: bytes = b"",
    env: Mapping[str, str] | None = None,
) -> Workload:
    """A secret store as a local process (emulated kubelet); the caller stops its process and projector.

    ``api_url`` replaces the apiserver's address (e.g. a proxy in front of it), ``extra_ca`` is
    trusted as well, ``env`` sets further variables (``REVIEW_TIMEOUT_SECONDS``, ...).
    """
    volume = _service_account_volume(
        cluster, namespace, service_account, pod, workdir / name / "serviceaccount", extra_ca
    )
    port = free_port()
    store_env = {**_secret_store_env(cluster, volume, audience, allowed, api_url), **(env or {})}
    try:
        proc = _run_workload(name, "secret_store", store_env, workdir, port)
    except BaseException:
        volume.stop()
        raise
    return Workload(name, namespace, service_account, f"http://127.0.0.1:{port}", pod, volume, proc)


def _secret_store_pod(
    cluster: Cluster, namespace: str, service_account: str, allowed: str, audience: str
) -> tuple[Workload, Callable[[], None]]:
    api_client = cluster.api_client
    name = f"secret-store-{service_account}"[:63].rstrip("-")
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "serviceAccountName": service_account,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "secret-store",
                    "image": _default_image(cluster),
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-m", "k8s_sa_workloads.secret_store"],
                    "workingDir": "/app",
                    "env": [
                        {"name": "LISTEN_ADDR", "value": ":8081"},
                        {"name": "AUDIENCE", "value": audience},
                        {"name": "ALLOWED_SERVICE_ACCOUNTS", "value": allowed},
                        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                    ],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8081}, "periodSeconds": 1},
                    "volumeMounts": [
                        {"name": "code", "mountPath": "/app/k8s_sa_workloads", "readOnly": True}
                    ],
                }
            ],
            "volumes": [{"name": "code", "configMap": {"name": "k8s-sa-workloads"}}],
        },
    }
    kubernetes.utils.create_from_dict(api_client, doc)
    stream_client = cluster.info.api_client()
    cleanups: list[Callable[[], None]] = [
        stream_client.close,
        lambda: resources.delete_pod(api_client, namespace, name),
    ]

    def stop() -> None:
        while cleanups:
            with contextlib.suppress(Exception):
                cleanups.pop()()

    try:
        pod = wait_for_rollout(api_client, [(namespace, name)], timeout=120)[name]
        forward = PortForward(stream_client, namespace, name, 8081)
        cleanups.append(forward.close)
    except BaseException:
        stop()
        raise
    workload = Workload(
        name,
        namespace,
        service_account,
        forward.url,
        BoundObject("Pod", name, pod.metadata.uid),
        read_token=_reader(stream_client, namespace, name, _TOKEN_PATHS["secret-store"]),
        read_logs=_log_reader(api_client, namespace, name),
    )
    return workload, stop


# --- real pods: the manifests in fixtures/manifests ------------------------------------------

MANIFESTS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "manifests"
"""The templated manifests (``$K8S_SA_MANIFESTS`` overrides the folder)."""
WORKLOADS_DIR = Path(__file__).resolve().parent / "workloads"
DEFAULT_IMAGE = "python:3.11-slim"
"""The workloads' image on kind and real clusters (``$K8S_SA_WORKLOAD_IMAGE`` overrides it); the
local-node provider uses its locally built Debian python image."""
FAILING_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
_TOKEN_PATHS = {
    "api": "/var/run/secrets/tokens/api-token",
    "data-store": "/var/run/secrets/tokens/data-store-token",
    "secret-store": "/var/run/secrets/kubernetes.io/serviceaccount/token",
}
_PORTS = {"api": 8080, "secret-store": 8081, "data-store": 8082}
_STREAM_LOCK = threading.Lock()
"""kubernetes.stream patches the ApiClient for the duration of a call: one call at a time."""


class DeployError(K8sSAError):
    """The workloads did not roll out; the message carries the pods' events and logs."""


def render_manifests(directory: Path, values: dict[str, str]) -> list[dict[str, Any]]:
    """Every document of ``directory/*.yaml`` (sorted), ``${NAME}`` placeholders filled from ``values``."""
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            text = string.Template(path.read_text()).substitute(values)
        except KeyError as exc:
            raise DeployError(f"{path}: no value for the placeholder ${{{exc.args[0]}}}") from None
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    workload_files = {p.name: p.read_text() for p in sorted(WORKLOADS_DIR.glob("*.py"))}
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "k8s-sa-workloads":
            doc["data"] = dict(workload_files)
    return docs


def _default_image(cluster: Cluster) -> str:
    if os.environ.get("K8S_SA_WORKLOAD_IMAGE"):
        return os.environ["K8S_SA_WORKLOAD_IMAGE"]
    if cluster.provider == "local-node":
        from .node.images import PYTHON_IMAGE

        return PYTHON_IMAGE
    return DEFAULT_IMAGE


class PortForward:
    """A loopback listener whose every connection is forwarded to ``pod:port`` through the API.

    The same code for every cluster (kind, a real cluster, local-node): only the apiserver must be
    reachable. One websocket per connection (``kubernetes.stream.portforward``).
    """

    def __init__(self, api_client: kubernetes.client.ApiClient, namespace: str, pod: str, port: int) -> None:
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.namespace, self.pod, self.port = namespace, pod, port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.local_port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"port-forward {pod}:{port}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        from kubernetes.stream import portforward

        try:
            with _STREAM_LOCK:
                forward = portforward(
                    self.core.connect_get_namespaced_pod_portforward,
                    self.pod,
                    self.namespace,
                    ports=str(self.port),
                )
            remote = forward.socket(self.port)
        except Exception:
            conn.close()
            return
        remote.setblocking(True)
        selector = selectors.DefaultSelector()
        selector.register(conn, selectors.EVENT_READ, remote)
        selector.register(remote._socket, selectors.EVENT_READ, conn)
        try:
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            conn.close()
            forward.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


def _describe_pod(core: kubernetes.client.CoreV1Api, pod: Any) -> str:
    name, namespace = pod.metadata.name, pod.metadata.namespace
    lines = [f"pod {namespace}/{name}: phase {pod.status.phase}"]
    for status in pod.status.container_statuses or []:
        state = status.state
        waiting = state.waiting if state else None
        terminated = (state.terminated if state else None) or (
            status.last_state.terminated if status.last_state else None
        )
        if waiting:
            lines.append(f"  {status.name}: waiting {waiting.reason}: {waiting.message or ''}".rstrip())
        if terminated:
            lines.append(f"  {status.name}: terminated {terminated.reason} (exit {terminated.exit_code})")
    with contextlib.suppress(ApiException):
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        lines.append("  events:")
        lines.extend(f"    {e.type} {e.reason}: {e.message}" for e in events[-15:])
    for previous in (True, False):
        with contextlib.suppress(ApiException):
            log = core.read_namespaced_pod_log(name, namespace, previous=previous, tail_lines=30)
            if log:
                lines.append(f"  log{' (previous container)' if previous else ''}:")
                lines.extend(f"    {line}" for line in log.splitlines())
    return "\n".join(lines)


def _failing(core: kubernetes.client.CoreV1Api, pod: Any) -> str | None:
    """Why ``pod`` will not become ready without help (None: it may still)."""
    for status in (pod.status.container_statuses or []) + (pod.status.init_container_statuses or []):
        waiting = status.state.waiting if status.state else None
        if waiting and waiting.reason in FAILING_REASONS:
            return str(waiting.reason)
    events = core.list_namespaced_event(
        pod.metadata.namespace, field_selector=f"involvedObject.name={pod.metadata.name},reason=FailedMount"
    ).items
    # "not registered" is the kubelet's informer catching up with a fresh pod; it passes by itself.
    if any("not registered" not in (e.message or "") for e in events):
        return "FailedMount"
    return None


def wait_for_rollout(
    api_client: kubernetes.client.ApiClient, targets: list[tuple[str, str]], timeout: float = 180.0
) -> dict[str, Any]:
    """Wait until every ``(namespace, app)`` Deployment has one ready pod; return the pods by app.

    Fails at once on ImagePullBackOff, CrashLoopBackOff, FailedMount and the like, with the pod's
    state, events and logs in the message.
    """
    core = kubernetes.client.CoreV1Api(api_client)
    ready: dict[str, Any] = {}

    def check() -> bool:
        for namespace, app in targets:
            if app in ready:
                continue
            pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
            for pod in pods:
                if pod.metadata.deletion_timestamp:
                    continue
                reason = _failing(core, pod)
                if reason:
                    raise DeployError(f"{app} failed to start ({reason}):\n{_describe_pod(core, pod)}")
                conditions = {c.type: c.status for c in pod.status.conditions or []}
                if conditions.get("Ready") == "True":
                    ready[app] = pod
        return len(ready) == len(targets)

    try:
        wait_until(check, timeout, "workloads not ready", max_interval=1.0)
    except WaitTimeout as exc:
        details = []
        for namespace, app in targets:
            if app not in ready:
                for pod in core.list_namespaced_pod(namespace, label_selector=f"app={app}").items:
                    details.append(_describe_pod(core, pod))
                if not details:
                    details.append(f"no pod of {namespace}/{app} was created (is a scheduler running?)")
        raise DeployError(f"{exc}:\n" + "\n".join(details)) from None
    return ready


def exec_in_pod(
    api_client: kubernetes.client.ApiClient,
    namespace: str,
    pod: str,
    command: list[str],
    container: str | None = None,
) -> str:
    """Run ``command`` in the pod and return its stdout (``kubectl exec``)."""
    from kubernetes.stream import stream

    core = kubernetes.client.CoreV1Api(api_client)
    kwargs: dict[str, Any] = {"container": container} if container else {}
    with _STREAM_LOCK:
        return str(
            stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=command,
                stderr=False,
                stdin=False,
                stdout=True,
                tty=False,
                **kwargs,
            )
        )


def deploy_manifests(
    cluster: Cluster,
    names: Callable[[str], str],
    workdir: Path,
    *,
    image: str | None = None,
    manifests_dir: Path | None = None,
    audience: str = AUDIENCE,
    timeout: float = 180.0,
) -> Deployment:
    """Apply ``fixtures/manifests`` on a cluster whose kubelet runs pods (local-node, kind, real ones).

    Waits for the rollout, opens a port-forward per workload on loopback and waits for the first
    authenticated call (API service -> secret store, 200). Fidelity ``real``: the kubelet projects
    and rotates the tokens. ``Deployment.teardown()`` deletes what was created.
    """
    api_client = cluster.api_client
    stream_client = cluster.info.api_client()  # kubernetes.stream patches its client: a private one
    values = {
        "RUN_ID": cluster.run_id,
        "API_NAMESPACE": names("api"),
        "SECRET_STORE_NAMESPACE": names("secret-store"),
        "DATA_STORE_NAMESPACE": names("data-store"),
        "AUTH_DELEGATOR_BINDING": names("k8s-sa-secret-store-auth-delegator"),
        "IMAGE": image or _default_image(cluster),
        "AUDIENCE": audience,
        "TOKEN_REFRESH_SECONDS": f"{API_TOKEN_REFRESH_SECONDS:g}",
    }
    folder = manifests_dir or Path(os.environ.get("K8S_SA_MANIFESTS") or MANIFESTS_DIR)
    docs = render_manifests(folder, values)
    cleanups: list[Callable[[], None]] = [stream_client.close]
    for doc in docs:
        if doc["kind"] == "Namespace":
            cleanups.append(
                functools.partial(resources.delete_namespace, api_client, doc["metadata"]["name"])
            )
        elif doc["kind"] == "ClusterRoleBinding":
            cleanups.append(
                functools.partial(resources.delete_cluster_role_binding, api_client, doc["metadata"]["name"])
            )
    namespaces = {
        "api": values["API_NAMESPACE"],
        "secret-store": values["SECRET_STORE_NAMESPACE"],
        "data-store": values["DATA_STORE_NAMESPACE"],
    }
    try:
        started = time.monotonic()
        for doc in docs:
            kubernetes.utils.create_from_dict(api_client, doc)
        pods = wait_for_rollout(api_client, [(namespaces[app], app) for app in _PORTS], timeout)
        rolled_out = time.monotonic() - started
        workloads: dict[str, Workload] = {}
        for app, port in _PORTS.items():
            pod = pods[app]
            forward = PortForward(stream_client, namespaces[app], pod.metadata.name, port)
            cleanups.append(forward.close)
            workloads[app] = Workload(
                app,
                namespaces[app],
                pod.spec.service_account_name,
                forward.url,
                BoundObject("Pod", pod.metadata.name, pod.metadata.uid),
                read_token=_reader(stream_client, namespaces[app], pod.metadata.name, _TOKEN_PATHS[app]),
                read_logs=_log_reader(api_client, namespaces[app], pod.metadata.name),
            )
        deployment = Deployment(
            api=workloads["api"],
            secret_store=workloads["secret-store"],
            data_store=workloads["data-store"],
            fidelity="real",
            audience=audience,
            _cleanups=cleanups,
        )
        first_ok = _first_authenticated_call(deployment, timeout=60.0)
        deployment.timings = {
            "rollout_seconds": round(rolled_out, 2),
            "apply_to_first_authenticated_call_seconds": round(time.monotonic() - started, 2)
            if first_ok
            else -1.0,
        }
        if cluster.provider == "local-node":
            deployment.rotate_on_demand = _kubelet_restart_rotation(deployment)
            deployment.rotation_trigger = "real kubelet, restarted (empty token cache)"
        return deployment
    except BaseException:
        while cleanups:
            with contextlib.suppress(Exception):
                cleanups.pop()()
        raise


def _reader(
    api_client: kubernetes.client.ApiClient, namespace: str, pod: str, path: str
) -> Callable[[], str]:
    return lambda: exec_in_pod(api_client, namespace, pod, ["cat", path])


def _log_reader(api_client: kubernetes.client.ApiClient, namespace: str, pod: str) -> Callable[[], str]:
    core = kubernetes.client.CoreV1Api(api_client)
    return lambda: str(core.read_namespaced_pod_log(pod, namespace))


def _first_authenticated_call(deployment: Deployment, timeout: float) -> bool:
    def granted() -> bool:
        return deployment.api.get("/", timeout=5).status_code == 200

    try:
        wait_until(granted, timeout, "first authenticated call", ignore=(requests.RequestException,))
    except WaitTimeout:
        return False
    return True


def _kubelet_restart_rotation(deployment: Deployment) -> Callable[[], Token]:
    def rotate() -> Token:
        from .providers.local_node import active

        provider = active()
        if provider is None:
            raise RuntimeError("no local-node provider runs in this process")
        old = deployment.api.current_token()
        provider.restart_kubelet()
        found: dict[str, Token] = {}

        def replaced() -> bool:
            token = deployment.api.current_token()
            if token.jti != old.jti:
                found["token"] = token
            return bool(found)

        wait_until(
            replaced,
            120,
            "the restarted kubelet did not replace the API token file",
            max_interval=1.0,
            ignore=(ApiException,),  # exec fails while the kubelet is starting again
        )
        return found["token"]

    return rotate

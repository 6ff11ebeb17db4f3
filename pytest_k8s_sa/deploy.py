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
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import resources
from .cluster import Cluster
from .ports import free_port
from .process import Process
from .projector import FIDELITY as EMULATED
from .projector import TokenProjector
from .tokens import BoundObject, Token

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

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

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

    @property
    def workloads(self) -> list[Workload]:
        return [self.api, self.secret_store, self.data_store]

    def rotate_api_token(self) -> Token:
        """Replace the API service's token file now (emulated kubelet refresh)."""
        if self.api.projector is None:
            raise RuntimeError(
                "only the emulated kubelet can rotate on demand; the real one rotates at 80% TTL"
            )
        return self.api.projector.refresh_now()

    def logs(self) -> dict[str, str]:
        out = {}
        for workload in self.workloads:
            if workload.process is not None:
                with contextlib.suppress(OSError):
                    out[workload.name] = workload.process.log_path.read_text(errors="replace")
        return out

    def teardown(self) -> None:
        while self._cleanups:
            with contextlib.suppress(Exception):
                self._cleanups.pop()()


def _python_module(module: str) -> list[str]:
    return [sys.executable, "-m", f"pytest_k8s_sa.workloads.{module}"]


def _healthy(url: str) -> Callable[[], bool]:
    return lambda: requests.get(f"{url}/healthz", timeout=1).status_code == 200


@contextlib.contextmanager
def deploy_processes(
    cluster: Cluster, names: Callable[[str], str], workdir: Path, *, audience: str = AUDIENCE
) -> Iterator[Deployment]:
    """Run the three workloads as local processes against ``cluster`` (emulated kubelet)."""
    api_client = cluster.api_client
    labels = resources.run_labels(cluster.run_id)
    cleanups: list[Callable[[], None]] = []
    configuration = api_client.configuration
    ca_file = Path(configuration.ssl_ca_cert)

    def identity(stem: str, sa_name: str) -> tuple[str, BoundObject]:
        namespace = names(stem)
        resources.create_namespace(api_client, namespace, labels)
        cleanups.append(lambda: resources.delete_namespace(api_client, namespace))
        resources.create_service_account(api_client, namespace, sa_name)
        pod = resources.create_placeholder_pod(
            api_client, namespace, sa_name, sa_name, labels={"app": sa_name}
        )
        return namespace, BoundObject("Pod", pod.metadata.name, pod.metadata.uid)

    def project(
        namespace: str,
        sa_name: str,
        pod: BoundObject,
        folder: str,
        filename: str,
        aud: str | None,
        extra: dict[str, bytes] | None = None,
    ) -> TokenProjector:
        projector = TokenProjector(
            api_client,
            namespace=namespace,
            service_account=sa_name,
            pod=pod,
            directory=workdir / folder,
            filename=filename,
            audience=aud,
            expiration_seconds=TOKEN_EXPIRATION_SECONDS,
            extra_files=extra,
        )
        projector.start()
        cleanups.append(projector.stop)
        return projector

    def run(name: str, module: str, env: dict[str, str], port: int) -> Process:
        url = f"http://127.0.0.1:{port}"
        proc = Process(
            name,
            _python_module(module),
            workdir / "logs" / f"{name}.log",
            env={"PATH": "/usr/bin:/bin", **env, "LISTEN_ADDR": f"127.0.0.1:{port}"},
            health=_healthy(url),
        )
        proc.start(timeout=30)
        cleanups.append(proc.stop)
        return proc

    try:
        api_ns, api_pod = identity("api", "api")
        store_ns, store_pod = identity("secret-store", "secret-store")
        data_ns, data_pod = identity("data-store", "data-store")
        binding = names("k8s-sa-secret-store-auth-delegator")
        resources.grant_auth_delegator(api_client, binding, store_ns, "secret-store", labels)
        cleanups.append(lambda: resources.delete_cluster_role_binding(api_client, binding))

        # The secret store's own credentials: a token for the API audiences, as in every pod.
        store_projector = project(
            store_ns,
            "secret-store",
            store_pod,
            "secret-store/serviceaccount",
            "token",
            None,
            {"ca.crt": ca_file.read_bytes(), "namespace": store_ns.encode()},
        )
        api_projector = project(api_ns, "api", api_pod, "api/tokens", "api-token", audience)
        data_projector = project(
            data_ns, "data-store", data_pod, "data-store/tokens", "data-store-token", audience
        )

        ports = {"api": free_port(), "secret-store": free_port(), "data-store": free_port()}
        store_url = f"http://127.0.0.1:{ports['secret-store']}"
        store_proc = run(
            "secret-store",
            "secret_store",
            {
                "K8S_API_URL": configuration.host,
                "K8S_CA_FILE": str(store_projector.directory / "ca.crt"),
                "K8S_TOKEN_FILE": str(store_projector.path),
                "AUDIENCE": audience,
                "ALLOWED_SERVICE_ACCOUNTS": f"{api_ns}:api",
            },
            ports["secret-store"],
        )
        caller_env = {"SECRET_STORE_URL": store_url, "TOKEN_REFRESH_SECONDS": str(API_TOKEN_REFRESH_SECONDS)}
        api_proc = run("api", "api", {**caller_env, "TOKEN_PATH": str(api_projector.path)}, ports["api"])
        data_proc = run(
            "data-store",
            "data_store",
            {**caller_env, "TOKEN_PATH": str(data_projector.path)},
            ports["data-store"],
        )

        deployment = Deployment(
            api=Workload(
                "api", api_ns, "api", f"http://127.0.0.1:{ports['api']}", api_pod, api_projector, api_proc
            ),
            secret_store=Workload(
                "secret-store", store_ns, "secret-store", store_url, store_pod, store_projector, store_proc
            ),
            data_store=Workload(
                "data-store",
                data_ns,
                "data-store",
                f"http://127.0.0.1:{ports['data-store']}",
                data_pod,
                data_projector,
                data_proc,
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
    """One more secret store process under a given identity (e.g. one without auth-delegator)."""
    projector = TokenProjector(
        cluster.api_client,
        namespace=namespace,
        service_account=service_account,
        pod=pod,
        directory=workdir / f"{service_account}/serviceaccount",
        filename="token",
        audience=None,
        extra_files={"ca.crt": Path(cluster.api_client.configuration.ssl_ca_cert).read_bytes()},
    )
    projector.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        f"secret-store-{service_account}",
        _python_module("secret_store"),
        workdir / "logs" / f"secret-store-{service_account}.log",
        env={
            "PATH": "/usr/bin:/bin",
            "K8S_API_URL": cluster.api_client.configuration.host,
            "K8S_CA_FILE": str(projector.directory / "ca.crt"),
            "K8S_TOKEN_FILE": str(projector.path),
            "AUDIENCE": audience,
            "ALLOWED_SERVICE_ACCOUNTS": allowed,
            "LISTEN_ADDR": f"127.0.0.1:{port}",
        },
        health=_healthy(url),
    )
    try:
        proc.start(timeout=30)
    except BaseException:
        projector.stop()
        raise

    def stop() -> None:
        proc.stop()
        projector.stop()

    return Workload(proc.name, namespace, service_account, url, pod, projector, proc), stop


def deploy_manifests(cluster: Cluster, names: Callable[[str], str], workdir: Path) -> Deployment:
    """Apply ``fixtures/manifests`` on a cluster whose kubelet runs pods (kind, real clusters)."""
    raise NotImplementedError(
        "deploying the manifests as real pods (kind, --kubeconfig, local-node) is not implemented yet; "
        "see the local-node issue"
    )

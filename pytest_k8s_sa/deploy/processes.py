"""Deploy the reference workloads as local processes (clusters without a kubelet: ``local``).

Pod objects, service accounts, RBAC and tokens are real API objects, and :mod:`.projector` plays
the kubelet for the projected token files (fidelity ``emulated-kubelet``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import requests

from ..base.ports import free_port
from ..base.process import Process
from ..cluster import resources
from ..cluster.cluster import Cluster
from ..cluster.tokens import BoundObject
from . import steps
from .cleanup import Cleanups
from .model import API_TOKEN_REFRESH_SECONDS, AUDIENCE, Deployment, Workload
from .projector import FIDELITY as EMULATED
from .projector import TokenProjector
from .steps import project_tokens, service_account_volume


def _python_module(module: str) -> list[str]:
    return [sys.executable, "-m", f"pytest_k8s_sa.workloads.{module}"]


def _healthy(url: str) -> Callable[[], bool]:
    return lambda: requests.get(f"{url}/healthz", timeout=1).status_code == 200


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

    def identity(stem: str, sa_name: str) -> tuple[str, BoundObject]:
        made = steps.identity(cluster, stack, names(stem), sa_name, sa_name, labels)
        return made.namespace, made.pod

    def started(projector: TokenProjector) -> TokenProjector:
        stack.defer(projector.stop)
        return projector

    def run(name: str, module: str, env: dict[str, str]) -> tuple[Process, str]:
        port = free_port()
        proc = _run_workload(name, module, env, workdir, port)
        stack.stop_on_exit(proc)
        return proc, f"http://127.0.0.1:{port}"

    with Cleanups() as stack:
        api_ns, api_pod = identity("api", "api")
        store_ns, store_pod = identity("secret-store", "secret-store")
        data_ns, data_pod = identity("data-store", "data-store")
        binding = names("k8s-sa-secret-store-auth-delegator")
        resources.grant_auth_delegator(api_client, binding, store_ns, "secret-store", labels)
        stack.defer(resources.delete_cluster_role_binding, api_client, binding)

        # The secret store's own credentials: a token for the API audiences, as in every pod.
        store_volume = started(
            service_account_volume(
                cluster, store_ns, "secret-store", store_pod, workdir / "secret-store/serviceaccount"
            )
        )
        api_projector = started(
            project_tokens(cluster, api_ns, "api", api_pod, workdir / "api/tokens", "api-token", audience)
        )
        data_projector = started(
            project_tokens(
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
            caller=Workload("api", api_ns, "api", api_url, api_pod, api_projector, api_proc),
            callee=Workload(
                "secret-store", store_ns, "secret-store", store_url, store_pod, store_volume, store_proc
            ),
            intruder=Workload(
                "data-store", data_ns, "data-store", data_url, data_pod, data_projector, data_proc
            ),
            fidelity=EMULATED,
            audience=audience,
        )
        yield deployment


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
    volume = service_account_volume(
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

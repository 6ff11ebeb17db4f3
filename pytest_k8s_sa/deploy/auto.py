"""Pick the way to deploy from what the cluster can do: real pods where a kubelet runs them.

One lifecycle shape for both ways (context managers), so fixtures need no branching.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from ..cluster.cluster import Cluster
from ..cluster.tokens import BoundObject
from .manifests import deploy_manifests, start_secret_store_pod
from .model import AUDIENCE, Deployment, Workload
from .processes import deploy_processes, start_secret_store_process


@contextlib.contextmanager
def deploy_workloads(
    cluster: Cluster, names: Callable[[str], str], workdir: Path, *, audience: str = AUDIENCE
) -> Iterator[Deployment]:
    """:func:`deploy_manifests` where the cluster runs pods, else :func:`deploy_processes`."""
    deploy = deploy_manifests if cluster.capabilities.runs_pods else deploy_processes
    with deploy(cluster, names, workdir, audience=audience) as deployment:
        yield deployment


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
    Returns the workload and a function that stops it.
    """
    if cluster.capabilities.runs_pods:
        return start_secret_store_pod(
            cluster, namespace=namespace, service_account=service_account, allowed=allowed, audience=audience
        )
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
    process, volume = workload.process, workload.projector

    def stop() -> None:
        if process is not None:
            process.stop()
        if volume is not None:
            volume.stop()

    return workload, stop

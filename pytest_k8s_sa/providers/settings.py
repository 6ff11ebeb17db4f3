"""The resolved options of a run, as plain data (no pytest): what providers are built from.

:mod:`pytest_k8s_sa.plugin.options` fills it from flags, env vars and ini keys; the ``k8s-sa`` command
from its own arguments.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """The resolved, validated options (plus where and for whom a started cluster runs)."""

    provider: str = "local"
    kubeconfig: str | None = None
    k8s_version: str | None = None
    bin_dir: str | None = None
    keep_cluster: bool = False
    keep_namespaces_on_failure: bool = False
    kind_cluster_name: str = "pytest-k8s-sa"
    kind_image: str | None = None
    """pytest-kind's ``--kind-image`` (kindest/node image); else chosen from ``k8s_version``."""
    kind_bin: str | None = None
    """pytest-kind's ``--kind-bin``; else ``kind`` on PATH."""
    kind_config: str | None = None
    """A kind cluster configuration file to create the cluster with; else the project's (subnets below)."""
    kind_pod_subnet: str | None = None
    """kind's pod subnet in the project's configuration (default 100.98.0.0/16)."""
    kind_service_subnet: str | None = None
    """kind's Service subnet in the project's configuration (default 100.99.0.0/16)."""
    work_dir: str | None = None
    """Where a provider that starts a cluster keeps its state (local); None: a fresh temporary folder."""
    owner_pid: int | None = None
    """The process whose death stops the started cluster's processes (None: the current one)."""
    shared: bool = False
    """A pytest-xdist worker: the cluster belongs to the whole run and is shared with other workers."""
    apt_mirror: str | None = None
    """local-node: where the python image's Debian packages come from (None: this machine's apt sources)."""
    node_wait_seconds: float = 5.0
    """local-node: how long to wait for the machine's node lock while another run holds it."""

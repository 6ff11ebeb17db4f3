"""Every provider by name: how to build it from :class:`~pytest_k8s_sa.providers.settings.Settings`.

The plugin (``--k8s-provider``), the ``k8s-sa up`` command and the benchmarks build providers
here, so a new provider is one builder in :data:`PROVIDERS` (and one module in this package); the
option's choices follow. Provider-specific rules for the options live here too
(:func:`resolve_provider`), so nothing outside ``providers/`` compares provider names.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..base.errors import K8sSAError
from ..components.binaries import DEFAULT_K8S_VERSION
from .base import Provider
from .settings import Settings

ProviderBuilder = Callable[[Settings], Provider]


class SettingsError(K8sSAError):
    """The options contradict each other or the chosen provider; the message says what to change."""


def _local(settings: Settings) -> Provider:
    from .local import LocalProvider

    temporary = not settings.work_dir  # then the provider removes the folder with the cluster
    work_dir = (
        Path(tempfile.mkdtemp(prefix=f"k8s-sa-{os.getpid()}-")) if temporary else Path(str(settings.work_dir))
    )
    return LocalProvider(
        work_dir,
        version=settings.k8s_version or DEFAULT_K8S_VERSION,
        bin_dir=settings.bin_dir,
        owner_pid=settings.owner_pid or os.getpid(),
        keep=settings.keep_cluster,
        shared=settings.shared,
        owns_dir=temporary,
    )


def _local_node(settings: Settings) -> Provider:
    from .local_node import LocalNodeProvider

    if settings.shared:
        raise SettingsError(
            "--k8s-provider local-node runs one node per machine and is not shared between "
            "pytest-xdist workers: run without -n."
        )
    return LocalNodeProvider(
        version=settings.k8s_version or DEFAULT_K8S_VERSION,
        bin_dir=settings.bin_dir,
        owner_pid=settings.owner_pid or os.getpid(),
        keep=settings.keep_cluster,
        apt_mirror=settings.apt_mirror,
        node_wait_seconds=settings.node_wait_seconds,
    )


def _kind(settings: Settings) -> Provider:
    from .kind import KindProvider

    image = settings.kind_image
    if not image and settings.k8s_version:
        image = f"kindest/node:v{settings.k8s_version.lstrip('v')}"
    return KindProvider(
        settings.kind_cluster_name,
        kubeconfig=Path(settings.kubeconfig) if settings.kubeconfig else None,
        image=image,
        kind_bin=settings.kind_bin,
        keep=settings.keep_cluster,
        version=settings.k8s_version,
        owner_pid=settings.owner_pid,
        work_dir=Path(settings.work_dir) if settings.work_dir else None,
        config_file=Path(settings.kind_config).expanduser() if settings.kind_config else None,
        pod_subnet=settings.kind_pod_subnet,
        service_subnet=settings.kind_service_subnet,
    )


def _kubeconfig(settings: Settings) -> Provider:
    from .kubeconfig import KubeconfigProvider

    if not settings.kubeconfig:
        raise SettingsError("--k8s-provider kubeconfig needs a kubeconfig: pass --kubeconfig PATH.")
    return KubeconfigProvider(Path(settings.kubeconfig).expanduser())


PROVIDERS: dict[str, ProviderBuilder] = {
    "local": _local,
    "kind": _kind,
    "kubeconfig": _kubeconfig,
    "local-node": _local_node,
}
"""Provider name -> builder. The first is the default."""
DEFAULT_PROVIDER = next(iter(PROVIDERS))
UP_PROVIDERS = ("local", "local-node", "kind")
"""The providers that create a cluster, so ``k8s-sa up`` can offer them."""
STARTS_OWN_CLUSTER = frozenset({"local", "local-node"})
"""Providers that start the cluster from binaries here (so --kubeconfig cannot name another one,
and --k8s-bin-dir applies)."""


def build_provider(name: str, settings: Settings) -> Provider:
    """The provider ``name``, configured from ``settings``; :class:`SettingsError` for an unknown name."""
    try:
        builder = PROVIDERS[name]
    except KeyError:
        raise SettingsError(f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}") from None
    return builder(settings)


def resolve_provider(
    requested: str | None,
    *,
    kind_cluster: bool = False,
    kubeconfig: str | None = None,
    k8s_version: str | None = None,
    bin_dir: str | None = None,
) -> str:
    """The provider the options select, or :class:`SettingsError` saying which options to change."""
    if requested is not None and requested not in PROVIDERS:
        raise SettingsError(f"unknown provider {requested!r}; choose one of {', '.join(PROVIDERS)}")
    if kind_cluster and requested not in (None, "kind"):
        raise SettingsError(
            f"--kind-cluster contradicts --k8s-provider {requested}: drop one of them "
            "(--kind-cluster is the same as --k8s-provider kind)."
        )
    provider = requested or ("kind" if kind_cluster else ("kubeconfig" if kubeconfig else DEFAULT_PROVIDER))
    if provider in STARTS_OWN_CLUSTER and kubeconfig:
        raise SettingsError(
            f"--kubeconfig names an existing cluster, but --k8s-provider is {provider} "
            "(which starts its own): use --k8s-provider kubeconfig, or drop --kubeconfig."
        )
    if provider == "kubeconfig":
        if not kubeconfig:
            raise SettingsError(
                "--k8s-provider kubeconfig needs a kubeconfig: pass --kubeconfig PATH or set "
                "$K8S_SA_KUBECONFIG."
            )
        if k8s_version:
            raise SettingsError(
                "--k8s-version cannot apply to an existing cluster (--kubeconfig): its version is what it "
                "is. Drop --k8s-version."
            )
    if bin_dir and provider not in STARTS_OWN_CLUSTER:
        raise SettingsError(f"--k8s-bin-dir is for the local provider only; the provider is {provider}.")
    return provider

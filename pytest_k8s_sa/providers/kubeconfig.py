"""Attach to any existing cluster through a kubeconfig (EKS, GKE, on-prem, kind made elsewhere).

This provider creates nothing and so destroys nothing: the fixtures delete only the namespaces
and ClusterRoleBindings they created themselves, found by the run's label.
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes
import urllib3

from ..base.errors import ClusterUnreachableError
from .base import Capabilities, ClusterInfo


def probe(kubeconfig: Path, context: str | None = None) -> tuple[str, str | None]:
    """Return (server version, issuer) or raise :class:`ClusterUnreachableError` saying what to check."""
    try:
        client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig), context=context)
    except (kubernetes.config.ConfigException, OSError, ValueError) as exc:
        raise ClusterUnreachableError(f"Cannot load kubeconfig {kubeconfig}: {exc}") from None
    client.configuration.retries = 0
    try:
        version = kubernetes.client.VersionApi(client).get_code(_request_timeout=10).git_version
        issuer: str | None = None
        try:
            # Raw response: the generated client turns this JSON document into a Python repr string.
            raw = kubernetes.client.WellKnownApi(client).get_service_account_issuer_open_id_configuration(
                _request_timeout=10, _preload_content=False
            )
            data = json.loads(raw.data)
            issuer = data.get("issuer") if isinstance(data, dict) else None
        except (kubernetes.client.ApiException, ValueError):
            issuer = None  # discovery off or not allowed: the suite reports it, attaching still works
    except (urllib3.exceptions.HTTPError, OSError, kubernetes.client.ApiException) as exc:
        server = client.configuration.host
        raise ClusterUnreachableError(
            f"The cluster at {server} (kubeconfig {kubeconfig}) does not answer: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Check that it is running and that the "
            "kubeconfig's current context and credentials are valid (`kubectl --kubeconfig ... version`)."
        ) from None
    finally:
        client.close()
    return str(version), issuer


class KubeconfigProvider:
    name = "kubeconfig"

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def create(self) -> ClusterInfo:
        if not self.kubeconfig.is_file():
            raise ClusterUnreachableError(f"--kubeconfig {self.kubeconfig}: no such file.")
        _version, issuer = probe(self.kubeconfig)
        return ClusterInfo(
            provider=self.name,
            kubeconfig=self.kubeconfig,
            issuer=issuer,
            capabilities=Capabilities(holds_signing_key=False, runs_pods=True),
            key_control_missing=(
                "a --kubeconfig cluster's kube-apiserver flags and signing key are not this run's to change, "
                "so its signing key cannot be rotated; run on local or local-node"
            ),
        )

    def export_logs(self, destination: Path) -> list[Path]:
        return []  # component logs of a managed cluster are not ours to fetch

    def destroy(self) -> None:
        """Nothing: this provider did not create the cluster."""

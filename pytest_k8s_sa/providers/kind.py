"""A kind cluster through pytest-kind (``pytest-kind-ng``), for workstations with Docker.

The ``kind`` binary on PATH is preferred; pytest-kind would otherwise try to download one, which
fails on machines without internet access, so a missing ``kind`` is reported up front.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import ClusterUnreachableError
from .base import Capabilities, ClusterInfo
from .kubeconfig import probe


class KindProvider:
    name = "kind"

    def __init__(
        self,
        cluster_name: str,
        *,
        kubeconfig: Path | None = None,
        image: str | None = None,
        kind_bin: str | None = None,
        keep: bool = False,
    ) -> None:
        self.cluster_name = cluster_name
        self.kubeconfig = kubeconfig
        self.image = image
        self.kind_bin = kind_bin or shutil.which("kind")
        self.keep = keep
        self._cluster: object | None = None

    def create(self) -> ClusterInfo:
        if not self.kind_bin:
            raise ClusterUnreachableError(
                "--kind-cluster needs the `kind` binary: put it on PATH or pass --kind-bin PATH "
                "(and a running Docker or Podman engine). On machines without either, use the default "
                "local provider or --kubeconfig."
            )
        from pytest_kind import KindCluster

        cluster = KindCluster(
            self.cluster_name, self.kubeconfig, image=self.image, kind_path=Path(self.kind_bin)
        )
        try:
            cluster.create()
        except (subprocess.CalledProcessError, OSError) as exc:
            raise ClusterUnreachableError(
                f"kind could not create cluster {self.cluster_name!r}: {exc}"
            ) from None
        self._cluster = cluster
        kubeconfig = Path(cluster.kubeconfig_path)
        _version, issuer = probe(kubeconfig)
        return ClusterInfo(
            provider=self.name,
            kubeconfig=kubeconfig,
            issuer=issuer,
            capabilities=Capabilities(holds_signing_key=False, runs_pods=True),
        )

    def export_logs(self, destination: Path) -> list[Path]:
        if not self.kind_bin:
            return []
        destination.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [self.kind_bin, "export", "logs", str(destination), f"--name={self.cluster_name}"],
            check=False,
            capture_output=True,
        )
        return sorted(p for p in destination.rglob("*") if p.is_file())

    def destroy(self) -> None:
        if self._cluster is not None and not self.keep:
            self._cluster.delete()  # type: ignore[attr-defined]
        self._cluster = None

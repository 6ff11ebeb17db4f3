"""One kubeconfig writer for everything this project hands a kubeconfig to.

Like envtest's ``AddUser(...).KubeConfig()``: say which apiserver (its URL, and the CA that signs
its serving certificate: a file or PEM bytes) and which user (a client certificate, or a token file
that something keeps fresh), get a :class:`KubeConfig`, write it. The control plane's admin, the
node's kubelet and kube-proxy (client certificates) and a SUT callee's own service account in
process mode (a projected token file) all come from here.

Written as JSON, which every kubeconfig reader accepts (it is YAML too), so standard-library tools
and a team's SUT in any language can read it; mode 0600, since it names credentials. Base layer:
imports nothing of this package.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_NAME = "pytest-k8s-sa"


@dataclass(frozen=True)
class KubeConfig:
    """One cluster, one user, one context (all named ``name``), the current one."""

    server: str
    ca: Path | bytes
    """The CA bundle: a file (referenced) or PEM bytes (embedded as ``certificate-authority-data``)."""
    user: dict[str, str] = field(default_factory=dict)
    name: str = DEFAULT_NAME

    def as_dict(self) -> dict[str, Any]:
        cluster: dict[str, str] = {"server": self.server}
        if isinstance(self.ca, bytes):
            cluster["certificate-authority-data"] = base64.b64encode(self.ca).decode()
        else:
            cluster["certificate-authority"] = str(self.ca)
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.name, "cluster": cluster}],
            "users": [{"name": self.name, "user": dict(self.user)}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": self.name}}],
            "current-context": self.name,
        }

    def write(self, path: Path) -> Path:
        """Write it to ``path`` (parents made; readable by the owner only) and return ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(self.as_dict(), indent=2))
        return path


def client_certificate_kubeconfig(
    server: str, ca: Path | bytes, cert: Path, key: Path, *, name: str = DEFAULT_NAME
) -> KubeConfig:
    """A user authenticating with a client certificate (the admin, the kubelet, kube-proxy)."""
    return KubeConfig(server, ca, {"client-certificate": str(cert), "client-key": str(key)}, name)


def token_file_kubeconfig(
    server: str, ca: Path | bytes, token_file: Path, *, name: str = "sut"
) -> KubeConfig:
    """A user authenticating with the bearer token in ``token_file``, re-read as it is rotated
    (client-go and the Python client re-read ``tokenFile``): a service account's projected token."""
    return KubeConfig(server, ca, {"tokenFile": str(token_file)}, name)


def write_kubeconfig(
    path: Path,
    server: str,
    ca: Path | bytes,
    *,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token_file: Path | None = None,
    name: str = DEFAULT_NAME,
) -> Path:
    """Write a kubeconfig in one call: a client certificate, a token file, or no user at all."""
    user: dict[str, str] = {}
    if client_cert and client_key:
        user = {"client-certificate": str(client_cert), "client-key": str(client_key)}
    if token_file:
        user = {"tokenFile": str(token_file)}
    return KubeConfig(server, ca, user, name).write(path)

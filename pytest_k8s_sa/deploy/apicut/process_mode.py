"""The API cut in process mode, and what the fail-closed checks need from a cut in either mode.

The cut itself (:class:`~pytest_k8s_sa.workloads.api_cut.ApiCut`: forward, refuse, reset, hang,
answer garbage) is standard library only and lives with the workloads, because in pod mode the same
code runs as a pod (:mod:`pytest_k8s_sa.deploy.apicut.pod_mode`). Here: :class:`FlakyApi`, the cut on a
loopback port with a certificate of the test's own CA (process mode: the callee's ``${KUBECONFIG}``
names it as the server and its ``ca.crt`` trusts that CA too), and :class:`ApiCutControl`, the handle
the suite switches (in-process here, over a port-forward in pod mode).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ...base.ports import free_port
from ...components.pki import CertificateAuthority, KeyPair
from ...workloads.api_cut import ATTACKER_PREFIX, MODES, TLS_MODES, ApiCut, http_response

__all__ = [
    "ATTACKER_PREFIX",
    "MODES",
    "TLS_MODES",
    "ApiCutControl",
    "FlakyApi",
    "http_response",
    "make_test_ca",
    "running_proxy",
]


class ApiCutControl(Protocol):
    """What the fail-closed checks switch: the callee's way to its Kubernetes API."""

    how: str
    """How the callee's API traffic is made to pass the cut (for the report)."""
    jwks_how: str
    """How a ``jwks`` callee's key-set fetches are made to pass the cut (for the report)."""

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this cut can play here."""

    def set_mode(self, mode: str, response: bytes = b"") -> None: ...

    def traffic(self) -> int:
        """Bytes clients have sent through the cut so far (grows when the callee calls its API)."""

    def reviews_answered(self) -> int:
        """TokenReviews the cut answered itself so far (mode ``review``: SEC-014's lying reviewer)."""

    def connections(self) -> int:
        """Connections the cut accepted so far, in any mode (grows when the callee tries to reach it,
        even while it refuses, hangs or answers garbage; a closed port, mode ``down``, sees none)."""

    def requests_by_path(self) -> dict[str, int]:
        """Requests the cut saw in mode ``relay`` so far, by path (KEY-004 counts key-set fetches)."""

    @property
    def callee_url(self) -> str:
        """The cut's base URL as the callee reaches it (a URL under it is one the callee trusts)."""


def make_test_ca() -> tuple[CertificateAuthority, KeyPair]:
    """A CA of the test's own and a serving certificate for 127.0.0.1 signed by it."""
    ca = CertificateAuthority("k8s-sa-security-test-ca")
    return ca, ca.issue("flaky-api", ip_addresses=("127.0.0.1",), server=True)


class FlakyApi(ApiCut):
    """The cut on a loopback port, in this process, serving ``server_pair`` in the TLS modes."""

    how = (
        "process mode: the callee's ${KUBECONFIG} names a loopback proxy as its server (TLS end to end; "
        "its ca.crt also trusts the proxy's own CA for the modes that answer garbage over TLS)"
    )
    jwks_how = (
        "process mode: ${JWKS_URL} is https://127.0.0.1:<cut port>/openid/v1/jwks, a loopback proxy in "
        "front of the apiserver (TLS end to end; ${CA_FILE} also trusts the proxy's own CA for the modes "
        "that answer garbage over TLS)"
    )

    def __init__(
        self,
        upstream: tuple[str, int],
        server_pair: KeyPair,
        workdir: Path,
        *,
        max_connections: int = 32,
        trickle_interval: float = 0.2,
        upstream_ca_file: str | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        cert, key = server_pair.write(workdir, "flaky-api")
        super().__init__(
            upstream,
            str(cert),
            str(key),
            host="127.0.0.1",
            port=free_port(),
            max_connections=max_connections,
            trickle_interval=trickle_interval,
            upstream_ca_file=upstream_ca_file,
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def callee_url(self) -> str:
        return self.url

    def start(self) -> FlakyApi:
        super().start()
        return self

    def traffic(self) -> int:
        with self._lock:
            return self.forwarded_bytes

    def reviews_answered(self) -> int:
        with self._lock:
            return self.answered_reviews

    def connections(self) -> int:
        with self._lock:
            return self.accepted

    def requests_by_path(self) -> dict[str, int]:
        with self._lock:
            return dict(self.path_counts)


@contextlib.contextmanager
def running_proxy(proxy: FlakyApi) -> Iterator[FlakyApi]:
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()

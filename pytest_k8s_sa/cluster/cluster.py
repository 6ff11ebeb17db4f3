"""A connected cluster: what the fixtures hand to tests, usable without pytest too."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import kubernetes

from ..providers.base import Capabilities, ClusterInfo, KeyControl, NodeControl
from .tokens import request_token


@dataclass
class Cluster:
    """A cluster reached through ``kubeconfig``, with the facts the checks depend on."""

    info: ClusterInfo
    run_id: str
    api_client: kubernetes.client.ApiClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.api_client = self.info.api_client()

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Return once the cluster is fully ready: a no-op unless it was handed out while its apiserver
        still bootstrapped (:class:`~..providers.base.ServingStart`); idempotent."""
        if self.info.wait_ready is not None:
            self.info.wait_ready(timeout)
            self.info.wait_ready = None

    @property
    def provider(self) -> str:
        return self.info.provider

    @property
    def kubeconfig(self) -> Path:
        return self.info.kubeconfig

    @property
    def capabilities(self) -> Capabilities:
        return self.info.capabilities

    @property
    def node_control(self) -> NodeControl | None:
        """The provider's control over its node (kubelet restart, image loading), if it has one."""
        return self.info.node_control

    @property
    def key_control(self) -> KeyControl | None:
        """Rotation of the service-account signing key (local, local-node); None elsewhere, with the
        reason in :attr:`key_control_missing`."""
        return self.info.key_control

    @property
    def key_control_missing(self) -> str:
        return self.info.key_control_missing

    @property
    def signing_key(self) -> Path | None:
        return self.info.signing_key

    @property
    def review_log(self) -> Path | None:
        """The apiserver's audit log of TokenReviews, where the provider configures the apiserver."""
        return self.info.review_log

    @cached_property
    def username(self) -> str | None:
        """Who the suite is to the apiserver (a SelfSubjectReview), so a review transcript can tell
        the suite's own TokenReviews from the callee's; None where the cluster does not say."""
        try:
            review = kubernetes.client.AuthenticationV1Api(self.api_client).create_self_subject_review(
                kubernetes.client.V1SelfSubjectReview()
            )
            return str(review.status.user_info.username)
        except Exception:  # an old apiserver, or no answer: the transcript names the user instead
            return None

    @cached_property
    def server_version(self) -> str:
        return str(kubernetes.client.VersionApi(self.api_client).get_code().git_version)

    @cached_property
    def issuer(self) -> str:
        """The service-account issuer (``iss`` of the tokens this cluster signs)."""
        return self.info.issuer or str(self._probe_token.claims["iss"])

    @cached_property
    def api_audiences(self) -> list[str]:
        """The API audiences: what a TokenRequest with no audience gets as ``aud``."""
        return self.info.api_audiences or self._probe_token.audiences

    @cached_property
    def _probe_token(self):  # type: ignore[no-untyped-def]
        # Every cluster has default/default; a short token for it reveals issuer and API audiences.
        return request_token(self.api_client, "default", "default", expiration_seconds=600)

    def client_for_token(self, token: str) -> kubernetes.client.ApiClient:
        """An ``ApiClient`` to the same server that authenticates with ``token`` (and nothing else)."""
        base = self.api_client.configuration
        configuration = kubernetes.client.Configuration()
        configuration.host = base.host
        configuration.ssl_ca_cert = base.ssl_ca_cert
        configuration.verify_ssl = base.verify_ssl
        configuration.api_key = {"authorization": f"Bearer {token}"}
        return kubernetes.client.ApiClient(configuration)

    def close(self) -> None:
        self.api_client.close()

"""The fixtures third parties build on: a thin layer over the library modules.

Session scope: ``k8s_cluster`` (and ``k8s_client``). Function scope: ``k8s_namespace`` and the
factories, each deleting what it created when the test ends. Factories are typed with
``Protocol`` so editors and mypy see their signatures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, Protocol

import kubernetes
import pytest

from ..cluster import resources, tokens
from ..cluster.cluster import Cluster
from ..cluster.tokens import (
    BoundObject,
    LegacyToken,
    Token,
    TokenReviewResult,
    raw_token,
    request_token,
    review_token,
)
from ..cluster.types import Names, PodRef, ServiceAccountRef
from ..providers.base import KeyControl
from ..providers.settings import Settings
from ..sut.model import Sut

SETTINGS_KEY = pytest.StashKey[Settings]()
CLUSTER_KEY = pytest.StashKey[Cluster]()
RUN_ID_KEY = pytest.StashKey[str]()
FAILED_KEY = pytest.StashKey[bool]()
SUT_KEY = pytest.StashKey[Sut]()
"""The system under test of this run (``--sut``; the built-in reference description without it)."""

__all__ = [  # the plain types live in .types (no pytest); re-exported for existing imports
    "LegacyToken",
    "Names",
    "PodRef",
    "ServiceAccountRef",
]


class ServiceAccountFactory(Protocol):
    def __call__(self, name: str | None = None, *, namespace: str | None = None) -> ServiceAccountRef: ...


class PodFactory(Protocol):
    def __call__(self, service_account: ServiceAccountRef, name: str | None = None) -> PodRef: ...


class ProjectedTokenFactory(Protocol):
    def __call__(
        self,
        service_account: ServiceAccountRef,
        *,
        audiences: list[str] | None = None,
        expiration_seconds: int | None = None,
        bound_pod: PodRef | None = None,
        bound_secret: str | None = None,
    ) -> Token: ...


class LegacyTokenFactory(Protocol):
    def __call__(
        self, service_account: ServiceAccountRef, *, secret_name: str | None = None, timeout: float = 30.0
    ) -> LegacyToken: ...


class TokenReviewFunction(Protocol):
    def __call__(
        self,
        token: str | Token | LegacyToken,
        audiences: list[str] | None = None,
        as_service_account: ServiceAccountRef | None = None,
    ) -> TokenReviewResult: ...


class TokenReviewerGrant(Protocol):
    def __call__(self, service_account: ServiceAccountRef) -> str: ...


class MintTokenFactory(Protocol):
    def __call__(
        self,
        service_account: ServiceAccountRef,
        *,
        audiences: list[str] | None = None,
        issued_at: dt.datetime | None = None,
        not_before: dt.datetime | None = None,
        expires_at: dt.datetime | None = None,
        pod: PodRef | None = None,
    ) -> Token: ...


@pytest.fixture(scope="session")
def k8s_names(k8s_cluster_serving: Cluster) -> Names:
    """Generates object names unique to the run and worker (shared by the other fixtures)."""
    return Names(k8s_cluster_serving.run_id)


@pytest.fixture(scope="session")
def k8s_client(k8s_cluster: Cluster) -> kubernetes.client.ApiClient:
    """The official client's ``ApiClient`` for the cluster, as its admin."""
    return k8s_cluster.api_client


@pytest.fixture
def k8s_namespace(request: pytest.FixtureRequest, k8s_cluster: Cluster, k8s_names: Names) -> Iterator[str]:
    """A fresh namespace, labelled with the run, deleted after the test.

    With ``--keep-namespaces-on-failure`` the namespace of a failed test stays for inspection.
    """
    name = k8s_names("ns")
    resources.create_namespace(k8s_cluster.api_client, name, resources.run_labels(k8s_cluster.run_id))
    yield name
    settings = request.config.stash.get(SETTINGS_KEY, None)
    if settings and settings.keep_namespaces_on_failure and request.node.stash.get(FAILED_KEY, False):
        # Drop the run label, so the end-of-run cleanup (which deletes by that label) spares it.
        resources.keep_namespace(k8s_cluster.api_client, name)
        request.node.add_report_section("teardown", "k8s-sa", f"kept namespace {name} (test failed)")
        return
    resources.delete_namespace(k8s_cluster.api_client, name)


@pytest.fixture
def k8s_service_account(k8s_cluster: Cluster, k8s_namespace: str, k8s_names: Names) -> ServiceAccountFactory:
    """Factory: ``k8s_service_account(name=None, namespace=None) -> ServiceAccountRef``."""

    def create(name: str | None = None, *, namespace: str | None = None) -> ServiceAccountRef:
        ns = namespace or k8s_namespace
        sa = resources.create_service_account(k8s_cluster.api_client, ns, name or k8s_names("sa"))
        return ServiceAccountRef(ns, sa.name, sa.uid)

    return create


@pytest.fixture
def k8s_pod(k8s_cluster: Cluster, k8s_names: Names) -> PodFactory:
    """Factory: a Pod running as a service account, so tokens can be bound to it.

    On the local provider no kubelet runs it: the object exists, which is all binding needs.
    """

    def create(service_account: ServiceAccountRef, name: str | None = None) -> PodRef:
        pod = resources.create_placeholder_pod(
            k8s_cluster.api_client, service_account.namespace, name or k8s_names("pod"), service_account.name
        )
        return PodRef(service_account.namespace, pod.name, pod.uid)

    return create


@pytest.fixture
def projected_token(k8s_cluster: Cluster) -> ProjectedTokenFactory:
    """Factory: a TokenRequest token, as the kubelet would project it into a pod."""

    def create(
        service_account: ServiceAccountRef,
        *,
        audiences: list[str] | None = None,
        expiration_seconds: int | None = None,
        bound_pod: PodRef | None = None,
        bound_secret: str | None = None,
    ) -> Token:
        bound = (
            bound_pod.bound()
            if bound_pod
            else (BoundObject("Secret", bound_secret) if bound_secret else None)
        )
        return request_token(
            k8s_cluster.api_client,
            service_account.namespace,
            service_account.name,
            audiences=audiences,
            expiration_seconds=expiration_seconds,
            bound_object=bound,
        )

    return create


@pytest.fixture
def legacy_token(k8s_cluster: Cluster, k8s_names: Names) -> LegacyTokenFactory:
    """Factory: a legacy Secret-based token, waiting until the tokens controller fills it."""
    if not k8s_cluster.capabilities.controller_manager:
        pytest.skip(
            "legacy tokens need kube-controller-manager's tokens controller, which this cluster lacks"
        )

    def create(
        service_account: ServiceAccountRef, *, secret_name: str | None = None, timeout: float = 30.0
    ) -> LegacyToken:
        name = secret_name or k8s_names("legacy-token")
        resources.create_legacy_token_secret(
            k8s_cluster.api_client, service_account.namespace, service_account.name, name
        )
        raw = resources.wait_legacy_token(k8s_cluster.api_client, service_account.namespace, name, timeout)
        return LegacyToken(service_account.namespace, name, Token.from_raw(raw))

    return create


@pytest.fixture
def token_review(
    k8s_cluster: Cluster, projected_token: ProjectedTokenFactory
) -> Iterator[TokenReviewFunction]:
    """``token_review(token, audiences=None, as_service_account=None) -> TokenReviewResult``.

    ``token``: the raw JWT, a ``Token`` or what ``legacy_token`` returns (a ``LegacyToken``).

    By default the review is made as the admin. ``as_service_account`` makes it with that service
    account's own token instead, the way a workload does (and gets 403 without
    ``system:auth-delegator``, raised as ``kubernetes.client.ApiException``).
    """
    clients: list[kubernetes.client.ApiClient] = []

    def review(
        token: str | Token | LegacyToken,
        audiences: list[str] | None = None,
        as_service_account: ServiceAccountRef | None = None,
    ) -> TokenReviewResult:
        raw = raw_token(token)  # a TypeError for anything else, before any API call
        client = k8s_cluster.api_client
        if as_service_account is not None:
            client = k8s_cluster.client_for_token(
                projected_token(as_service_account, expiration_seconds=600).raw
            )
            clients.append(client)
        return review_token(client, raw, audiences)

    yield review
    for client in clients:
        client.close()


@pytest.fixture
def token_reviewer(k8s_cluster: Cluster, k8s_names: Names) -> Iterator[TokenReviewerGrant]:
    """Factory: grant ``system:auth-delegator`` to a service account; the binding is removed after.

    The ClusterRoleBinding's name is unique to the run, so parallel runs never rebind each other's.
    """
    created: list[str] = []

    def grant(service_account: ServiceAccountRef) -> str:
        name = k8s_names("k8s-sa-auth-delegator")
        resources.grant_auth_delegator(
            k8s_cluster.api_client,
            name,
            service_account.namespace,
            service_account.name,
            resources.run_labels(k8s_cluster.run_id),
        )
        created.append(name)
        return name

    yield grant
    for name in created:
        resources.delete_cluster_role_binding(k8s_cluster.api_client, name)


@pytest.fixture
def mint_token(k8s_cluster: Cluster) -> MintTokenFactory:
    """Factory: a token signed with the cluster's own key, with chosen time claims.

    Only where the signing key is at hand (local, local-node, kind); elsewhere the test is skipped.
    """
    key = k8s_cluster.signing_key
    if key is None or not k8s_cluster.capabilities.holds_signing_key:
        pytest.skip(
            f"mint_token needs the cluster's service-account signing key, which the {k8s_cluster.provider} "
            "provider does not hold (local, local-node and kind do); run on one of those to check expiry "
            "without waiting."
        )

    def mint(
        service_account: ServiceAccountRef,
        *,
        audiences: list[str] | None = None,
        issued_at: dt.datetime | None = None,
        not_before: dt.datetime | None = None,
        expires_at: dt.datetime | None = None,
        pod: PodRef | None = None,
    ) -> Token:
        return tokens.mint_token(
            key,
            issuer=k8s_cluster.issuer,
            audiences=audiences or k8s_cluster.api_audiences,
            namespace=service_account.namespace,
            service_account=service_account.name,
            service_account_uid=service_account.uid,
            issued_at=issued_at,
            not_before=not_before,
            expires_at=expires_at,
            pod=pod.bound() if pod else None,
        )

    return mint


class SigningKeyRotation:
    """What :func:`rotate_signing_key` yields: the cluster's key rotation, step by step, with evidence.

    ``add()``: a new key signs, old and new verify (the overlap); ``retire()``: only the newest key
    verifies. Each returns a ``KeyChange`` (key ids, the apiserver restart's seconds), also kept in
    ``steps``. ``signing_kid``: the ``kid`` new tokens carry now.
    """

    def __init__(self, control: KeyControl) -> None:
        self.control = control
        self.steps: list[Any] = []

    def add(self) -> Any:
        change = self.control.add_signing_key()
        self.steps.append(change)
        return change

    def retire(self) -> Any:
        change = self.control.retire_old_keys()
        self.steps.append(change)
        return change

    @property
    def signing_kid(self) -> str:
        return self.control.signing_kid()

    @property
    def verifying_kids(self) -> list[str]:
        return self.control.verifying_kids()


@pytest.fixture
def rotate_signing_key(k8s_cluster: Cluster) -> Iterator[SigningKeyRotation]:
    """The cluster's service-account signing-key rotation (local and local-node; skipped elsewhere,
    saying why). Afterwards the original key signs again and every key used meanwhile still
    verifies (one more apiserver restart, only if the test rotated), so tokens issued during the
    test keep working for the rest of the run. Under pytest-xdist the test runs alone (the plugin
    holds the run's lock exclusively): the restarts and the retired keys would fail other workers.
    """
    control = k8s_cluster.key_control
    if control is None:
        pytest.skip(k8s_cluster.key_control_missing)
    rotation = SigningKeyRotation(control)
    try:
        yield rotation
    finally:
        if control.rotated:
            control.restore_original_key()

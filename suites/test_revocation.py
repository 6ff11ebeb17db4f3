"""Revocation: deleting what a token is bound to (pod, service account, secret) revokes it.

The setup deletes every object at once and waits once: the apiserver caches successful
authentications for 10 s, so each refusal may take that long, and waiting in parallel keeps the
fast profile fast. The seconds each refusal took are recorded as evidence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import kubernetes
import pytest

from pytest_k8s_sa import resources
from pytest_k8s_sa.tokens import BoundObject, Token, TokenReviewResult, request_token, review_token
from pytest_k8s_sa.waiting import wait_until

from .helpers import store_says

AUDIENCE = "secret-store"


@dataclass
class Case:
    token: Token
    before: TokenReviewResult
    after: TokenReviewResult | None = None
    seconds: float | None = None
    after_recreate: TokenReviewResult | None = None
    extra: dict[str, object] = field(default_factory=dict)


@pytest.fixture(scope="module")
def revoked(k8s_cluster, k8s_names, deployment) -> dict[str, Case]:
    api = k8s_cluster.api_client
    core = resources.core(api)
    namespace = k8s_names("revocation")
    resources.create_namespace(api, namespace, resources.run_labels(k8s_cluster.run_id))
    resources.create_service_account(api, namespace, "bound")
    resources.create_service_account(api, namespace, "doomed")
    # The pod case uses the API service's own identity, so the secret store accepts it until revoked.
    api_ns = deployment.api.namespace
    pod = resources.create_placeholder_pod(api, api_ns, "bound-pod", "api")
    secret = core.create_namespaced_secret(
        namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="bound-secret"), string_data={"k": "v"}
        ),
    )

    def issue(sa: str, bound: BoundObject | None, ns: str = namespace) -> Case:
        token = request_token(api, ns, sa, audiences=[AUDIENCE], expiration_seconds=3600, bound_object=bound)
        return Case(token, review_token(api, token.raw, [AUDIENCE]))

    cases = {
        "pod": issue("api", BoundObject("Pod", "bound-pod", pod.metadata.uid), api_ns),
        "service_account": issue("doomed", None),
        "secret": issue("bound", BoundObject("Secret", "bound-secret", secret.metadata.uid)),
    }
    # The same token, presented to the secret store, is accepted before revocation.
    cases["pod"].extra["store_before"] = store_says(deployment, cases["pod"].token.raw)[0]

    started = time.monotonic()
    resources.delete_pod(api, api_ns, "bound-pod")
    core.delete_namespaced_service_account("doomed", namespace)
    core.delete_namespaced_secret("bound-secret", namespace)

    def all_refused() -> bool:
        for case in cases.values():
            if case.after is None:
                result = review_token(api, case.token.raw, [AUDIENCE])
                if not result.authenticated:
                    case.after, case.seconds = result, round(time.monotonic() - started, 1)
        return all(case.after is not None for case in cases.values())

    wait_until(
        all_refused, 40, "tokens still accepted 40 s after their objects were deleted", max_interval=1.0
    )
    cases["pod"].extra["store_after"] = store_says(deployment, cases["pod"].token.raw)[0]

    # Same-name objects with new UIDs must not bring the tokens back.
    new_pod = resources.create_placeholder_pod(api, api_ns, "bound-pod", "api")
    new_sa = resources.create_service_account(api, namespace, "doomed")
    cases["pod"].extra["new_pod_uid"] = new_pod.metadata.uid
    cases["service_account"].extra["new_sa_uid"] = new_sa.metadata.uid
    for key in ("pod", "service_account"):
        cases[key].after_recreate = review_token(api, cases[key].token.raw, [AUDIENCE])
    yield cases
    resources.delete_pod(api, api_ns, "bound-pod")
    resources.delete_namespace(api, namespace)


def _record(check, case: Case) -> None:
    check.record("accepted_before", case.before.authenticated)
    check.record("refused_after_seconds", case.seconds)
    check.record("error_after", case.after.error if case.after else None)


@pytest.mark.conformance("REV-001", "a pod-bound token is refused after its pod is deleted")
def test_pod_deletion_revokes(check, revoked):
    case = revoked["pod"]
    _record(check, case)
    check.record("secret_store_before", case.extra["store_before"])
    check.record("secret_store_after", case.extra["store_after"])
    assert case.before.authenticated
    assert case.after is not None
    assert not case.after.authenticated
    assert case.extra["store_before"] == 200
    assert case.extra["store_after"] == 403


@pytest.mark.conformance("REV-002", "the token stays refused after a same-name pod is recreated")
def test_recreated_pod_does_not_revive(check, revoked):
    case = revoked["pod"]
    check.record("old_pod_uid", case.token.kubernetes_claims["pod"]["uid"])
    check.record("new_pod_uid", case.extra["new_pod_uid"])
    check.record("error", case.after_recreate.error if case.after_recreate else None)
    assert case.after_recreate is not None
    assert not case.after_recreate.authenticated


@pytest.mark.conformance("REV-003", "a token is refused after its service account is deleted")
def test_service_account_deletion_revokes(check, revoked):
    case = revoked["service_account"]
    _record(check, case)
    assert case.before.authenticated
    assert case.after is not None
    assert not case.after.authenticated


@pytest.mark.conformance("REV-004", "the token stays refused after a same-name service account is recreated")
def test_recreated_service_account_does_not_revive(check, revoked):
    case = revoked["service_account"]
    check.record("old_sa_uid", case.token.kubernetes_claims["serviceaccount"]["uid"])
    check.record("new_sa_uid", case.extra["new_sa_uid"])
    check.record("error", case.after_recreate.error if case.after_recreate else None)
    assert case.after_recreate is not None
    assert not case.after_recreate.authenticated


@pytest.mark.conformance("REV-005", "a secret-bound token is refused after the secret is deleted")
def test_secret_deletion_revokes(check, revoked):
    case = revoked["secret"]
    _record(check, case)
    assert case.before.authenticated
    assert case.after is not None
    assert not case.after.authenticated

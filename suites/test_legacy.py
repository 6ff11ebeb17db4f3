"""Legacy Secret-based tokens: the hazards the article's approach inherits."""

from __future__ import annotations

import base64
import contextlib
import itertools

import kubernetes
import pytest

from pytest_k8s_sa.base.waiting import WaitTimeout, wait_until
from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.tokens import Token, TokenReviewResult, review_token, wait_until_refused
from pytest_k8s_sa.plugin.fixtures import ServiceAccountRef

from .helpers import refused, store_says


@pytest.fixture(scope="module")
def legacy(k8s_cluster, k8s_names, deployment):
    """A legacy token Secret for the API service's own (allow-listed) service account."""
    if not k8s_cluster.capabilities.controller_manager:
        pytest.skip("legacy tokens need kube-controller-manager's tokens controller")
    api = k8s_cluster.api_client
    name = k8s_names("api-legacy-token")
    resources.create_legacy_token_secret(
        api, deployment.caller.namespace, deployment.caller.service_account, name
    )
    raw = resources.wait_legacy_token(api, deployment.caller.namespace, name)
    yield {"secret": name, "token": Token.from_raw(raw)}
    resources.core(api).delete_namespaced_secret(name, deployment.caller.namespace)


@pytest.mark.conformance("LEG-001", "a legacy token has no exp (it never expires)")
def test_legacy_token_has_no_exp(check, legacy):
    claims = legacy["token"].claims
    check.record("claims", sorted(claims))
    check.record("iss", claims.get("iss"))
    assert "exp" not in claims
    assert "aud" not in claims


@pytest.mark.conformance("LEG-002", "a reviewer that passes no audience accepts a legacy token")
def test_audience_less_review_accepts_it(check, deployment, legacy, token_review):
    review = token_review(legacy["token"])
    check.record("authenticated", review.authenticated)
    check.record("username", review.username)
    check.record("audiences", review.audiences)
    assert review.authenticated
    assert review.username == deployment.caller.username


@pytest.mark.conformance("LEG-003", "the callee (which must review for its audience) refuses a legacy token")
def test_secret_store_refuses_it(check, sut_run, legacy):
    status, _ = store_says(sut_run, legacy["token"].raw)
    check.record("status", status)
    assert refused(status)


@pytest.mark.conformance(
    "LEG-004",
    "any workload that may read Secrets in the namespace can take the token and authenticate with it",
)
def test_secret_readers_can_impersonate(
    check, k8s_cluster, k8s_names, deployment, legacy, projected_token, token_review
):
    api, ns = k8s_cluster.api_client, deployment.caller.namespace
    reader = resources.create_service_account(api, ns, k8s_names("secret-reader"))
    role = k8s_names("read-secrets")
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        ns,
        kubernetes.client.V1Role(
            metadata=kubernetes.client.V1ObjectMeta(name=role),
            rules=[kubernetes.client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["get"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        ns,
        kubernetes.client.V1RoleBinding(
            metadata=kubernetes.client.V1ObjectMeta(name=role),
            role_ref=kubernetes.client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=role
            ),
            subjects=[kubernetes.client.RbacV1Subject(kind="ServiceAccount", name=reader.name, namespace=ns)],
        ),
    )
    reader_ref = ServiceAccountRef(ns, reader.name, reader.uid)
    reader_client = k8s_cluster.client_for_token(projected_token(reader_ref, expiration_seconds=600).raw)
    try:
        stolen: list[str] = []

        def read() -> bool:
            try:
                secret = resources.core(reader_client).read_namespaced_secret(legacy["secret"], ns)
            except kubernetes.client.ApiException as exc:
                if exc.status == 403:
                    return False  # the RoleBinding is not in the authorizer's cache yet
                raise
            stolen.append(base64.b64decode(secret.data["token"]).decode())
            return True

        wait_until(read, 30, "the secret reader never got access")
    finally:
        reader_client.close()
    review = token_review(stolen[0])
    check.record("reader", f"{ns}:{reader.name}")
    check.record("authenticated_as", review.username)
    assert review.authenticated
    assert review.username == deployment.caller.username
    assert review.username != f"system:serviceaccount:{ns}:{reader.name}"


REFUSED_WITHIN_SECONDS = 40.0
"""How long after the Secret's deletion the apiserver may still accept its token (it takes ~0.1 s)."""


@pytest.mark.conformance("LEG-005", "deleting the Secret revokes the legacy token")
def test_deleting_the_secret_revokes_it(check, k8s_cluster, k8s_names):
    """A legacy token of a service account of its own, reviewed, its Secret deleted, reviewed until
    the apiserver refuses it.

    Every review names a unique extra audience beside the API audiences (a legacy token has no
    ``aud``; the API audiences still make it pass), so the apiserver validates it afresh each time
    instead of answering from its 10 s success cache: ``refused_after_seconds`` is how long the
    cluster takes to see the Secret gone, not the cache (EXP-004 reviews the same way)."""
    if not k8s_cluster.capabilities.controller_manager:
        pytest.skip("legacy tokens need kube-controller-manager's tokens controller")
    api = k8s_cluster.api_client
    namespace = k8s_names("legacy-revocation")
    resources.create_namespace(api, namespace, resources.run_labels(k8s_cluster.run_id))
    try:
        resources.create_service_account(api, namespace, "bound")
        resources.create_legacy_token_secret(api, namespace, "bound", "doomed-legacy-token")
        raw = resources.wait_legacy_token(api, namespace, "doomed-legacy-token")
        polls = itertools.count()

        def review() -> TokenReviewResult:
            return review_token(api, raw, [*k8s_cluster.api_audiences, f"k8s-sa-review-{next(polls)}"])

        before = review()
        resources.core(api).delete_namespaced_secret("doomed-legacy-token", namespace)
        after: TokenReviewResult | None = None
        seconds: float | None = None
        with contextlib.suppress(WaitTimeout):
            after, seconds = wait_until_refused(review, REFUSED_WITHIN_SECONDS)
    finally:
        resources.delete_namespace(api, namespace)
    check.record("accepted_before", before.authenticated)
    check.record("refused_after_seconds", None if seconds is None else round(seconds, 2))
    check.record("error_after", after.error if after else None)
    check.record("success_cache", "bypassed: a unique extra audience per review")
    assert before.authenticated, f"the apiserver refused the legacy token before the deletion: {before.error}"
    assert after is not None, (
        f"the apiserver still accepts the legacy token {REFUSED_WITHIN_SECONDS:g} s after the deletion"
    )

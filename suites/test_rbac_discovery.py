"""RBAC (fail closed without TokenReview rights, recover by itself) and issuer discovery (offline)."""

from __future__ import annotations

import contextlib
from typing import Any

import jwt
import pytest
import requests

from pytest_k8s_sa.base.waiting import WaitTimeout

from .helpers import allowed_token, granted, review_rights_removed, sa_ref, status_of, wait_for_grant

RECOVERY_SECONDS = 30.0
"""How long a callee may take to grant again once it may review again (fresh tokens, so no cache)."""


@pytest.fixture(scope="module")
def without_review_rights(k8s_cluster, sut_run):
    """Take the callee's system:auth-delegator binding away, ask with fresh tokens, give it back.

    Fresh tokens: a success the callee cached may rightly be honoured for its cache_seconds; a token
    it has never seen must be reviewed, and the apiserver now answers its review with 403.
    """
    with review_rights_removed(k8s_cluster, sut_run):
        statuses = [status_of(sut_run, allowed_token(k8s_cluster, sut_run)) for _ in range(3)]
    recovered = None
    with contextlib.suppress(WaitTimeout):
        recovered = wait_for_grant(k8s_cluster, sut_run, RECOVERY_SECONDS, "no recovery")
    return {"statuses": statuses, "recovered_after_seconds": recovered}


@pytest.mark.conformance("RBAC-001", "a callee without system:auth-delegator never grants (no 2xx)")
def test_store_without_review_rights_fails_closed(check, sut_run, without_review_rights):
    check.fidelity = sut_run.deployment.fidelity
    statuses = without_review_rights["statuses"]
    check.record("statuses", statuses)
    check.record("status_0_means", "no answer within 30 s")
    assert not any(granted(status) for status in statuses)


@pytest.mark.conformance(
    "RBAC-002", "a callee without system:auth-delegator answers 503 (not another status)", level="should"
)
def test_store_without_review_rights_says_503(check, sut_run, without_review_rights):
    check.fidelity = sut_run.deployment.fidelity
    check.record("statuses", without_review_rights["statuses"])
    assert all(status == 503 for status in without_review_rights["statuses"])


@pytest.mark.conformance(
    "RBAC-003", "once the binding is restored, the callee grants again by itself (no restart)"
)
def test_store_recovers_when_rights_return(check, sut_run, without_review_rights):
    check.fidelity = sut_run.deployment.fidelity
    check.record("recovered_after_seconds", without_review_rights["recovered_after_seconds"])
    check.record("allowed_seconds", RECOVERY_SECONDS)
    assert without_review_rights["recovered_after_seconds"] is not None, (
        f"no 2xx for a valid token within {RECOVERY_SECONDS} s after the binding came back"
    )


def _discovery(k8s_cluster, deployment, projected_token):
    """Fetch the discovery document and JWKS the way a workload would: with its own token."""
    token = projected_token(sa_ref(k8s_cluster, deployment.intruder), expiration_seconds=600).raw
    host = k8s_cluster.api_client.configuration.host
    answers = [
        requests.get(
            f"{host}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            verify=k8s_cluster.api_client.configuration.ssl_ca_cert,
        )
        for path in ("/.well-known/openid-configuration", "/openid/v1/jwks")
    ]
    for answer in answers:
        answer.raise_for_status()
    document, jwks = answers
    return document.json(), jwt.PyJWKSet.from_dict(jwks.json())


def _verify_offline(token: str, keys: jwt.PyJWKSet, issuer: str, audience: str) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    return jwt.decode(token, key.key, algorithms=["RS256", "ES256"], audience=audience, issuer=issuer)


@pytest.mark.conformance("DISC-001", "issuer discovery and JWKS verify a projected token offline")
def test_offline_verification(check, k8s_cluster, deployment, projected_token):
    document, keys = _discovery(k8s_cluster, deployment, projected_token)
    token = projected_token(
        sa_ref(k8s_cluster, deployment.caller), audiences=[deployment.audience], expiration_seconds=600
    )
    claims = _verify_offline(token.raw, keys, document["issuer"], deployment.audience)
    check.record("issuer", document["issuer"])
    check.record("jwks_uri", document["jwks_uri"])
    check.record("algorithms", document.get("id_token_signing_alg_values_supported"))
    check.record("kid", jwt.get_unverified_header(token.raw)["kid"])
    check.record("verified_sub", claims["sub"])
    assert claims["sub"] == deployment.caller.username
    assert document["issuer"] == k8s_cluster.issuer


@pytest.mark.conformance(
    "DISC-002", "a token of a deleted pod still verifies offline, but TokenReview refuses it"
)
def test_offline_verification_cannot_see_revocation(check, k8s_cluster, deployment, projected_token, revoked):
    case = revoked["pod"]
    document, keys = _discovery(k8s_cluster, deployment, projected_token)
    claims = _verify_offline(case.token.raw, keys, document["issuer"], deployment.audience)
    check.record("offline_verified_pod", claims["kubernetes.io"]["pod"])
    check.record("review_error", case.after.error if case.after else None)
    assert claims["kubernetes.io"]["pod"]["uid"] == case.token.kubernetes_claims["pod"]["uid"]
    assert case.after is not None
    assert not case.after.authenticated

"""RBAC (fail closed without TokenReview rights) and issuer discovery (offline verification)."""

from __future__ import annotations

import jwt
import pytest
import requests

from pytest_k8s_sa import resources
from pytest_k8s_sa.deploy import start_secret_store
from pytest_k8s_sa.tokens import BoundObject

from .helpers import sa_ref


@pytest.mark.conformance("RBAC-001", "a secret store without system:auth-delegator answers 503, never 200")
def test_store_without_review_rights_fails_closed(check, k8s_cluster, k8s_names, deployment, tmp_path):
    api = k8s_cluster.api_client
    ns = deployment.secret_store.namespace
    name = k8s_names("unprivileged-store")
    resources.create_service_account(api, ns, name)
    pod = resources.create_placeholder_pod(api, ns, name, name)
    store, stop = start_secret_store(
        k8s_cluster,
        tmp_path,
        namespace=ns,
        service_account=name,
        pod=BoundObject("Pod", pod.metadata.name, pod.metadata.uid),
        allowed=f"{deployment.api.namespace}:api",
    )
    try:
        answer = store.get("/", headers={"X-Client-Id": deployment.api.current_token().raw})
        stats = store.get("/debug/stats").json()
    finally:
        stop()
    check.fidelity = deployment.fidelity
    check.record("status", answer.status_code)
    check.record("body", answer.text)
    check.record("store_stats", stats)
    assert answer.status_code == 503


def _discovery(k8s_cluster, deployment, projected_token):
    """Fetch the discovery document and JWKS the way a workload would: with its own token."""
    token = projected_token(sa_ref(k8s_cluster, deployment.data_store), expiration_seconds=600).raw
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


def _verify_offline(token: str, keys: jwt.PyJWKSet, issuer: str, audience: str) -> dict:
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    return jwt.decode(token, key.key, algorithms=["RS256", "ES256"], audience=audience, issuer=issuer)


@pytest.mark.conformance("DISC-001", "issuer discovery and JWKS verify a projected token offline")
def test_offline_verification(check, k8s_cluster, deployment, projected_token):
    document, keys = _discovery(k8s_cluster, deployment, projected_token)
    token = deployment.api.current_token()
    claims = _verify_offline(token.raw, keys, document["issuer"], deployment.audience)
    check.record("issuer", document["issuer"])
    check.record("jwks_uri", document["jwks_uri"])
    check.record("algorithms", document.get("id_token_signing_alg_values_supported"))
    check.record("kid", jwt.get_unverified_header(token.raw)["kid"])
    check.record("verified_sub", claims["sub"])
    assert claims["sub"] == deployment.api.username
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

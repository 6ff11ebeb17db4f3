"""Token behaviour on a real kube-apiserver (the local provider in CI), through the fixtures."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
import requests
from kubernetes.client import ApiException

from pytest_k8s_sa.base.waiting import wait_until
from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.tokens import key_id, wait_until_refused


def test_token_for_audience_a_is_accepted_for_a_and_refused_for_b(
    k8s_service_account, projected_token, token_review
):
    sa = k8s_service_account()
    token = projected_token(sa, audiences=["secret-store"])

    accepted = token_review(token, ["secret-store"])
    refused = token_review(token, ["other"])

    assert accepted.authenticated
    assert accepted.username == sa.username
    assert accepted.audiences == ["secret-store"]
    assert "system:serviceaccounts" in accepted.groups
    assert f"system:serviceaccounts:{sa.namespace}" in accepted.groups
    assert accepted.jti == token.jti
    assert not refused.authenticated
    assert "is invalid for the target audiences" in (refused.error or "")


def test_token_repr_never_shows_the_raw_token(k8s_service_account, projected_token):
    token = projected_token(k8s_service_account(), audiences=["secret-store"])
    assert token.raw not in repr(token)
    assert token.jti in repr(token)


def test_expiration_below_ten_minutes_is_refused_with_422(k8s_service_account, projected_token):
    with pytest.raises(ApiException) as refused:
        projected_token(k8s_service_account(), expiration_seconds=599)
    assert refused.value.status == 422
    assert "10 minutes" in refused.value.body


def test_expiration_timestamp_matches_the_request(k8s_service_account, projected_token):
    token = projected_token(k8s_service_account(), audiences=["secret-store"], expiration_seconds=1200)
    assert token.claims["exp"] - token.claims["iat"] == 1200
    assert token.expiration_timestamp is not None
    assert abs(token.expiration_timestamp.timestamp() - token.claims["exp"]) <= 1


def test_pod_bound_token_is_refused_after_its_pod_is_deleted(
    k8s_client, k8s_service_account, k8s_pod, projected_token, token_review
):
    sa = k8s_service_account()
    pod = k8s_pod(sa)
    token = projected_token(sa, audiences=["secret-store"], bound_pod=pod)
    before = token_review(token, ["secret-store"])
    assert before.authenticated
    assert before.extra["authentication.kubernetes.io/pod-name"] == [pod.name]
    assert before.extra["authentication.kubernetes.io/pod-uid"] == [pod.uid]

    resources.delete_pod(k8s_client, pod.namespace, pod.name)
    after, _seconds = wait_until_refused(lambda: token_review(token, ["secret-store"]))

    assert not after.authenticated
    assert after.error


def test_legacy_token_has_no_exp_and_only_api_audiences(
    k8s_cluster, k8s_service_account, legacy_token, token_review
):
    sa = k8s_service_account()
    legacy = legacy_token(sa)

    assert "exp" not in legacy.token.claims
    assert legacy.token.claims["iss"] == "kubernetes/serviceaccount"
    assert token_review(legacy.token).authenticated
    assert token_review(legacy.token, k8s_cluster.api_audiences).authenticated
    assert not token_review(legacy.token, ["secret-store"]).authenticated


def test_minted_token_past_the_leeway_is_refused_as_expired(k8s_service_account, mint_token, token_review):
    sa = k8s_service_account()
    now = dt.datetime.now(dt.UTC)
    expired = mint_token(
        sa,
        audiences=["secret-store"],
        issued_at=now - dt.timedelta(minutes=20),
        expires_at=now - dt.timedelta(seconds=120),
    )
    review = token_review(expired, ["secret-store"])
    assert not review.authenticated
    assert "expired" in (review.error or "")


def test_minted_token_inside_the_leeway_is_still_accepted(k8s_service_account, mint_token, token_review):
    """The apiserver allows 60 s of clock skew: a token 30 s past exp still passes."""
    sa = k8s_service_account()
    now = dt.datetime.now(dt.UTC)
    token = mint_token(
        sa,
        audiences=["secret-store"],
        issued_at=now - dt.timedelta(minutes=20),
        expires_at=now - dt.timedelta(seconds=30),
    )
    assert token_review(token, ["secret-store"]).authenticated


def test_minted_tokens_carry_the_key_id_the_apiserver_uses(k8s_cluster, k8s_service_account, projected_token):
    real = projected_token(k8s_service_account())
    jwks = requests.get(
        f"{k8s_cluster.api_client.configuration.host}/openid/v1/jwks",
        cert=(k8s_cluster.api_client.configuration.cert_file, k8s_cluster.api_client.configuration.key_file),
        verify=k8s_cluster.api_client.configuration.ssl_ca_cert,
        timeout=10,
    ).json()
    # The JWKS lists every verifying key (the legacy-token key too); each key's kid is key_id(key).
    listed = {k["kid"]: key_id(jwt.PyJWK(k).key) for k in jwks["keys"]}
    assert all(kid == computed for kid, computed in listed.items())
    assert jwt.get_unverified_header(real.raw)["kid"] in listed


def test_review_without_auth_delegator_is_forbidden(
    k8s_service_account, projected_token, token_review, token_reviewer
):
    caller, reviewer = k8s_service_account(), k8s_service_account()
    token = projected_token(caller, audiences=["secret-store"])
    with pytest.raises(ApiException) as forbidden:
        token_review(token, ["secret-store"], as_service_account=reviewer)
    assert forbidden.value.status == 403

    token_reviewer(reviewer)
    # RBAC changes reach the authorizer through an informer: wait for it rather than sleeping.
    results = []

    def reviewed() -> bool:
        try:
            results.append(token_review(token, ["secret-store"], as_service_account=reviewer))
        except ApiException as exc:
            if exc.status != 403:
                raise
            return False
        return True

    wait_until(reviewed, 30, "system:auth-delegator binding never took effect")
    assert results[-1].authenticated

"""Expiry: tokens are short-lived, and an expired one is refused."""

from __future__ import annotations

import datetime as dt

import pytest
from kubernetes.client import ApiException

from .helpers import granted, refused, sa_ref, store_says
from .scenarios import judge_expiry


@pytest.mark.conformance("EXP-001", "a TokenRequest for less than 600 s is refused (422)")
def test_short_token_request_is_refused(check, k8s_cluster, deployment, projected_token):
    with pytest.raises(ApiException) as raised:
        projected_token(
            sa_ref(k8s_cluster, deployment.caller), audiences=[deployment.audience], expiration_seconds=599
        )
    check.record("status", raised.value.status)
    check.record("message", raised.value.body[:300] if raised.value.body else None)
    assert raised.value.status == 422


@pytest.mark.conformance("EXP-002", "status.expirationTimestamp matches the requested expiration")
def test_expiration_timestamp_matches(check, k8s_cluster, deployment, projected_token):
    token = projected_token(
        sa_ref(k8s_cluster, deployment.caller), audiences=[deployment.audience], expiration_seconds=1800
    )
    lifetime = token.claims["exp"] - token.claims["iat"]
    check.record("requested_seconds", 1800)
    check.record("exp_minus_iat", lifetime)
    check.record("expiration_timestamp", token.expiration_timestamp)
    assert lifetime == 1800
    assert token.expiration_timestamp is not None
    assert abs(token.expiration_timestamp.timestamp() - token.claims["exp"]) <= 1


@pytest.mark.conformance("EXP-003", "an expired token (minted with exp beyond the 60 s leeway) is refused")
def test_expired_minted_token_is_refused(check, k8s_cluster, sut_run, mint_token, token_review):
    deployment = sut_run.deployment
    now = dt.datetime.now(dt.UTC)
    token = mint_token(
        sa_ref(k8s_cluster, deployment.caller),
        audiences=[deployment.audience],
        issued_at=now - dt.timedelta(minutes=15),
        expires_at=now - dt.timedelta(seconds=90),
    )
    check.record("exp_seconds_ago", 90)
    check.record(
        "minted", "signed with the cluster's own service-account key; validated by the real apiserver"
    )
    review = token_review(token, [deployment.audience])
    status, _ = store_says(sut_run, token.raw)
    check.record("review_error", review.error)
    check.record("status", status)
    assert not review.authenticated
    assert "expired" in (review.error or "")
    assert refused(status)


@pytest.mark.conformance(
    "EXP-004",
    "a real 600 s token is accepted before exp and refused after exp + leeway",
    profile="full",
    minutes=11,
)
def test_real_token_expires(check, real_time):
    # The token was requested when the run started; its scenario has been reviewing it since
    # (suites/scenarios.py), while the other checks ran.
    state = real_time.result("EXP-004", timeout=600 + 240)
    iat, exp = state.token.claims["iat"], state.token.claims["exp"]
    check.event("token issued (600 s)", at=iat)
    if granted(state.store_before):
        check.event("granted before exp", kind="granted", at=iat)
    check.event("exp", at=exp)
    if state.refused_at is not None:
        check.event("refused by TokenReview", kind="refused", at=state.refused_at)
    judge_expiry(state, check.record)

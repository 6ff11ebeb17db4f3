"""Audience: the secret store accepts only tokens issued for it, and only from the API."""

from __future__ import annotations

import pytest

from .helpers import GRANTED, sa_ref, store_says


@pytest.mark.conformance("AUD-001", "a token for the API audiences (not secret-store) gets 403")
def test_api_audience_token_is_refused(check, k8s_cluster, deployment, projected_token, token_review):
    token = projected_token(sa_ref(k8s_cluster, deployment.api), expiration_seconds=600)
    check.record("token_audiences", token.audiences)
    status, _ = store_says(deployment, token.raw)
    check.record("status", status)
    review = token_review(token, [deployment.audience])
    check.record("review_error", review.error)
    assert status == 403
    assert not review.authenticated


@pytest.mark.conformance("AUD-002", "the data store's token for another audience gets 403")
def test_other_audience_token_is_refused(check, k8s_cluster, deployment, projected_token):
    token = projected_token(
        sa_ref(k8s_cluster, deployment.data_store), audiences=["data-store"], expiration_seconds=600
    )
    status, _ = store_says(deployment, token.raw)
    check.record("token_audiences", token.audiences)
    check.record("status", status)
    assert status == 403


@pytest.mark.conformance(
    "AUD-003", "the data store with a valid secret-store token, not on the allow-list, gets 403"
)
def test_data_store_is_refused_by_the_allow_list(check, deployment, token_review):
    check.fidelity = deployment.fidelity
    answer = deployment.data_store.get("/")
    review = token_review(deployment.data_store.current_token(), [deployment.audience])
    check.record("status", answer.status_code)
    check.record("token_is_valid_for_the_audience", review.authenticated)
    check.record("username", review.username)
    assert review.authenticated, (
        "the data store's token itself must be valid, so only the allow-list refuses it"
    )
    assert answer.status_code == 403


@pytest.mark.conformance(
    "AUD-004", "a token with several audiences is accepted; the review reports only secret-store"
)
def test_multi_audience_token(check, k8s_cluster, deployment, projected_token, token_review):
    token = projected_token(
        sa_ref(k8s_cluster, deployment.api), audiences=["other", deployment.audience], expiration_seconds=600
    )
    status, body = store_says(deployment, token.raw)
    review = token_review(token, [deployment.audience])
    check.record("token_audiences", token.audiences)
    check.record("status", status)
    check.record("review_audiences", review.audiences)
    assert status == 200
    assert body == GRANTED
    assert review.audiences == [deployment.audience]

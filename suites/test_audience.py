"""Audience: the callee accepts only tokens issued for it, and only from the allowed caller."""

from __future__ import annotations

import pytest

from pytest_k8s_sa.sut.model import other_audience

from .helpers import granted, intruder_token, refused, sa_ref, store_says


@pytest.mark.conformance("AUD-001", "the caller's token for the API audiences (not the callee's) is refused")
def test_api_audience_token_is_refused(check, k8s_cluster, sut_run, projected_token, token_review):
    deployment = sut_run.deployment
    token = projected_token(sa_ref(k8s_cluster, deployment.caller), expiration_seconds=600)
    check.record("token_audiences", token.audiences)
    status, _ = store_says(sut_run, token.raw)
    check.record("status", status)
    review = token_review(token, [deployment.audience])
    check.record("review_error", review.error)
    assert refused(status)
    assert not review.authenticated


@pytest.mark.conformance("AUD-002", "the intruder's token for another audience is refused")
def test_other_audience_token_is_refused(check, k8s_cluster, sut_run, projected_token):
    # The data store's audience, unless that is the callee's own (then the token would be valid for it).
    audience = other_audience(sut_run.deployment.audience, "data-store")
    token = projected_token(
        sa_ref(k8s_cluster, sut_run.deployment.intruder), audiences=[audience], expiration_seconds=600
    )
    status, _ = store_says(sut_run, token.raw)
    check.record("token_audiences", token.audiences)
    check.record("status", status)
    assert refused(status)


@pytest.mark.conformance(
    "AUD-003", "the intruder with a valid token for the callee's audience, not on the allow-list, is refused"
)
def test_data_store_is_refused_by_the_allow_list(check, k8s_cluster, sut_run, token_review):
    # The suite plays the intruder: a pod-bound token for the callee's own audience.
    token = intruder_token(k8s_cluster, sut_run)
    review = token_review(token, [sut_run.deployment.audience])
    status, _ = store_says(sut_run, token.raw)
    check.record("status", status)
    check.record("token_is_valid_for_the_audience", review.authenticated)
    check.record("username", review.username)
    assert review.authenticated, (
        "the intruder's token itself must be valid, so only the allow-list refuses it"
    )
    assert refused(status)


@pytest.mark.conformance(
    "AUD-004", "a token with several audiences is accepted; the review reports only the callee's"
)
def test_multi_audience_token(check, k8s_cluster, sut_run, projected_token, token_review):
    deployment = sut_run.deployment
    other = other_audience(deployment.audience, "other")
    token = projected_token(
        sa_ref(k8s_cluster, deployment.caller), audiences=[other, deployment.audience], expiration_seconds=600
    )
    status, _ = store_says(sut_run, token.raw)
    review = token_review(token, [deployment.audience])
    check.record("token_audiences", token.audiences)
    check.record("status", status)
    check.record("review_audiences", review.audiences)
    assert granted(status)
    assert review.audiences == [deployment.audience]

"""Rotation: the API service picks up a replaced token file; the old token stays valid until exp."""

from __future__ import annotations

import pytest

from .helpers import call_through_caller, granted, store_says
from .scenarios import judge_refresh, observable


@pytest.fixture(scope="module")
def rotated(sut_run, manual_rotation):
    """The caller's token file, replaced once at the start of the run (suites/scenarios.py)."""
    reason = observable(sut_run)
    if reason is not None:
        pytest.skip(reason)
    if manual_rotation is None:
        pytest.skip(
            "this cluster's kubelet cannot be made to rotate on demand; ROT-003 (full profile) waits for "
            "its refresh at 80% of the TTL"
        )
    return manual_rotation


@pytest.mark.conformance(
    "ROT-001", "after the token file is replaced, the caller's calls carry the new token"
)
def test_api_service_uses_the_new_token(check, sut_run, rotated):
    deployment = sut_run.deployment
    check.fidelity = deployment.fidelity
    answer = call_through_caller(sut_run)
    check.record("old_jti", rotated["old"].jti)
    check.record("new_jti", rotated["new"].jti)
    check.record("picked_up_seconds", rotated["picked_up_seconds"])
    check.record("rotation_trigger", deployment.rotation_trigger)
    check.record("refresh_interval_seconds", deployment.api_token_refresh_seconds)
    check.record("status", answer.status_code)
    check.event("old token issued", at=rotated["old"].claims["iat"])
    check.event("token file replaced", at=rotated["new"].claims["iat"])
    check.event(
        f"call with the new token: {answer.status_code}",
        kind="granted" if granted(answer.status_code) else "refused",
    )
    assert rotated["new"].jti != rotated["old"].jti
    assert rotated["picked_up_seconds"] <= deployment.api_token_refresh_seconds * 3 + 5
    assert granted(answer.status_code)


@pytest.mark.conformance(
    "ROT-002", "the replaced token stays valid until its own exp (rotation does not revoke)"
)
def test_old_token_stays_valid(check, sut_run, rotated, token_review):
    deployment = sut_run.deployment
    check.fidelity = deployment.fidelity
    old = rotated["old"]
    review = token_review(old, [deployment.audience])
    status, _ = store_says(sut_run, old.raw)
    check.record("old_token_exp", old.claims["exp"])
    check.record("review_authenticated", review.authenticated)
    check.record("status", status)
    assert review.authenticated
    assert granted(status)


@pytest.mark.conformance(
    "ROT-003",
    "the token is refreshed by itself at 80% of its 600 s lifetime and the new one is accepted",
    profile="full",
    minutes=9,
)
def test_automatic_refresh(check, sut_run, real_time):
    reason = observable(sut_run)
    if reason is not None:
        pytest.skip(reason)
    deployment = sut_run.deployment
    check.fidelity = deployment.fidelity
    # The API service's token has been watched since the run started (suites/scenarios.py).
    state = real_time.result("ROT-003", timeout=600 + 60)
    first = state.first
    check.event("first token issued", at=first.claims["iat"])
    if state.refreshed_at is not None:
        check.event("refreshed token sent", at=state.refreshed_at)
    if state.status is not None:
        check.event(f"new token: {state.status}", kind="granted" if granted(state.status) else "refused")
    check.event("first token's exp", at=first.claims["exp"])
    judge_refresh(state, check.record)

"""Rotation: the API service picks up a replaced token file; the old token stays valid until exp."""

from __future__ import annotations

import time

import pytest

from pytest_k8s_sa.waiting import wait_until

from .helpers import GRANTED, store_says


def _api_jti(deployment) -> str | None:
    return deployment.api.get("/debug/token-info").json().get("jti")


@pytest.fixture(scope="module")
def rotated(deployment):
    """Replace the API service's token file once, as the kubelet does at 80% of the TTL."""
    if not deployment.can_rotate_on_demand:
        pytest.skip(
            "this cluster's kubelet cannot be made to rotate on demand; ROT-003 (full profile) waits for "
            "its refresh at 80% of the TTL"
        )
    old = deployment.api.current_token()
    assert _api_jti(deployment) == old.jti
    new = deployment.rotate_api_token()
    started = time.monotonic()  # from the moment the new token is in the file
    wait_until(
        lambda: _api_jti(deployment) == new.jti,
        deployment.api_token_refresh_seconds * 3 + 5,
        "the API service did not pick up the replaced token file",
    )
    return {"old": old, "new": new, "picked_up_seconds": round(time.monotonic() - started, 2)}


@pytest.mark.conformance(
    "ROT-001", "after the token file is replaced, the API service's calls carry the new token"
)
def test_api_service_uses_the_new_token(check, deployment, rotated):
    check.fidelity = deployment.fidelity
    answer = deployment.api.get("/")
    check.record("old_jti", rotated["old"].jti)
    check.record("new_jti", rotated["new"].jti)
    check.record("picked_up_seconds", rotated["picked_up_seconds"])
    check.record("rotation_trigger", deployment.rotation_trigger)
    check.record("refresh_interval_seconds", deployment.api_token_refresh_seconds)
    check.record("status", answer.status_code)
    assert rotated["new"].jti != rotated["old"].jti
    assert rotated["picked_up_seconds"] <= deployment.api_token_refresh_seconds * 3 + 5
    assert answer.status_code == 200
    assert answer.text == GRANTED


@pytest.mark.conformance(
    "ROT-002", "the replaced token stays valid until its own exp (rotation does not revoke)"
)
def test_old_token_stays_valid(check, deployment, rotated, token_review):
    check.fidelity = deployment.fidelity
    old = rotated["old"]
    review = token_review(old, [deployment.audience])
    status, _ = store_says(deployment, old.raw)
    check.record("old_token_exp", old.claims["exp"])
    check.record("review_authenticated", review.authenticated)
    check.record("status", status)
    assert review.authenticated
    assert status == 200


@pytest.mark.conformance(
    "ROT-003",
    "the token is refreshed by itself at 80% of its 600 s lifetime and the new one is accepted",
    profile="full",
    minutes=9,
)
def test_automatic_refresh(check, deployment):
    check.fidelity = deployment.fidelity
    first = deployment.api.current_token()
    lifetime = first.claims["exp"] - first.claims["iat"]
    wait_until(
        lambda: _api_jti(deployment) != first.jti,
        lifetime,
        "no refresh within the token's lifetime",
        max_interval=5.0,
    )
    refreshed_after = time.time() - first.claims["iat"]
    answer = deployment.api.get("/")
    check.record("lifetime_seconds", lifetime)
    check.record("refreshed_after_seconds", round(refreshed_after, 1))
    check.record("refreshed_at_fraction", round(refreshed_after / lifetime, 3))
    check.record("status", answer.status_code)
    assert refreshed_after < lifetime
    assert answer.status_code == 200

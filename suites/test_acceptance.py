"""Acceptance: the API service's projected token gets through; bad input does not."""

from __future__ import annotations

import pytest

from .helpers import GRANTED, store_says


@pytest.mark.conformance("ACC-001", "API service's projected token gets 200 from the secret store end to end")
def test_api_service_is_accepted_end_to_end(check, deployment):
    check.fidelity = deployment.fidelity
    answer = deployment.api.get("/")
    check.record("status", answer.status_code)
    check.record("body", answer.text)
    check.record("api_token_jti", deployment.api.get("/debug/token-info").json().get("jti"))
    check.record("deploy_timings", deployment.timings)
    assert answer.status_code == 200
    assert answer.text == GRANTED


@pytest.mark.conformance(
    "ACC-002", "review of the API token shows its service account, groups, audience and pod"
)
def test_review_shows_the_api_identity(check, deployment, token_review):
    check.fidelity = deployment.fidelity
    token = deployment.api.current_token()
    review = token_review(token, [deployment.audience])
    check.record("username", review.username)
    check.record("groups", review.groups)
    check.record("audiences", review.audiences)
    check.record("extra", {k: v for k, v in review.extra.items() if "credential-id" not in k})
    assert review.authenticated
    assert review.username == deployment.api.username
    assert {
        "system:serviceaccounts",
        f"system:serviceaccounts:{deployment.api.namespace}",
        "system:authenticated",
    } <= set(review.groups)
    assert review.audiences == [deployment.audience]
    assert review.extra["authentication.kubernetes.io/pod-name"] == [deployment.api.pod.name]
    assert review.extra["authentication.kubernetes.io/pod-uid"] == [deployment.api.pod.uid]


@pytest.mark.conformance("ACC-003", "a request without X-Client-Id gets 401")
def test_missing_header_is_401(check, deployment):
    status, body = store_says(deployment, None)
    check.record("status", status)
    check.record("body", body)
    assert status == 401


@pytest.mark.conformance("ACC-004", "a garbage X-Client-Id gets 403 with a generic body")
def test_garbage_is_403(check, deployment):
    status, body = store_says(deployment, "not-a-token")
    check.record("status", status)
    check.record("body", body)
    assert status == 403
    assert body == "permission denied"

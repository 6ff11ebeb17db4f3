"""Acceptance: the allowed caller's projected token gets through; bad input does not."""

from __future__ import annotations

import pytest
import requests

from .helpers import ask, call_through_caller, granted, refused, require_caller, sa_ref, store_says

LEAK_MARKERS = (
    "audience",
    "expired",
    "signature",
    "traceback",
    "exception",
    "tokenreview",
    "go-jose",
    "goroutine",
    "panic",
)
"""Words of a TokenReview error or a crash: a refusal's body should say none of them."""


@pytest.mark.conformance("ACC-001", "the caller's projected token gets a 2xx from the callee end to end")
def test_api_service_is_accepted_end_to_end(check, sut_run):
    check.fidelity = sut_run.deployment.fidelity
    answer = call_through_caller(sut_run)
    check.record("status", answer.status_code)
    check.record("deploy_timings", sut_run.deployment.timings)
    if sut_run.caller_jti is not None:
        check.record("caller_token_jti", sut_run.caller_jti())
    assert granted(answer.status_code)


@pytest.mark.conformance(
    "ACC-002", "review of the caller's token shows its service account, groups, audience and pod"
)
def test_review_shows_the_api_identity(check, sut_run, token_review):
    require_caller(sut_run)
    deployment = sut_run.deployment
    check.fidelity = deployment.fidelity
    try:
        token = deployment.caller.current_token()
    except Exception as exc:  # a distroless caller image has no `cat` to read its token file with
        pytest.skip(f"cannot read the caller's token file in its container ({type(exc).__name__}: {exc})")
    review = token_review(token, [deployment.audience])
    check.record("username", review.username)
    check.record("groups", review.groups)
    check.record("audiences", review.audiences)
    check.record("extra", {k: v for k, v in review.extra.items() if "credential-id" not in k})
    assert review.authenticated
    assert review.username == deployment.caller.username
    assert {
        "system:serviceaccounts",
        f"system:serviceaccounts:{deployment.caller.namespace}",
        "system:authenticated",
    } <= set(review.groups)
    assert review.audiences == [deployment.audience]
    assert review.extra["authentication.kubernetes.io/pod-name"] == [deployment.caller.pod.name]
    assert review.extra["authentication.kubernetes.io/pod-uid"] == [deployment.caller.pod.uid]


@pytest.mark.conformance("ACC-003", "a request without the credential header is refused (4xx)")
def test_missing_header_is_refused(check, sut_run):
    status, _ = store_says(sut_run, None)
    check.record("header", sut_run.sut.callee.header)
    check.record("status", status)
    assert refused(status)


@pytest.mark.conformance("ACC-004", "a garbage credential is refused (4xx)")
def test_garbage_is_refused(check, sut_run):
    status, _ = store_says(sut_run, "not-a-token")
    check.record("status", status)
    assert refused(status)


@pytest.mark.conformance(
    "ACC-005",
    "refusals are worded as HTTP means: 401 without a credential, 403 for a refused one",
    level="should",
)
def test_refusal_wording(check, sut_run):
    missing, _ = store_says(sut_run, None)
    garbage, _ = store_says(sut_run, "not-a-token")
    check.record("missing_credential_status", missing)
    check.record("refused_credential_status", garbage)
    assert missing == 401
    assert garbage == 403


@pytest.mark.conformance(
    "ACC-006", "a refusal's body is generic: no token, no review error, no stack trace", level="should"
)
def test_refusal_body_is_generic(check, k8s_cluster, sut_run, projected_token, token_review):
    deployment = sut_run.deployment
    token = projected_token(sa_ref(k8s_cluster, deployment.caller), expiration_seconds=600)  # wrong audience
    review = token_review(token, [deployment.audience])
    answers: dict[str, requests.Response] = {}
    for name, value in (("garbage", "not-a-token"), ("wrong audience", token.raw)):
        answers[name] = ask(sut_run, value)
    leaks = {}
    for name, answer in answers.items():
        body = answer.text.lower()
        found = [m for m in LEAK_MARKERS if m in body]
        if token.raw.lower() in body or token.raw.split(".")[-1].lower() in body:
            found.append("the token")
        if review.error and review.error.lower() in body:
            found.append("the review's error text")
        if found:
            leaks[name] = found
    check.record("bodies", {name: answer.text[:200] for name, answer in answers.items()})
    check.record("leaks", leaks)
    assert not leaks, f"refusal bodies tell too much: {leaks}"

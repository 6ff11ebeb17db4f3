"""SEC-014: a review answer that does not name the callee's audience is no grant (TokenReview callees).

A callee that sets ``spec.audiences`` must find its audience in ``status.audiences`` (the API's
contract, kubernetes/kubernetes#62692): an empty or absent ``status.audiences`` with
``authenticated: true`` means "valid for the API server's own audiences", and another audience means
the token is someone else's. The real apiserver never answers that way for a token of the wrong
audience (it says ``authenticated: false``), so the check needs a reviewer that lies: the API cut
(``workloads/api_cut.py``, mode ``review``) answers the callee's TokenReview itself, over TLS with a
certificate the callee trusts (process mode: the test's own CA in its ``ca.crt``; pod mode: the
cluster's CA, where the provider holds its key), with ``authenticated: true`` for the allowed caller.

Judged like SEC-011: a fresh token of the allowed caller (so the callee must review it), no grant
expected; the cut counts the reviews it answered, and a case where the callee sent it none proves
nothing (it is reported, not judged). After each case the cut forwards again and the callee must grant
again by itself.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .helpers import (
    CALLEE_EXCLUSIVE,
    allowed_token,
    granted,
    recovered_after,
    sa_ref,
    status_of,
)

RECOVERY_SECONDS = 60.0


def _lies(k8s_cluster, sut_run) -> dict[str, dict[str, Any]]:
    """The review statuses the cut answers with: the allowed caller, authenticated, audience missing."""
    caller = sut_run.deployment.caller
    sa = sa_ref(k8s_cluster, caller)
    user = {
        "username": caller.username,
        "uid": sa.uid,
        "groups": [
            "system:serviceaccounts",
            f"system:serviceaccounts:{caller.namespace}",
            "system:authenticated",
        ],
    }
    audience = sut_run.deployment.audience
    return {
        "status.audiences names another audience": {
            "authenticated": True,
            "user": user,
            "audiences": [f"k8s-sa-not-{audience}"],
        },
        "status.audiences absent (the API server's audiences)": {"authenticated": True, "user": user},
        "status.audiences empty": {"authenticated": True, "user": user, "audiences": []},
    }


@pytest.fixture(scope="module")
def lying_reviews(k8s_cluster, sut_run):
    proxy = sut_run.api_cut
    if proxy is None:
        pytest.skip(sut_run.api_cut_unavailable or "the callee's Kubernetes API cannot be cut here")
    if "review" not in proxy.modes:
        pytest.skip(
            "the cut answers the review over TLS, which needs a certificate for `kubernetes` from the "
            f"cluster's CA; the {k8s_cluster.provider} provider does not hold its key "
            "(local-node and kind do)"
        )
    before = proxy.traffic()
    normal = status_of(sut_run, allowed_token(k8s_cluster, sut_run), timeout=30)
    if proxy.traffic() - before <= 0:
        pytest.skip(
            f"the callee answered {normal} to a fresh token without a byte through the cut ({proxy.how}): "
            "it does not review through its Kubernetes API that way, so no review answer can be played"
        )
    cases: dict[str, dict[str, Any]] = {}
    # The callee is disturbed (its reviews answered by the cut): nothing else may ask it meanwhile.
    with CALLEE_EXCLUSIVE:
        try:
            for name, status in _lies(k8s_cluster, sut_run).items():
                answered = proxy.reviews_answered()
                proxy.set_mode("review", json.dumps(status).encode())
                started = time.monotonic()
                verdict = status_of(sut_run, allowed_token(k8s_cluster, sut_run), timeout=30)
                seconds = round(time.monotonic() - started, 2)
                delivered = proxy.reviews_answered() - answered
                proxy.set_mode("forward")
                recovered = recovered_after(
                    k8s_cluster, sut_run, RECOVERY_SECONDS, f"no recovery after {name}"
                )
                cases[name] = {
                    "status": verdict,
                    "answered_after_seconds": seconds,
                    "reviews_answered_by_the_cut": delivered,
                    "recovered_after_seconds": recovered,
                }
        finally:
            proxy.set_mode("forward")
    return {"how": proxy.how, "normal_status": normal, "cases": cases}


@pytest.mark.conformance(
    "SEC-014", "a review answer that is authenticated but does not name the callee's audience is no grant"
)
def test_review_without_the_audience_is_no_grant(check, sut_run, lying_reviews):
    check.fidelity = sut_run.deployment.fidelity
    cases = lying_reviews["cases"]
    check.record("cut", lying_reviews["how"])
    check.record("normal_status", lying_reviews["normal_status"])
    check.record("cases", cases)
    check.record("status_0_means", "no answer within 30 s")
    delivered = {name: case for name, case in cases.items() if case["reviews_answered_by_the_cut"] > 0}
    if not delivered:
        pytest.skip("the callee sent the cut no TokenReview in any case, so no lying answer reached it")
    check.record("judged", sorted(delivered))
    assert not {name: case["status"] for name, case in delivered.items() if granted(case["status"])}, (
        "granted on a review answer that does not name the callee's audience"
    )
    assert all(case["recovered_after_seconds"] is not None for case in cases.values()), (
        "the callee did not grant again by itself once the cut forwarded again"
    )

"""Mode-aware judging, without a cluster: the verdict functions of the revocation and outage checks
on what their scenarios observed, for a TokenReview callee and an offline (``jwks``) one.

The scenarios themselves run against real callees in the suite (the jwks control
``tests/mutants/jwks_reference`` and the mutants of ``tests/test_mutants.py``); here each verdict is
fed observations that must pass, fail, or be left unjudged (skipped, saying why), so a pass or a fail
for the wrong reason shows up in seconds.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from pytest_k8s_sa.catalogue import load
from pytest_k8s_sa.cluster.tokens import Token, TokenReviewResult
from pytest_k8s_sa.report import markdown
from suites.scenarios import CALLEE_CASES, Case
from suites.test_revocation import judge_callee_refuses, judge_not_revived, judge_offline_window
from suites.test_security import (
    judge_key_set_never_grants,
    judge_key_set_recovers,
    judge_key_set_timely,
    judge_known_keys_kept,
)

NOW = time.time()


def token() -> Token:
    claims = {"sub": "system:serviceaccount:ns:api", "iat": int(NOW), "exp": int(NOW) + 3600}
    return Token.from_raw(jwt.encode(claims, "k" * 32, algorithm="HS256"))


def case(**extra: Any) -> Case:
    """A revoked token: the apiserver accepted it, then refused it after 10 s."""
    observed = Case(token(), TokenReviewResult(True), TokenReviewResult(False, error="invalidated"), 10.0)
    observed.after_recreate = TokenReviewResult(False, error="pod UID does not match")
    observed.extra.update({"deleted_at": NOW, "cache_seconds": 0, **extra})
    return observed


REFUSED = {"store_before": 200, "store_after": 403, "store_refused_after_api_seconds": 0.5}
STILL_GRANTED = {
    "store_before": 200,
    "store_after": 200,
    "store_refused_after_api_seconds": None,
    "last_granted_after_deletion_seconds": 21.0,
    "exp_after_deletion_seconds": 3599.0,
}


def evidence() -> tuple[dict[str, object], Any]:
    found: dict[str, object] = {}
    return found, found.__setitem__


def test_a_tokenreview_callee_that_refuses_revoked_tokens_passes() -> None:
    for key in CALLEE_CASES:
        found, record = evidence()
        judge_callee_refuses(key, case(**REFUSED), record)
        assert found["callee_after"] == 403


def test_a_tokenreview_callee_that_still_grants_a_revoked_token_fails() -> None:
    _, record = evidence()
    with pytest.raises(AssertionError, match=r"still grants .* bound to a Secret"):
        judge_callee_refuses("secret", case(**STILL_GRANTED), record)


def test_a_callee_that_never_granted_the_token_is_not_judged_on_it() -> None:
    _, record = evidence()
    with pytest.raises(pytest.skip.Exception, match=r"did not grant .*caller.v1"):
        judge_callee_refuses("service_account", case(store_before=403, store_after=403), record)


def test_a_refusal_while_fresh_tokens_are_refused_too_proves_nothing() -> None:
    _, record = evidence()
    observed = case(store_before=200, store_after=503, store_refused_after_api_seconds=None)
    with pytest.raises(AssertionError):  # a 5xx is no refusal of the credential
        judge_callee_refuses("pod", observed, record)
    observed = case(
        store_before=200, store_after=403, store_refused_after_api_seconds=None, control_after_refusal=503
    )
    with pytest.raises(pytest.skip.Exception, match="also refused a fresh token"):
        judge_callee_refuses("pod", observed, record)


def test_a_callee_that_grants_again_after_a_same_name_object_is_recreated_fails() -> None:
    _, record = evidence()
    judge_not_revived("pod", case(**REFUSED, store_after_recreate=403), record)
    with pytest.raises(AssertionError, match="checks the name, not the UID"):
        judge_not_revived("pod", case(**REFUSED, store_after_recreate=200), record)


def test_an_offline_callee_that_keeps_granting_fails_with_the_measured_window() -> None:
    found, record = evidence()
    cases = {key: case(**STILL_GRANTED) for key in CALLEE_CASES}
    with pytest.raises(AssertionError, match=r"cannot see deleted objects: pod: still granted 21.0 s"):
        judge_offline_window(cases, record)
    assert found["objects"]["secret"]["exp_after_deletion_seconds"] == 3599.0  # type: ignore[index]


def test_an_offline_callee_that_refuses_promptly_passes() -> None:
    cases = {key: case(**REFUSED, store_after_recreate=403) for key in CALLEE_CASES}
    judge_offline_window(cases, evidence()[1])


def test_an_offline_callee_that_granted_no_revoked_token_before_is_not_judged() -> None:
    cases = {key: case(store_before=403) for key in CALLEE_CASES}
    with pytest.raises(pytest.skip.Exception, match="no revoked token could be judged"):
        judge_offline_window(cases, evidence()[1])


def outage(**changes: Any) -> dict[str, Any]:
    played = {
        "cut_at": NOW,
        "exercised": True,
        "unknown_kid_answers": [(403, 0.01), (503, 5.0)],
        "known_key": {"status": 200, "answered_after_seconds": 0.01, "since_last_fetch_seconds": 11.0},
        "unknown_kid_after_recovery": [403],
        "recovered_after_seconds": 0.1,
    }
    return {**played, **changes}


def outages(**played: dict[str, Any]) -> dict[str, Any]:
    return {
        "played": played,
        "not_played": {},
        "attempt_bound_seconds": 25.0,
        "recovery_bound_seconds": 30.0,
    }


def test_key_set_outages_a_correct_offline_callee_passes() -> None:
    observed = outages(hang=outage(), refused=outage())
    judge_key_set_never_grants(observed, evidence()[1])
    judge_key_set_recovers(observed, evidence()[1])
    judge_key_set_timely(observed, 15.0, evidence()[1])
    judge_known_keys_kept(observed, 20.0, evidence()[1])


def test_an_unknown_kid_granted_during_or_right_after_an_outage_fails() -> None:
    during = outages(hang=outage(unknown_kid_answers=[(403, 0.01), (200, 0.01)]))
    with pytest.raises(AssertionError, match="a key the cluster never had"):
        judge_key_set_never_grants(during, evidence()[1])
    poisoned = outages(garbage=outage(unknown_kid_after_recovery=[200]))
    with pytest.raises(AssertionError, match="a key the cluster never had"):
        judge_key_set_never_grants(poisoned, evidence()[1])


def test_outages_the_callee_never_tried_to_reach_are_not_judged() -> None:
    observed = outages(hang=outage(exercised=False, unknown_kid_answers=[(403, 0.01)]))
    for judge in (judge_key_set_never_grants, judge_key_set_recovers):
        with pytest.raises(pytest.skip.Exception, match="never tried to reach its key-set endpoint"):
            judge(observed, evidence()[1])


def test_a_late_or_missing_answer_during_a_key_set_outage_fails_avail_002() -> None:
    for answers in ([(503, 16.0)], [(0, 20.0)]):
        with pytest.raises(AssertionError, match="no answer within 15 s"):
            judge_key_set_timely(outages(hang=outage(unknown_kid_answers=answers)), 15.0, evidence()[1])


def test_no_recovery_after_a_key_set_outage_fails() -> None:
    with pytest.raises(AssertionError, match="no fetch through the cut"):
        judge_key_set_recovers(outages(hang=outage(recovered_after_seconds=None)), evidence()[1])


def test_known_keys_are_judged_only_while_the_cache_may_still_hold_them() -> None:
    refused_known = {"status": 503, "answered_after_seconds": 0.01, "since_last_fetch_seconds": 11.0}
    with pytest.raises(AssertionError, match="a key it had fetched was not granted"):
        judge_known_keys_kept(outages(hang=outage(known_key=refused_known)), 20.0, evidence()[1])
    expired = {**refused_known, "since_last_fetch_seconds": 25.0}
    with pytest.raises(pytest.skip.Exception, match="allowed to have expired"):
        judge_known_keys_kept(outages(hang=outage(known_key=expired)), 20.0, evidence()[1])


def test_each_check_outside_a_callee_s_mode_names_what_judges_it_instead() -> None:
    catalogue = load()
    assert "REV-006" in str(catalogue.get("REV-001").why_not_applicable("jwks"))  # type: ignore[union-attr]
    assert catalogue.get("REV-001").why_not_applicable("tokenreview") is None  # type: ignore[union-attr]
    assert "REV-001..005" in str(catalogue.get("REV-006").why_not_applicable("tokenreview"))  # type: ignore[union-attr]
    assert catalogue.get("SEC-011").verification == ("tokenreview", "jwks")  # type: ignore[union-attr]


def test_the_markdown_summary_lists_skipped_and_not_applicable_checks_apart_with_their_reasons() -> None:
    def check(check_id: str, outcome: str, message: str | None) -> dict[str, Any]:
        return {"id": check_id, "title": "t", "level": "must", "outcome": outcome, "message": message}

    report = {
        "implementation": {"name": "x"},
        "result": "conformant-with-findings",
        "mode": "process",
        "verification": "jwks",
        "profile": "fast",
        "provider": "local",
        "server_version": "v1",
        "summary": {"passed": 1, "failed": 0, "skipped": 1, "not_applicable": 1, "emulated": 0},
        "result_reasons": ["checks could not be judged here (skipped): SEC-011"],
        "checks": [
            check("ACC-001", "passed", None),
            check("SEC-011", "skipped", "no byte through the cut"),
            check("RBAC-001", "not-applicable", "a jwks callee needs no review rights"),
        ],
        "reproduce": {"command": "pytest suites"},
    }
    text = markdown.render(report)
    skipped = text.index("### ⚠️ Skipped checks")
    not_applicable = text.index("### ⏭️ Not applicable")
    assert skipped < not_applicable < text.index("### All checks")
    assert "| SEC-011 | must | no byte through the cut |" in text[skipped:not_applicable]
    assert "| RBAC-001 | must | a jwks callee needs no review rights |" in text[not_applicable:]

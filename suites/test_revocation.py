"""Revocation: deleting what a token is bound to (pod, service account, secret) revokes it.

The setup deletes every object at once and waits once: the apiserver caches successful
authentications for 10 s, so each refusal may take that long, and waiting in parallel keeps the
fast profile fast. The seconds each refusal took are recorded as evidence.

Every check asks the **callee** with the revoked tokens (tokens it granted before the deletion: the
allowed caller's, bound to a pod or a Secret, and the allow-listed dotted account's), not only the
review. How the verdict reads depends on how the callee verifies (``callee.verification``):

* ``tokenreview`` (REV-001..005, must): the apiserver refuses a revoked token, so the callee must too,
  within its declared ``cache_seconds`` (plus a few seconds), and a same-name object recreated with a
  new UID must not bring the token back.
* ``jwks`` (REV-006, should): an offline verifier cannot see that a bound object is gone; it keeps
  granting the token until its ``exp``. That the token is refused at ``exp`` (+ leeway) is the
  expiry checks' must (EXP-003, SEC-005; EXP-004 in the full profile); REV-006 measures the window
  (how long after the deletion it was still granted, and when the token expires) and fails when the
  callee did not refuse promptly, so a team sees what verifying offline costs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_k8s_sa.sut.model import DOTTED_ALLOWED_NAME

from .helpers import granted, refused
from .scenarios import CALLEE_CASES, CALLEE_GRACE_AFTER_REVIEW_SECONDS, Case

WHAT = {
    "pod": "the allowed caller's token bound to a pod",
    "service_account": f"a token of the allow-listed account `{DOTTED_ALLOWED_NAME}` beside the caller",
    "secret": "the allowed caller's token bound to a Secret",
}
SECOND_ENTRY = (
    f" (does it honour the second entry of ${{ALLOWED_SERVICE_ACCOUNTS}}, `<ns>:{DOTTED_ALLOWED_NAME}`?)"
)
DELETED = {"pod": "its pod", "service_account": "its service account", "secret": "its Secret"}


def _record(check, case: Case) -> None:
    check.record("accepted_before", case.before.authenticated)
    check.record("refused_after_seconds", case.seconds)
    check.record("error_after", case.after.error if case.after else None)
    deleted_at = case.extra.get("deleted_at")
    if isinstance(deleted_at, int | float):
        check.event("token issued", at=case.token.claims["iat"])
        check.event("bound object deleted", at=deleted_at)
        if case.seconds is not None:
            check.event("refused by TokenReview", kind="refused", at=deleted_at + case.seconds)


def callee_evidence(case: Case) -> dict[str, object]:
    """The callee's part of one revocation case, as evidence."""
    extra = case.extra
    keys = (
        "store_before",
        "store_after",
        "store_refused_after_api_seconds",
        "cache_seconds",
        "callee_asked_after_api_seconds",
        "control_after_refusal",
        "last_granted_after_deletion_seconds",
        "exp_after_deletion_seconds",
        "asked_for_seconds",
        "store_after_recreate",
    )
    names = {
        "store_before": "callee_before",
        "store_after": "callee_after",
        "store_refused_after_api_seconds": "callee_refused_after_api_seconds",
        "control_after_refusal": "fresh_token_granted_after_the_refusal",
        "store_after_recreate": "callee_after_recreate",
    }
    return {names.get(key, key): extra[key] for key in keys if key in extra}


def _not_judged(key: str, case: Case) -> str | None:
    """Why the callee's part of ``case`` cannot be judged (None: it can)."""
    before = case.extra.get("store_before")
    if isinstance(before, int) and not granted(before):
        return (
            f"the callee did not grant {WHAT[key]} before {DELETED[key]} was deleted (status {before}), so "
            "its refusal afterwards would prove nothing" + (SECOND_ENTRY if key == "service_account" else "")
        )
    after = case.extra.get("store_after")
    if (
        case.extra.get("store_refused_after_api_seconds") is None
        and isinstance(after, int)
        and refused(after)
    ):
        return (
            f"the callee refused {WHAT[key]} after {DELETED[key]} was deleted, but it also refused a fresh "
            f"token of the allowed caller right after (status {case.extra.get('control_after_refusal')}): "
            "a refusal for another reason proves nothing about revocation"
        )
    return None


def judge_callee_refuses(key: str, case: Case, record: Callable[[str, object], None]) -> None:
    """REV-001/003/005 (TokenReview callee): the apiserver refuses the revoked token, and the callee
    refuses it too within its ``cache_seconds`` (+ the grace). Skips when it cannot be judged."""
    for name, value in callee_evidence(case).items():
        record(name, value)
    record("callee_allowed_seconds_after_the_api", f"cache_seconds + {CALLEE_GRACE_AFTER_REVIEW_SECONDS:g}")
    assert case.before.authenticated, "the apiserver refused the token before the deletion"
    assert case.after is not None, "the apiserver never refused the token"
    assert not case.after.authenticated
    reason = _not_judged(key, case)
    if reason:
        pytest.skip(reason)
    assert case.extra.get("store_refused_after_api_seconds") is not None, (
        f"the callee still grants {WHAT[key]} after {DELETED[key]} was deleted, beyond its cache_seconds "
        f"({case.extra.get('cache_seconds')}) + {CALLEE_GRACE_AFTER_REVIEW_SECONDS:g} s after the apiserver "
        f"refused it (last answer {case.extra.get('store_after')})"
    )


def judge_not_revived(key: str, case: Case, record: Callable[[str, object], None]) -> None:
    """REV-002/004 (TokenReview callee): after a same-name object is recreated (a new UID) neither
    the apiserver nor the callee grants the token again."""
    record("error", case.after_recreate.error if case.after_recreate else None)
    record("callee_after_recreate", case.extra.get("store_after_recreate"))
    assert case.after_recreate is not None
    assert not case.after_recreate.authenticated, "the apiserver accepts the token again"
    after = case.extra.get("store_after_recreate")
    if _not_judged(key, case) is None and isinstance(after, int):
        assert not granted(after), (
            f"the callee grants {WHAT[key]} again once a same-name object was recreated ({after}): it "
            "checks the name, not the UID"
        )


def judge_offline_window(cases: dict[str, Case], record: Callable[[str, object], None]) -> None:
    """REV-006 (offline callee, should): each revoked token is refused promptly (within the
    apiserver's refusal + ``cache_seconds`` + the grace) and stays refused after a same-name object is
    recreated. The window is evidence: how long after the deletion it was still granted, and how far
    its ``exp`` (where the expiry checks' must ends it) was."""
    judged = {key: cases[key] for key in CALLEE_CASES if _not_judged(key, cases[key]) is None}
    window = {key: callee_evidence(cases[key]) for key in CALLEE_CASES}
    record("objects", window)
    record(
        "note",
        "offline verification cannot see a deleted object: a token stays valid until its exp (+ the "
        "verifier's leeway); EXP-003 and SEC-005 judge that it is refused then",
    )
    if not judged:
        pytest.skip(
            "no revoked token could be judged on the callee: "
            + "; ".join(str(_not_judged(key, cases[key])) for key in CALLEE_CASES)
        )
    late = {
        key: (
            f"still granted {case.extra.get('last_granted_after_deletion_seconds')} s after "
            f"{DELETED[key]} was deleted (the apiserver refused it after {case.seconds} s); valid until "
            f"its exp, {case.extra.get('exp_after_deletion_seconds')} s after the deletion"
        )
        for key, case in judged.items()
        if case.extra.get("store_refused_after_api_seconds") is None
    }
    revived = {}
    for key, case in judged.items():
        again = case.extra.get("store_after_recreate")
        if key not in late and isinstance(again, int) and granted(again):
            revived[key] = again
    record("still_granted", late)
    assert not late, "the callee verifies offline and cannot see deleted objects: " + "; ".join(
        f"{key}: {text}" for key, text in late.items()
    )
    assert not revived, f"granted again once a same-name object was recreated: {revived}"


@pytest.mark.conformance("REV-001", "a pod-bound token is refused after its pod is deleted")
def test_pod_deletion_revokes(check, revoked):
    case = revoked["pod"]
    _record(check, case)
    judge_callee_refuses("pod", case, check.record)


@pytest.mark.conformance("REV-002", "the token stays refused after a same-name pod is recreated")
def test_recreated_pod_does_not_revive(check, revoked):
    case = revoked["pod"]
    check.record("old_pod_uid", case.token.kubernetes_claims["pod"]["uid"])
    check.record("new_pod_uid", case.extra["new_pod_uid"])
    judge_not_revived("pod", case, check.record)


@pytest.mark.conformance("REV-003", "a token is refused after its service account is deleted")
def test_service_account_deletion_revokes(check, revoked):
    case = revoked["service_account"]
    _record(check, case)
    judge_callee_refuses("service_account", case, check.record)


@pytest.mark.conformance("REV-004", "the token stays refused after a same-name service account is recreated")
def test_recreated_service_account_does_not_revive(check, revoked):
    case = revoked["service_account"]
    check.record("old_sa_uid", case.token.kubernetes_claims["serviceaccount"]["uid"])
    check.record("new_sa_uid", case.extra["new_sa_uid"])
    judge_not_revived("service_account", case, check.record)


@pytest.mark.conformance("REV-005", "a secret-bound token is refused after the secret is deleted")
def test_secret_deletion_revokes(check, revoked):
    case = revoked["secret"]
    _record(check, case)
    judge_callee_refuses("secret", case, check.record)


@pytest.mark.conformance(
    "REV-006",
    "an offline verifier refuses a token promptly once its pod, service account or secret is deleted",
    level="should",
)
def test_offline_revocation_window(check, revoked):
    for key in CALLEE_CASES:
        deleted_at = revoked[key].extra.get("deleted_at")
        if isinstance(deleted_at, int | float):
            check.event(f"{key}: bound object deleted", at=deleted_at)
            seconds = revoked[key].seconds
            if seconds is not None:
                check.event(f"{key}: refused by TokenReview", kind="refused", at=deleted_at + seconds)
    judge_offline_window(revoked, check.record)

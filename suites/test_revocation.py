"""Revocation: deleting what a token is bound to (pod, service account, secret) revokes it.

The setup deletes every object at once and waits once: the apiserver caches successful
authentications for 10 s, so each refusal may take that long, and waiting in parallel keeps the
fast profile fast. The seconds each refusal took are recorded as evidence.
"""

from __future__ import annotations

import pytest

from .helpers import granted, refused
from .scenarios import Case


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


@pytest.mark.conformance("REV-001", "a pod-bound token is refused after its pod is deleted")
def test_pod_deletion_revokes(check, revoked):
    case = revoked["pod"]
    _record(check, case)
    check.record("callee_before", case.extra["store_before"])
    check.record("callee_after", case.extra["store_after"])
    check.record("callee_refused_after_api_seconds", case.extra["store_refused_after_api_seconds"])
    check.record("cache_seconds_allowed", case.extra["cache_seconds"])
    assert case.before.authenticated
    assert case.after is not None
    assert not case.after.authenticated
    assert granted(case.extra["store_before"])
    assert refused(case.extra["store_after"]), "the callee still grants the token beyond its cache_seconds"


@pytest.mark.conformance("REV-002", "the token stays refused after a same-name pod is recreated")
def test_recreated_pod_does_not_revive(check, revoked):
    case = revoked["pod"]
    check.record("old_pod_uid", case.token.kubernetes_claims["pod"]["uid"])
    check.record("new_pod_uid", case.extra["new_pod_uid"])
    check.record("error", case.after_recreate.error if case.after_recreate else None)
    assert case.after_recreate is not None
    assert not case.after_recreate.authenticated


@pytest.mark.conformance("REV-003", "a token is refused after its service account is deleted")
def test_service_account_deletion_revokes(check, revoked):
    case = revoked["service_account"]
    _record(check, case)
    assert case.before.authenticated
    assert case.after is not None
    assert not case.after.authenticated


@pytest.mark.conformance("REV-004", "the token stays refused after a same-name service account is recreated")
def test_recreated_service_account_does_not_revive(check, revoked):
    case = revoked["service_account"]
    check.record("old_sa_uid", case.token.kubernetes_claims["serviceaccount"]["uid"])
    check.record("new_sa_uid", case.extra["new_sa_uid"])
    check.record("error", case.after_recreate.error if case.after_recreate else None)
    assert case.after_recreate is not None
    assert not case.after_recreate.authenticated


@pytest.mark.conformance("REV-005", "a secret-bound token is refused after the secret is deleted")
def test_secret_deletion_revokes(check, revoked):
    case = revoked["secret"]
    _record(check, case)
    assert case.before.authenticated
    assert case.after is not None
    assert not case.after.authenticated

"""Robustness: checks added because a mutant of the reference store got past the suite without them.

Each check here exists because ``tests/test_mutants.py`` showed a broken implementation passing
every other check (see the README's mutant table):

* HDR-001: header names are case-insensitive (RFC 9110); HTTP/2 hops and proxies lowercase them.
* ALLOW-001/002: the allow-list compares namespace *and* name.
* API-001: the real apiserver answering the callee's reviews with 5xx lets nobody in, and afterwards
  the *same* token is granted again (SEC-011 cuts the API through a proxy, in process mode only).
* CACHE-001: a failed review is not cached: a token refused while the callee had no review rights
  is granted once it has them again (RBAC-003 asks with fresh tokens, which a cache keyed by the
  token never sees).
* LOG-001: no presented token appears in the logs of the callee or the caller.

The API's 5xx is produced by the real kube-apiserver: a validating admission webhook on
``tokenreviews``, limited by a match condition to the SUT's own service account, points at a closed
loopback port, so the apiserver answers the SUT's reviews with ``500 failed calling webhook`` and
everybody else's normally. Nothing is emulated.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import kubernetes
import pytest
from kubernetes.client import ApiException

from pytest_k8s_sa import resources
from pytest_k8s_sa.ports import free_port
from pytest_k8s_sa.tokens import request_token
from pytest_k8s_sa.waiting import WaitTimeout, wait_until

from .helpers import allowed_token, call_through_caller, granted, sa_ref, status_of
from .test_rbac_discovery import _may_review

RECOVERY_SECONDS = 30.0
"""How long the callee may take to grant the same token again once its reviews work again: generous
for a loaded machine; a callee that caches a failure for longer is caught."""


def token_for(k8s_cluster, ref, audiences) -> str:
    return request_token(
        k8s_cluster.api_client, ref.namespace, ref.name, audiences=audiences, expiration_seconds=600
    ).raw


def status_with_header(sut_run, token: str, spell) -> int:
    """The callee's status for ``token`` with the configured header's name respelled by ``spell``."""
    headers = {spell(name): value for name, value in sut_run.sut.callee.credential_headers(token).items()}
    return sut_run.deployment.secret_store.get("/", headers=headers, timeout=30).status_code


@pytest.mark.conformance("HDR-001", "the credential header's name is matched case-insensitively")
def test_header_name_is_case_insensitive(check, k8s_cluster, sut_run):
    token = allowed_token(k8s_cluster, sut_run)
    statuses = {
        spelling: status_with_header(sut_run, token, spell)
        for spelling, spell in (("lower case", str.lower), ("upper case", str.upper))
    }
    check.record("header", sut_run.sut.callee.header)
    check.record("statuses", statuses)
    assert all(granted(status) for status in statuses.values()), statuses


def _judge_allow_list(check, k8s_cluster, sut_run, impostor, token_review) -> None:
    token = token_for(k8s_cluster, impostor, [sut_run.deployment.audience])
    review = token_review(token, [sut_run.deployment.audience])
    status = status_of(sut_run, token)
    check.record("presented_as", impostor.username)
    check.record("allowed_caller", sut_run.deployment.api.username)
    check.record("token_is_valid_for_the_audience", review.authenticated)
    check.record("status", status)
    assert review.authenticated, "the token itself must be valid, so only the allow-list refuses it"
    assert not granted(status)


@pytest.mark.conformance(
    "ALLOW-001", "a service account with the allowed caller's name in another namespace gets no grant"
)
def test_allowed_name_in_another_namespace(check, k8s_cluster, sut_run, k8s_service_account, token_review):
    impostor = k8s_service_account(sut_run.deployment.api.service_account)
    _judge_allow_list(check, k8s_cluster, sut_run, impostor, token_review)


@pytest.mark.conformance(
    "ALLOW-002", "another service account in the allowed caller's namespace gets no grant"
)
def test_other_account_in_the_allowed_namespace(
    check, k8s_cluster, k8s_names, sut_run, k8s_service_account, token_review
):
    neighbour = k8s_service_account(k8s_names("neighbour"), namespace=sut_run.deployment.api.namespace)
    _judge_allow_list(check, k8s_cluster, sut_run, neighbour, token_review)


@contextlib.contextmanager
def failing_reviews(k8s_cluster, k8s_names, username: str) -> Iterator[str]:
    """While inside, the apiserver answers 500 to every TokenReview made by ``username``, and only
    to those: a validating webhook on tokenreviews, matched to that user, that nothing serves."""
    admission = kubernetes.client.AdmissionregistrationV1Api(k8s_cluster.api_client)
    name = k8s_names("k8s-sa-tokenreview-5xx")
    body = kubernetes.client.V1ValidatingWebhookConfiguration(
        metadata=kubernetes.client.V1ObjectMeta(name=name, labels=resources.run_labels(k8s_cluster.run_id)),
        webhooks=[
            kubernetes.client.V1ValidatingWebhook(
                name="tokenreview-5xx.k8s-sa.invalid",
                admission_review_versions=["v1"],
                side_effects="None",
                failure_policy="Fail",
                timeout_seconds=2,
                # Nothing listens there: the call fails at once and the apiserver answers 500.
                client_config=kubernetes.client.AdmissionregistrationV1WebhookClientConfig(
                    url=f"https://127.0.0.1:{free_port()}/"
                ),
                rules=[
                    kubernetes.client.V1RuleWithOperations(
                        api_groups=["authentication.k8s.io"],
                        api_versions=["v1"],
                        operations=["CREATE"],
                        resources=["tokenreviews"],
                    )
                ],
                match_conditions=[
                    kubernetes.client.V1MatchCondition(
                        name="only-the-callee", expression=f"request.userInfo.username == '{username}'"
                    )
                ],
            )
        ],
    )
    admission.create_validating_webhook_configuration(body)
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            admission.delete_validating_webhook_configuration(name)


def reviews_as(k8s_cluster, token_review, ref, token: str, audience: str) -> int:
    """The apiserver's HTTP status for a TokenReview made with ``ref``'s own credentials."""
    try:
        token_review(token, [audience], as_service_account=ref)
    except ApiException as exc:
        return int(exc.status)
    return 201


def same_token_granted_again(sut_run, token: str) -> tuple[float | None, list[int]]:
    """Wait until the callee grants ``token`` (the very token it refused before); (None, answers) if not."""
    seen: list[int] = []
    started = time.monotonic()

    def grants() -> bool:
        seen.append(status_of(sut_run, token, timeout=10))
        return granted(seen[-1])

    try:
        wait_until(grants, RECOVERY_SECONDS, "the same token was not granted again", max_interval=1.0)
    except WaitTimeout:
        return None, seen[-5:]
    return round(time.monotonic() - started, 2), seen[-5:]


@pytest.mark.conformance(
    "API-001",
    "while the apiserver answers the callee's reviews with 5xx nobody gets in; then the same token does",
)
def test_server_errors_fail_closed(check, k8s_cluster, k8s_names, sut_run, token_review):
    deployment = sut_run.deployment
    store = sa_ref(k8s_cluster, deployment.secret_store)
    token = allowed_token(k8s_cluster, sut_run)
    probe = allowed_token(k8s_cluster, sut_run)
    with failing_reviews(k8s_cluster, k8s_names, store.username):
        wait_until(
            lambda: reviews_as(k8s_cluster, token_review, store, probe, deployment.audience) >= 500,
            30,
            "the apiserver did not start failing the callee's reviews",
        )
        check.record(
            "apiserver_status", reviews_as(k8s_cluster, token_review, store, probe, deployment.audience)
        )
        during = check.record("status_during", status_of(sut_run, token))
    wait_until(
        lambda: reviews_as(k8s_cluster, token_review, store, probe, deployment.audience) == 201,
        30,
        "the apiserver kept failing the callee's reviews after the webhook was removed",
    )
    recovered, answers = same_token_granted_again(sut_run, token)
    check.record("same_token_granted_after_seconds", recovered)
    check.record("last_answers", answers)
    check.record("status_0_means", "no answer within 30 s")
    assert not granted(during), f"granted ({during}) while the apiserver answered its review with 500"
    assert recovered is not None, (
        f"the same token was not granted within {RECOVERY_SECONDS:g}s after the apiserver answered "
        f"again (last answers {answers}): the failure was cached"
    )


@pytest.mark.conformance(
    "CACHE-001", "a token refused while the callee had no review rights is granted once it has them"
)
def test_failures_are_not_cached(check, k8s_cluster, sut_run):
    if sut_run.binding is None:
        pytest.skip("the callee's system:auth-delegator ClusterRoleBinding was not found")
    api = k8s_cluster.api_client
    store = sut_run.deployment.secret_store
    token = allowed_token(k8s_cluster, sut_run)
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    labels = dict(rbac.read_cluster_role_binding(sut_run.binding).metadata.labels or {})
    resources.delete_cluster_role_binding(api, sut_run.binding)
    try:
        wait_until(
            lambda: not _may_review(api, store.namespace, store.service_account),
            30,
            "the callee may still create TokenReviews after its binding was deleted",
        )
        during = check.record("status_without_review_rights", status_of(sut_run, token))
    finally:
        resources.grant_auth_delegator(api, sut_run.binding, store.namespace, store.service_account, labels)
    wait_until(
        lambda: _may_review(api, store.namespace, store.service_account),
        30,
        "the restored binding does not take effect",
    )
    recovered, answers = same_token_granted_again(sut_run, token)
    check.record("same_token_granted_after_seconds", recovered)
    check.record("last_answers", answers)
    assert not granted(during), f"granted ({during}) without review rights"
    assert recovered is not None, (
        f"the token refused during the outage was still refused {RECOVERY_SECONDS:g}s after the callee "
        f"could review again (last answers {answers}): the failure was cached"
    )


def _leaks(logs: dict[str, str], presented: dict[str, str]) -> list[str]:
    """Which presented tokens appear (whole, or their signature) in which workload's log."""
    found = []
    for label, token in presented.items():
        signature = token.rsplit(".", 1)[-1]
        for workload, text in logs.items():
            if token in text or (len(signature) >= 20 and signature in text):
                found.append(f"{label} token in the {workload} log")
    return found


@pytest.mark.conformance("LOG-001", "no presented token appears in the logs of the callee or the caller")
def test_tokens_are_not_logged(check, k8s_cluster, sut_run):
    deployment = sut_run.deployment
    intruder = sa_ref(k8s_cluster, deployment.data_store)
    caller = sa_ref(k8s_cluster, deployment.api)
    presented = {
        "allowed": allowed_token(k8s_cluster, sut_run),
        "intruder's": token_for(k8s_cluster, intruder, [deployment.audience]),
        "other-audience": token_for(k8s_cluster, caller, None),
    }
    statuses = {label: status_of(sut_run, raw) for label, raw in presented.items()}
    if sut_run.has_caller:
        check.fidelity = deployment.fidelity
        statuses["through the caller"] = call_through_caller(sut_run).status_code
        presented["caller's own"] = deployment.api.current_token().raw
    logs = deployment.logs()
    check.record("statuses", statuses)
    check.record("log_bytes_read", {name: len(text) for name, text in logs.items()})
    leaks = check.record("leaks", _leaks(logs, presented))
    if not logs:
        pytest.skip("no log of the callee or the caller can be read here")
    assert not leaks

"""Robustness: checks added because a mutant of the reference store got past the suite without them.

Each check here exists because ``tests/test_mutants.py`` showed a broken implementation passing
every other check (see the README's mutant table):

* HDR-001: header names are case-insensitive (RFC 9110); HTTP/2 hops and proxies lowercase them.
* ALLOW-001/002: the allow-list compares namespace *and* name.
* ALLOW-003..006: ... and compares them for equality: identities that extend the allowed name or
  namespace, or are a part of one, are refused (a prefix, suffix, substring or unanchored-pattern
  match grants one of them); so are names that match a dotted allowed name only if its dot is a
  pattern (``caller-v1`` for ``caller.v1``, the suite's second allow-list entry).
* CACHE-001: a failed review is not cached: a token refused while the callee had no review rights
  is granted once it has them again (RBAC-003 asks with fresh tokens, which a cache keyed by the
  token never sees).
* LOG-001: no presented token appears in the logs of the callee or the caller.
* AVAIL-001: a few idle or half-sent connections (no credential needed to open one) do not lock the
  allowed caller out: a callee that serves one connection at a time, or from a tiny worker pool,
  is an authentication gate anyone on the network can shut.
"""

from __future__ import annotations

import contextlib
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from pytest_k8s_sa.base.waiting import WaitTimeout, wait_until
from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.tokens import request_token
from pytest_k8s_sa.sut.model import DOTTED_ALLOWED_NAME, lookalike_identities, pattern_identities

from .helpers import allowed_token, call_through_caller, granted, review_rights_removed, sa_ref, status_of

SLOW_CLIENTS = 8
"""Connections the intruder holds open during AVAIL-001: half idle, half with a request line and no end
of headers. Well below any sane connection cap (the reference store's is 64)."""
VALID_CALLS = 3
VALID_CALL_TIMEOUT = 5.0
"""How long one of the allowed caller's calls may take while the slow clients are connected: a review
takes milliseconds; a callee stuck on a slow client answers only after its header deadline, if ever."""

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
    return sut_run.deployment.callee.get("/", headers=headers, timeout=30).status_code


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
    check.record("allowed_caller", sut_run.deployment.caller.username)
    check.record("token_is_valid_for_the_audience", review.authenticated)
    check.record("status", status)
    assert review.authenticated, "the token itself must be valid, so only the allow-list refuses it"
    assert not granted(status)


@pytest.mark.conformance(
    "ALLOW-001", "a service account with the allowed caller's name in another namespace gets no grant"
)
def test_allowed_name_in_another_namespace(check, k8s_cluster, sut_run, k8s_service_account, token_review):
    impostor = k8s_service_account(sut_run.deployment.caller.service_account)
    _judge_allow_list(check, k8s_cluster, sut_run, impostor, token_review)


@pytest.mark.conformance(
    "ALLOW-002", "another service account in the allowed caller's namespace gets no grant"
)
def test_other_account_in_the_allowed_namespace(
    check, k8s_cluster, k8s_names, sut_run, k8s_service_account, token_review
):
    neighbour = k8s_service_account(k8s_names("neighbour"), namespace=sut_run.deployment.caller.namespace)
    _judge_allow_list(check, k8s_cluster, sut_run, neighbour, token_review)


def _judge_lookalikes(check, k8s_cluster, sut_run, token_review, kind: str) -> None:
    """Present a valid token (the callee's own audience) of each look-alike identity of ``kind``."""
    allowed = sut_run.deployment.caller
    if kind == "pattern":
        identities = pattern_identities(allowed.namespace, DOTTED_ALLOWED_NAME)
        check.record("allowed_entry_with_a_dot", f"{allowed.namespace}:{DOTTED_ALLOWED_NAME}")
    else:
        identities = lookalike_identities(allowed.namespace, allowed.service_account)[kind]
    if not identities:
        pytest.skip(f"no {kind} identity of {allowed.namespace}:{allowed.service_account} is a valid name")
    _present(check, k8s_cluster, sut_run, token_review, identities)


def _present(check, k8s_cluster, sut_run, token_review, identities: dict[str, tuple[str, str]]) -> None:
    api = k8s_cluster.api_client
    allowed = sut_run.deployment.caller
    audience = sut_run.deployment.audience
    valid: dict[str, bool] = {}
    statuses: dict[str, int] = {}
    with contextlib.ExitStack() as cleanup:
        for label, (namespace, name) in identities.items():
            if namespace != allowed.namespace:
                resources.create_namespace(api, namespace, resources.run_labels(k8s_cluster.run_id))
                cleanup.callback(resources.delete_namespace, api, namespace)
            resources.create_service_account(api, namespace, name)
            token = request_token(api, namespace, name, audiences=[audience], expiration_seconds=600).raw
            valid[label] = token_review(token, [audience]).authenticated
            statuses[label] = status_of(sut_run, token)
    check.record("allowed_caller", f"{allowed.namespace}:{allowed.service_account}")
    check.record("token_is_valid_for_the_audience", valid)
    check.record("statuses", statuses)
    assert all(valid.values()), f"each token must be valid ({valid}), so only the allow-list refuses it"
    granted_to = {label: status for label, status in statuses.items() if granted(status)}
    assert not granted_to, f"granted to identities that only resemble the allowed one: {granted_to}"


@pytest.mark.conformance(
    "ALLOW-003", "a service account whose name extends the allowed one (<name>-x, x<name>) gets no grant"
)
def test_extended_name(check, k8s_cluster, sut_run, token_review):
    _judge_lookalikes(check, k8s_cluster, sut_run, token_review, "name extended")


@pytest.mark.conformance(
    "ALLOW-004", "the allowed name in a namespace that extends the allowed one (<ns>-x, x<ns>) gets no grant"
)
def test_extended_namespace(check, k8s_cluster, sut_run, token_review):
    _judge_lookalikes(check, k8s_cluster, sut_run, token_review, "namespace extended")


@pytest.mark.conformance(
    "ALLOW-005", "a part of the allowed name or namespace (a prefix of either) gets no grant"
)
def test_part_of_the_allowed_identity(check, k8s_cluster, sut_run, token_review):
    _judge_lookalikes(check, k8s_cluster, sut_run, token_review, "part")


@pytest.mark.conformance(
    "ALLOW-006",
    "a name that matches an allowed name holding a dot only if the dot is a pattern (caller-v1 for "
    "caller.v1) gets no grant",
)
def test_allowed_name_is_not_a_pattern(check, k8s_cluster, sut_run, token_review):
    _judge_lookalikes(check, k8s_cluster, sut_run, token_review, "pattern")


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
    "CACHE-001", "a token refused while the callee had no review rights is granted once it has them"
)
def test_failures_are_not_cached(check, k8s_cluster, sut_run):
    token = allowed_token(k8s_cluster, sut_run)
    with review_rights_removed(k8s_cluster, sut_run):
        during = check.record("status_without_review_rights", status_of(sut_run, token))
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
    intruder = sa_ref(k8s_cluster, deployment.intruder)
    caller = sa_ref(k8s_cluster, deployment.caller)
    presented = {
        "allowed": allowed_token(k8s_cluster, sut_run),
        "intruder's": token_for(k8s_cluster, intruder, [deployment.audience]),
        "other-audience": token_for(k8s_cluster, caller, None),
    }
    statuses = {label: status_of(sut_run, raw) for label, raw in presented.items()}
    if sut_run.has_caller:
        check.fidelity = deployment.fidelity
        statuses["through the caller"] = call_through_caller(sut_run).status_code
        presented["caller's own"] = deployment.caller.current_token().raw
    logs = deployment.logs()
    check.record("statuses", statuses)
    check.record("log_bytes_read", {name: len(text) for name, text in logs.items()})
    leaks = check.record("leaks", _leaks(logs, presented))
    if not logs:
        pytest.skip("no log of the callee or the caller can be read here")
    assert not leaks


def _open_slow_clients(url: str, count: int) -> list[socket.socket]:
    """Connections that never finish a request: even ones send nothing, odd ones a request line only."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    opened = []
    for index in range(count):
        sock = socket.create_connection(address, timeout=VALID_CALL_TIMEOUT)
        if index % 2:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: callee\r\n")
        opened.append(sock)
    return opened


@pytest.mark.conformance("AVAIL-001", "idle and half-sent connections do not lock the allowed caller out")
def test_slow_clients_do_not_lock_out_the_caller(check, k8s_cluster, sut_run):
    deployment = sut_run.deployment
    url = deployment.callee.url
    token = allowed_token(k8s_cluster, sut_run)
    headers = sut_run.sut.callee.credential_headers(token)
    statuses: list[int | str] = []
    seconds: list[float] = []
    slow = _open_slow_clients(url, SLOW_CLIENTS)
    try:
        for _ in range(VALID_CALLS):
            began = time.monotonic()
            try:
                answer = deployment.callee.get("/", headers=headers, timeout=VALID_CALL_TIMEOUT)
                statuses.append(answer.status_code)
            except requests.RequestException as exc:
                statuses.append(type(exc).__name__)
            seconds.append(round(time.monotonic() - began, 3))
    finally:
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.close()
    check.record("slow_clients", SLOW_CLIENTS)
    check.record("statuses", statuses)
    check.record("seconds", seconds)
    check.record("call_timeout_seconds", VALID_CALL_TIMEOUT)
    assert all(isinstance(status, int) and granted(status) for status in statuses), (
        f"with {SLOW_CLIENTS} idle or half-sent connections open, the allowed caller got {statuses} "
        f"(each call given {VALID_CALL_TIMEOUT:g} s)"
    )

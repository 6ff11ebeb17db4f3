"""The secret store's decisions, caching and logging, against the programmable TokenReview stub."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pytest_k8s_sa.workloads import secret_store
from pytest_k8s_sa.workloads.apicreds import ApiCredentials

from ._support import (
    DATA_STORE_SA,
    Pki,
    Reply,
    TokenReviewStub,
    closed_port,
    eventually,
    log_lines,
    make_token,
    request,
    stats,
    with_token,
)
from .conftest import Running

Start = Callable[..., Running]
SUCCESS = secret_store.SUCCESS_BODY


def test_healthz_needs_no_token_and_no_review(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store()
    reply = request(store.url, "/healthz")
    assert (reply.status, reply.body) == (200, b"ok")
    assert stub.call_count == 0


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="no-header"),
        pytest.param([("Authorization", "Bearer " + make_token())], id="bearer-only"),
    ],
)
def test_missing_client_id_is_401(
    start_store: Start, stub: TokenReviewStub, headers: list[tuple[str, str]]
) -> None:
    store = start_store()
    assert request(store.url, headers=headers).status == 401
    assert request(store.url, "/healthz", method="POST", headers=headers).status == 401  # only GET is public
    assert stub.call_count == 0


@pytest.mark.parametrize(
    ("values", "detail"),
    [
        pytest.param([""], "empty", id="empty"),
        pytest.param(["   "], "empty", id="blank"),
        pytest.param([make_token(), make_token()], "repeated-header", id="repeated"),
        pytest.param([make_token().encode() + "é".encode()], "non-ascii", id="non-ascii"),
        pytest.param(["a" * (1024 * 1024) + ".b.c"], "too-long", id="1MiB"),
        pytest.param(["not-a-jwt"], "not-jwt", id="one-segment"),
        pytest.param(["a.b"], "not-jwt", id="two-segments"),
        pytest.param(["a.b.c.d"], "not-jwt", id="four-segments"),
        pytest.param(["a+b.c/d.e=="], "not-jwt", id="standard-base64"),
    ],
)
def test_malformed_client_id_is_403_without_review(
    start_store: Start,
    stub: TokenReviewStub,
    capsys: pytest.CaptureFixture[str],
    values: list[str | bytes],
    detail: str,
) -> None:
    store = start_store()
    reply = request(store.url, headers=[("X-Client-Id", v) for v in values])
    assert (reply.status, reply.body) == (403, b"permission denied")
    assert stub.call_count == 0
    assert stats(store.url)["reviews"] == 0
    [decision] = [line for line in log_lines(capsys.readouterr().err) if line["event"] == "decision"]
    assert (decision["reason"], decision["detail"]) == ("malformed", detail)


def test_token_length_limit_is_exact(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store(max_token_bytes=100)
    at_limit = "a" * 49 + "." + "b" * 48 + ".c"
    assert len(at_limit) == 100
    assert with_token(store.url, at_limit).status == 200
    assert with_token(store.url, "a" + at_limit).status == 403
    assert stub.call_count == 1


def test_allowed_service_account_gets_the_secret(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store()
    token = make_token()
    reply = with_token(store.url, token, "/any/path?x=1")
    assert (reply.status, reply.body) == (200, SUCCESS)
    assert reply.content_type.startswith("text/plain")
    [call] = stub.calls
    assert call.authorization == "Bearer secret-store-own-bearer-token"
    assert call.body["kind"] == "TokenReview"
    assert call.body["spec"] == {"token": token, "audiences": ["secret-store"]}


def test_custom_audience_is_requested_and_required(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store(audience="vault-like")
    assert with_token(store.url, make_token()).status == 200
    assert stub.calls[0].body["spec"]["audiences"] == ["vault-like"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param({"username": DATA_STORE_SA}, "not-allowed", id="other-service-account"),
        pytest.param(
            {"username": "system:serviceaccount:api:other"}, "not-allowed", id="same-namespace-other-name"
        ),
        pytest.param({"username": "kubernetes-admin"}, "not-allowed", id="not-a-service-account"),
        pytest.param({"audiences": ["api"]}, "audience-mismatch", id="audience-missing-from-status"),
        pytest.param({"audiences": []}, "audience-mismatch", id="no-audiences"),
        pytest.param(
            {"authenticated": False, "error": "service account token has expired"}, "not-authenticated"
        ),
        pytest.param(
            {"authenticated": True, "error": "[invalid bearer token]"}, "review-error", id="error-set"
        ),
    ],
)
def test_refusals_are_generic_403(
    start_store: Start,
    stub: TokenReviewStub,
    capsys: pytest.CaptureFixture[str],
    answer: dict[str, Any],
    reason: str,
) -> None:
    store = start_store()
    stub.program(**answer)
    reply = with_token(store.url, make_token())
    assert (reply.status, reply.body) == (403, b"permission denied")
    [decision] = [line for line in log_lines(capsys.readouterr().err) if line["event"] == "decision"]
    assert (decision["decision"], decision["status"], decision["reason"]) == ("deny", 403, reason)
    if answer.get("error"):
        assert decision["review_error"] == answer["error"]


@pytest.mark.parametrize(
    ("allowed", "username", "status"),
    [
        ("api:*", "system:serviceaccount:api:anything", 200),
        ("api:*", DATA_STORE_SA, 403),
        ("*", DATA_STORE_SA, 200),
        ("*", "kubernetes-admin", 403),
        ("*", "system:serviceaccount:api", 403),
        ("other:x, data-store:data-store", DATA_STORE_SA, 200),
    ],
)
def test_allow_list_wildcards(
    start_store: Start, stub: TokenReviewStub, allowed: str, username: str, status: int
) -> None:
    store = start_store(allowed=allowed)
    stub.program(username=username)
    assert with_token(store.url, make_token()).status == status


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"http_status": 403, "raw_body": b'{"kind":"Status","status":"Failure"}'}, id="api-403"),
        pytest.param({"http_status": 401, "raw_body": b'{"kind":"Status"}'}, id="api-401"),
        pytest.param({"http_status": 500, "raw_body": b"oops"}, id="api-500"),
        pytest.param({"http_status": 503, "raw_body": b"{}"}, id="api-503"),
        pytest.param({"raw_body": b"<html>not json"}, id="garbage"),
        pytest.param({"raw_body": b"[" * 100000}, id="deeply-nested"),
        pytest.param({"raw_body": b'{"kind":"TokenReview"}'}, id="no-status"),
        pytest.param({"raw_body": b'{"kind":"Status","status":{"authenticated":true}}'}, id="wrong-kind"),
        pytest.param(
            {"raw_body": b'{"kind":"TokenReview","status":{"authenticated":"true"}}'},
            id="authenticated-string",
        ),
        pytest.param(
            {
                "raw_body": b'{"kind":"TokenReview","status":{"authenticated":true,"audiences":"'
                + b'secret-store"}}'
            },
            id="audiences-string",
        ),
    ],
)
def test_unusable_api_answers_are_503(
    start_store: Start, stub: TokenReviewStub, capsys: pytest.CaptureFixture[str], answer: dict[str, Any]
) -> None:
    store = start_store()
    stub.program(**answer)
    reply = with_token(store.url, make_token())
    assert (reply.status, reply.body) == (503, b"token review unavailable")
    [decision] = [line for line in log_lines(capsys.readouterr().err) if line["event"] == "decision"]
    assert (decision["decision"], decision["reason"]) == ("unavailable", "review-failed")
    assert stats(store.url)["unavailable"] == 1


def test_unreachable_api_is_503(start_store: Start, pki: Pki, store_token_file: Any) -> None:
    creds = ApiCredentials(
        f"https://127.0.0.1:{closed_port()}",
        "test",
        ca_file=str(pki.ca_file),
        token_file=str(store_token_file),
    )
    store = start_store(api=creds)
    assert with_token(store.url, make_token()).status == 503


def test_untrusted_api_certificate_is_503(start_store: Start, pki: Pki, store_token_file: Any) -> None:
    rogue = TokenReviewStub(pki.rogue_server_cert, pki.rogue_server_key)
    try:
        creds = ApiCredentials(rogue.url, "test", ca_file=str(pki.ca_file), token_file=str(store_token_file))
        store = start_store(api=creds)
        assert with_token(store.url, make_token()).status == 503
        assert rogue.call_count == 0  # the token never reached a server we do not trust
    finally:
        rogue.close()


def test_slow_api_is_503_within_the_timeout(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store(review_timeout=0.5)
    stub.program(hold=True)  # released by the stub fixture's teardown
    started = time.monotonic()
    reply = with_token(store.url, make_token())
    elapsed = time.monotonic() - started
    assert reply.status == 503
    assert 0.4 < elapsed < 2.0


def test_unreadable_own_token_is_503(
    start_store: Start, stub: TokenReviewStub, store_token_file: Any
) -> None:
    store = start_store()
    store_token_file.unlink()
    assert with_token(store.url, make_token()).status == 503
    assert stub.call_count == 0


def test_recovers_when_the_api_answers_again(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store()
    token = make_token()
    stub.program(http_status=500, raw_body=b"down")
    assert with_token(store.url, token).status == 503
    stub.program()
    assert with_token(store.url, token).status == 200
    assert stub.call_count == 2  # the failure was not cached


# --- cache ------------------------------------------------------------------------------------


def test_success_is_cached(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store()
    token = make_token()
    assert [with_token(store.url, token).status for _ in range(3)] == [200, 200, 200]
    counters = stats(store.url)
    assert (counters["reviews"], counters["cache_hits"], stub.call_count) == (1, 2, 1)
    assert with_token(store.url, make_token()).status == 200  # another token is another review
    assert stub.call_count == 2


def test_ttl_zero_disables_the_cache(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store(cache_ttl=0)
    token = make_token()
    assert [with_token(store.url, token).status for _ in range(2)] == [200, 200]
    assert (stats(store.url)["reviews"], stats(store.url)["cache_hits"]) == (2, 0)


def test_cache_expires_after_ttl(start_store: Start, stub: TokenReviewStub) -> None:
    now = [1000.0]
    store = start_store(cache_ttl=10, clock=lambda: now[0])
    token = make_token()
    with_token(store.url, token)
    now[0] += 9.9
    with_token(store.url, token)
    assert stub.call_count == 1
    now[0] += 0.2
    with_token(store.url, token)
    assert stub.call_count == 2
    now[0] += 20
    with_token(store.url, make_token())
    app = store.server.app
    assert isinstance(app, secret_store.SecretStoreApp)
    assert len(app._cache._entries) == 1  # the expired entry was dropped, not kept until evicted


def test_refusals_are_not_cached(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store()
    token = make_token()
    stub.program(authenticated=False, error="invalid bearer token")
    assert [with_token(store.url, token).status for _ in range(2)] == [403, 403]
    assert stub.call_count == 2


def test_cache_is_bounded(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store(cache_size=2)
    first, second, third = make_token(), make_token(), make_token()
    for token in (first, second, third, third, first):
        assert with_token(store.url, token).status == 200
    assert stub.call_count == 4  # `first` was evicted by `third`, `third` was still cached


def test_cache_is_keyed_by_hmac_not_token(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store()
    token = make_token()
    with_token(store.url, token)
    app = store.server.app
    assert isinstance(app, secret_store.SecretStoreApp)
    keys = list(app._cache._entries)
    assert len(keys) == 1
    assert token.encode() not in keys[0]
    assert len(keys[0]) == 32
    assert keys[0] == app._cache.key(["secret-store"], token)
    assert keys[0] != app._cache.key(["other-audience"], token)


def _concurrently(store: Running, token: str, count: int, stub: TokenReviewStub) -> list[Reply]:
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(with_token, store.url, token) for _ in range(count)]

        def all_waiting() -> None:
            assert stub.call_count == 1
            assert stats(store.url)["coalesced"] == count - 1

        try:
            eventually(all_waiting)
        finally:
            stub.release.set()
        return [future.result() for future in futures]


def test_concurrent_requests_share_one_review(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store(cache_ttl=0, review_timeout=10)  # no cache: only single-flight can dedupe
    stub.program(hold=True)
    replies = _concurrently(store, make_token(), 20, stub)
    assert [r.status for r in replies] == [200] * 20
    assert stats(store.url)["reviews"] == 1
    assert stub.call_count == 1


def test_failed_flight_fails_its_waiters_and_is_not_cached(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store(review_timeout=10)
    token = make_token()
    stub.program(hold=True, http_status=500, raw_body=b"down")
    replies = _concurrently(store, token, 5, stub)
    assert [r.status for r in replies] == [503] * 5
    stub.program()
    assert with_token(store.url, token).status == 200
    assert stats(store.url)["reviews"] == 2


# --- logging ------------------------------------------------------------------------------------


def test_decision_log_lines(
    start_store: Start, stub: TokenReviewStub, capsys: pytest.CaptureFixture[str]
) -> None:
    store = start_store()
    stub.program(jti="7f0c2a")
    with_token(store.url, make_token())
    request(store.url)
    decisions = [line for line in log_lines(capsys.readouterr().err) if line["event"] == "decision"]
    assert decisions[0] | {"ts": 0} == {
        "event": "decision",
        "decision": "allow",
        "status": 200,
        "reason": "allowed",
        "username": "system:serviceaccount:api:api",
        "jti": "7f0c2a",
        "cache": "miss",
        "ts": 0,
    }
    assert (decisions[1]["decision"], decisions[1]["status"], decisions[1]["reason"]) == (
        "deny",
        401,
        "missing-header",
    )


def test_no_token_or_header_is_ever_logged(
    start_store: Start, stub: TokenReviewStub, capsys: pytest.CaptureFixture[str]
) -> None:
    store = start_store()
    tokens = [make_token() for _ in range(6)]
    with_token(store.url, tokens[0])  # allow
    with_token(store.url, tokens[0])  # cache hit
    stub.program(username=DATA_STORE_SA)
    with_token(store.url, tokens[1])  # not allowed
    stub.program(authenticated=False, error="token audiences are invalid")
    with_token(store.url, tokens[2])  # not authenticated
    stub.program(http_status=500, raw_body=b"down")
    with_token(store.url, tokens[3])  # unavailable
    request(store.url, headers=[("X-Client-Id", tokens[4]), ("X-Client-Id", tokens[4])])  # repeated
    with_token(store.url, tokens[5] + ".extra")  # malformed
    err = capsys.readouterr().err
    lines = log_lines(err)
    assert len([line for line in lines if line["event"] == "decision"]) == 7
    for token in tokens:
        for part in [token, *token.split(".")[1:]]:
            assert part not in err
    assert "X-Client-Id" not in err
    assert "secret-store-own-bearer-token" not in err


def test_error_text_is_truncated_in_logs_and_absent_from_body(
    start_store: Start, stub: TokenReviewStub, capsys: pytest.CaptureFixture[str]
) -> None:
    store = start_store()
    stub.program(authenticated=False, error="x" * 500)
    reply = with_token(store.url, make_token())
    assert reply.body == b"permission denied"
    [decision] = [line for line in log_lines(capsys.readouterr().err) if line["event"] == "decision"]
    assert decision["review_error"] == "x" * 200


def test_stats_count_every_outcome(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store()
    with_token(store.url, make_token())
    request(store.url)
    stub.program(http_status=500)
    with_token(store.url, make_token())
    assert stats(store.url) == {
        "requests": 3,
        "reviews": 2,
        "cache_hits": 0,
        "coalesced": 0,
        "allowed": 1,
        "denied": 1,
        "unavailable": 1,
    }

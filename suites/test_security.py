"""Security: a representative part of the hostile-input corpus, and fail-closed behaviour, against any SUT.

The full corpus (hundreds of cases) judges the reference store in ``tests/security``; these checks
are the part every implementation must (or should) pass. Every hostile token is derived from a real
one of the *allowed* caller, so only the property under test makes it invalid. Related checks
elsewhere: legacy token LEG-003, deleted pod REV-001, expired EXP-003, missing credential ACC-003.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from pytest_k8s_sa.base.waiting import WaitTimeout, wait_until
from pytest_k8s_sa.cluster.tokens import mint_token, request_token
from pytest_k8s_sa.deploy.apicut.process_mode import http_response
from pytest_k8s_sa.sut import forged
from pytest_k8s_sa.sut.rawhttp import raw_request

from .helpers import (
    CALLEE_EXCLUSIVE,
    allowed_token,
    granted,
    intruder_token,
    recovered_after,
    refused,
    sa_ref,
    status_of,
)

MIB = 1024 * 1024
OUTAGE_ANSWER_SECONDS = 15.0
"""`should`: how soon a callee answers while its API is cut off (a review timeout plus a margin)."""
ASK_MARGIN_SECONDS = 5.0
"""How much longer than the callee may take (``decision_timeout_seconds``, or 15 s) the suite waits for
its answer during an outage: a late answer is then measured, not cut off."""
RECOVERY_SECONDS = 30.0


def _raw_status(sut_run, lines: list[bytes], target: bytes = b"/") -> int:
    """Status of a byte-exact request; 0 when the callee closed the connection without an answer."""
    try:
        return raw_request(sut_run.deployment.callee.url, lines, target=target, timeout=30).status
    except (OSError, ValueError):
        return 0


def _judge_refused(check, statuses: dict[str, int]) -> None:
    check.record("statuses", statuses)
    bad = {name: status for name, status in statuses.items() if not refused(status)}
    assert not bad, f"not refused with a 4xx: {bad}"


@pytest.fixture(scope="module")
def real(k8s_cluster, sut_run) -> str:
    """A real token of the allowed caller for the callee (the callee grants it)."""
    token = allowed_token(k8s_cluster, sut_run)
    assert granted(status_of(sut_run, token)), "the callee does not grant a valid token of the allowed caller"
    return token


def _minted(k8s_cluster, sut_run, **overrides):
    if k8s_cluster.signing_key is None:
        pytest.skip(
            f"needs the cluster's service-account signing key, which the {k8s_cluster.provider} provider "
            "does not hold (local and local-node do)"
        )
    caller = sut_run.deployment.caller
    ref = sa_ref(k8s_cluster, caller)
    now = dt.datetime.now(dt.UTC)
    claims = {
        "issuer": k8s_cluster.issuer,
        "audiences": [sut_run.deployment.audience],
        "issued_at": now - dt.timedelta(minutes=1),
        **overrides,
    }
    return mint_token(
        k8s_cluster.signing_key,
        namespace=ref.namespace,
        service_account=ref.name,
        service_account_uid=ref.uid,
        pod=caller.pod,
        **claims,
    ).raw


@pytest.mark.conformance("SEC-001", "a real token with a forged signature is refused")
def test_forged_signature(check, sut_run, real):
    _judge_refused(check, {"forged signature": status_of(sut_run, forged.forged_signature(real))})


@pytest.mark.conformance("SEC-002", "the real claims under alg none are refused")
def test_alg_none(check, sut_run, real):
    _judge_refused(
        check,
        {
            "alg none, empty signature": status_of(sut_run, forged.alg_none(real)),
            "alg none, junk signature": status_of(sut_run, forged.alg_none(real, "AAAA")),
        },
    )


@pytest.mark.conformance("SEC-003", "the real claims signed HS256 with the cluster's public key are refused")
def test_hs256_with_the_public_key(check, k8s_cluster, sut_run, real):
    configuration = k8s_cluster.api_client.configuration
    caller = sut_run.deployment.caller
    # Reading the JWKS needs a token for the API audiences (any account may read it).
    reader = request_token(
        k8s_cluster.api_client, caller.namespace, caller.service_account, expiration_seconds=600
    )
    pem = forged.cluster_public_key_pem(
        configuration.host, configuration.ssl_ca_cert, reader.raw, forged.key_id_of(real)
    )
    check.record("public_key_from", "/openid/v1/jwks")
    _judge_refused(
        check,
        {"HS256 keyed with the public key": status_of(sut_run, forged.hs256_with_public_key(real, pem))},
    )


@pytest.mark.conformance("SEC-004", "a token signed with the cluster's key but another issuer is refused")
def test_wrong_issuer(check, k8s_cluster, sut_run):
    token = _minted(k8s_cluster, sut_run, issuer="https://issuer.attacker.invalid")
    _judge_refused(check, {"wrong issuer": status_of(sut_run, token)})


@pytest.mark.conformance("SEC-005", "a token expired beyond the leeway (5 min ago) is refused")
def test_expired_beyond_leeway(check, k8s_cluster, sut_run):
    now = dt.datetime.now(dt.UTC)
    token = _minted(
        k8s_cluster,
        sut_run,
        issued_at=now - dt.timedelta(minutes=20),
        expires_at=now - dt.timedelta(minutes=5),
    )
    _judge_refused(check, {"expired 5 min ago": status_of(sut_run, token)})


@pytest.mark.conformance("SEC-006", "a token whose nbf is 10 min in the future is refused")
def test_not_yet_valid(check, k8s_cluster, sut_run):
    now = dt.datetime.now(dt.UTC)
    token = _minted(
        k8s_cluster,
        sut_run,
        issued_at=now,
        not_before=now + dt.timedelta(minutes=10),
        expires_at=now + dt.timedelta(hours=1),
    )
    _judge_refused(check, {"nbf in 10 min": status_of(sut_run, token)})


@pytest.mark.conformance("SEC-007", "1 MiB credential headers get no grant, and the callee keeps serving")
def test_huge_headers(check, k8s_cluster, sut_run, real):
    line = sut_run.sut.callee.credential_line
    statuses = {
        "valid token + 1 MiB of padding": _raw_status(sut_run, [line(real.encode() + b" " * MIB + b"x")]),
        "1 MiB of A": _raw_status(sut_run, [line(b"A" * MIB)]),
        "valid token with a 1 MiB signature": _raw_status(sut_run, [line(real.encode() + b"A" * MIB)]),
    }
    check.record("statuses", statuses)
    check.record("status_0_means", "connection closed without an answer (no grant)")
    after = status_of(sut_run, allowed_token(k8s_cluster, sut_run))
    check.record("valid_token_afterwards", after)
    assert not any(granted(status) for status in statuses.values())
    assert granted(after), "the callee stopped granting valid tokens after the huge headers"


@pytest.mark.conformance("SEC-008", "non-ASCII and control bytes in the credential header get no grant")
def test_non_ascii_headers(check, sut_run, real):
    line = sut_run.sut.callee.credential_line
    statuses = {
        "valid + UTF-8 é": _raw_status(sut_run, [line(real.encode() + "é".encode())]),
        "right-to-left override + valid": _raw_status(sut_run, [line("\u202e".encode() + real.encode())]),
        "NUL byte inside": _raw_status(sut_run, [line(real[:20].encode() + b"\x00" + real[20:].encode())]),
        "latin-1 byte inside": _raw_status(
            sut_run, [line(real[:20].encode() + b"\xff" + real[20:].encode())]
        ),
    }
    check.record("statuses", statuses)
    assert not any(granted(status) for status in statuses.values())


@pytest.mark.conformance(
    "SEC-009", "a repeated credential header is refused as ambiguous (4xx)", level="should"
)
def test_duplicated_headers(check, k8s_cluster, sut_run, real):
    other = intruder_token(k8s_cluster, sut_run).raw
    line = sut_run.sut.callee.credential_line
    cases = {
        "valid then junk": [real, "junk"],
        "junk then valid": ["junk", real],
        "valid then intruder": [real, other],
        "intruder then valid": [other, real],
    }
    _judge_refused(
        check,
        {name: _raw_status(sut_run, [line(v.encode()) for v in values]) for name, values in cases.items()},
    )


@pytest.mark.conformance(
    "SEC-010", "a valid token anywhere but the configured header gets no grant", level="should"
)
def test_token_in_another_header(check, sut_run, real):
    header = sut_run.sut.callee.header
    if header.lower() == "authorization":
        elsewhere = {"X-Client-Id": [f"X-Client-Id: {real}".encode()]}
    else:
        elsewhere = {"Authorization: Bearer": [f"Authorization: Bearer {real}".encode()]}
    elsewhere["Proxy-Authorization: Bearer"] = [f"Proxy-Authorization: Bearer {real}".encode()]
    statuses = {name: _raw_status(sut_run, lines) for name, lines in elsewhere.items()}
    statuses["query string"] = _raw_status(sut_run, [], target=f"/?{header}={real}".encode())
    check.record("configured_header", header)
    check.record("statuses", statuses)
    assert not any(granted(status) for status in statuses.values())


# --- fail closed: the callee's Kubernetes API cut off ------------------------------------------
# Process mode: the callee's ${KUBECONFIG} names a proxy on loopback. Pod mode: the callee's in-cluster
# API address is re-pointed at an api-cut pod (pytest_k8s_sa/deploy/apicut/pod_mode.py: its container gets
# KUBERNETES_SERVICE_HOST=kubernetes, KUBERNETES_SERVICE_PORT=443, its pod enableServiceLinks: false,
# and a Service `kubernetes` in its namespace selects the cut, which forwards to default/kubernetes).
# Either way the checks can fail: a callee that grants when its review fails is granted a fresh token
# during "refused" and "hang" (tests/mutants/grant_on_review_failure in process mode;
# tests/node/test_sut_pod_mode.py runs it as a pod image on local-node and asserts SEC-011 fails).

OUTAGES = {
    "refused": ("down", b""),
    "hang": ("hang", b""),
    "garbage: plain text instead of TLS": ("plaintext", b""),
    "garbage: 500 with a success body": (
        "http",
        http_response(
            500,
            b'{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true}}',
        ),
    ),
    "garbage: 200 text": ("http", http_response(200, b"hello", content_type="text/plain")),
}


def _require_traffic_through(k8s_cluster, sut_run, proxy) -> dict[str, object]:
    """Prove the callee reaches its API through the cut: a normal verdict on a fresh token (which it
    must review) moves bytes through it. Else the outages would prove nothing: skip saying why."""
    before = proxy.traffic()
    status = status_of(sut_run, allowed_token(k8s_cluster, sut_run), timeout=30)
    through = proxy.traffic() - before
    if through <= 0:
        pytest.skip(
            f"the callee answered {status} to a fresh token without a byte through the cut ({proxy.how}): it "
            "does not reach its Kubernetes API that way (its own kubeconfig or a fixed address?), so its API "
            "cannot be cut here; RBAC-001..003 still cover the lost binding"
        )
    return {"status": status, "bytes_through_cut": through}


@pytest.fixture(scope="module")
def outages(k8s_cluster, sut_run):
    """Cut the callee's API in each way, ask with fresh tokens, restore, and time its recovery (a
    ``jwks`` callee: its key-set endpoint, :func:`key_set_outages`)."""
    proxy = sut_run.api_cut
    if proxy is None:
        pytest.skip(sut_run.api_cut_unavailable or "the callee's Kubernetes API cannot be cut here")
    if sut_run.sut.callee.verifies_offline:
        return key_set_outages(k8s_cluster, sut_run, proxy)
    normal = _require_traffic_through(k8s_cluster, sut_run, proxy)
    ask_seconds = max(OUTAGE_ANSWER_SECONDS, sut_run.sut.callee.decision_timeout_seconds) + ASK_MARGIN_SECONDS
    results: dict[str, object] = {"how": proxy.how, "normal_verdict": normal, "ask_seconds": ask_seconds}
    played, not_played = {}, {}
    with CALLEE_EXCLUSIVE:
        try:
            for name, (mode, response) in OUTAGES.items():
                if mode not in proxy.modes:
                    not_played[name] = (
                        "answers over TLS, which needs a certificate for `kubernetes` from the cluster's CA; "
                        f"the {k8s_cluster.provider} provider does not hold its key (local-node and kind do)"
                    )
                    continue
                proxy.set_mode(mode, response)
                cut_at, started = time.time(), time.monotonic()
                status = status_of(sut_run, allowed_token(k8s_cluster, sut_run), timeout=ask_seconds)
                answered = round(time.monotonic() - started, 2)
                proxy.set_mode("forward")
                recovered = recovered_after(
                    k8s_cluster, sut_run, RECOVERY_SECONDS, f"no recovery after {name}"
                )
                played[name] = {
                    "cut_at": round(cut_at, 3),
                    "status": status,
                    "answered_after_seconds": answered,
                    "recovered_after_seconds": recovered,
                }
        finally:
            proxy.set_mode("forward")
    results["played"], results["not_played"] = played, not_played
    return results


# --- fail closed, offline verifiers: the callee's key-set endpoint cut off -------------------------
# A `verification: jwks` callee fetches the cluster's key set from ${JWKS_URL}, which goes through the
# same cut. It needs the endpoint only now and then (a cached key set verifies known keys): what
# makes it fetch on demand is a token whose `kid` it does not know, signed by a key of the suite's
# own. Every outage is therefore played until the cut sees the callee try to connect (a refused port
# could not be counted, so "refused" is played as a reset on connect), and judged only if it did.

KEY_SET_OUTAGES: dict[str, tuple[str, bytes | None]] = {
    "refused: each connection reset as it opens": ("reset", b""),
    "hang": ("hang", b""),
    "garbage: plain text instead of TLS": ("plaintext", b""),
    # None: a 500 whose body is a key set holding the suite's key under the kid presented meanwhile (a
    # callee that parses the body of a failed fetch trusts the attacker's key and grants the token).
    "garbage: 500 with a key set holding the suite's key": ("http", None),
    "garbage: 200 text": ("http", http_response(200, b"hello", content_type="text/plain")),
}
FETCH_SLACK_SECONDS = 5.0
"""Beyond ``key_refresh_seconds``: how long the suite presents unknown kids before it concludes that
the callee does not fetch (one round trip and the polling)."""


class UnknownKid:
    """Fresh tokens of the allowed caller (its real claims) signed by a key of the suite's own, under a
    ``kid`` no key set of the cluster holds: a correct offline verifier refetches its key set (at a
    bounded rate) and refuses them."""

    def __init__(self, k8s_cluster, sut_run) -> None:
        self.cluster, self.run = k8s_cluster, sut_run
        self.key = forged.foreign_key()

    @staticmethod
    def new_kid(label: str) -> str:
        return f"k8s-sa-unknown-{label}-{uuid.uuid4().hex[:8]}"

    def token(self, kid: str) -> str:
        return forged.signed_by(allowed_token(self.cluster, self.run), self.key, kid)

    def lying_key_set(self, kid: str) -> bytes:
        return http_response(500, json.dumps(forged.key_set(self.key, kid)).encode())


def summarised(answers: list[tuple[int, float]]) -> dict[str, Any]:
    """Many answers as evidence: how many, by status, the slowest, and the last (the one that made the
    callee try its key-set endpoint)."""
    by_status: dict[str, int] = {}
    for status, _ in answers:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    return {
        "asked": len(answers),
        "statuses": by_status,
        "slowest_seconds": max((seconds for _, seconds in answers), default=None),
        "last": list(answers[-1]) if answers else None,
    }


def _timed(sut_run, token: str, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    status = status_of(sut_run, token, timeout=timeout)
    return status, round(time.monotonic() - started, 2)


def _until(step: Callable[[], bool], timeout: float) -> bool:
    """Repeat ``step`` (about once a second) until it returns true; False when ``timeout`` passed first."""
    try:
        wait_until(step, timeout, "not yet", max_interval=1.0)
    except WaitTimeout:
        return False
    return True


def _first_fetch(sut_run, proxy, unknown: UnknownKid, bound: float) -> dict[str, Any]:
    """Present unknown kids until bytes pass the cut (the callee fetched its key set through it).
    Skips, saying why, when none did within ``bound``: its key-set outages cannot be played then."""
    before, kid = proxy.traffic(), unknown.new_kid("normal")
    answers: list[tuple[int, float]] = []
    asked_at: list[float] = []

    def fetched() -> bool:
        asked_at.append(time.monotonic())
        answers.append(_timed(sut_run, unknown.token(kid), 30))
        return proxy.traffic() > before

    if not _until(fetched, bound):
        pytest.skip(
            f"verification: jwks, but the callee made no request through the cut ({proxy.jwks_how}) in "
            f"{bound:g} s (its key_refresh_seconds + {FETCH_SLACK_SECONDS:g}) while it was presented "
            f"{len(answers)} tokens whose kid it does not know ({summarised(answers)['statuses']}): "
            "it does not fetch its key set from ${JWKS_URL} (a fixed address? a key set read once?), "
            "so its key-set outages cannot be played here; KEY-001 judges whether it honours a new key"
        )
    return {
        "unknown_kid_answers": summarised(answers),
        "bytes_through_cut": proxy.traffic() - before,
        "at": asked_at[-1],
    }


def _play_key_set_outage(sut_run, proxy, unknown: UnknownKid, kid: str, bound: float, ask: float):
    """Inside an outage: unknown kids until the cut sees the callee try to connect (or ``bound``), then
    a fresh token of the allowed caller (its key is a known one)."""
    before = proxy.connections()
    answers: list[tuple[int, float]] = []

    def attempted() -> bool:
        answers.append(_timed(sut_run, unknown.token(kid), ask))
        return proxy.connections() > before

    exercised = _until(attempted, bound)
    asked_at = time.monotonic()
    known = _timed(sut_run, allowed_token(unknown.cluster, sut_run), ask)
    return exercised, answers, known, asked_at


def _recover_key_set(sut_run, proxy, unknown: UnknownKid, kid: str, timeout: float):
    """After an outage: unknown kids until the callee fetched through the cut again, and grants a fresh
    token of the allowed caller. ``(seconds or None, unknown-kid answers, when the fetch was asked)``."""
    before, started = proxy.traffic(), time.monotonic()
    answers: list[int] = []
    fetched_at: list[float | None] = []

    def recovered() -> bool:
        if not fetched_at:
            asked = time.monotonic()
            answers.append(status_of(sut_run, unknown.token(kid), timeout=10))
            if proxy.traffic() > before:
                fetched_at.append(asked)
        return bool(fetched_at) and granted(
            status_of(sut_run, allowed_token(unknown.cluster, sut_run), timeout=10)
        )

    ok = _until(recovered, timeout)
    return (round(time.monotonic() - started, 2) if ok else None), answers, (fetched_at or [None])[0]


def key_set_outages(k8s_cluster, sut_run, proxy) -> dict[str, Any]:
    """The key-set counterparts of the API outages, for an offline (``jwks``) callee: per outage, the
    answers to unknown kids (SEC-011: never a grant; AVAIL-002: each within decision_timeout_seconds),
    the answer to a known key (SEC-015, should: still granted while the key set was fetched less than
    key_refresh_seconds ago), and its recovery (SEC-012: it fetches through the cut and grants again)."""
    callee = sut_run.sut.callee
    bound = callee.key_refresh_seconds + FETCH_SLACK_SECONDS
    ask = max(OUTAGE_ANSWER_SECONDS, callee.decision_timeout_seconds) + ASK_MARGIN_SECONDS
    recovery = max(RECOVERY_SECONDS, bound)
    unknown = UnknownKid(k8s_cluster, sut_run)
    results: dict[str, Any] = {
        "how": proxy.jwks_how,
        "verification": "jwks",
        "ask_seconds": ask,
        "attempt_bound_seconds": bound,
        "recovery_bound_seconds": recovery,
        "key_refresh_seconds": callee.key_refresh_seconds,
    }
    played: dict[str, dict[str, Any]] = {}
    not_played: dict[str, str] = {}
    with CALLEE_EXCLUSIVE:
        normal = _first_fetch(sut_run, proxy, unknown, bound)
        last_fetch: float | None = normal.pop("at")
        results["normal_verdict"] = normal
        try:
            for index, (name, (mode, response)) in enumerate(KEY_SET_OUTAGES.items()):
                if mode not in proxy.modes:
                    not_played[name] = (
                        "answers over TLS, which needs a certificate for `kubernetes` from the cluster's CA; "
                        f"the {k8s_cluster.provider} provider does not hold its key (local-node and kind do)"
                    )
                    continue
                if played and played[next(reversed(played))]["recovered_after_seconds"] is None:
                    not_played[name] = (
                        f"the callee did not recover from the outage before ({next(reversed(played))})"
                    )
                    continue
                kid = unknown.new_kid(str(index))
                proxy.set_mode(mode, unknown.lying_key_set(kid) if response is None else response)
                cut_at = time.time()
                exercised, answers, known, known_at = _play_key_set_outage(
                    sut_run, proxy, unknown, kid, bound, ask
                )
                proxy.set_mode("forward")
                recovered, after, fetched_at = _recover_key_set(sut_run, proxy, unknown, kid, recovery)
                played[name] = {
                    "cut_at": round(cut_at, 3),
                    "exercised": exercised,
                    "unknown_kid_answers": answers,
                    "known_key": {
                        "status": known[0],
                        "answered_after_seconds": known[1],
                        "since_last_fetch_seconds": None
                        if last_fetch is None
                        else round(known_at - last_fetch, 1),
                    },
                    "unknown_kid_after_recovery": after,
                    "recovered_after_seconds": recovered,
                }
                last_fetch = fetched_at if fetched_at is not None else last_fetch
        finally:
            proxy.set_mode("forward")
    results["played"], results["not_played"] = played, not_played
    return results


def key_set_evidence(outages: dict[str, Any]) -> dict[str, Any]:
    """The key-set outages as evidence (the many answers to unknown kids summarised)."""
    return {
        name: {**r, "unknown_kid_answers": summarised(r["unknown_kid_answers"])}
        for name, r in outages["played"].items()
    }


def _key_set_verdicts(outages: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The outages the callee was seen to meet (it tried to reach the cut); skips when it met none."""
    met = {name: r for name, r in outages["played"].items() if r["exercised"]}
    if not met:
        pytest.skip(
            "the callee never tried to reach its key-set endpoint during an outage (unknown kids presented "
            f"for up to {outages['attempt_bound_seconds']:g} s each): no outage could be judged"
        )
    return met


def judge_key_set_never_grants(outages: dict[str, Any], record: Callable[[str, object], None]) -> None:
    """SEC-011 for an offline callee: no unknown-kid token granted during an outage or right after it
    (a key set poisoned by a failed fetch would grant it then)."""
    record("unexercised", [n for n, r in outages["played"].items() if not r["exercised"]])
    met = _key_set_verdicts(outages)
    grants = {
        name: [s for s, _ in r["unknown_kid_answers"] if granted(s)]
        + [s for s in r["unknown_kid_after_recovery"] if granted(s)]
        for name, r in outages["played"].items()
    }
    grants = {name: found for name, found in grants.items() if found}
    record("judged", sorted(met))
    assert not grants, f"granted a token signed by a key the cluster never had: {grants}"


def judge_key_set_recovers(outages: dict[str, Any], record: Callable[[str, object], None]) -> None:
    """SEC-012 for an offline callee: after each outage it fetches through the cut and grants again."""
    met = _key_set_verdicts(outages)
    seconds = {n: r["recovered_after_seconds"] for n, r in outages["played"].items()}
    record("recovered_after_seconds", seconds)
    record("allowed_seconds", outages["recovery_bound_seconds"])
    record("not_played", outages["not_played"])
    stuck = [n for n, s in seconds.items() if s is None]
    assert not stuck, (
        f"no fetch through the cut and no grant within {outages['recovery_bound_seconds']:g} s after: "
        f"{', '.join(stuck)}"
    )
    assert met


def judge_key_set_timely(
    outages: dict[str, Any], limit: float, record: Callable[[str, object], None]
) -> None:
    """AVAIL-002 for an offline callee: every request during an outage it met is answered in time."""
    met = _key_set_verdicts(outages)
    answers = {
        name: [
            *r["unknown_kid_answers"],
            (r["known_key"]["status"], r["known_key"]["answered_after_seconds"]),
        ]
        for name, r in met.items()
    }
    record("answers", {name: summarised(found) for name, found in answers.items()})
    record("decision_timeout_seconds", limit)
    late = {name: [a for a in found if a[0] == 0 or a[1] > limit] for name, found in answers.items()}
    late = {name: found for name, found in late.items() if found}
    assert not late, f"no answer within {limit:g} s (status, seconds): {late}"


def judge_known_keys_kept(
    outages: dict[str, Any], key_refresh: float, record: Callable[[str, object], None]
) -> None:
    """SEC-015 (should): during an outage, a token signed by a key the callee holds is still granted,
    where it was asked within key_refresh_seconds of the callee's last fetch (its cache may expire)."""
    met = _key_set_verdicts(outages)
    known = {name: r["known_key"] for name, r in met.items()}
    record("known_key", known)
    judged = {
        name: k
        for name, k in known.items()
        if k["since_last_fetch_seconds"] is not None and k["since_last_fetch_seconds"] < key_refresh
    }
    record("judged", sorted(judged))
    if not judged:
        pytest.skip(
            f"no known-key token was asked within key_refresh_seconds ({key_refresh:g}) of the callee's last "
            "fetch: its cache was allowed to have expired"
        )
    refused_known = {name: k["status"] for name, k in judged.items() if not granted(k["status"])}
    assert not refused_known, (
        f"a token signed by a key it had fetched was not granted while its key-set endpoint was out: "
        f"{refused_known}"
    )


@pytest.mark.conformance(
    "SEC-011", "with its API refused, hanging or answering garbage, the callee never grants"
)
def test_outages_never_grant(check, sut_run, outages):
    check.fidelity = sut_run.deployment.fidelity
    check.record("cut", outages["how"])
    check.record("normal_verdict", outages["normal_verdict"])
    check.record(
        "outages", key_set_evidence(outages) if outages.get("verification") == "jwks" else outages["played"]
    )
    if outages["not_played"]:
        check.record("not_played", outages["not_played"])
    _timeline(check, outages)
    if outages.get("verification") == "jwks":
        judge_key_set_never_grants(outages, check.record)
        return
    check.record("status_0_means", f"no answer within {outages['ask_seconds']:g} s")
    assert not {name: r["status"] for name, r in outages["played"].items() if granted(r["status"])}


def _timeline(check, outages) -> None:
    for name, played in outages["played"].items():
        check.event(f"API cut: {name}", at=played["cut_at"])
        if outages.get("verification") == "jwks":
            continue
        answered = played["cut_at"] + played["answered_after_seconds"]
        kind = "granted" if granted(played["status"]) else "refused"
        check.event(f"{name}: answered {played['status']}", kind=kind, at=answered)
        if played["recovered_after_seconds"] is not None:
            check.event(
                f"{name}: granted again", kind="granted", at=answered + played["recovered_after_seconds"]
            )


@pytest.mark.conformance("SEC-012", "after each outage the callee grants again by itself (no restart)")
def test_outages_recover(check, sut_run, outages):
    check.fidelity = sut_run.deployment.fidelity
    if outages.get("verification") == "jwks":
        judge_key_set_recovers(outages, check.record)
        return
    played = outages["played"]
    check.record("recovered_after_seconds", {n: r["recovered_after_seconds"] for n, r in played.items()})
    check.record("allowed_seconds", RECOVERY_SECONDS)
    assert all(r["recovered_after_seconds"] is not None for r in played.values())


@pytest.mark.conformance(
    "SEC-013", "during an outage the callee answers 503 (not another status) within 15 s", level="should"
)
def test_outages_say_503(check, sut_run, outages):
    check.fidelity = sut_run.deployment.fidelity
    played = outages["played"]
    check.record("answers", {n: (r["status"], r["answered_after_seconds"]) for n, r in played.items()})
    assert all(r["status"] == 503 for r in played.values())
    assert all(r["answered_after_seconds"] <= OUTAGE_ANSWER_SECONDS for r in played.values())


@pytest.mark.conformance(
    "AVAIL-002",
    "with its API refused, hanging or answering garbage, the callee answers within its "
    "decision_timeout_seconds (15 s)",
)
def test_outages_get_a_timely_answer(check, sut_run, outages):
    """A gate that waits as long as its API hangs turns an API brownout into an outage of every service
    behind it: each request must get an answer within the declared time. That the answer is no grant is
    SEC-011's; that it is a 503 is SEC-013's (a `should`)."""
    check.fidelity = sut_run.deployment.fidelity
    limit = sut_run.sut.callee.decision_timeout_seconds
    if outages.get("verification") == "jwks":
        judge_key_set_timely(outages, limit, check.record)
        return
    played = outages["played"]
    seconds = {n: r["answered_after_seconds"] for n, r in played.items()}
    check.record("decision_seconds", seconds)
    check.record("statuses", {n: r["status"] for n, r in played.items()})
    check.record("decision_timeout_seconds", limit)
    check.record("status_0_means", f"no answer within {outages['ask_seconds']:g} s")
    late = {
        n: (r["status"], r["answered_after_seconds"])
        for n, r in played.items()
        if r["status"] == 0 or r["answered_after_seconds"] > limit
    }
    assert not late, f"no answer within {limit:g} s (status, seconds): {late}"


@pytest.mark.conformance(
    "SEC-015",
    "while its key-set endpoint is refused, hanging or answering garbage, the callee still grants tokens "
    "signed by a key it holds",
    level="should",
)
def test_known_keys_survive_key_set_outages(check, sut_run, outages):
    check.fidelity = sut_run.deployment.fidelity
    check.record("cut", outages["how"])
    judge_known_keys_kept(outages, sut_run.sut.callee.key_refresh_seconds, check.record)

"""Security: a representative part of the hostile-input corpus, and fail-closed behaviour, against any SUT.

The full corpus (hundreds of cases) judges the reference store in ``tests/security``; these checks
are the part every implementation must (or should) pass. Every hostile token is derived from a real
one of the *allowed* caller, so only the property under test makes it invalid. Related checks
elsewhere: legacy token LEG-003, deleted pod REV-001, expired EXP-003, missing credential ACC-003.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

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
    """Cut the callee's API in each way, ask with fresh tokens, restore, and time its recovery."""
    proxy = sut_run.api_cut
    if proxy is None:
        pytest.skip(sut_run.api_cut_unavailable or "the callee's Kubernetes API cannot be cut here")
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


@pytest.mark.conformance(
    "SEC-011", "with its API refused, hanging or answering garbage, the callee never grants"
)
def test_outages_never_grant(check, sut_run, outages):
    check.fidelity = sut_run.deployment.fidelity
    check.record("cut", outages["how"])
    check.record("normal_verdict", outages["normal_verdict"])
    check.record("outages", outages["played"])
    if outages["not_played"]:
        check.record("not_played", outages["not_played"])
    check.record("status_0_means", f"no answer within {outages['ask_seconds']:g} s")
    for name, played in outages["played"].items():
        check.event(f"API cut: {name}", at=played["cut_at"])
        answered = played["cut_at"] + played["answered_after_seconds"]
        kind = "granted" if granted(played["status"]) else "refused"
        check.event(f"{name}: answered {played['status']}", kind=kind, at=answered)
        if played["recovered_after_seconds"] is not None:
            check.event(
                f"{name}: granted again", kind="granted", at=answered + played["recovered_after_seconds"]
            )
    assert not {name: r["status"] for name, r in outages["played"].items() if granted(r["status"])}


@pytest.mark.conformance("SEC-012", "after each outage the callee grants again by itself (no restart)")
def test_outages_recover(check, sut_run, outages):
    check.fidelity = sut_run.deployment.fidelity
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

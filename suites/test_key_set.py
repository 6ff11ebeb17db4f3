"""The keys a callee trusts: fetched at a bounded rate (KEY-004), never named by the token (KEY-005).

Both need no rotation (fast profile). Tokens are the allowed caller's real claims (a fresh ``jti``)
signed by a key the attacker holds (:func:`pytest_k8s_sa.sut.forged.signed_by_attacker`): only the key
makes them invalid.

**Counting at the endpoint the callee uses.** The callee's ``${JWKS_URL}`` names the API cut
(``workloads/api_cut.py``), which in ``forward`` mode passes TLS through unseen. For these checks it
switches to ``relay``: it terminates TLS with a certificate the callee trusts (process mode: the
test CA in the callee's ``ca.crt``; pod mode: a certificate for ``kubernetes`` from the cluster's CA,
where the provider holds its key), relays each request to the apiserver over a TLS connection of its
own (verified with the cluster's CA) and counts the requests by path; switching from ``forward``
closes the callee's open connections, so its next fetch is seen. Documents under
``/k8s-sa-attacker/`` (KEY-005's ``jku`` and ``x5u`` targets) are answered by the cut itself and
counted: a correct callee never asks for them. Where the cut cannot relay (no cut, or pod mode without
the cluster CA's key) KEY-004 skips saying why and KEY-005 judges the refusals only.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import time
from collections import Counter
from typing import Any

import pytest

from pytest_k8s_sa.cluster.tokens import header_kid
from pytest_k8s_sa.deploy.apicut.process_mode import ATTACKER_PREFIX
from pytest_k8s_sa.deploy.sut_deploy import SutRun
from pytest_k8s_sa.sut import forged

from .helpers import CALLEE_EXCLUSIVE, allowed_token, granted, refused, status_of
from .test_keys import key_refresh_seconds

UNKNOWN_KIDS = 100
"""KEY-004: tokens in the flood, each naming a ``kid`` nobody issued."""
FLOOD_CONCURRENCY = 4
UNKNOWN_KID_FETCHES = 5
"""KEY-004's allowance for the whole flood, on top of the callee's periodic refreshes: a refetch on
the first unknown ``kid`` and a few more for concurrent misses or a cooldown that ends meanwhile.
Maintained clients refetch at most once per cooldown (PyJWT, jose, Nimbus: 30 s by default;
keyfunc: 5 min), which the flood (a few seconds) never reaches twice; a fetch per unknown ``kid``
is 100."""
JWKS_DOCUMENT = f"{ATTACKER_PREFIX}jwks"
X5U_DOCUMENT = f"{ATTACKER_PREFIX}x5u.pem"


def _relay(sut_run: SutRun) -> tuple[Any, str | None]:
    """The cut if it can count requests here, else None and why not."""
    cut = sut_run.api_cut
    if cut is None:
        return None, sut_run.api_cut_unavailable or "the callee's Kubernetes API cannot be cut here"
    if "relay" not in cut.modes:
        return None, (
            "the cut counts requests only where it can terminate TLS with a certificate the callee "
            "trusts and verify the apiserver (process mode; pod mode where the provider holds the "
            "cluster CA's key: local-node, kind)"
        )
    return cut, None


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {path: n - before.get(path, 0) for path, n in after.items() if n - before.get(path, 0) > 0}


# --- KEY-004: a flood of unknown kids --------------------------------------------------------------


@pytest.fixture(scope="module")
def unknown_kid_flood(k8s_cluster, sut_run):
    cut, why = _relay(sut_run)
    if cut is None:
        pytest.skip(f"key-set fetches cannot be counted: {why}")
    if cut.traffic() <= 0:
        pytest.skip(
            "no byte has passed the cut since the callee started: it does not fetch its key set "
            f"through ${{JWKS_URL}} ({cut.jwks_how}), so its fetches cannot be counted there"
        )
    real = allowed_token(k8s_cluster, sut_run)
    attacker = forged.attacker_key()
    tokens = [
        forged.signed_by_attacker(real, attacker, {"kid": f"{attacker.kid}-{n:03d}"})
        for n in range(UNKNOWN_KIDS)
    ]
    kids = [header_kid(t) for t in tokens]
    with CALLEE_EXCLUSIVE:
        try:
            cut.set_mode("relay")
            before = cut.requests_by_path()
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(FLOOD_CONCURRENCY) as pool:
                statuses = list(pool.map(lambda t: status_of(sut_run, t, timeout=10), tokens))
            seconds = round(time.monotonic() - started, 2)
            fetches = _delta(cut.requests_by_path(), before)
            control = status_of(sut_run, allowed_token(k8s_cluster, sut_run), timeout=10)
        finally:
            cut.set_mode("forward")
    return {
        "how": cut.jwks_how,
        "tokens": len(tokens),
        "distinct_kids": len(set(kids)),
        "kid_example": kids[0],
        "concurrency": FLOOD_CONCURRENCY,
        "flood_seconds": seconds,
        "statuses": dict(Counter(statuses)),
        "requests_by_path": fetches,
        "control_status": control,
    }


@pytest.mark.conformance(
    "KEY-004", "100 tokens with unknown kids cause a bounded number of key-set fetches", level="should"
)
def test_unknown_kids_cause_bounded_fetches(check, sut_run, unknown_kid_flood):
    flood = unknown_kid_flood
    refresh = key_refresh_seconds(sut_run)
    periodic = math.floor(flood["flood_seconds"] / refresh) + 1
    allowed = UNKNOWN_KID_FETCHES + periodic
    fetches = sum(flood["requests_by_path"].values())
    for key, value in flood.items():
        check.record(key, value)
    check.record("key_refresh_seconds", refresh)
    check.record("allowed_fetches", allowed)
    check.record(
        "allowed_because",
        f"{UNKNOWN_KID_FETCHES} for the unknown kids + {periodic} periodic refresh(es) of every "
        f"key_refresh_seconds ({refresh:g} s) during the {flood['flood_seconds']:g} s flood",
    )
    check.record("fetches", fetches)
    assert not [s for s in flood["statuses"] if granted(int(s))], "a token with an unknown kid was granted"
    assert fetches <= allowed, (
        f"{flood['tokens']} tokens with unknown kids caused {fetches} requests to the API server "
        f"(at most {allowed} allowed): a key-set fetch per unknown kid lets anyone multiply their "
        "traffic onto the API server"
    )


# --- KEY-005: keys named by the token's own header -----------------------------------------------


def _header_cases(base_url: str, attacker: forged.AttackerKey, cluster_kid: str | None) -> dict[str, Any]:
    jku = {"jku": f"{base_url}{JWKS_DOCUMENT}"}
    x5u = {"x5u": f"{base_url}{X5U_DOCUMENT}"}
    jwk = {"jwk": attacker.public_jwk}
    x5c = {"x5c": attacker.x5c}
    return {
        "jku names the attacker's key set": jku,
        "x5u names the attacker's certificate": x5u,
        "jwk embeds the attacker's key": jwk,
        "x5c embeds the attacker's certificate": x5c,
        "jku under the cluster's own kid": {**jku, "kid": cluster_kid},
        "jwk under the cluster's own kid": {**jwk, "kid": cluster_kid},
    }


@pytest.fixture(scope="module")
def header_keys(k8s_cluster, sut_run):
    cut, why = _relay(sut_run)
    real = allowed_token(k8s_cluster, sut_run)
    attacker = forged.attacker_key()
    documents = {JWKS_DOCUMENT: json.dumps(attacker.key_set), X5U_DOCUMENT: attacker.certificate_pem}
    base = cut.callee_url if cut is not None else (sut_run.api_cut.callee_url if sut_run.api_cut else "")
    base = base or "https://127.0.0.1:9"
    cases = _header_cases(base, attacker, header_kid(real))
    statuses: dict[str, int] = {}
    counted: dict[str, int] | None = None
    control: int | None = None
    with CALLEE_EXCLUSIVE:
        try:
            if cut is not None:
                cut.set_mode("relay", json.dumps(documents).encode())
                before = cut.requests_by_path()
                # The control: through the relay the callee still grants (its refusals below are its own).
                control = status_of(sut_run, allowed_token(k8s_cluster, sut_run), timeout=30)
                if not granted(control):
                    why = f"the callee answered {control} to a valid token while the cut relayed"
                    cut.set_mode("forward")
                    cut = None
            for name, header in cases.items():
                statuses[name] = status_of(
                    sut_run, forged.signed_by_attacker(real, attacker, header), timeout=30
                )
            if cut is not None:
                counted = _delta(cut.requests_by_path(), before)
        finally:
            if cut is not None:
                cut.set_mode("forward")
    attacker_fetches = (
        {path: n for path, n in counted.items() if path.startswith(ATTACKER_PREFIX)}
        if counted is not None
        else None
    )
    return {
        "attacker_kid": attacker.kid,
        "headers": {name: sorted(h) for name, h in cases.items()},
        "statuses": statuses,
        "relay_control_status": control,
        "requests_through_the_relay": counted,
        "attacker_documents_fetched": attacker_fetches,
        "not_counted_because": None if counted is not None else why,
    }


@pytest.mark.conformance(
    "KEY-005", "a token whose header names the attacker's key (jku, x5u, jwk) is refused"
)
def test_keys_named_by_the_header_are_ignored(check, sut_run, header_keys):
    for key, value in header_keys.items():
        check.record(key, value)
    bad = {name: status for name, status in header_keys["statuses"].items() if not refused(status)}
    assert not bad, f"not refused with a 4xx: {bad}"
    fetched = header_keys["attacker_documents_fetched"]
    assert not fetched, f"the callee fetched the key the token's header named: {fetched}"

"""Hostile input against the real secret store (local provider, real kube-apiserver TokenReview).

Every case sends one request to the deployed store and requires:

* the answer is 401 or 403 (never 200, never 5xx) and, where the case says so, the store's logged
  decision ``reason`` is the expected one (so a 403 for the *wrong* reason does not pass),
* exactly one decision line was logged for it,
* the store process is still running and ``/healthz`` answers 200,
* no log line contains the presented value or its signature segment (values under 20 characters are
  not searched for: they occur in any log by chance, and were never credentials).

Tokens signed with the cluster's own key (``mint_token`` / :func:`forge`) are used for the allow-listed
API service account wherever the apiserver must refuse them, so the refusal has no other cause. Two
exceptions are deliberate: ``exp`` and ``nbf`` *within* the apiserver's 60 s leeway are accepted by
Kubernetes (a token of the API service expired 30 s ago would rightly get 200), so those cases use the
data store's service account, which is real but not allow-listed, and expect reason ``not-allowed``:
that proves the apiserver authenticated them and the allow-list refused them.

The number of cases that ran is written to ``reports/security/hostile-input.json`` and attached to
the JUnit report as a property.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from filelock import FileLock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_k8s_sa.cluster import resources
from pytest_k8s_sa.cluster.tokens import BoundObject, key_id, mint_token, request_token
from pytest_k8s_sa.plugin.fixtures import ServiceAccountRef

from ._support import LogWatch, client_id, healthy, leaked, raw_request

AUDIENCE = "secret-store"
MIB = 1024 * 1024
MALFORMED = frozenset({"malformed"})
REFUSED = frozenset({"not-authenticated"})
NOT_ALLOWED = frozenset({"not-allowed"})
MISSING = frozenset({"missing-header"})
DENIED = frozenset({401, 403})
FIXED_MINIMUM = 100
GENERATED_MINIMUM = 200
GENERATED = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def b64u(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(obj: Any) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")))


def now() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


# --- one case, and the harness that runs it -------------------------------------------------------


@dataclass
class Case:
    name: str
    lines: list[bytes]
    reasons: frozenset[str] | None = None
    method: bytes = b"GET"
    target: bytes = b"/"
    body: bytes = b""
    extra_secrets: list[str] = field(default_factory=list)

    @property
    def presented(self) -> list[str]:
        """Every header value, and every whitespace-separated part of it (``Bearer <token>``)."""
        values = [line.split(b":", 1)[1].strip().decode("latin-1") for line in self.lines if b":" in line]
        parts = [part for value in values for part in value.split() if part != value]
        return values + parts + self.extra_secrets


def header_case(name: str, value: str | bytes, reasons: frozenset[str] | None = None) -> Case:
    return Case(name, [client_id(value)], reasons)


class Harness:
    """Runs cases against one store process and checks everything the module docstring promises."""

    def __init__(self, url: str, process: Any, log_path: Path) -> None:
        self.url, self.process, self.log = url, process, LogWatch(log_path)
        self.log_path = log_path
        self.ran = 0
        self.presented: set[str] = set()
        self.always: list[str] = []
        """Credentials that appear inside many cases (the valid token): searched for after every case."""

    def problems(self, case: Case) -> list[str]:
        self.ran += 1
        self.log.new_text()  # whatever came before this case is not its business
        found: list[str] = []
        try:
            answer = raw_request(self.url, case.lines, method=case.method, target=case.target, body=case.body)
        except (OSError, ValueError) as exc:
            found.append(f"no HTTP answer: {type(exc).__name__}: {exc}"[:200])
            answer = None
        text, events = self.log.new_events()
        decisions = [e for e in events if e.get("event") == "decision"]
        if answer is not None:
            if answer.status not in DENIED:
                found.append(f"answered {answer.status} {answer.body[:60]!r}")
            if len(decisions) != 1:
                found.append(f"{len(decisions)} decision lines logged")
            elif case.reasons is not None and decisions[0].get("reason") not in case.reasons:
                found.append(f"reason {decisions[0].get('reason')!r}, expected one of {sorted(case.reasons)}")
        for value in [*case.presented, *self.always]:
            self.presented.add(value)
            where = leaked(text, value)
            if where or (len(value) >= 20 and answer is not None and value.encode("latin-1") in answer.body):
                found.append(f"presented value leaked ({', '.join(where) or 'response body'})")
        if not self.process.running():
            found.append("the store process exited")
        elif not healthy(self.url):
            found.append("/healthz does not answer 200")
        return found

    def run(self, case: Case) -> None:
        """For hypothesis: fail at once, so the example is shrunk."""
        problems = self.problems(case)
        assert not problems, f"{case.name}: {problems}"

    def whole_log_leaks(self) -> int:
        text = self.log_path.read_text(errors="replace")
        return sum(1 for value in self.presented if leaked(text, value))


@pytest.fixture(scope="module")
def harness(deployment: Any) -> Harness:
    store = deployment.callee
    assert store.process is not None
    return Harness(store.url, store.process, store.process.log_path)


def record_cases(config: pytest.Config, test: str, count: int, record_property: Callable[..., None]) -> None:
    """Merge this test's count into ``reports/security/hostile-input.json`` (xdist workers share it)."""
    record_property("hostile_input_cases", count)
    path = config.rootpath / "reports" / "security" / "hostile-input.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    run_id = str(getattr(config, "workerinput", {}).get("testrunuid", os.getpid()))
    with FileLock(str(path) + ".lock"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("run") != run_id:
            data = {"run": run_id, "tests": {}}
        data["tests"][test] = count
        data["total_cases"] = sum(data["tests"].values())
        path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"hostile-input corpus: {test}: {count} cases")


# --- signing --------------------------------------------------------------------------------------


@dataclass
class Keys:
    """The cluster's signing key and some keys the cluster has never seen."""

    real: rsa.RSAPrivateKey
    kid: str
    other_rsa: rsa.RSAPrivateKey
    other_ec: ec.EllipticCurvePrivateKey

    @property
    def public_forms(self) -> dict[str, bytes]:
        public = self.real.public_key()
        return {
            "spki-pem": public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "pkcs1-pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
            "spki-der": public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }


@pytest.fixture(scope="module")
def keys(signing_key: Path) -> Keys:
    real = serialization.load_pem_private_key(signing_key.read_bytes(), password=None)
    if not isinstance(real, rsa.RSAPrivateKey):
        pytest.skip(f"the corpus assumes an RSA signing key, the cluster has {type(real).__name__}")
    return Keys(
        real,
        key_id(real.public_key()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )


@pytest.fixture(scope="module")
def signing_key(k8s_cluster: Any) -> Path:
    """The cluster's service-account signing key (the same skip rule as the plugin's ``mint_token``)."""
    cluster = k8s_cluster
    if cluster.signing_key is None or not cluster.capabilities.holds_signing_key:
        pytest.skip(
            f"the hostile-input corpus signs tokens with the cluster's key, which the {cluster.provider} "
            "provider does not hold (local, local-node and kind do)"
        )
    return Path(cluster.signing_key)


def claims_for(issuer: str, sa: ServiceAccountRef, **overrides: Any) -> dict[str, Any]:
    """Projected-token claims (``pkg/serviceaccount/claims.go`` layout) for the store's audience."""
    t = now()
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": sa.username,
        "aud": [AUDIENCE],
        "iat": t,
        "nbf": t,
        "exp": t + 3600,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {"namespace": sa.namespace, "serviceaccount": {"name": sa.name, "uid": sa.uid}},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


DROP = object()


def sign(claims: dict[str, Any], key: Any, alg: str = "RS256", **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=headers or None)


def hmac_token(claims: dict[str, Any], secret: bytes, alg: str, kid: str | None) -> str:
    """HS* signed with bytes PyJWT refuses to use as an HMAC secret (the algorithm-confusion attack)."""
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{segment(header)}.{segment(claims)}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return f"{signing_input}.{b64u(hmac.new(secret, signing_input.encode(), digest).digest())}"


def unsigned(claims: dict[str, Any], alg: str, signature: str, kid: str | None = None) -> str:
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    return f"{segment(header)}.{segment(claims)}.{signature}"


# --- the fixed corpus -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch_namespace(k8s_cluster: Any, k8s_names: Any, deployment: Any) -> Iterator[str]:
    api = k8s_cluster.api_client
    name = k8s_names("hostile")
    resources.create_namespace(api, name, resources.run_labels(k8s_cluster.run_id))
    yield name
    resources.delete_namespace(api, name)


def real_token_cases(
    cluster: Any,
    names: Any,
    namespace: str,
    api_sa: ServiceAccountRef,
    data_sa: ServiceAccountRef,
    cleanups: list[Callable[[], object]],
) -> list[Case]:
    """Tokens the apiserver issued itself, made invalid for this store by audience or revocation."""
    api = cluster.api_client
    core = resources.core(api)

    def issue(sa_ns: str, sa: str, audiences: list[str] | None, bound: BoundObject | None = None) -> str:
        token = request_token(
            api, sa_ns, sa, audiences=audiences, expiration_seconds=3600, bound_object=bound
        )
        return token.raw

    cases = [
        header_case("real: API SA, API audiences", issue(api_sa.namespace, api_sa.name, None), REFUSED),
        header_case("real: API SA, audience other", issue(api_sa.namespace, api_sa.name, ["other"]), REFUSED),
        header_case(
            "real: API SA, audience secret-store-x",
            issue(api_sa.namespace, api_sa.name, ["secret-store-x"]),
            REFUSED,
        ),
        header_case(
            "real: API SA, audience SECRET-STORE",
            issue(api_sa.namespace, api_sa.name, ["SECRET-STORE"]),
            REFUSED,
        ),
        header_case(
            "real: data-store SA, right audience",
            issue(data_sa.namespace, data_sa.name, [AUDIENCE]),
            NOT_ALLOWED,
        ),
        header_case(
            "real: default/default, right audience", issue("default", "default", [AUDIENCE]), NOT_ALLOWED
        ),
    ]

    # A token of the allow-listed service account bound to a pod that is then deleted. It was never
    # reviewed before, so no cache (the store's or the apiserver's) can still hold a success for it.
    pod = resources.create_placeholder_pod(api, api_sa.namespace, names("doomed-pod"), api_sa.name)
    pod_bound = issue(api_sa.namespace, api_sa.name, [AUDIENCE], BoundObject("Pod", pod.name, pod.uid))
    resources.delete_pod(api, api_sa.namespace, pod.name)
    cases.append(header_case("real: API SA bound to a deleted pod", pod_bound, REFUSED))

    # Service accounts deleted after issuing (one stays deleted, one is recreated with the same name).
    for sa_name, recreate in (("ghost", False), ("phoenix", True)):
        resources.create_service_account(api, namespace, sa_name)
        raw = issue(namespace, sa_name, [AUDIENCE])
        core.delete_namespaced_service_account(sa_name, namespace)
        if recreate:
            resources.create_service_account(api, namespace, sa_name)
        cases.append(
            header_case(
                f"real: deleted service account ({'recreated' if recreate else 'gone'})", raw, REFUSED
            )
        )

    # Legacy Secret-based tokens of the allow-listed account: no audience, so refused for the store's.
    if cluster.capabilities.controller_manager:
        for label, delete in (("live", False), ("Secret deleted", True)):
            secret = names("legacy")
            resources.create_legacy_token_secret(api, api_sa.namespace, api_sa.name, secret)
            raw = resources.wait_legacy_token(api, api_sa.namespace, secret)
            if delete:
                core.delete_namespaced_secret(secret, api_sa.namespace)
            cases.append(header_case(f"real: legacy token of the API SA ({label})", raw, REFUSED))
            if not delete:
                cleanups.append(functools.partial(core.delete_namespaced_secret, secret, api_sa.namespace))
    return cases


def forged_cases(keys: Keys, issuer: str, api_sa: ServiceAccountRef, cluster_auds: list[str]) -> list[Case]:
    """Tokens for the allow-listed API service account that the apiserver must refuse."""
    good = claims_for(issuer, api_sa)
    cases: list[Case] = []

    def add(name: str, token: str, reasons: frozenset[str] = REFUSED) -> None:
        cases.append(header_case(name, token, reasons))

    # alg none (an empty signature segment does not even look like a JWT).
    add("alg none, empty signature", unsigned(good, "none", "", keys.kid), MALFORMED)
    for alg in ("none", "None", "NONE", "nOnE"):
        add(f"alg {alg}, junk signature", unsigned(good, alg, "AAAA", keys.kid))
    # HS* "signed" with the cluster's public key (algorithm confusion), with and without the real kid.
    for form, secret in keys.public_forms.items():
        for alg in ("HS256", "HS384", "HS512"):
            add(
                f"{alg} keyed with the public key ({form}), real kid", hmac_token(good, secret, alg, keys.kid)
            )
        add(f"HS256 keyed with the public key ({form}), no kid", hmac_token(good, secret, "HS256", None))
    # Signed by keys the cluster has never seen.
    other_kid = key_id(keys.other_rsa.public_key())
    for label, kid in (
        ("real kid", keys.kid),
        ("its own kid", other_kid),
        ("empty kid", ""),
        ("no kid", None),
    ):
        headers = {} if kid is None else {"kid": kid}
        add(f"RS256 by another RSA key, {label}", sign(good, keys.other_rsa, "RS256", **headers))
    add("PS256 by another RSA key, real kid", sign(good, keys.other_rsa, "PS256", kid=keys.kid))
    add("ES256 by another EC key, real kid", sign(good, keys.other_ec, "ES256", kid=keys.kid))
    add("ES256 by another EC key, no kid", sign(good, keys.other_ec, "ES256"))
    other_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys.other_rsa.public_key()))
    add("embedded jwk header (another key)", sign(good, keys.other_rsa, "RS256", kid=keys.kid, jwk=other_jwk))
    add(
        "jku header to loopback",
        sign(good, keys.other_rsa, "RS256", kid=keys.kid, jku="http://127.0.0.1:9/jwks"),
    )
    add("x5c header of junk", sign(good, keys.other_rsa, "RS256", kid=keys.kid, x5c=["MIIB"]))
    # Tampering with a genuinely signed token.
    genuine = sign(claims_for(issuer, api_sa), keys.real, "RS256", kid=keys.kid)
    head, body, sig = genuine.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    add("genuine token, signature byte flipped", f"{head}.{body}.{flipped}")
    add("genuine token, signature truncated", f"{head}.{body}.{sig[: len(sig) // 2]}")
    add("genuine token, payload re-encoded with aud other", f"{head}.{segment({**good, 'aud': ['x']})}.{sig}")
    add(
        "genuine token, header switched to HS256",
        f"{segment({'alg': 'HS256', 'kid': keys.kid})}.{body}.{sig}",
    )
    add(
        "genuine token, signature of another genuine token",
        f"{head}.{body}.{sign(good, keys.real, kid=keys.kid).split('.')[2]}",
    )
    # Validly signed with the cluster's key, but a claim is wrong.
    t = now()
    wrong_claims: dict[str, dict[str, Any]] = {
        "issuer https://evil.example": {"iss": "https://evil.example"},
        "issuer with trailing slash": {"iss": issuer + "/"},
        "issuer in upper case": {"iss": issuer.upper()},
        "issuer http instead of https": {"iss": issuer.replace("https://", "http://", 1)},
        "issuer empty": {"iss": ""},
        "issuer absent": {"iss": DROP},
        "expired 120 s ago (beyond the leeway)": {"exp": t - 120},
        "expired an hour ago": {"exp": t - 3600},
        "expired a year ago": {"exp": t - 365 * 86400, "iat": t - 366 * 86400, "nbf": t - 366 * 86400},
        "exp 0 (1970)": {"exp": 0},
        "exp as a string": {"exp": str(t + 3600)},
        "nbf 120 s ahead (beyond the leeway)": {"nbf": t + 120},
        "nbf ten years ahead": {"nbf": t + 10 * 365 * 86400},
        "iat 120 s ahead": {"iat": t + 120},
        "iat a day ahead": {"iat": t + 86400},
        "audience other": {"aud": ["other"]},
        "audience empty list": {"aud": []},
        "audience absent": {"aud": DROP},
        "audience with trailing space": {"aud": [AUDIENCE + " "]},
        "audience Secret-Store": {"aud": ["Secret-Store"]},
        "audience *": {"aud": ["*"]},
        "API audiences": {"aud": cluster_auds},
        "service account uid of a deleted incarnation": {
            "kubernetes.io": {
                "namespace": api_sa.namespace,
                "serviceaccount": {"name": api_sa.name, "uid": str(uuid.uuid4())},
            }
        },
        "service account uid absent": {
            "kubernetes.io": {"namespace": api_sa.namespace, "serviceaccount": {"name": api_sa.name}}
        },
        "no kubernetes.io claim": {"kubernetes.io": DROP},
        "service account that does not exist": {
            "sub": f"system:serviceaccount:{api_sa.namespace}:ghost",
            "kubernetes.io": {
                "namespace": api_sa.namespace,
                "serviceaccount": {"name": "ghost", "uid": api_sa.uid},
            },
        },
        "namespace that does not exist": {
            "kubernetes.io": {
                "namespace": "no-such-namespace",
                "serviceaccount": {"name": api_sa.name, "uid": api_sa.uid},
            }
        },
        "bound to a pod that does not exist": {
            "kubernetes.io": {
                "namespace": api_sa.namespace,
                "serviceaccount": {"name": api_sa.name, "uid": api_sa.uid},
                "pod": {"name": "no-such-pod", "uid": str(uuid.uuid4())},
            }
        },
        "bound to a secret that does not exist": {
            "kubernetes.io": {
                "namespace": api_sa.namespace,
                "serviceaccount": {"name": api_sa.name, "uid": api_sa.uid},
                "secret": {"name": "no-such-secret", "uid": str(uuid.uuid4())},
            }
        },
        "legacy issuer with projected claims": {"iss": "kubernetes/serviceaccount"},
    }
    for name, override in wrong_claims.items():
        add(f"cluster key, {name}", sign(claims_for(issuer, api_sa, **override), keys.real, kid=keys.kid))
    return cases


def leeway_cases(
    signing_key: Path, issuer: str, api_sa: ServiceAccountRef, data_sa: ServiceAccountRef
) -> list[Case]:
    """Time claims against the 60 s leeway, minted with the library's ``mint_token``.

    Inside the leeway the apiserver accepts, so those use the non-allow-listed data-store account and
    expect ``not-allowed`` (the apiserver authenticated it); beyond it, the allow-listed API account.
    """
    t = dt.datetime.now(dt.UTC)
    second = dt.timedelta(seconds=1)

    def mint(sa: ServiceAccountRef, **times: Any) -> str:
        return mint_token(
            signing_key,
            issuer=issuer,
            audiences=[AUDIENCE],
            namespace=sa.namespace,
            service_account=sa.name,
            service_account_uid=sa.uid,
            **times,
        ).raw

    inside = {
        "expired 30 s ago": {"issued_at": t - 600 * second, "expires_at": t - 30 * second},
        "nbf 30 s ahead": {"not_before": t + 30 * second},
        "iat 30 s ahead": {"issued_at": t + 30 * second, "not_before": t},
    }
    cases = [
        header_case(
            f"mint_token, data-store SA, {name} (inside the leeway)", mint(data_sa, **times), NOT_ALLOWED
        )
        for name, times in inside.items()
    ]
    beyond = {
        "expired 120 s ago": {"issued_at": t - 600 * second, "expires_at": t - 120 * second},
        "expired a day ago": {"issued_at": t - 2 * 86400 * second, "expires_at": t - 86400 * second},
        "nbf 120 s ahead": {"not_before": t + 120 * second},
        "iat 120 s ahead": {"issued_at": t + 120 * second, "not_before": t},
    }
    cases += [
        header_case(f"mint_token, API SA, {name} (beyond the leeway)", mint(api_sa, **times), REFUSED)
        for name, times in beyond.items()
    ]
    return cases


def header_cases(valid: str, data_store_token: str) -> list[Case]:
    """Shape, size, encoding and placement of the header; ``valid`` is a token the store would accept."""
    head, body, sig = valid.split(".")
    big = "A" * MIB

    def shaped(n: int) -> str:
        return f"{'a' * (n // 3)}.{'b' * (n // 3)}.{'c' * (n - 2 * (n // 3) - 2)}"

    cases = [
        Case("no X-Client-Id header", [], MISSING),
        Case("empty X-Client-Id", [b"X-Client-Id:"], MALFORMED),
        header_case("whitespace-only X-Client-Id", b" \t ", MALFORMED),
    ]
    for value in (
        "null",
        "undefined",
        "Bearer",
        "a",
        "a.b",
        "a.b.c.d",
        "a..c",
        ".b.c",
        "a.b.",
        "...",
        "eyJhbGciOiJSUzI1NiJ9",
        "a=.b=.c=",
        "a+b.c/d.e",
        "a b.c.d",
        "a\tb.c.d",
        "%2E%2E",
        "' OR 1=1 --",
        "${jndi:ldap://127.0.0.1:9/a}",
        "../../etc/passwd",
        "{}",
        "[]",
        f"Bearer {valid}",
        f"{valid}.x",
        f"{valid} x",
        f"{valid}=",
        f"{head}.{body}",
        f"{head}%2E{body}%2E{sig}",
        f"{valid},{valid}",
        f"{valid};{valid}",
        f'"{valid}"',
        f"{head}.{body}.{sig}.",
        f".{valid}",
    ):
        cases.append(header_case(f"shape: {value[:40]!r}", value, MALFORMED))
    sized = {
        "1 MiB of A": big,
        "1 MiB JWT-shaped": shaped(MIB),
        "MAX_TOKEN_BYTES + 1, JWT-shaped": shaped(16385),
        "valid token with a 1 MiB signature": f"{head}.{body}.{sig}{'A' * MIB}",
        "valid token with 1 MiB of padding": valid + " " * MIB + "x",
    }
    for name, value in sized.items():
        cases.append(header_case(f"size: {name}", value, MALFORMED))
    non_ascii: dict[str, bytes] = {
        "valid + UTF-8 é": valid.encode() + "é".encode(),
        "UTF-8 text only": "été à Zürich".encode(),
        "emoji": "🔑.🔑.🔑".encode(),
        "latin-1 byte in the payload": f"{head}.".encode() + b"\xff" + f"{body}.{sig}".encode(),
        "zero-width space inside": f"{head}.{body}".encode() + "\u200b".encode() + f".{sig}".encode(),
        "right-to-left override": "\u202e".encode() + valid.encode(),
        "full-width dots": f"{head}\uff0e{body}\uff0e{sig}".encode(),
        "U+2028 line separator": valid.encode() + "\u2028".encode(),
        "NUL byte": f"{head}.{body}".encode() + b"\x00." + sig.encode(),
        "terminal escape": b"\x1b[31m" + valid.encode() + b"\x1b[0m",
        "DEL byte": valid.encode() + b"\x7f",
        "log injection": b'x","decision":"allow","status":200,"reason":"' + valid.encode(),
        "JSON line injection": b'\\n{"event":"decision","decision":"allow"}',
    }
    for name, raw_value in non_ascii.items():
        cases.append(header_case(f"encoding: {name}", raw_value, MALFORMED))
    half = len(valid) // 2
    cases.append(
        Case(
            "obs-fold: valid token folded over two lines",
            [client_id(valid[:half]), b" " + valid[half:].encode()],
            MALFORMED,
        )
    )
    repeats = {
        "valid twice": [valid, valid],
        "valid then junk": [valid, "junk"],
        "junk then valid": ["junk", valid],
        "empty then valid": ["", valid],
        "valid then empty": [valid, ""],
        "valid three times": [valid] * 3,
        "valid fifty times": [valid] * 50,
        "valid then data-store token": [valid, data_store_token],
        "data-store token then valid": [data_store_token, valid],
    }
    for name, values in repeats.items():
        cases.append(Case(f"repeated header: {name}", [client_id(v) for v in values], MALFORMED))
    elsewhere = {
        "Authorization: Bearer (no X-Client-Id)": [f"Authorization: Bearer {valid}".encode()],
        "Proxy-Authorization: Bearer": [f"Proxy-Authorization: Bearer {valid}".encode()],
        "X-Client-Id-Token header": [f"X-Client-Id-Token: {valid}".encode()],
        "X_Client_Id header (underscores)": [f"X_Client_Id: {valid}".encode()],
        "X-Forwarded-Client-Id header": [f"X-Forwarded-Client-Id: {valid}".encode()],
        "Cookie X-Client-Id=": [f"Cookie: X-Client-Id={valid}".encode()],
    }
    for name, lines in elsewhere.items():
        cases.append(Case(f"elsewhere: {name}", lines, MISSING))
    cases.append(
        Case(
            "elsewhere: Authorization: Bearer valid with junk X-Client-Id",
            [f"Authorization: Bearer {valid}".encode(), client_id("junk")],
            MALFORMED,
        )
    )
    cases.append(
        Case(
            "elsewhere: in the query string",
            [],
            MISSING,
            target=f"/?X-Client-Id={valid}".encode(),
            extra_secrets=[valid],
        )
    )
    cases.append(
        Case(
            "elsewhere: in a POST body",
            [],
            MISSING,
            method=b"POST",
            body=f"X-Client-Id: {valid}".encode(),
            extra_secrets=[valid],
        )
    )
    for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS"):
        cases.append(
            Case(f"method {method.decode()} with junk", [client_id("junk")], MALFORMED, method=method)
        )
    return cases


def test_the_store_grants_the_api_token(deployment, api_token, harness):
    """Control: the harness reaches the real store, and the API service's token does get 200.

    Without this, a store that refused everything would pass the corpus.
    """
    answer = raw_request(deployment.callee.url, [client_id(api_token.raw)])
    assert answer.status == 200
    assert api_token.raw not in deployment.callee.process.log_path.read_text()


def test_fixed_corpus(
    request,
    record_property,
    k8s_cluster,
    k8s_names,
    deployment,
    api_sa,
    data_store_sa,
    api_token,
    keys,
    signing_key,
    scratch_namespace,
    harness,
):
    issuer = k8s_cluster.issuer
    data_store_token = request_token(
        k8s_cluster.api_client, data_store_sa.namespace, data_store_sa.name, audiences=[AUDIENCE]
    ).raw
    harness.always = [api_token.raw, data_store_token]
    cleanups: list[Callable[[], object]] = []
    try:
        cases = [
            # First: "expired 30 s ago" leaves the leeway 30 s after it is minted.
            *leeway_cases(signing_key, issuer, api_sa, data_store_sa),
            *header_cases(api_token.raw, data_store_token),
            *forged_cases(keys, issuer, api_sa, k8s_cluster.api_audiences),
            *real_token_cases(k8s_cluster, k8s_names, scratch_namespace, api_sa, data_store_sa, cleanups),
        ]
        failures = {case.name: problems for case in cases if (problems := harness.problems(case))}
    finally:
        for cleanup in cleanups:
            cleanup()
    record_cases(request.config, "fixed", len(cases), record_property)
    assert not failures, json.dumps(failures, indent=1)
    assert len(cases) >= FIXED_MINIMUM
    assert harness.whole_log_leaks() == 0


# --- the generated corpus -------------------------------------------------------------------------

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
header_bytes = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(lambda s: s.encode("utf-8")),
).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
jwt_shaped = st.tuples(*[st.text(B64URL, min_size=1, max_size=300)] * 3).map(".".join)
dns_label = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)


def test_generated_corpus(request, record_property, k8s_cluster, api_sa, api_token, keys, harness):
    issuer, valid = k8s_cluster.issuer, api_token.raw
    harness.always = [valid]
    started = harness.ran

    @settings(GENERATED, max_examples=60)
    @given(header_bytes)
    def arbitrary_header_values(value: bytes) -> None:
        harness.run(header_case("generated: arbitrary bytes", value, MALFORMED | REFUSED))

    @settings(GENERATED, max_examples=45)
    @given(jwt_shaped)
    def jwt_shaped_garbage(value: str) -> None:
        harness.run(header_case("generated: JWT-shaped garbage", value, MALFORMED | REFUSED))

    t = now()
    mutations = st.one_of(
        st.text(max_size=60).filter(lambda s: s != issuer).map(lambda s: {"iss": s}),
        st.lists(st.text(max_size=20), max_size=3)
        .filter(lambda a: AUDIENCE not in a)
        .map(lambda a: {"aud": a}),
        st.integers(180, 10**9).map(lambda d: {"exp": t - d}),
        st.integers(180, 10**9).map(lambda d: {"nbf": t + d}),
        st.integers(180, 10**9).map(lambda d: {"iat": t + d}),
        st.uuids()
        .map(str)
        .filter(lambda u: u != api_sa.uid)
        .map(
            lambda u: {
                "kubernetes.io": {
                    "namespace": api_sa.namespace,
                    "serviceaccount": {"name": api_sa.name, "uid": u},
                }
            }
        ),
        dns_label.filter(lambda n: n != api_sa.name).map(
            lambda n: {
                "kubernetes.io": {
                    "namespace": api_sa.namespace,
                    "serviceaccount": {"name": n, "uid": api_sa.uid},
                }
            }
        ),
        dns_label.filter(lambda n: n != api_sa.namespace).map(
            lambda n: {
                "kubernetes.io": {"namespace": n, "serviceaccount": {"name": api_sa.name, "uid": api_sa.uid}}
            }
        ),
    )

    @settings(GENERATED, max_examples=60)
    @given(mutations)
    def cluster_signed_with_a_wrong_claim(override: dict[str, Any]) -> None:
        token = sign(claims_for(issuer, api_sa, **override), keys.real, kid=keys.kid)
        harness.run(header_case(f"generated: cluster key, {sorted(override)}", token, REFUSED))

    @settings(GENERATED, max_examples=35)
    @given(
        st.sampled_from(["rsa", "ec"]),
        st.one_of(st.none(), st.just("real"), st.text(B64URL, max_size=43)),
        st.dictionaries(st.sampled_from(["x", "role", "admin", "groups"]), st.text(max_size=10), max_size=2),
    )
    def signed_by_another_key(kind: str, kid: str | None, extra: dict[str, str]) -> None:
        key, alg = (keys.other_rsa, "RS256") if kind == "rsa" else (keys.other_ec, "ES256")
        headers = {} if kid is None else {"kid": keys.kid if kid == "real" else kid}
        token = sign(claims_for(issuer, api_sa, **extra), key, alg, **headers)
        harness.run(header_case(f"generated: {alg} by another key", token, REFUSED))

    @settings(GENERATED, max_examples=30)
    @given(
        st.lists(
            st.sampled_from([valid, "", "junk", "a.b.c"]) | header_bytes.map(lambda b: b.decode("latin-1")),
            min_size=2,
            max_size=8,
        )
    )
    def repeated_headers(values: list[str]) -> None:
        harness.run(Case("generated: repeated X-Client-Id", [client_id(v) for v in values], MALFORMED))

    for generated in (
        arbitrary_header_values,
        jwt_shaped_garbage,
        cluster_signed_with_a_wrong_claim,
        signed_by_another_key,
        repeated_headers,
    ):
        generated()
    ran = harness.ran - started
    record_cases(request.config, "generated", ran, record_property)
    assert ran >= GENERATED_MINIMUM, f"only {ran} generated cases ran"
    assert harness.whole_log_leaks() == 0

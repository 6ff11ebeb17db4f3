"""Service-account tokens: request (TokenRequest), review (TokenReview), decode and mint.

All of it goes through the official ``kubernetes`` client to a real kube-apiserver, except
:func:`mint_token`, which signs a token with the cluster's own key (the local provider has it).
The apiserver still validates a minted token for real; minting only lets a test choose ``iat``,
``nbf`` and ``exp``, which is how the upstream integration tests check expiry without waiting.

A :class:`Token` never shows its raw value in ``repr``: tokens end up in assertion messages and
CI logs otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import kubernetes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..base.waiting import WaitTimeout, wait_until
from ..components import pki
from . import rest

SA_PREFIX = "system:serviceaccount:"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


def decode_claims(raw: str) -> dict[str, Any]:
    """The token's payload, *unverified*: for inspecting a token, never for trusting it."""
    claims: dict[str, Any] = jwt.decode(raw, options={"verify_signature": False})
    return claims


def header_kid(raw: str) -> str | None:
    """The ``kid`` in the token's header, *unverified*: which key says it signed it."""
    kid = jwt.get_unverified_header(raw).get("kid")
    return str(kid) if kid is not None else None


@dataclass(frozen=True)
class Token:
    """A raw service-account token with its decoded claims."""

    raw: str = field(repr=False)
    claims: dict[str, Any] = field(repr=False)
    expiration_timestamp: dt.datetime | None = None
    """``status.expirationTimestamp`` of the TokenRequest (None for legacy or minted tokens)."""

    @classmethod
    def from_raw(cls, raw: str, expiration_timestamp: dt.datetime | None = None) -> Token:
        return cls(raw, decode_claims(raw), expiration_timestamp)

    @property
    def audiences(self) -> list[str]:
        aud = self.claims.get("aud", [])
        return [aud] if isinstance(aud, str) else list(aud)

    @property
    def expires_at(self) -> dt.datetime | None:
        exp = self.claims.get("exp")
        return dt.datetime.fromtimestamp(exp, dt.UTC) if exp is not None else None

    @property
    def jti(self) -> str | None:
        return self.claims.get("jti")

    @property
    def subject(self) -> str | None:
        return self.claims.get("sub")

    @property
    def kubernetes_claims(self) -> dict[str, Any]:
        return dict(self.claims.get("kubernetes.io", {}))

    def __repr__(self) -> str:
        exp = self.claims.get("exp")
        return f"Token(sub={self.subject!r}, aud={self.audiences!r}, exp={exp!r}, jti={self.jti!r})"


@dataclass(frozen=True)
class BoundObject:
    """What a token is bound to: a Pod, Secret or Node (``boundObjectRef``)."""

    kind: str
    name: str
    uid: str | None = None

    def to_json(self) -> dict[str, str]:
        """The ``boundObjectRef`` of a TokenRequest."""
        ref = {"apiVersion": "v1", "kind": self.kind, "name": self.name}
        return ref | {"uid": self.uid} if self.uid else ref


def request_token(
    api_client: kubernetes.client.ApiClient,
    namespace: str,
    service_account: str,
    *,
    audiences: list[str] | None = None,
    expiration_seconds: int | None = None,
    bound_object: BoundObject | None = None,
) -> Token:
    """TokenRequest for ``namespace/service_account``; raises ``ApiException`` as the API answers.

    Plain JSON (:mod:`.rest`), not the client's ``CoreV1Api``: a run's first tokens are on the path
    to the first check while that class is still being imported."""
    spec: dict[str, Any] = {"audiences": list(audiences or [])}
    if expiration_seconds is not None:
        spec["expirationSeconds"] = expiration_seconds
    if bound_object is not None:
        spec["boundObjectRef"] = bound_object.to_json()
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    path = rest.path("/api/v1/namespaces/{}/serviceaccounts/{}/token", namespace, service_account)
    status = rest.call(api_client, "POST", path, body).get("status") or {}
    expiration = status.get("expirationTimestamp")
    return Token.from_raw(status["token"], dt.datetime.fromisoformat(expiration) if expiration else None)


@dataclass(frozen=True)
class TokenReviewResult:
    """The ``status`` of a TokenReview, typed."""

    authenticated: bool
    username: str | None = None
    uid: str | None = None
    groups: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)
    audiences: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def service_account(self) -> tuple[str, str] | None:
        """``(namespace, name)`` for a service-account user, else None."""
        if not self.username or not self.username.startswith(SA_PREFIX):
            return None
        namespace, _, name = self.username[len(SA_PREFIX) :].partition(":")
        return namespace, name

    @property
    def jti(self) -> str | None:
        for value in self.extra.get(CREDENTIAL_ID, []):
            if value.startswith("JTI="):
                return value[4:]
        return None


@dataclass(frozen=True)
class LegacyToken:
    """A legacy ``kubernetes.io/service-account-token`` Secret and the token it holds."""

    namespace: str
    secret_name: str
    token: Token


def raw_token(token: object) -> str:
    """The raw JWT of ``token``: a ``str``, a :class:`Token` or a ``LegacyToken`` (its ``.token``).

    Anything else is a :class:`TypeError` naming what was passed, here rather than as a validation
    error from deep inside the client.
    """
    if isinstance(token, LegacyToken):
        token = token.token
    if isinstance(token, Token):
        return token.raw
    if isinstance(token, str):
        return token
    raise TypeError(
        f"expected a token (str, pytest_k8s_sa.cluster.tokens.Token or LegacyToken), "
        f"got {type(token).__name__}"
    )


def review_token(
    api_client: kubernetes.client.ApiClient,
    token: str | Token | LegacyToken,
    audiences: list[str] | None = None,
) -> TokenReviewResult:
    """TokenReview of ``token`` for ``audiences`` (None: the API audiences), as ``api_client``'s user.

    ``token``: the raw JWT, a :class:`Token` or a ``LegacyToken``; anything else is a ``TypeError``.
    """
    spec: dict[str, Any] = {"token": raw_token(token)}
    if audiences:
        spec["audiences"] = list(audiences)
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    status = (
        rest.call(api_client, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", body).get("status") or {}
    )
    user = status.get("user") or {}
    return TokenReviewResult(
        authenticated=bool(status.get("authenticated")),
        username=user.get("username"),
        uid=user.get("uid"),
        groups=list(user.get("groups") or []),
        extra={k: list(v) for k, v in (user.get("extra") or {}).items()},
        audiences=list(status.get("audiences") or []),
        error=status.get("error") or None,
    )


def key_id(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """The ``kid`` the apiserver puts in tokens: base64url(SHA-256(DER of the public key))."""
    return pki.key_id(public_key)


def mint_token(
    signing_key: Path,
    *,
    issuer: str,
    audiences: list[str],
    namespace: str,
    service_account: str,
    service_account_uid: str,
    issued_at: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
    expires_at: dt.datetime | None = None,
    pod: BoundObject | None = None,
    secret: BoundObject | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> Token:
    """Sign a projected-style token with the cluster's own service-account key.

    ``expires_at=None`` means one hour after ``issued_at``. The claim layout follows
    ``pkg/serviceaccount/claims.go``; the apiserver checks the signature, issuer, audience, time
    claims (60 s leeway) and that the named objects still exist with these UIDs.
    """
    key = serialization.load_pem_private_key(signing_key.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TypeError(f"unsupported signing key type {type(key).__name__}")
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    iat = issued_at or dt.datetime.now(dt.UTC)
    k8s: dict[str, Any] = {
        "namespace": namespace,
        "serviceaccount": {"name": service_account, "uid": service_account_uid},
    }
    if pod:
        k8s["pod"] = {"name": pod.name, "uid": pod.uid}
    if secret:
        k8s["secret"] = {"name": secret.name, "uid": secret.uid}
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": f"{SA_PREFIX}{namespace}:{service_account}",
        "aud": audiences,
        "iat": int(iat.timestamp()),
        "nbf": int((not_before or iat).timestamp()),
        "exp": int((expires_at or iat + dt.timedelta(hours=1)).timestamp()),
        "jti": str(uuid.uuid4()),
        "kubernetes.io": k8s,
        **(extra_claims or {}),
    }
    raw = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": key_id(key.public_key())})
    return Token.from_raw(raw)


APISERVER_AUTH_CACHE_SECONDS = 10
"""kube-apiserver caches successful token authentications for 10 s: revocation shows up late."""


def wait_past_cache(
    condition: Callable[[], bool], cache_started: float | None, timeout: float, message: str
) -> None:
    """Wait (up to ``timeout``) until ``condition()``, which reviews tokens, is true.

    ``cache_started``: ``time.monotonic()`` of the last successful review of those tokens for the
    same audiences. The apiserver answers from its cache until :data:`APISERVER_AUTH_CACHE_SECONDS`
    after it, so ``condition`` is polled lightly (every second) until shortly before then, and every
    50 ms after: a refusal is seen within ~0.1 s of happening instead of up to a second late, without
    a hundred reviews a second meanwhile. None: polled lightly throughout."""
    deadline = time.monotonic() + timeout
    if cache_started is not None:
        closely_from = min(cache_started + APISERVER_AUTH_CACHE_SECONDS - 0.5, deadline)
        if closely_from > time.monotonic():
            with contextlib.suppress(WaitTimeout):
                wait_until(condition, closely_from - time.monotonic(), message, max_interval=1.0)
                return
    wait_until(
        condition,
        max(0.1, deadline - time.monotonic()),
        message,
        max_interval=1.0 if cache_started is None else 0.05,
    )


def wait_until_refused(
    review: Callable[[], TokenReviewResult],
    timeout: float = APISERVER_AUTH_CACHE_SECONDS * 3,
    *,
    cache_started: float | None = None,
) -> tuple[TokenReviewResult, float]:
    """Repeat ``review`` until it is refused; return the refusal and the seconds it took.

    A revoked token may stay authenticated for up to the apiserver's cache TTL, so a check of
    revocation has to wait for the refusal (with a deadline) rather than expect it at once;
    ``cache_started`` as for :func:`wait_past_cache`. Raises ``WaitTimeout`` at ``timeout``.
    """
    started = time.monotonic()
    results: list[TokenReviewResult] = []

    def refused() -> bool:
        results.append(review())
        return not results[-1].authenticated

    wait_past_cache(refused, cache_started, timeout, "token is still authenticated after revocation")
    return results[-1], time.monotonic() - started

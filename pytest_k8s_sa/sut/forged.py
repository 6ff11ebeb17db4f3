"""Forged tokens derived from a real one: what an attacker who holds or saw a token can build.

Used by the suite's ``SEC-*`` checks (against any SUT) and the project's full corpus in
``tests/security``. Every function takes the raw token the cluster issued and returns a string a
correct service must refuse; none needs the cluster's private key (minted tokens with a wrong
issuer or a future ``nbf`` come from :func:`.tokens.mint_token`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict[str, Any]) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def _parts(raw: str) -> tuple[dict[str, Any], str, str]:
    head, body, signature = raw.split(".")
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return header, body, signature


def forged_signature(raw: str) -> str:
    """The real header and claims with a signature of the same length that is not the real one."""
    head, body, signature = raw.split(".")
    flipped = "A" if signature[0] != "A" else "B"
    return f"{head}.{body}.{flipped}{signature[1:-4]}{signature[-4:][::-1]}"


def alg_none(raw: str, signature: str = "") -> str:
    """The real claims under ``alg: none`` (RFC 7519 unsecured JWT), with ``signature`` (empty or junk)."""
    header, body, _ = _parts(raw)
    return f"{segment({**header, 'alg': 'none'})}.{body}.{signature}"


def hs256_with_public_key(raw: str, public_key_pem: bytes) -> str:
    """The algorithm-confusion attack: the real claims "signed" with HS256 keyed by the public key."""
    header, body, _ = _parts(raw)
    signing_input = f"{segment({**header, 'alg': 'HS256'})}.{body}"
    digest = hmac.new(public_key_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64u(digest)}"


def cluster_public_key_pem(api_host: str, ca_file: str | None, bearer: str, kid: str) -> bytes:
    """The cluster's public key with ``kid`` as PEM, from its JWKS (any authenticated account may read it)."""
    answer = requests.get(
        f"{api_host}/openid/v1/jwks",
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=10,
        verify=ca_file or True,
    )
    answer.raise_for_status()
    keys = jwt.PyJWKSet.from_dict(answer.json())
    key = next(k for k in keys.keys if k.key_id == kid)
    return bytes(
        key.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def key_id_of(raw: str) -> str:
    return str(_parts(raw)[0].get("kid", ""))


def foreign_key() -> rsa.RSAPrivateKey:
    """A signing key of the suite's own, which no cluster's key set holds."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signed_by(raw: str, key: rsa.RSAPrivateKey, kid: str) -> str:
    """The real token's claims, RS256-signed by ``key`` under a ``kid`` the callee does not know: a
    valid-looking token no key of the cluster verifies (an offline verifier must refetch or refuse)."""
    claims = jwt.decode(raw, options={"verify_signature": False})
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def key_set(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """A JWKS holding ``key``'s public half under ``kid`` (what a lying key-set endpoint would serve)."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}

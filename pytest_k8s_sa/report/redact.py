"""Tokens never leave a run: every string a report writer emits goes through :func:`redact`.

A JWT (three base64url segments, the first starting ``eyJ``: a JSON object) is replaced by what a
reader may know about it: its ``jti``, subject and expiry, read from the payload without verifying
it (verification is not the point; the point is that the value can no longer be replayed).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
"""A compact JWS or JWT: header.payload.signature (the signature may be empty: ``alg: none``)."""
SUMMARY_CLAIMS = ("jti", "sub", "iss", "aud", "iat", "nbf", "exp")


def claims_of(token: str) -> dict[str, Any]:
    """The token's payload claims, unverified; an empty dict when it is not decodable JSON."""
    try:
        payload = token.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def token_summary(token: str) -> dict[str, Any]:
    """What the report may keep of a token: its identifying claims (``jti`` first), never the token."""
    claims = claims_of(token)
    summary = {k: claims[k] for k in SUMMARY_CLAIMS if k in claims}
    pod = (
        (claims.get("kubernetes.io") or {}).get("pod")
        if isinstance(claims.get("kubernetes.io"), dict)
        else None
    )
    if isinstance(pod, dict) and "name" in pod:
        summary["pod"] = pod["name"]
    return summary


def _placeholder(match: re.Match[str]) -> str:
    summary = token_summary(match.group(0))
    jti = summary.get("jti")
    sub = summary.get("sub")
    parts = [f"jti={jti}" if jti else "no jti", f"sub={sub}" if sub else None]
    return "<token " + ", ".join(p for p in parts if p) + ">"


def redact_text(text: str) -> str:
    return JWT.sub(_placeholder, text)


def redact(value: Any) -> Any:
    """``value`` with every JWT in every string (keys too) replaced by ``<token jti=..., sub=...>``."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact(k): redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def find_tokens(text: str) -> list[str]:
    """JWTs in ``text`` (the tests' guard over every output), shortened so a failure leaks nothing."""
    return [m.group(0)[:12] + "..." for m in JWT.finditer(text)]

"""Mutant: no TokenReview at all; trusts the service account named in the JWT *payload*.

The signature, expiry, audience and revocation are never checked: anyone who can write a JSON
object naming an allowed account gets in.
"""

import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


class Mutant(ref.SecretStoreApp):
    def _review(self, token: str) -> ref.Review:
        # MUTATION: decode the payload, never ask the API.
        payload = token.split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            username = str(claims["sub"])
        except (ValueError, KeyError, TypeError):
            return ref.Review(False, "unreadable", (), "", None)
        return ref.Review(True, "", (self.config.audience,), username, claims.get("jti"))


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())

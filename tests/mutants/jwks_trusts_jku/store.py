"""Mutant (jwks): a token's ``jku`` header is trusted.

When the header names a key-set URL (``jku``), the key is fetched from there (with the same CA
bundle as its own key set) instead of from ``JWKS_URL``: whoever makes the token chooses the key
that verifies it (KEY-005). Tokens without ``jku`` are verified as in the control.
"""

import ssl
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jwt
from _jwks import OfflineStore, main


class Mutant(OfflineStore):
    def key_client(self, url: str, refresh: float, context: ssl.SSLContext) -> jwt.PyJWKClient:
        self.context = context
        return super().key_client(url, refresh, context)

    def signing_key(self, token: str) -> Any:
        jku = jwt.get_unverified_header(token).get("jku")
        if not jku:
            return super().signing_key(token)
        # MUTATION: the key set the token itself names.
        named = jwt.PyJWKClient(str(jku), ssl_context=self.context, timeout=5)
        return named.get_signing_key_from_jwt(token).key


if __name__ == "__main__":
    raise SystemExit(main(Mutant))

"""Mutant (jwks): fails open when the key set cannot be fetched.

While ``JWKS_URL`` is refused, hanging or answering garbage, a token whose ``kid`` the store does not
hold is granted on its unverified claims ("the API is down, let traffic through") instead of being
refused: anyone can mint such a token during an outage (SEC-011 in jwks mode).
"""

import sys
from pathlib import Path

import jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _jwks import OfflineStore, main

from pytest_k8s_sa.workloads import secret_store as ref


class Mutant(OfflineStore):
    def _review(self, token: str) -> ref.Review:
        try:
            self.signing_key(token)
        except jwt.PyJWKClientConnectionError:
            # MUTATION: the key set is unreachable, so trust the claims as they are.
            claims = jwt.decode(token, options={"verify_signature": False})
            return ref.Review(
                True, "", (self.config.audience,), str(claims.get("sub", "")), claims.get("jti")
            )
        except (jwt.PyJWKClientError, jwt.InvalidTokenError):
            pass
        return super()._review(token)


if __name__ == "__main__":
    raise SystemExit(main(Mutant))

"""Mutant (jwks): the key set is fetched once and never again.

No periodic refresh and no refetch on an unknown ``kid``: the keys of the first fetch are all it ever
knows. After the cluster adds a signing key every new token is refused (KEY-001), and a retired key
is trusted for ever (KEY-003).
"""

import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jwt
from _jwks import OfflineStore, main

NEVER_SECONDS = 10.0**9


class Mutant(OfflineStore):
    def key_client(self, url: str, refresh: float, context: ssl.SSLContext) -> jwt.PyJWKClient:
        # MUTATION: the first key set is cached "for ever" and an unknown kid never refetches it.
        return super().key_client(url, NEVER_SECONDS, context, cooldown=NEVER_SECONDS)


if __name__ == "__main__":
    raise SystemExit(main(Mutant))

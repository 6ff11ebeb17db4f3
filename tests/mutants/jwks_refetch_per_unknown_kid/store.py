"""Mutant (jwks, should-level): the key set is refetched for every unknown ``kid``.

Like the control, but without a cooldown between forced refetches: each token that names a ``kid``
the key set lacks costs the API server a key-set fetch, so anyone who can send requests multiplies
them onto it (KEY-004, a ``should``).
"""

import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jwt
from _jwks import OfflineStore, main


class Mutant(OfflineStore):
    def key_client(self, url: str, refresh: float, context: ssl.SSLContext) -> jwt.PyJWKClient:
        # MUTATION: no cooldown: an unknown kid always refetches.
        return super().key_client(url, refresh, context, cooldown=0.0)


if __name__ == "__main__":
    raise SystemExit(main(Mutant))

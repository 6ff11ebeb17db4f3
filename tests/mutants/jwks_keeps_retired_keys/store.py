"""Mutant (jwks): retired keys are kept for ever (the union of every key set ever fetched).

It refetches like the control (new keys are honoured), but merges each fetched set into the keys it
already had instead of replacing them: a key the cluster retired keeps verifying (KEY-003).
"""

import ssl
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jwt
from _jwks import OfflineStore, main


class UnionClient(jwt.PyJWKClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[str, jwt.PyJWK] = {}
        self.seen_lock = threading.Lock()

    def get_signing_keys(self, refresh: bool = False) -> list[jwt.PyJWK]:
        fetched = super().get_signing_keys(refresh)
        with self.seen_lock:
            # MUTATION: add what the cluster publishes now, never drop what it no longer publishes.
            self.seen.update({str(key.key_id): key for key in fetched})
            return list(self.seen.values())


class Mutant(OfflineStore):
    def key_client(self, url: str, refresh: float, context: ssl.SSLContext) -> jwt.PyJWKClient:
        return super().key_client(url, refresh, context, client=UnionClient)


if __name__ == "__main__":
    raise SystemExit(main(Mutant))

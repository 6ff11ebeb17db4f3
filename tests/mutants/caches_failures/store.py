"""Mutant: caches every refusal and unavailability, forever, keyed by the token.

Once the API hiccups (or the store briefly loses its review rights), that token stays refused even
after the API is back.
"""

import hashlib
import sys
import threading
from email.message import Message
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref

_lock = threading.Lock()
_failures: dict[str, ref.Decision] = {}


class Mutant(ref.SecretStoreApp):
    def decide(self, headers: Message) -> ref.Decision:
        values = headers.get_all("X-Client-Id") or []
        key = hashlib.sha256("\0".join(values).encode()).hexdigest()
        with _lock:
            cached = _failures.get(key)
        if cached is not None:
            return cached
        decision = super().decide(headers)
        if decision.status in (403, 503):  # MUTATION: negative caching without expiry
            with _lock:
                _failures[key] = decision
        return decision


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())

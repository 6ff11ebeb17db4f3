"""Mutant: looks the header up case-sensitively (HTTP header names are case-insensitive).

A caller (or proxy, or HTTP/2 hop, which lowercases every name) sending ``x-client-id`` is treated as
sending no header at all.
"""

import sys
from email.message import Message
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


class Mutant(ref.SecretStoreApp):
    def decide(self, headers: Message) -> ref.Decision:
        exact = Message()
        for name, value in headers.items():
            if name == "X-Client-Id":  # MUTATION: exact spelling only
                exact["X-Client-Id"] = value
        return super().decide(exact)


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())

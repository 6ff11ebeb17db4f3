"""Mutant: logs the presented token with every decision ("for debugging")."""

import sys
from email.message import Message
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


class Mutant(ref.SecretStoreApp):
    def decide(self, headers: Message) -> ref.Decision:
        ref.log_event("debug-request", token=headers.get("X-Client-Id"))  # MUTATION
        return super().decide(headers)


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())

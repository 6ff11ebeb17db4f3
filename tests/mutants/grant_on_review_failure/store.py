"""Mutant: when the TokenReview call fails (refused, forbidden, timeout, garbage), the caller is let in.

"Availability first": an outage of the API, or losing system:auth-delegator, opens the store.
"""

import sys
from email.message import Message
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


class Mutant(ref.SecretStoreApp):
    def decide(self, headers: Message) -> ref.Decision:
        decision = super().decide(headers)
        if decision.status == 503:  # MUTATION: fail open
            return ref.Decision("allow", 200, "review-failed-granted")
        return decision


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())

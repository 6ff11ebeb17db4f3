"""Mutant: asks TokenReview for its audience, but trusts ``authenticated`` alone.

It never looks at ``status.audiences``: a reviewer that answers ``authenticated: true`` for another
audience (or without naming one, which means "the API server's audiences") gets a grant. The real
apiserver never answers that way, so only a reviewer that lies shows it (SEC-014).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


class Mutant(ref.SecretStoreApp):
    def evaluate(self, review: ref.Review, cache: str | None = None) -> ref.Decision:
        # MUTATION: whatever audiences the answer names, count it as naming ours.
        trusted = ref.Review(
            review.authenticated, review.error, (self.config.audience,), review.username, review.jti
        )
        return super().evaluate(trusted, cache)


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())

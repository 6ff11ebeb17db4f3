"""Mutant: reviews tokens without audiences and ignores the audiences in the answer.

The TokenReview then checks the token against the API server's own audiences, so any token for the
API (every pod's default token) passes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


class Mutant(ref.SecretStoreApp):
    def _review(self, token: str) -> ref.Review:
        self.stats.add("reviews")
        payload = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        try:
            result = self._api.post_json(ref.TOKEN_REVIEW_PATH, payload)
        except ref.UpstreamError as exc:
            raise ref.ReviewUnavailable(str(exc)) from None
        if result.status not in (200, 201):
            raise ref.ReviewUnavailable(f"TokenReview answered HTTP {result.status}")
        review = ref.parse_review(result.body)
        # MUTATION: pretend the answer named our audience.
        return ref.Review(
            review.authenticated, review.error, (self.config.audience,), review.username, review.jti
        )


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())

"""Mutant: a 5xx from the TokenReview API is taken as "authenticated" ("the API is having a bad day").

Connection failures still give 503; only an HTTP 5xx answer lets the caller in.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


class Mutant(ref.SecretStoreApp):
    def _review(self, token: str) -> ref.Review:
        self.stats.add("reviews")
        payload = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self.config.audience]},
        }
        try:
            result = self._api.post_json(ref.TOKEN_REVIEW_PATH, payload)
        except ref.UpstreamError as exc:
            raise ref.ReviewUnavailable(str(exc)) from None
        if result.status >= 500:  # MUTATION
            return ref.Review(True, "", (self.config.audience,), "system:anonymous", None)
        if result.status not in (200, 201):
            raise ref.ReviewUnavailable(f"TokenReview answered HTTP {result.status}")
        return ref.parse_review(result.body)

    def evaluate(self, review: ref.Review, cache: str | None = None) -> ref.Decision:
        if review.username == "system:anonymous" and review.authenticated:
            return ref.Decision("allow", 200, "api-error-granted", cache=cache)
        return super().evaluate(review, cache)


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())

"""Mutant: reviews the token for the audiences the token itself claims (read from its unverified payload).

The review then always matches, so a token for any audience passes: the subtle variant of reviewing
without audiences that still accepts correct tokens (``no_audience`` does not even deploy).
"""

import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


def claimed_audiences(token: str) -> list[str]:
    payload = token.split(".")[1]
    try:
        aud = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("aud", [])
    except (ValueError, AttributeError):
        return []
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)]


class Mutant(ref.SecretStoreApp):
    def _review(self, token: str) -> ref.Review:
        self.stats.add("reviews")
        payload = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": claimed_audiences(token)},  # MUTATION
        }
        try:
            result = self._api.post_json(ref.TOKEN_REVIEW_PATH, payload)
        except ref.UpstreamError as exc:
            raise ref.ReviewUnavailable(str(exc)) from None
        if result.status not in (200, 201):
            raise ref.ReviewUnavailable(f"TokenReview answered HTTP {result.status}")
        review = ref.parse_review(result.body)
        # ... and the answer's audiences are whatever the token claimed, so they are not checked either.
        return ref.Review(
            review.authenticated, review.error, (self.config.audience,), review.username, review.jti
        )


ref.SecretStoreApp = Mutant  # type: ignore[misc]
raise SystemExit(ref.main())

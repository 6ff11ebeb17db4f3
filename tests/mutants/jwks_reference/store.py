"""Control for ``verification: jwks``: the reference secret store verifying tokens OFFLINE.

Not a mutant: the correct offline verifier the jwks mutants break one thing of, and the control that
must pass the suite in jwks mode (process mode: PyJWT runs from the suite's venv; the reference
workloads themselves stay standard-library only, so they keep asking TokenReview).

It replaces the TokenReview call with PyJWT's ``PyJWKClient`` (a maintained JWKS client):

* the key set comes only from ``JWKS_URL`` (trusting ``CA_FILE``), never from a token's header
  (``jku``, ``x5u``, ``jwk`` are ignored: the key is chosen by ``kid`` among the fetched ones),
* it is refetched when older than ``KEY_REFRESH_SECONDS`` (a new key is honoured, a retired one
  dropped within it) and on an unknown ``kid`` at most once per ``REFETCH_COOLDOWN_SECONDS``, so a
  flood of made-up ``kid``s cannot turn into a flood of fetches on the API server,
* only RS256/ES256, ``iss`` exactly ``ISSUER_URL``, ``aud`` holding ``AUDIENCE``, ``exp``/``nbf``
  with a 5 s leeway; the identity is ``sub`` (``system:serviceaccount:<ns>:<name>``) matched by the
  reference allow-list (exact equality),
* a key set that cannot be fetched is 503 (``ReviewUnavailable``), never a grant; a fetch times out
  after ``FETCH_TIMEOUT_SECONDS``.

The mutants in ``jwks_*`` folders subclass :class:`OfflineStore` (through ``tests/mutants/_jwks.py``)
and override one hook.
"""

import ssl
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401
import jwt

from pytest_k8s_sa.workloads import secret_store as ref
from pytest_k8s_sa.workloads.envconfig import env_float, env_str

ALGORITHMS = ["RS256", "ES256"]
LEEWAY_SECONDS = 5
FETCH_TIMEOUT_SECONDS = 5.0
REFETCH_COOLDOWN_SECONDS = 10.0


class OfflineStore(ref.SecretStoreApp):
    """The reference decision logic over an offline verification instead of a TokenReview."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import os

        self.issuer = env_str(os.environ, "ISSUER_URL")
        refresh = env_float(os.environ, "KEY_REFRESH_SECONDS", 60.0, maximum=900)
        context = ssl.create_default_context(cafile=env_str(os.environ, "CA_FILE"))
        self.keys = self.key_client(env_str(os.environ, "JWKS_URL"), refresh, context)

    def key_client(
        self,
        url: str,
        refresh: float,
        context: ssl.SSLContext,
        *,
        cooldown: float = REFETCH_COOLDOWN_SECONDS,
        client: type[jwt.PyJWKClient] = jwt.PyJWKClient,
    ) -> jwt.PyJWKClient:
        """The key-set client (mutants change how it caches and refetches: ``refresh``, ``cooldown``,
        or a ``client`` class of their own)."""
        return client(
            url,
            cache_jwk_set=True,
            lifespan=refresh,
            timeout=FETCH_TIMEOUT_SECONDS,
            ssl_context=context,
            cooldown_duration=cooldown,
        )

    def signing_key(self, token: str) -> Any:
        """The fetched key the token's ``kid`` names (mutants may trust the header instead)."""
        return self.keys.get_signing_key_from_jwt(token).key

    def decode_options(self) -> dict[str, Any]:
        """What :func:`jwt.decode` checks besides the signature (mutants drop a check)."""
        return {"issuer": self.issuer, "options": {"require": ["exp", "iss", "aud", "sub"]}}

    def _review(self, token: str) -> ref.Review:
        self.stats.add("reviews")
        try:
            key = self.signing_key(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise ref.ReviewUnavailable(f"key set unavailable: {type(exc).__name__}") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            return ref.Review(False, f"no key: {type(exc).__name__}", (), "", None)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.config.audience,
                leeway=LEEWAY_SECONDS,
                **self.decode_options(),
            )
        except jwt.InvalidTokenError as exc:
            return ref.Review(False, f"invalid: {type(exc).__name__}", (), "", None)
        return ref.Review(True, "", (self.config.audience,), str(claims["sub"]), claims.get("jti"))


def main(store: type[OfflineStore] = OfflineStore) -> int:
    ref.SecretStoreApp = store  # type: ignore[misc]
    return ref.main()


if __name__ == "__main__":
    raise SystemExit(main())

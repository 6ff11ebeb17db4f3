"""Secret store: answers only callers whose service-account token the Kubernetes API vouches for.

A caller sends its token in ``X-Client-Id``. The store asks the TokenReview API (with its own
credentials, see ``apicreds``) whether the token is valid *for this store's audience*, then checks the
service account against an allow-list. That is the Vault/SPIRE pattern: audience-bound review plus an
explicit allow-list, and a generic "permission denied" to the client.

Environment:
  LISTEN_ADDR               host:port to listen on (default ``:8081``; port 0 picks a free port)
  ALLOWED_SERVICE_ACCOUNTS  required, comma list of ``namespace:name``; ``namespace:*`` allows every
                            service account of that namespace; ``*`` alone allows every service account
  AUDIENCE                  audience tokens must be issued for (default ``secret-store``)
  REVIEW_TIMEOUT_SECONDS    timeout of a TokenReview call (default 5)
  CACHE_TTL_SECONDS         how long a successful review is reused (default 10, at most 10, 0 = off)
  MAX_TOKEN_BYTES           longer X-Client-Id values are refused unseen (default 16384)
  MAX_HEADER_BYTES          the whole request head (request line and headers) may be at most this long
                            (default 1114112: the longest MAX_TOKEN_BYTES, 1 MiB, plus 64 KiB), else 431
  MAX_HEADERS               at most this many header lines (default 100, at most 100), else 431
  HEADER_TIMEOUT_SECONDS    the request head must arrive within this time (default 10; 0 = off), else 408
  MAX_CONNECTIONS           connections served at once (default 64; 0 = no cap), beyond that 503
  HEADER_MEMORY_BYTES       request heads being read at once share this many bytes (default 16777216;
                            0 = no budget), a head that would outgrow it gets 503
  K8S_API_URL, K8S_CA_FILE, K8S_TOKEN_FILE, K8S_CLIENT_CERT_FILE, K8S_CLIENT_KEY_FILE, KUBECONFIG,
  KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT: how to reach the API (see ``apicreds``)

Why ``*`` is unsafe: every pod in the cluster whose service account can get a token for this audience
(any pod can project one) passes, so the store no longer tells the API from the data store. It still
refuses users that are not service accounts. There is no default: an empty allow-list refuses to start.

Why a cache, and why so short: the apiserver itself caches successful authentications for about 10 s,
so reusing a success for at most 10 s adds no staleness beyond that; revocation (deleted pod or service
account) shows up within that window. Only successes are cached, keyed by an HMAC with a per-process
key so the raw token is never stored; failures and unavailability are always asked again. Concurrent
requests with the same token share one in-flight review (also with the cache off).

``GET /healthz`` and ``GET /debug/stats`` (counters) need no token. Decisions are logged as one JSON
line each; tokens and request headers are never logged.
"""

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.message import Message
from typing import Self

from .apicreds import SERVICEACCOUNT_DIR, ApiCredentials, KubeApiClient, load_api_credentials
from .entry import run_main
from .envconfig import ConfigError, env_float, env_int, env_str, log_event, parse_listen_addr
from .httpclient import UpstreamError
from .httpserver import (
    Limits,
    Request,
    Response,
    WorkloadServer,
    bind,
    json_response,
    raise_header_line_limit,
)

SERVICE = "secret-store"
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 - a URL path
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
SA_PREFIX = "system:serviceaccount:"
SUCCESS_BODY = b"Hello from secret store. You have been authenticated"
BODIES = {
    200: SUCCESS_BODY,
    401: b"X-Client-Id header required",
    403: b"permission denied",
    503: b"token review unavailable",
}
CACHE_TTL_MAX_SECONDS = 10.0
CACHE_MAX_ENTRIES = 4096
HEADER_LINE_LIMIT = 2 * 1024 * 1024
MAX_TOKEN_BYTES_LIMIT = 1024 * 1024
STORE_LIMITS = Limits(max_header_bytes=MAX_TOKEN_BYTES_LIMIT + 64 * 1024)
"""The store reads a head big enough for the longest token it may be configured to accept (and to
refuse longer ones with its own 403), unlike the callers' 64 KiB."""
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


@dataclass(frozen=True)
class AllowList:
    """Which service accounts may pass: ``*``, ``namespace:*`` and ``namespace:name`` entries."""

    any_service_account: bool = False
    namespaces: frozenset[str] = frozenset()
    accounts: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def parse(cls, raw: str) -> Self:
        entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
        if not entries:
            raise ConfigError(
                "ALLOWED_SERVICE_ACCOUNTS is not set: give a comma list of namespace:name "
                "(the store refuses to start rather than allow nobody or everybody)"
            )
        namespaces, accounts = set(), set()
        for entry in entries:
            if entry == "*":
                continue
            namespace, _, name = entry.partition(":")
            if not _NAME.fullmatch(namespace) or not (name == "*" or _NAME.fullmatch(name)):
                raise ConfigError(
                    f"ALLOWED_SERVICE_ACCOUNTS entry {entry!r} is not namespace:name, namespace:* or *"
                )
            if name == "*":
                namespaces.add(namespace)
            else:
                accounts.add((namespace, name))
        return cls("*" in entries, frozenset(namespaces), frozenset(accounts))

    def allows(self, namespace: str, name: str) -> bool:
        return self.any_service_account or namespace in self.namespaces or (namespace, name) in self.accounts

    def describe(self) -> list[str]:
        return (
            ["*"] * self.any_service_account
            + sorted(f"{ns}:*" for ns in self.namespaces)
            + sorted(f"{ns}:{name}" for ns, name in self.accounts)
        )


@dataclass(frozen=True)
class Config:
    """Secret-store settings; see the module docstring for the environment variables."""

    listen: tuple[str, int]
    allowed: AllowList
    api: ApiCredentials
    audience: str = "secret-store"
    review_timeout: float = 5.0
    cache_ttl: float = CACHE_TTL_MAX_SECONDS
    max_token_bytes: int = 16384
    limits: Limits = STORE_LIMITS

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, sa_dir: str = SERVICEACCOUNT_DIR) -> Self:
        return cls(
            listen=parse_listen_addr(env_str(environ, "LISTEN_ADDR", ":8081")),
            allowed=AllowList.parse(environ.get("ALLOWED_SERVICE_ACCOUNTS", "")),
            api=load_api_credentials(environ, sa_dir=sa_dir),
            audience=env_str(environ, "AUDIENCE", "secret-store"),
            review_timeout=env_float(environ, "REVIEW_TIMEOUT_SECONDS", 5.0, maximum=300),
            # Longer TTLs are clamped, not refused: 10 s is the apiserver's own success cache.
            cache_ttl=min(
                env_float(environ, "CACHE_TTL_SECONDS", CACHE_TTL_MAX_SECONDS, allow_zero=True),
                CACHE_TTL_MAX_SECONDS,
            ),
            max_token_bytes=env_int(
                environ, "MAX_TOKEN_BYTES", 16384, minimum=1, maximum=MAX_TOKEN_BYTES_LIMIT
            ),
            limits=Limits.from_env(environ, STORE_LIMITS),
        )


@dataclass(frozen=True)
class Review:
    """The parts of a TokenReview status the decision needs (never the token)."""

    authenticated: bool
    error: str
    audiences: tuple[str, ...]
    username: str
    jti: str | None


class ReviewUnavailable(Exception):
    """The API gave no usable answer; the client gets 503, and nothing is cached."""


@dataclass(frozen=True)
class Decision:
    decision: str
    status: int
    reason: str
    username: str | None = None
    jti: str | None = None
    review_error: str | None = None
    detail: str | None = None
    cache: str | None = None


def parse_review(body: bytes) -> Review:
    """Validate the shape of a TokenReview answer; anything unexpected is 'unavailable', never 'allow'."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise ReviewUnavailable("TokenReview answer is not JSON") from None
    status = doc.get("status") if isinstance(doc, dict) and doc.get("kind") == "TokenReview" else None
    if not isinstance(status, dict):
        raise ReviewUnavailable("TokenReview answer has no status object")
    authenticated = status.get("authenticated", False)
    error = status.get("error") or ""
    audiences = status.get("audiences") or []
    user = status.get("user") or {}
    username = user.get("username", "") if isinstance(user, dict) else None
    extra = (user.get("extra") or {}) if isinstance(user, dict) else None
    if (
        not isinstance(authenticated, bool)
        or not isinstance(error, str)
        or not isinstance(audiences, list)
        or not all(isinstance(aud, str) for aud in audiences)
        or not isinstance(username, str)
        or not isinstance(extra, dict)
    ):
        raise ReviewUnavailable("TokenReview status has an unexpected shape")
    ids = extra.get(CREDENTIAL_ID)
    jti = (
        next((i[4:] for i in ids if isinstance(i, str) and i.startswith("JTI=")), None)
        if isinstance(ids, list)
        else None
    )
    return Review(authenticated, error, tuple(audiences), username, jti)


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    result: Review | ReviewUnavailable = field(
        default_factory=lambda: ReviewUnavailable("review did not finish")
    )


class ReviewCache:
    """Successful reviews for ``ttl`` seconds, bounded, keyed by HMAC; one in-flight review per key.

    Why HMAC with a random per-process key: the cache must not become a store of live tokens (a heap
    dump would leak them), and a plain hash of a token could be checked offline by whoever holds it.
    """

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float], wait_limit: float) -> None:
        self._ttl, self._max, self._clock, self._wait_limit = ttl, max_entries, clock, wait_limit
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[float, Review]] = OrderedDict()
        self._flights: dict[bytes, _Flight] = {}

    def key(self, audiences: Sequence[str], token: str) -> bytes:
        return hmac.new(self._key, "\0".join([*audiences, token]).encode(), hashlib.sha256).digest()

    def get(
        self, key: bytes, review: Callable[[], Review], on_join: Callable[[], None]
    ) -> tuple[Review, str]:
        """Return ``(review, "hit" | "miss" | "shared")``; raises :class:`ReviewUnavailable`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > self._clock():
                return entry[1], "hit"
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            on_join()
            if not flight.done.wait(self._wait_limit):
                raise ReviewUnavailable("timed out waiting for a shared review")
            if isinstance(flight.result, ReviewUnavailable):
                raise flight.result
            return flight.result, "shared"
        try:
            flight.result = review()
        except ReviewUnavailable as exc:
            flight.result = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
                if isinstance(flight.result, Review) and self._cacheable(flight.result):
                    self._store(key, flight.result)
            flight.done.set()
        return flight.result, "miss"

    def _cacheable(self, review: Review) -> bool:
        return self._ttl > 0 and review.authenticated and not review.error

    def _store(self, key: bytes, review: Review) -> None:
        now = self._clock()
        self._entries.pop(key, None)
        self._entries[key] = (now + self._ttl, review)
        # Same TTL for every entry, so insertion order is expiry order: drop expired, then the oldest.
        while self._entries and (
            len(self._entries) > self._max or next(iter(self._entries.values()))[0] <= now
        ):
            self._entries.popitem(last=False)


class Stats:
    """Counters for ``/debug/stats``, so tests can see how many reviews were really made."""

    NAMES = ("requests", "reviews", "cache_hits", "coalesced", "allowed", "denied", "unavailable")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class SecretStoreApp:
    """The decision logic, separate from HTTP plumbing so every branch is easy to reach in tests."""

    def __init__(self, config: Config, *, clock: Callable[[], float], cache_size: int) -> None:
        self.config = config
        self.stats = Stats()
        self._api = KubeApiClient(config.api, config.review_timeout)
        self._cache = ReviewCache(
            config.cache_ttl, cache_size, clock, wait_limit=2 * config.review_timeout + 1
        )

    def summary(self) -> dict[str, object]:
        c = self.config
        return {
            "audience": c.audience,
            "allowed_service_accounts": c.allowed.describe(),
            "api_server": c.api.server,
            "api_credentials": c.api.source,
            "cache_ttl_seconds": c.cache_ttl,
            "review_timeout_seconds": c.review_timeout,
        }

    def close(self) -> None:
        """Nothing to release: the cache dies with the process."""

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/healthz":
            return Response(200, b"ok")
        if request.method == "GET" and request.path == "/debug/stats":
            return json_response(200, self.stats.snapshot())
        self.stats.add("requests")
        decision = self.decide(request.headers)
        self.stats.add({"allow": "allowed", "deny": "denied"}.get(decision.decision, "unavailable"))
        log_event(
            "decision",
            **{k: v for k, v in asdict(decision).items() if v is not None or k in ("username", "jti")},
        )
        return Response(decision.status, BODIES[decision.status])

    def decide(self, headers: Message) -> Decision:
        values = headers.get_all("X-Client-Id") or []
        if not values:
            return Decision("deny", 401, "missing-header")
        problem = self._malformed(values)
        if problem:
            return Decision("deny", 403, "malformed", detail=problem)
        token = values[0].strip()
        key = self._cache.key([self.config.audience], token)
        try:
            review, cache = self._cache.get(
                key, lambda: self._review(token), lambda: self.stats.add("coalesced")
            )
        except ReviewUnavailable as exc:
            return Decision("unavailable", 503, "review-failed", review_error=str(exc)[:200])
        if cache == "hit":
            self.stats.add("cache_hits")
        return self.evaluate(review, cache)

    def _malformed(self, values: list[str]) -> str | None:
        """Cheap checks that need no API call; why: garbage must not cost a TokenReview."""
        token = values[0].strip()
        if len(values) > 1:
            return "repeated-header"
        if not token:
            return "empty"
        if not token.isascii():
            return "non-ascii"
        if len(token) > self.config.max_token_bytes:
            return "too-long"
        if not _JWT_SHAPE.fullmatch(token):
            return "not-jwt"
        return None

    def _review(self, token: str) -> Review:
        self.stats.add("reviews")
        payload = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self.config.audience]},
        }
        try:
            result = self._api.post_json(TOKEN_REVIEW_PATH, payload)
        except UpstreamError as exc:
            raise ReviewUnavailable(str(exc)) from None
        if result.status not in (200, 201):
            raise ReviewUnavailable(f"TokenReview answered HTTP {result.status}")
        return parse_review(result.body)

    def evaluate(self, review: Review, cache: str | None = None) -> Decision:
        def deny(reason: str) -> Decision:
            return Decision(
                "deny",
                403,
                reason,
                review.username or None,
                review.jti,
                review.error[:200] or None,
                cache=cache,
            )

        if not review.authenticated:
            return deny("not-authenticated")
        if review.error:
            return deny("review-error")
        if self.config.audience not in review.audiences:
            return deny("audience-mismatch")
        namespace, _, name = review.username.removeprefix(SA_PREFIX).partition(":")
        if not review.username.startswith(SA_PREFIX) or not namespace or not name or ":" in name:
            return deny("not-allowed")
        if not self.config.allowed.allows(namespace, name):
            return deny("not-allowed")
        return Decision("allow", 200, "allowed", review.username, review.jti, cache=cache)


def make_server(
    config: Config, *, clock: Callable[[], float] = time.monotonic, cache_size: int = CACHE_MAX_ENTRIES
) -> WorkloadServer:
    """Build (and bind) the secret store in-process; ``clock`` lets tests expire the cache."""
    raise_header_line_limit(HEADER_LINE_LIMIT)
    return bind(config.listen, SecretStoreApp(config, clock=clock, cache_size=cache_size), config.limits)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(SERVICE, argv, __doc__, lambda environ: make_server(Config.from_env(environ)))


if __name__ == "__main__":
    raise SystemExit(main())

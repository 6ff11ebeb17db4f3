"""API service: a caller that proves its identity to the secret store with a projected token.

Every request other than ``GET /healthz`` and ``GET /debug/token-info`` makes one ``GET`` of
``SECRET_STORE_URL`` with ``X-Client-Id: <token>`` and relays the secret store's status and body, so a
refusal stays visible as a 401/403 (the article's service always answered 200). The incoming path is
not forwarded: clients cannot steer the caller's credential to other secret-store endpoints.

Environment:
  LISTEN_ADDR               host:port to listen on (default ``:8080``; port 0 picks a free port)
  TOKEN_PATH                projected token file (default ``/var/run/secrets/tokens/api-token``)
  TOKEN_REFRESH_SECONDS     how often the token file is re-read (default 60)
  SECRET_STORE_URL          required, e.g. ``http://secret-store.secret-store.svc:8081``
                            (``SECRET_STORE_CONNSTRING``, the article's name, is accepted too)
  UPSTREAM_TIMEOUT_SECONDS  timeout of the call to the secret store (default 5)
  MAX_HEADER_BYTES          the whole request head may be at most this long (default 65536), else 431
  MAX_HEADERS               at most this many header lines (default 100, at most 100), else 431
  HEADER_TIMEOUT_SECONDS    the request head must arrive within this time (default 10; 0 = off), else 408
  MAX_CONNECTIONS           connections served at once (default 64; 0 = no cap), beyond that 503
  HEADER_MEMORY_BYTES       request heads being read at once share this many bytes (default 16777216;
                            0 = no budget), a head that would outgrow it gets 503

Why re-read the file instead of keeping the first token: the kubelet replaces projected tokens at 80%
of their lifetime. It writes them atomically (``api-token -> ..data/api-token``, with ``..data``
re-pointed by renaming a ``..data_tmp`` symlink), so opening the path again always yields a whole
token; if a read fails anyway, the last good token is kept until it works again.
``/debug/token-info`` shows the held token's ``jti``/``exp``/``iat`` (decoded, not verified, and never
the token itself) so rotation can be observed from outside.
"""

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Self

from .entry import run_main
from .envconfig import ConfigError, Endpoint, env_float, env_str, log_event, parse_endpoint, parse_listen_addr
from .httpclient import MAX_RESPONSE_BYTES, UpstreamError, http_call
from .httpserver import TEXT, Limits, Request, Response, WorkloadServer, bind, json_response

CALLER_LIMITS = Limits()
NO_TOKEN_BODY = b"no service-account token available at TOKEN_PATH"
UNREACHABLE_BODY = b"secret store unreachable"
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Defaults:
    """What differs between the callers built from this module (API and data store)."""

    service: str
    listen: str
    token_path: str


DEFAULTS = Defaults("api", ":8080", "/var/run/secrets/tokens/api-token")


@dataclass(frozen=True)
class Config:
    """Caller settings; see the module docstring for the environment variables."""

    listen: tuple[str, int]
    secret_store: Endpoint
    token_path: str
    service: str = DEFAULTS.service
    token_refresh: float = 60.0
    upstream_timeout: float = 5.0
    limits: Limits = CALLER_LIMITS

    @classmethod
    def from_env(cls, environ: Mapping[str, str], defaults: Defaults = DEFAULTS) -> Self:
        url, connstring = env_str(environ, "SECRET_STORE_URL"), env_str(environ, "SECRET_STORE_CONNSTRING")
        if url and connstring and url != connstring:
            raise ConfigError("SECRET_STORE_URL and SECRET_STORE_CONNSTRING are both set and differ; set one")
        if not (url or connstring):
            raise ConfigError("SECRET_STORE_URL is not set (e.g. http://secret-store.secret-store.svc:8081)")
        return cls(
            listen=parse_listen_addr(env_str(environ, "LISTEN_ADDR", defaults.listen)),
            secret_store=parse_endpoint(url or connstring, "SECRET_STORE_URL"),
            token_path=env_str(environ, "TOKEN_PATH", defaults.token_path),
            service=defaults.service,
            token_refresh=env_float(environ, "TOKEN_REFRESH_SECONDS", 60.0, maximum=86400),
            upstream_timeout=env_float(environ, "UPSTREAM_TIMEOUT_SECONDS", 5.0, maximum=300),
            limits=Limits.from_env(environ, CALLER_LIMITS),
        )


def token_claims(token: str) -> dict[str, object]:
    """The JWT payload, decoded WITHOUT verification: for display only, never for decisions."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


@dataclass(frozen=True)
class HeldToken:
    value: str = field(repr=False)
    jti: object
    exp: object
    iat: object
    loaded_at: float

    def info(self) -> dict[str, object]:
        return {"jti": self.jti, "exp": self.exp, "iat": self.iat, "loaded_at": self.loaded_at}


class TokenSource:
    """Holds the last good token from ``path`` and re-reads it every ``interval`` seconds."""

    def __init__(self, path: str, interval: float, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.path, self._interval, self._wall_clock = path, interval, wall_clock
        self._lock = threading.Lock()
        self._current: HeldToken | None = None
        self._problem: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Re-open and read the file; on any failure keep the previous token and return False."""
        try:
            with open(self.path, encoding="ascii") as fh:
                value = fh.read(MAX_RESPONSE_BYTES + 1).strip()
            problem = (
                None if _HEADER_SAFE.fullmatch(value) and len(value) <= MAX_RESPONSE_BYTES else "not-a-token"
            )
        except (OSError, ValueError) as exc:
            problem, value = type(exc).__name__, ""
        with self._lock:
            if problem is not None:
                if problem != self._problem:  # log transitions only, not every tick
                    log_event(
                        "token-read-failed", path=self.path, error=problem, keeping=self._current is not None
                    )
                self._problem = problem
                return False
            self._problem = None
            if self._current is not None and self._current.value == value:
                return True
            claims = token_claims(value)
            held = HeldToken(
                value, claims.get("jti"), claims.get("exp"), claims.get("iat"), self._wall_clock()
            )
            self._current = held
        log_event("token-loaded", path=self.path, jti=held.jti, exp=held.exp, iat=held.iat)
        return True

    def current(self) -> HeldToken | None:
        """The held token; while there is none, retry the file at once (it may have just appeared)."""
        if self._current is None:
            self.refresh()
        return self._current

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="token-refresh", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class CallerApp:
    """Relays each request to the secret store with the held token."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tokens = TokenSource(config.token_path, config.token_refresh)

    def summary(self) -> dict[str, object]:
        c = self.config
        return {
            "secret_store": c.secret_store.url,
            "token_path": c.token_path,
            "token_refresh_seconds": c.token_refresh,
            "upstream_timeout_seconds": c.upstream_timeout,
        }

    def close(self) -> None:
        self.tokens.stop()

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/healthz":
            return Response(200, b"ok")
        token = self.tokens.current()
        if request.method == "GET" and request.path == "/debug/token-info":
            return json_response(200, token.info()) if token else json_response(503, {"error": "no token"})
        if token is None:
            log_event("relay", status=503, reason="no-token")
            return Response(503, NO_TOKEN_BODY)
        store = self.config.secret_store
        try:
            result = http_call(
                store,
                "GET",
                store.path or "/",
                headers={"X-Client-Id": token.value},
                timeout=self.config.upstream_timeout,
            )
        except UpstreamError as exc:
            log_event("relay", status=502, reason="unreachable", error=str(exc), jti=token.jti)
            return Response(502, UNREACHABLE_BODY)
        log_event("relay", status=result.status, jti=token.jti)
        return Response(result.status, result.body, result.content_type or TEXT)


def make_server(config: Config) -> WorkloadServer:
    """Build (and bind) a caller in-process and start its token refresher (stopped by ``server_close``)."""
    app = CallerApp(config)
    server = bind(config.listen, app, config.limits)
    app.tokens.start()
    return server


def run(defaults: Defaults, argv: Sequence[str] | None, usage: str | None) -> int:
    """``main`` for a caller with the given defaults (shared with the data store)."""
    return run_main(
        defaults.service, argv, usage, lambda environ: make_server(Config.from_env(environ, defaults))
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(DEFAULTS, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())

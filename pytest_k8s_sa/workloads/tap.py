"""Token tap: a relay between a caller and its callee that notes which token the caller sends.

The rotation checks must know which token a caller *sends*, and a team's caller has no
``/debug/token-info`` endpoint like the reference API service. So the suite puts this relay between
them and gives the caller its address as ``${CALLEE_URL}``: every request is forwarded to the callee
unchanged (method, path and query, headers, body) and the callee's answer relayed back (status,
headers, body). The tap keeps only the ``jti`` of the last credential it saw in the configured
header (``Authorization`` in the Bearer scheme), decoded without verification and never the token.

One implementation, two places: in process mode the suite runs it in its own process on loopback
(:class:`LoopbackTap`); in pod mode it runs as a pod of the workloads' image from the
``k8s-sa-workloads`` ConfigMap (``python -m k8s_sa_workloads.tap``), and the suite reads the ``jti``
from a separate status port through a port-forward. A separate port, not a path on the relayed one:
any path there belongs to the callee.

Environment (pod):
  LISTEN_ADDR               host:port of the relay (default ``:8080``)
  STATUS_ADDR               host:port of the status server (default ``:8090``): ``GET /`` answers
                            ``{"jti": <last jti or null>, "requests": <credentials seen>}``,
                            ``GET /healthz`` ``ok``
  UPSTREAM_URL              required: the callee, e.g. ``http://callee.ns.svc.cluster.local:8081``
                            (its base URL: each request's own path and query are forwarded)
  TOKEN_HEADER              the header the caller's credential is in (default ``X-Client-Id``)
  UPSTREAM_TIMEOUT_SECONDS  timeout of one relayed call (default 60)
"""

import http.client
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .api import token_claims
from .entry import run_main
from .envconfig import ConfigError, Endpoint, env_float, env_str, log_event, parse_endpoint, parse_listen_addr
from .httpclient import MAX_RESPONSE_BYTES
from .httpserver import (
    SHUTDOWN_POLL_SECONDS,
    Request,
    RequestHandler,
    Response,
    WorkloadServer,
    bind,
    json_response,
)

SERVICE = "token-tap"
AUTHORIZATION = "authorization"
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}
)
"""Headers about one connection, not the request: each side of the relay has its own."""


def credential_jti(value: str | None, header: str) -> str | None:
    """The ``jti`` of the token in a header's value (``Authorization``: Bearer scheme); None: none."""
    if value is None:
        return None
    token = value.strip()
    if header.lower() == AUTHORIZATION:
        scheme, _, token = token.partition(" ")
        if scheme.lower() != "bearer":
            return None
    jti = token_claims(token.strip()).get("jti")
    return str(jti) if jti else None


class TokenTap:
    """What the tap knows, and the status both of its servers share as their ``App``.

    The relay server (:func:`relay_server`) forwards requests itself and calls :meth:`note`; the
    status server (:func:`status_server`) turns each request into :meth:`handle`.
    """

    def __init__(self, upstream: Endpoint, header: str, *, timeout: float = 60.0, log: bool = True) -> None:
        self.upstream, self.header, self.timeout, self.log = upstream, header, timeout, log
        self.last_jti: str | None = None
        self.requests = 0
        self._lock = threading.Lock()

    def note(self, value: str | None) -> None:
        """Note the credential of one request (a request without the header changes nothing)."""
        if value is None:
            return
        jti = credential_jti(value, self.header)
        with self._lock:
            self.requests += 1
            self.last_jti = jti

    def status(self) -> dict[str, object]:
        with self._lock:
            return {"jti": self.last_jti, "requests": self.requests}

    def handle(self, request: Request) -> Response:
        if request.method != "GET":
            return Response(405, b"method not allowed")
        if request.path == "/healthz":
            return Response(200, b"ok")
        if request.path == "/":
            return json_response(200, self.status())
        return Response(404, b"not found")

    def summary(self) -> dict[str, object]:
        return {
            "upstream": self.upstream.url,
            "header": self.header,
            "upstream_timeout_seconds": self.timeout,
        }

    def close(self) -> None:
        """Nothing to release: the servers own their sockets."""


class RelayHandler(RequestHandler):
    """Forwards each request to the tap's upstream as it is and relays the answer as it is."""

    server: WorkloadServer

    def _relay(self) -> None:
        tap = self.server.app
        assert isinstance(tap, TokenTap)
        tap.note(self.headers.get(tap.header))
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True
            self.send_error(411, "a request body needs a Content-Length here")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_RESPONSE_BYTES:
            self.close_connection = True
            self.send_error(400, "bad or too large Content-Length")
            return
        body = self.rfile.read(length) if length else None
        upstream = tap.upstream
        conn = http.client.HTTPConnection(upstream.host, upstream.port, timeout=tap.timeout)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():  # every line, duplicates too, in order
                if key.lower() not in HOP_BY_HOP:
                    conn.putheader(key, value)
            conn.endheaders(body)
            answer = conn.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            if tap.log:
                log_event("relay", status=502, error=f"{type(exc).__name__}: {exc}"[:200])
            self.send_error(502, "callee unreachable")
            return
        finally:
            conn.close()
        if tap.log:
            log_event("relay", status=answer.status, jti=tap.last_jti)
        self.send_response_only(answer.status, answer.reason)  # the callee's own Server and Date
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _relay

    def log_message(self, format: str, *args: object) -> None:
        tap = self.server.app
        if isinstance(tap, TokenTap) and tap.log:
            super().log_message(format, *args)


def relay_server(tap: TokenTap, listen: tuple[str, int]) -> WorkloadServer:
    return bind(listen, tap, handler=RelayHandler)


def status_server(tap: TokenTap, listen: tuple[str, int]) -> WorkloadServer:
    return bind(listen, tap)


class LoopbackTap:
    """The tap in this process, relaying on loopback in a thread (the suite's process mode)."""

    def __init__(self, upstream: str, header: str) -> None:
        self.tap = TokenTap(parse_endpoint(upstream, "upstream", schemes=("http",)), header, log=False)
        self._server = relay_server(self.tap, ("127.0.0.1", 0))
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), name=SERVICE, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self._server.bound_addr}"

    @property
    def last_jti(self) -> str | None:
        return self.tap.last_jti

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class Config:
    listen: tuple[str, int]
    status_listen: tuple[str, int]
    upstream: Endpoint
    header: str
    timeout: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Config":
        upstream = env_str(environ, "UPSTREAM_URL")
        if not upstream:
            raise ConfigError("UPSTREAM_URL is required (the callee, e.g. http://callee.ns.svc:8081)")
        config = cls(
            listen=parse_listen_addr(env_str(environ, "LISTEN_ADDR", ":8080")),
            status_listen=parse_listen_addr(env_str(environ, "STATUS_ADDR", ":8090"), "STATUS_ADDR"),
            upstream=parse_endpoint(upstream, "UPSTREAM_URL", schemes=("http",)),
            header=env_str(environ, "TOKEN_HEADER", "X-Client-Id"),
            timeout=env_float(environ, "UPSTREAM_TIMEOUT_SECONDS", 60.0, maximum=600),
        )
        if config.listen[1] and config.listen[1] == config.status_listen[1]:
            raise ConfigError("LISTEN_ADDR and STATUS_ADDR must be different ports")
        return config


def make_server(config: Config) -> WorkloadServer:
    """Start the relay (in a thread) and return the status server, which ``run_main`` serves."""
    tap = TokenTap(config.upstream, config.header, timeout=config.timeout)
    relay = relay_server(tap, config.listen)
    poll = SHUTDOWN_POLL_SECONDS
    threading.Thread(target=relay.serve_forever, args=(poll,), name="relay", daemon=True).start()
    log_event("relaying", service=SERVICE, addr=relay.bound_addr, upstream=config.upstream.url)
    return status_server(tap, config.status_listen)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(SERVICE, argv, __doc__, lambda environ: make_server(Config.from_env(environ)))


if __name__ == "__main__":
    raise SystemExit(main())

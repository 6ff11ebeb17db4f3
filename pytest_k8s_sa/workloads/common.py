"""Plumbing shared by the workloads: configuration, JSON logs, the HTTP server, HTTP calls, API access.

Why everything lives here: the workloads must run in a stock ``python:3.11`` image from a ConfigMap,
so nothing outside the standard library is available, and keeping the plumbing in one module stops
the three services from drifting apart.

Kubernetes API credentials (used by the secret store for TokenReview), first match wins:

1. ``K8S_API_URL`` (https), optional ``K8S_CA_FILE`` (else the system trust store), and
   ``K8S_TOKEN_FILE`` (re-read on every call, so rotation works) and/or
   ``K8S_CLIENT_CERT_FILE`` + ``K8S_CLIENT_KEY_FILE``.
2. ``KUBECONFIG``: one kubeconfig file in JSON form (JSON is valid kubeconfig YAML, and YAML cannot be
   parsed with the standard library). Relative file paths are relative to the kubeconfig's directory.
3. In a pod: ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` with the mounted service-account
   ``token`` and ``ca.crt``.
"""

import base64
import binascii
import contextlib
import http.client
import http.server
import io
import json
import math
import os
import shutil
import signal
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Protocol
from urllib.parse import urlsplit

EXIT_CONFIG = 2
SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_RESPONSE_BYTES = 1024 * 1024
HANDLER_TIMEOUT_SECONDS = 30.0
TEXT = "text/plain; charset=utf-8"
_EXPLICIT_VARS = (
    "K8S_API_URL",
    "K8S_CA_FILE",
    "K8S_TOKEN_FILE",
    "K8S_CLIENT_CERT_FILE",
    "K8S_CLIENT_KEY_FILE",
)


class ConfigError(Exception):
    """Invalid configuration; ``run_main`` prints it as one stderr line and exits 2, never a traceback."""


class UpstreamError(Exception):
    """A call to another server failed below HTTP (connect, TLS, timeout, protocol, size).

    Why a single type: every such failure has the same meaning for the callers (503 / 502), and its
    message is safe to log because it never contains request headers.
    """


# --- JSON logging -------------------------------------------------------------------------------

_log_lock = threading.Lock()


def log_event(event: str, **fields: object) -> None:
    """Write one JSON object as one line to stderr.

    Why: parents (tests, log collectors) discover addresses and decisions by parsing these lines, so
    every line must be complete JSON. Callers must never pass tokens or request headers.
    """
    line = json.dumps({"event": event, **fields, "ts": round(time.time(), 3)}, default=str)
    with _log_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


# --- configuration ----------------------------------------------------------------------------


def env_str(environ: Mapping[str, str], name: str, default: str = "") -> str:
    """Return the stripped value; empty counts as unset because manifests often render ``value: ""``."""
    return environ.get(name, "").strip() or default


def env_float(
    environ: Mapping[str, str],
    name: str,
    default: float,
    *,
    allow_zero: bool = False,
    maximum: float = 3600.0,
) -> float:
    """Parse a finite, non-negative number of seconds (zero only when ``allow_zero``)."""
    raw = env_str(environ, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    lowest = "0" if allow_zero else "greater than 0"
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero) or value > maximum:
        raise ConfigError(f"{name}={raw!r} must be {lowest} and at most {maximum:g}")
    return value


def env_int(environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    """Parse an integer within ``[minimum, maximum]``."""
    raw = env_str(environ, name)
    if not raw:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise ConfigError(f"{name}={raw!r} must be an integer from {minimum} to {maximum}")
    return int(raw)


def format_hostport(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals bracketed, as URLs and ``LISTEN_ADDR`` expect."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_listen_addr(value: str, name: str = "LISTEN_ADDR") -> tuple[str, int]:
    """Parse ``host:port``; an empty host means all interfaces and port 0 asks the kernel for one."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{name}={value!r}: bracket IPv6 addresses, e.g. [::1]:8080")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{name}={value!r} must be host:port (e.g. :8080 or 127.0.0.1:0)")
    return host, int(port)


@dataclass(frozen=True)
class Endpoint:
    """A parsed http(s) URL: where to connect and which path to ask for."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{format_hostport(self.host, self.port)}{self.path}"


def parse_endpoint(url: str, name: str, *, schemes: Sequence[str] = ("http", "https")) -> Endpoint:
    """Parse and validate a URL from configuration so bad values fail at start, not on first use."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name}={url!r} is not a valid URL") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{name}={url!r} must be a {' or '.join(schemes)} URL such as https://host:port")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Endpoint(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


# --- HTTP client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResult:
    status: int
    content_type: str
    body: bytes


def http_call(
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str],
    timeout: float,
    body: bytes | None = None,
    context: ssl.SSLContext | None = None,
) -> HttpResult:
    """One request with an overall deadline; raises :class:`UpstreamError` for any transport failure.

    Why ``http.client`` rather than ``urllib``: urllib silently honours ``*_PROXY`` variables and follows
    redirects, and neither must decide where a bearer token is sent. The socket timeout is lowered to
    the time left before each step, and a watchdog shuts the socket down at the deadline: socket
    timeouts bound each read, not the call, so a server that trickles one byte at a time would
    otherwise hold the caller far beyond ``timeout``.
    """
    deadline = time.monotonic() + timeout
    conn: http.client.HTTPConnection
    if endpoint.scheme == "https":
        conn = http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left

    expired = threading.Event()

    def abort() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, not SSLSocket's (which would drop its SSL object under
                # the reading thread): the blocked read then fails with an OSError or ends early.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, abort)
    watchdog.daemon = True
    watchdog.start()
    timed_out = UpstreamError(f"{endpoint.url}: timed out after {timeout:g}s")
    try:
        conn.connect()
        conn.sock.settimeout(remaining())
        conn.request(method, path, body=body, headers=dict(headers))
        conn.sock.settimeout(remaining())
        response = conn.getresponse()
        data = response.read(MAX_RESPONSE_BYTES + 1)
        if expired.is_set():
            raise timed_out  # the answer may have been cut short by the watchdog
        if len(data) > MAX_RESPONSE_BYTES:
            raise UpstreamError(f"response from {endpoint.url} larger than {MAX_RESPONSE_BYTES} bytes")
        return HttpResult(response.status, response.getheader("Content-Type", ""), data)
    except TimeoutError:
        raise timed_out from None
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise timed_out from None
        raise UpstreamError(f"{endpoint.url}: {type(exc).__name__}: {exc}"[:300]) from None
    finally:
        watchdog.cancel()
        conn.close()


# --- Kubernetes API credentials ------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCredentials:
    """How to reach the Kubernetes API as this workload. Secrets are kept out of ``repr``."""

    server: str
    source: str
    ca_file: str | None = None
    ca_data: str | None = None
    token_file: str | None = None
    token: str | None = field(default=None, repr=False)
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: bytes | None = field(default=None, repr=False)
    client_key_data: bytes | None = field(default=None, repr=False)


def in_cluster_url(host: str, port: str) -> str:
    """The API URL from the service variables; IPv6 service IPs must be bracketed in a URL."""
    return f"https://{format_hostport(host.strip('[]'), int(port))}" if port.isdigit() else ""


def load_api_credentials(environ: Mapping[str, str], *, sa_dir: str = SERVICEACCOUNT_DIR) -> ApiCredentials:
    """Pick the credential source (explicit ``K8S_*``, then ``KUBECONFIG``, then in-cluster)."""
    if any(env_str(environ, name) for name in _EXPLICIT_VARS):
        creds = _explicit_credentials(environ)
    elif env_str(environ, "KUBECONFIG"):
        creds = _kubeconfig_credentials(env_str(environ, "KUBECONFIG"))
    elif env_str(environ, "KUBERNETES_SERVICE_HOST"):
        url = in_cluster_url(
            env_str(environ, "KUBERNETES_SERVICE_HOST"), env_str(environ, "KUBERNETES_SERVICE_PORT")
        )
        if not url:
            raise ConfigError(
                "KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not a port number"
            )
        creds = ApiCredentials(
            url,
            "in-cluster",
            ca_file=os.path.join(sa_dir, "ca.crt"),
            token_file=os.path.join(sa_dir, "token"),
        )
    else:
        raise ConfigError(
            "no Kubernetes API credentials: set K8S_API_URL with K8S_CA_FILE and K8S_TOKEN_FILE (or "
            "K8S_CLIENT_CERT_FILE/K8S_CLIENT_KEY_FILE), or KUBECONFIG (JSON), or run in a pod"
        )
    parse_endpoint(creds.server, f"Kubernetes API server ({creds.source})", schemes=("https",))
    if creds.token_file:
        read_token_file(creds.token_file, ConfigError)
    if not (creds.token_file or creds.token or creds.client_cert_file or creds.client_cert_data):
        raise ConfigError(
            f"Kubernetes API credentials from {creds.source} have neither a token nor a client certificate"
        )
    return creds


def _explicit_credentials(environ: Mapping[str, str]) -> ApiCredentials:
    url = env_str(environ, "K8S_API_URL")
    if not url:
        raise ConfigError("K8S_* credential variables are set but K8S_API_URL is not")
    cert, key = env_str(environ, "K8S_CLIENT_CERT_FILE"), env_str(environ, "K8S_CLIENT_KEY_FILE")
    if bool(cert) != bool(key):
        raise ConfigError("K8S_CLIENT_CERT_FILE and K8S_CLIENT_KEY_FILE must be set together")
    return ApiCredentials(
        url,
        "K8S_* variables",
        ca_file=env_str(environ, "K8S_CA_FILE") or None,
        token_file=env_str(environ, "K8S_TOKEN_FILE") or None,
        client_cert_file=cert or None,
        client_key_file=key or None,
    )


def _kubeconfig_credentials(path: str) -> ApiCredentials:
    """Read the current context of a JSON kubeconfig (the subset that needs no plugins)."""
    if os.pathsep in path:
        raise ConfigError(f"KUBECONFIG={path!r}: only a single kubeconfig file is supported")
    try:
        with open(path, "rb") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read KUBECONFIG {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError):
        raise ConfigError(
            f"KUBECONFIG {path} is not JSON: YAML cannot be parsed without third-party packages; "
            "convert it (kubectl config view --raw -o json) or use the K8S_* variables"
        ) from None
    base = os.path.dirname(os.path.abspath(path))
    where = f"KUBECONFIG {path}"
    context_name = doc.get("current-context") if isinstance(doc, dict) else None
    if not context_name or not isinstance(context_name, str):
        raise ConfigError(f"{where} has no current-context")
    context = _named(doc, "contexts", "context", context_name, where)
    cluster = _named(doc, "clusters", "cluster", str(context.get("cluster", "")), where)
    user = _named(doc, "users", "user", str(context.get("user", "")), where)
    if cluster.get("insecure-skip-tls-verify"):
        raise ConfigError(f"{where}: insecure-skip-tls-verify is refused; give certificate-authority(-data)")
    for unsupported in ("exec", "auth-provider", "username", "password"):
        if user.get(unsupported):
            raise ConfigError(
                f"{where}: user field {unsupported!r} is not supported; use a token or a client certificate"
            )

    def file_or_data(section: Mapping[str, Any], key: str) -> tuple[str | None, bytes | None]:
        file_value, data_value = section.get(key), section.get(f"{key}-data")
        if file_value and data_value:
            raise ConfigError(f"{where}: both {key} and {key}-data are set")
        if data_value:
            try:
                return None, base64.b64decode(str(data_value), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"{where}: {key}-data is not valid base64") from None
        return (os.path.join(base, str(file_value)) if file_value else None), None

    ca_file, ca_data = file_or_data(cluster, "certificate-authority")
    cert_file, cert_data = file_or_data(user, "client-certificate")
    key_file, key_data = file_or_data(user, "client-key")
    if bool(cert_file or cert_data) != bool(key_file or key_data):
        raise ConfigError(f"{where}: client-certificate and client-key must be given together")
    token_file = user.get("tokenFile")
    return ApiCredentials(
        str(cluster.get("server", "")),
        where,
        ca_file=ca_file,
        ca_data=ca_data.decode("ascii", "replace") if ca_data else None,
        token_file=os.path.join(base, str(token_file)) if token_file else None,
        token=str(user["token"]) if user.get("token") else None,
        client_cert_file=cert_file,
        client_key_file=key_file,
        client_cert_data=cert_data,
        client_key_data=key_data,
    )


def _named(doc: Mapping[str, Any], section: str, key: str, name: str, where: str) -> Mapping[str, Any]:
    for item in doc.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(key), dict):
            return item[key]  # type: ignore[no-any-return]
    raise ConfigError(f"{where}: {section[:-1]} {name!r} not found")


def read_token_file(path: str, error: type[Exception] = UpstreamError) -> str:
    """Read a bearer token file; re-read on every call so kubelet rotation is picked up."""
    try:
        with open(path, encoding="ascii") as fh:
            token = fh.read(MAX_RESPONSE_BYTES).strip()
    except (OSError, ValueError) as exc:
        raise error(
            f"cannot read token file {path}: {getattr(exc, 'strerror', None) or type(exc).__name__}"
        ) from None
    if not token:
        raise error(f"token file {path} is empty")
    return token


@contextlib.contextmanager
def _private_files(*blobs: bytes | None) -> Iterator[list[str | None]]:
    """Write blobs to mode-0600 files in a private directory, removed on exit.

    Why: ``ssl.SSLContext.load_cert_chain`` only accepts file names, and kubeconfigs often embed the
    client key as ``client-key-data``; the key must not stay on disk longer than the load takes.
    """
    directory = tempfile.mkdtemp(prefix="k8s-sa-")
    try:
        paths: list[str | None] = []
        for index, blob in enumerate(blobs):
            if blob is None:
                paths.append(None)
                continue
            path = os.path.join(directory, f"{index}.pem")
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                fh.write(blob)
            paths.append(path)
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def build_ssl_context(creds: ApiCredentials) -> ssl.SSLContext:
    """A verifying TLS context: only the cluster CA when one is given, else the system trust store."""
    try:
        context = ssl.create_default_context(cafile=creds.ca_file, cadata=creds.ca_data)
        if creds.client_cert_file or creds.client_cert_data:
            with _private_files(creds.client_cert_data, creds.client_key_data) as (cert_tmp, key_tmp):
                cert = cert_tmp or creds.client_cert_file
                key = key_tmp or creds.client_key_file
                assert cert is not None
                context.load_cert_chain(cert, key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot set up TLS for the Kubernetes API ({creds.source}): {exc}") from None
    return context


class KubeApiClient:
    """POSTs JSON to the Kubernetes API with the workload's own credentials."""

    def __init__(self, creds: ApiCredentials, timeout: float) -> None:
        self._creds = creds
        self._timeout = timeout
        self._endpoint = parse_endpoint(creds.server, "Kubernetes API server", schemes=("https",))
        self._context = build_ssl_context(creds)

    def post_json(self, path: str, payload: Mapping[str, object]) -> HttpResult:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        # client-go semantics: a token file, re-read on every use, wins over a static token.
        bearer = read_token_file(self._creds.token_file) if self._creds.token_file else self._creds.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        body = json.dumps(payload).encode()
        return http_call(
            self._endpoint,
            "POST",
            self._endpoint.path.rstrip("/") + path,
            headers=headers,
            body=body,
            timeout=self._timeout,
            context=self._context,
        )


# --- HTTP server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Message


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = TEXT


def json_response(status: int, payload: Mapping[str, object]) -> Response:
    return Response(status, json.dumps(payload).encode(), "application/json")


class App(Protocol):
    """What a workload implements; the HTTP plumbing below stays the same for all of them."""

    def handle(self, request: Request) -> Response: ...

    def summary(self) -> dict[str, object]: ...

    def close(self) -> None: ...


# --- limits on what clients can make a workload hold -----------------------------------------------

MAX_HEADER_BYTES_LIMIT = 256 * 1024 * 1024
MAX_HEADER_MEMORY_LIMIT = 16 * 1024 * 1024 * 1024
MAX_HEADERS_LIMIT = 100  # ``http.client`` refuses more header lines itself
REQUEST_LINE_LIMIT = 65536  # as ``http.server``: longer request lines get 414
HEADER_READ_CHUNK = 64 * 1024
REFUSAL_WRITE_SECONDS = 1.0
LINGER_SECONDS = 0.5
LINGER_BYTES = 256 * 1024
LIMIT_LOG_INTERVAL_SECONDS = 1.0
REFUSALS = {
    408: (b"Request Timeout", b"request header not received in time"),
    414: (b"URI Too Long", b"request line too long"),
    431: (b"Request Header Fields Too Large", b"request header too large"),
    503: (b"Service Unavailable", b"too busy, try again"),
}


@dataclass(frozen=True)
class Limits:
    """What one client, and all of them together, can make a workload hold.

    Why: before these limits, 8 connections that each sent 99 header lines of 1 MB and never ended the
    header block took the secret store from 23 MB to 808 MB RSS (``http.server`` buffers up to 100
    lines, and the store raises the per-line limit to 2 MiB), so two of them OOM-killed a 128 MiB pod.
    Now the whole request head (request line and header lines) is capped in bytes and lines (431),
    it must arrive within ``header_timeout`` seconds of the connection (or of the previous answer on a
    keep-alive connection) however slowly it trickles (408, or a silent close if nothing arrived), and
    at most ``max_connections`` are served at once (503 with ``Connection: close`` beyond). The heads
    being read at any moment share ``header_memory`` bytes (a head that would outgrow it: 503), so
    header memory is bounded by ``min(header_memory, max_connections * max_header_bytes)``, plus
    what the allocator keeps. ``0`` switches the timeout, the connection cap and the shared budget
    off (for comparisons only).
    """

    max_header_bytes: int = 64 * 1024
    max_headers: int = MAX_HEADERS_LIMIT
    header_timeout: float = 10.0
    max_connections: int = 64
    header_memory: int = 16 * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str], defaults: "Limits | None" = None) -> "Limits":
        """``MAX_HEADER_BYTES``, ``MAX_HEADERS``, ``HEADER_TIMEOUT_SECONDS``, ``MAX_CONNECTIONS``."""
        base = defaults or cls()
        return cls(
            max_header_bytes=env_int(
                environ,
                "MAX_HEADER_BYTES",
                base.max_header_bytes,
                minimum=1024,
                maximum=MAX_HEADER_BYTES_LIMIT,
            ),
            max_headers=env_int(
                environ, "MAX_HEADERS", base.max_headers, minimum=1, maximum=MAX_HEADERS_LIMIT
            ),
            header_timeout=env_float(
                environ, "HEADER_TIMEOUT_SECONDS", base.header_timeout, allow_zero=True, maximum=3600
            ),
            max_connections=env_int(
                environ, "MAX_CONNECTIONS", base.max_connections, minimum=0, maximum=100_000
            ),
            header_memory=env_int(
                environ, "HEADER_MEMORY_BYTES", base.header_memory, minimum=0, maximum=MAX_HEADER_MEMORY_LIMIT
            ),
        )

    def summary(self) -> dict[str, object]:
        return {
            "max_header_bytes": self.max_header_bytes,
            "max_headers": self.max_headers,
            "header_timeout_seconds": self.header_timeout,
            "max_connections": self.max_connections,
            "header_memory_bytes": self.header_memory,
        }


class LimitLog:
    """Counts refusals per limit and logs them, at most one line per limit and interval.

    Why throttled: a hostile client can cause thousands of refusals a second, and one log line each
    would turn the limit into a disk and CPU sink. Lines carry the limit, the status and counts, never
    header values (which may be tokens).
    """

    def __init__(
        self, interval: float = LIMIT_LOG_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval, self._clock = interval, clock
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._status: dict[str, int | None] = {}

    def note(self, limit: str, status: int | None) -> None:
        with self._lock:
            self._totals[limit] = self._totals.get(limit, 0) + 1
            self._pending[limit] = self._pending.get(limit, 0) + 1
            self._status[limit] = status
            now = self._clock()
            if limit in self._last and now - self._last[limit] < self._interval:
                return
            self._last[limit] = now
            line = self._take(limit)
        log_event("limit", **line)

    def flush(self) -> None:
        """Log what the throttle held back (at shutdown)."""
        with self._lock:
            lines = [self._take(limit) for limit, pending in self._pending.items() if pending]
        for line in lines:
            log_event("limit", **line)

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._totals)

    def _take(self, limit: str) -> dict[str, object]:
        refused, self._pending[limit] = self._pending[limit], 0
        return {"limit": limit, "status": self._status[limit], "count": refused, "total": self._totals[limit]}


def refusal_bytes(status: int) -> bytes:
    """A complete ``Connection: close`` answer; written raw because no request may have been parsed."""
    reason, body = REFUSALS[status]
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (status, reason, len(body), body)
    )


class _HeaderTooLarge(Exception):
    """The request head outgrew ``max_header_bytes`` or ``max_headers``."""

    def __init__(self, limit: str) -> None:
        super().__init__(limit)
        self.limit = limit


class _OutOfHeaderMemory(Exception):
    """All connections' request heads together would outgrow ``header_memory``."""


class ByteBudget:
    """Bytes shared by every connection's request head; ``total`` 0 means no budget.

    Why on top of the per-head limit: ``max_connections`` heads of ``max_header_bytes`` each is a
    bound, but for the secret store (1 MiB tokens) a loose one; the budget bounds their sum.
    """

    def __init__(self, total: int) -> None:
        self._left = total
        self._unlimited = total == 0
        self._lock = threading.Lock()

    def take(self, count: int) -> bool:
        if self._unlimited:
            return True
        with self._lock:
            if count > self._left:
                return False
            self._left -= count
            return True

    def give(self, count: int) -> None:
        if not self._unlimited and count:
            with self._lock:
                self._left += count

    @property
    def left(self) -> int:
        with self._lock:
            return self._left


class _DeadlineReader(io.RawIOBase):
    """The connection's socket as a raw stream whose reads all end at one deadline.

    Why not a socket timeout: it bounds each ``recv``, so a client sending one byte per
    ``timeout - 1`` seconds (slowloris) could hold a thread and its buffers forever. Before every
    ``recv`` the timeout is lowered to the time left, so the header block as a whole has a deadline.
    """

    def __init__(self, sock: socket.socket, idle_timeout: float) -> None:
        super().__init__()
        self._sock, self._idle_timeout = sock, idle_timeout
        self.deadline: float | None = None
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # a writable buffer (memoryview)
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request header deadline passed")
            self._sock.settimeout(min(left, self._idle_timeout))
        count = self._sock.recv_into(buffer)
        self.received += count
        return count

    def start(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds if seconds > 0 else None
        self.received = 0

    def stop(self) -> None:
        if self.deadline is not None:
            self.deadline = None
            with contextlib.suppress(OSError):
                self._sock.settimeout(self._idle_timeout)


class RequestHandler(http.server.BaseHTTPRequestHandler):
    """Turns every method into one ``App.handle`` call and writes its response."""

    protocol_version = "HTTP/1.1"
    server_version = "k8s-sa-workload"
    sys_version = ""
    timeout = HANDLER_TIMEOUT_SECONDS  # an idle or slow client cannot hold a thread forever
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the client's
    # delayed ACK (~40 ms on Linux), so every answer on a keep-alive connection took 40 ms or more.
    disable_nagle_algorithm = True
    server: "WorkloadServer"
    _reader: _DeadlineReader
    _held = 0  # bytes of the shared header budget this connection's current head holds

    def setup(self) -> None:
        """Read through :class:`_DeadlineReader` (the buffered file ``setup`` made is closed first, or
        the socket would never really close)."""
        super().setup()
        self.rfile.close()
        self._reader = _DeadlineReader(self.connection, HANDLER_TIMEOUT_SECONDS)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """``BaseHTTPRequestHandler.handle_one_request`` with the request head read under :class:`Limits`.

        The head is read here, bounded in bytes, lines and time (and its bytes counted against the
        server's shared ``header_memory``), then handed to the standard ``parse_request`` from memory,
        so parsing and its checks stay the standard library's. The head's share of the budget is given
        back when the request is done.
        """
        try:
            self._handle_one_request()
        finally:
            self.server.header_budget.give(self._held)
            self._held = 0

    def _handle_one_request(self) -> None:
        limits = self.server.limits
        self._reader.start(limits.header_timeout)
        try:
            head = self._read_head(limits)
        except _HeaderTooLarge as exc:
            self._refuse(414 if exc.limit == "request-line" else 431, exc.limit)
            return
        except _OutOfHeaderMemory:
            self._refuse(503, "header-memory")
            return
        except TimeoutError:
            self.close_connection = True
            if self._reader.received:
                self._refuse(408, "header-timeout")
            else:  # an idle (keep-alive) connection: nothing to answer, just close
                self.server.limit_log.note("idle-timeout", None)
            return
        except OSError:
            self.close_connection = True
            return
        finally:
            self._reader.stop()
        if head is None:
            self.close_connection = True
            return
        request_line, header_block = head
        self.raw_requestline = request_line
        stream, self.rfile = self.rfile, io.BufferedReader(io.BytesIO(header_block))
        try:
            parsed = self.parse_request()
        finally:
            self.rfile = stream
        if not parsed:
            return  # parse_request has answered (400, 505, ...) and closes the connection
        try:
            method = getattr(self, f"do_{self.command}", None)
            if method is None:
                self.send_error(http.HTTPStatus.NOT_IMPLEMENTED, "Unsupported method")
                return
            method()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def _read_head(self, limits: Limits) -> tuple[bytes, bytes] | None:
        """Request line and header lines (blank line included); ``None`` if the client closed before
        the head was complete (nothing is answered to a client that went away mid-head).

        Besides the limits, the standard library's own bounds hold as they did: a request line over
        64 KiB gets 414, a header line over ``http.client._MAXLINE`` 431.
        """
        left = limits.max_header_bytes
        request_line = self._read_line(left, REQUEST_LINE_LIMIT, "request-line")
        if not request_line.endswith(b"\n"):
            return None
        left -= len(request_line)
        lines, header_lines = [], 0
        while True:
            line = self._read_line(left, http.client._MAXLINE, "header-line")  # type: ignore[attr-defined]
            if not line.endswith(b"\n"):
                return None
            left -= len(line)
            lines.append(line)
            if line in (b"\r\n", b"\n"):
                return request_line, b"".join(lines)
            header_lines += 1
            if header_lines > limits.max_headers:
                raise _HeaderTooLarge("header-count")

    def _read_line(self, left: int, line_limit: int, line_name: str) -> bytes:
        """One line within the ``left`` bytes of the head and ``line_limit``; read in chunks, so a long
        line is refused as it grows, never held whole."""
        limit, name = (line_limit, line_name) if line_limit < left else (left, "header-bytes")
        pieces: list[bytes] = []
        size = 0
        budget = self.server.header_budget
        while True:
            want = min(HEADER_READ_CHUNK, limit - size + 1)
            if not budget.take(want):
                raise _OutOfHeaderMemory
            self._held += want
            piece = self.rfile.readline(want)
            budget.give(want - len(piece))
            self._held -= want - len(piece)
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                raise _HeaderTooLarge(name)
            if not piece or piece.endswith(b"\n"):
                return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _refuse(self, status: int, limit: str) -> None:
        """Answer a refusal and close; the connection's unread bytes are drained briefly first, so
        the client's TCP stack is not reset before it has read the answer."""
        self.close_connection = True
        self.server.limit_log.note(limit, status)
        with contextlib.suppress(OSError):
            self.connection.settimeout(REFUSAL_WRITE_SECONDS)
            self.wfile.write(refusal_bytes(status))
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            _linger(self.connection, LINGER_SECONDS, LINGER_BYTES)

    def _dispatch(self) -> None:
        request = Request(self.command, urlsplit(self.path).path, self.headers)
        try:
            response = self.server.app.handle(request)
        except Exception as exc:  # a bug must cost one 500, not the connection thread
            log_event("handler-error", error=type(exc).__name__)
            response = Response(500, b"internal error")
        if self.headers.get("Content-Length", "0").strip() != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the body is never read, so the connection cannot be reused
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: the apps log one decision line per request themselves."""

    def log_message(self, format: str, *args: Any) -> None:
        log_event("http-error", message=(format % args)[:200])


def _linger(sock: socket.socket, seconds: float, max_bytes: int) -> None:
    """Read and drop what the client still sends, for at most ``seconds`` and ``max_bytes``."""
    deadline = time.monotonic() + seconds
    dropped = 0
    while dropped < max_bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(left)
        chunk = sock.recv(HEADER_READ_CHUNK)
        if not chunk:
            return
        dropped += len(chunk)


class WorkloadServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server bound to ``LISTEN_ADDR`` that owns its app (closed with the server).

    At most ``limits.max_connections`` connections are served at once (one thread each); beyond
    that, a connection is answered 503 with ``Connection: close`` from the accepting thread without
    blocking it, and closed.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        listen: tuple[str, int],
        app: App,
        *,
        limits: Limits | None = None,
        dual_stack: bool = False,
        handler: type[RequestHandler] | None = None,
    ) -> None:
        host, port = listen
        self.app = app
        self.limits = limits or Limits()
        self.limit_log = LimitLog()
        self.header_budget = ByteBudget(self.limits.header_memory)
        self._active = 0
        self._active_lock = threading.Lock()
        self._dual_stack = dual_stack
        self.address_family = socket.AF_INET6 if dual_stack or ":" in host else socket.AF_INET
        super().__init__(("::" if dual_stack else host, port), handler or RequestHandler)

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse-DNS lookup (slow or hanging without DNS)."""
        if self._dual_stack:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    @property
    def bound_addr(self) -> str:
        return format_hostport(self.server_name, self.server_port)

    @property
    def active_connections(self) -> int:
        with self._active_lock:
            return self._active

    def process_request(self, request: Any, client_address: Any) -> None:
        cap = self.limits.max_connections
        with self._active_lock:
            admitted = not cap or self._active < cap
            if admitted:
                self._active += 1
        if not admitted:
            self.limit_log.note("connections", 503)
            _refuse_unserved(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._active_lock:
            self._active -= 1

    def server_close(self) -> None:
        super().server_close()
        self.limit_log.flush()
        self.app.close()


def _refuse_unserved(sock: socket.socket) -> None:
    """503 without blocking the accepting thread: what the kernel takes now is sent, then close.

    Bytes the client already sent are read (without waiting) first, so closing does not reset the
    connection before the client reads the answer.
    """
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(refusal_bytes(503))
        for _ in range(4):
            if not sock.recv(HEADER_READ_CHUNK):
                break


def bind(
    listen: tuple[str, int],
    app: App,
    limits: Limits | None = None,
    *,
    handler: type[RequestHandler] | None = None,
) -> WorkloadServer:
    """Bind the server; an empty host means every interface, IPv6 and IPv4 where the pod has both.

    ``handler`` replaces the one that turns each request into an ``App.handle`` call (the token tap's
    relay forwards requests as they are instead); the head is read under ``limits`` either way.
    """
    host, port = listen
    try:
        if not host and socket.has_dualstack_ipv6():
            with contextlib.suppress(OSError):  # IPv6 disabled in this pod: IPv4 below
                return WorkloadServer(listen, app, limits=limits, dual_stack=True, handler=handler)
        return WorkloadServer((host or "0.0.0.0", port), app, limits=limits, handler=handler)  # noqa: S104 - empty host means all interfaces
    except OSError as exc:
        raise ConfigError(f"cannot listen on {format_hostport(host, port)}: {exc.strerror or exc}") from None


def raise_header_line_limit(limit: int) -> None:
    """Let ``http.server`` read header lines up to ``limit`` bytes.

    Why: the standard library answers 431 to any header line over 64 KiB, before our handler runs.
    The secret store must answer an oversized token with its own 403, so the per-line limit is raised
    (it is a module global read at parse time); the limit on the number of headers stays.
    """
    if limit > http.client._MAXLINE:  # type: ignore[attr-defined]
        http.client._MAXLINE = limit  # type: ignore[attr-defined]


def serve_until_signalled(server: WorkloadServer, ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting, close and return (exit 0 for kubelet).

    ``ready`` runs once the signal handlers are installed and the server thread runs: whoever waits
    for the "listening" line it logs may send SIGTERM at once and still get a clean stop (before,
    the line came first and a signal in that moment killed the process with the default action).
    """
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log_event("stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def serve() -> None:
        try:
            server.serve_forever()
        finally:
            stop.set()  # if the loop dies, main must not wait forever

    thread = threading.Thread(target=serve, name="serve", daemon=True)
    thread.start()
    try:
        if ready is not None:
            ready()
        stop.wait()
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_main(
    service: str,
    argv: Sequence[str] | None,
    usage: str | None,
    build: Callable[[Mapping[str, str]], WorkloadServer],
) -> int:
    """The common ``main``: configuration comes from the environment only; errors exit 2 in one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]):
        print(usage or service)
        return 0
    if args:
        print(
            f"{service}: unexpected arguments {args!r}; configuration is read from the environment (--help)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        server = build(os.environ)
    except ConfigError as exc:
        print(f"{service}: configuration error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_CONFIG
    log_event("starting", service=service, **server.app.summary(), limits=server.limits.summary())

    def listening() -> None:
        log_event("listening", service=service, addr=server.bound_addr)

    serve_until_signalled(server, ready=listening)
    log_event("stopped", service=service)
    return 0

"""The workloads' HTTP server: one thread per connection, every request head read under limits.

A workload implements :class:`App` (``handle``, ``summary``, ``close``); :func:`bind` serves it with
:class:`WorkloadServer`, whose :class:`RequestHandler` reads each request head under a deadline and a
byte budget (:class:`Limits`) and refuses what is over them with a status of its own, so no client
can make a workload hold unbounded memory, threads or time. :func:`serve_until_signalled` stops
cleanly on SIGTERM/SIGINT (exit 0 for the kubelet). Standard library only.
"""

import contextlib
import http.client
import http.server
import io
import json
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any, Protocol
from urllib.parse import urlsplit

from .envconfig import ConfigError, env_float, env_int, format_hostport, log_event

HANDLER_TIMEOUT_SECONDS = 30.0
TEXT = "text/plain; charset=utf-8"


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


SHUTDOWN_POLL_SECONDS = 0.05
"""How often the accept loop looks for a shutdown request: socketserver's default, 0.5 s, made every
stop wait 0.25 s on average (five workloads stopped one after another at the end of every run)."""


def serve_until_signalled(server: WorkloadServer, ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting, close and return (exit 0 for kubelet).

    ``ready`` runs once the signal handlers are installed and the server thread runs: whoever waits
    for the "listening" line it logs may send SIGTERM at once and still get a clean stop (before,
    the line came first and a signal in that moment killed the process with the default action).
    """
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        # Only note it: the handler runs on the main thread, which may be inside log_event holding
        # its lock (writing "listening" as the supervisor reacts to it): logging here would deadlock.
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def serve() -> None:
        try:
            server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)
        finally:
            stop.set()  # if the loop dies, main must not wait forever

    thread = threading.Thread(target=serve, name="serve", daemon=True)
    thread.start()
    try:
        if ready is not None:
            ready()
        stop.wait()
    finally:
        if received:
            log_event("stopping", signal=received[0])
        server.shutdown()
        thread.join()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

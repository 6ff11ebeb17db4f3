"""Calls to other servers (the callee, the Kubernetes API) with a hard deadline and a size limit.

One failure type, :class:`UpstreamError`, for everything below HTTP (connect, TLS, timeout, protocol,
size): each has the same meaning for the callers (503 / 502), and its message never holds request
headers, so it is safe to log. Standard library only.
"""

import contextlib
import http.client
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .envconfig import Endpoint

MAX_RESPONSE_BYTES = 1024 * 1024


class UpstreamError(Exception):
    """A call to another server failed below HTTP (connect, TLS, timeout, protocol, size).

    Why a single type: every such failure has the same meaning for the callers (503 / 502), and its
    message is safe to log because it never contains request headers.
    """


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

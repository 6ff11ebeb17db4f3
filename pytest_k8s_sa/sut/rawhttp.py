"""Raw HTTP/1.1 requests, byte for byte: what a hostile client sends and ``requests`` refuses to.

Used by the suite's ``SEC-*`` checks (repeated, oversized, non-ASCII headers) and the project's
security tests.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawAnswer:
    status: int
    body: bytes
    seconds: float


def raw_request(
    url: str,
    header_lines: Sequence[bytes],
    *,
    method: bytes = b"GET",
    target: bytes = b"/",
    body: bytes = b"",
    timeout: float = 20.0,
) -> RawAnswer:
    """Send one HTTP/1.1 request byte for byte (repeated, folded or non-ASCII headers included).

    ``requests`` and ``http.client`` refuse or normalise exactly the headers a hostile client sends,
    so the request is written to the socket as given; the server is asked to close the connection,
    and the answer is read until it does.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = [method + b" " + target + b" HTTP/1.1", b"Host: " + host.encode(), b"Connection: close"]
    if body:
        head.append(b"Content-Length: " + str(len(body)).encode())
    payload = b"\r\n".join([*head, *header_lines]) + b"\r\n\r\n" + body
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    status_line, _, rest = data.partition(b"\r\n")
    fields = status_line.split(b" ", 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        raise ValueError(f"not an HTTP answer: {data[:80]!r}")
    _, _, answer_body = rest.partition(b"\r\n\r\n")
    return RawAnswer(int(fields[1]), answer_body, time.monotonic() - started)

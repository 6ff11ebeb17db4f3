"""A loopback HTTP relay between a process-mode caller and the callee that notes which token passed.

The rotation checks must know which token a caller *sends*, and a team's caller has no
``/debug/token-info`` endpoint like the reference API service. In process mode the suite gives the
caller this relay as ``${CALLEE_URL}``: every request is forwarded to the callee unchanged (method,
path, headers, body) and the answer relayed back; the relay keeps the ``jti`` of the last credential
it saw in the configured header, never the token itself.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .tokens import decode_claims

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}
)


class TokenTap:
    """Relay to ``upstream`` (``http://host:port``), noting the ``jti`` presented in ``header``."""

    def __init__(self, upstream: str, header: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.header = header
        self.last_jti: str | None = None
        self.requests = 0
        self._lock = threading.Lock()
        tap = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _relay(self) -> None:
                tap._note(self.headers.get(tap.header))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn = http.client.HTTPConnection(*tap.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                except (OSError, http.client.HTTPException):
                    self.send_error(502, "callee unreachable")
                    return
                finally:
                    conn.close()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-tap", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _note(self, value: str | None) -> None:
        if value is None:
            return
        token = value.split(" ", 1)[1] if value.lower().startswith("bearer ") else value
        try:
            jti = decode_claims(token.strip()).get("jti")
        except Exception:
            jti = None
        with self._lock:
            self.requests += 1
            self.last_jti = str(jti) if jti else None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

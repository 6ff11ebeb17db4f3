"""A controllable TCP endpoint in front of the kube-apiserver: the API a process-mode SUT talks to.

The suite (``SEC-FC-*``) and the project's security tests put it between a secret store and the real
apiserver, then switch it per connection: forward, refuse, reset, hang, answer garbage. A store that
fails closed answers no 2xx while it is cut off and recovers by itself when it forwards again.
"""

from __future__ import annotations

import contextlib
import http.client
import selectors
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from .pki import CertificateAuthority, KeyPair
from .ports import free_port


def make_test_ca() -> tuple[CertificateAuthority, KeyPair]:
    """A CA of the test's own and a serving certificate for 127.0.0.1 signed by it."""
    ca = CertificateAuthority("k8s-sa-security-test-ca")
    return ca, ca.issue("flaky-api", ip_addresses=("127.0.0.1",), server=True)


class FlakyApi:
    """A loopback TCP endpoint the secret store uses as its Kubernetes API, switched by the test.

    Modes (chosen per accepted connection):

    * ``forward``: pass bytes through to the real apiserver (TLS end to end, the store sees its cert),
    * ``down``: nothing listens on the port (connection refused),
    * ``reset``: accept, then reset the connection,
    * ``hang``: accept, read, never answer (until the mode changes or the proxy stops),
    * ``plaintext``: answer the TLS ClientHello with plain-text bytes,
    * ``http``: terminate TLS with a certificate the store trusts and send ``response`` verbatim,
    * ``trickle``: like ``http`` but one byte every ``trickle_interval`` seconds,
    * ``silent``: terminate TLS, read the request, never answer.

    Bounded: at most ``max_connections`` at once (more are closed at once), every socket is tracked
    and closed by :meth:`stop`, and all threads are daemons joined with a deadline.
    """

    MODES = ("forward", "down", "reset", "hang", "plaintext", "http", "trickle", "silent")

    def __init__(
        self,
        upstream: tuple[str, int],
        server_pair: KeyPair,
        workdir: Path,
        *,
        max_connections: int = 32,
        trickle_interval: float = 0.2,
    ) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.mode = "forward"
        self.response = b""
        self.trickle_interval = trickle_interval
        self.accepted = 0
        workdir.mkdir(parents=True, exist_ok=True)
        cert, key = server_pair.write(workdir, "flaky-api")
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(cert, key)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> FlakyApi:
        self._listen()
        return self

    def set_mode(self, mode: str, response: bytes = b"") -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            previous, self.mode, self.response = self.mode, mode, response
            open_sockets = list(self._sockets) if previous == "forward" and mode != "forward" else []
        # A client with a kept-alive (or HTTP/2) connection would go on talking to the real apiserver
        # through it: cut every forwarded connection, so its next request meets the new mode.
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # its relay thread sees EOF and closes it
        if mode == "down" and previous != "down":
            self._close_listener()
        elif mode != "down" and previous == "down":
            self._listen()

    def stop(self) -> None:
        self._stop.set()
        self._close_listener()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close_quietly(sock)
        for thread in self._threads:
            thread.join(timeout=5)

    # plumbing

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._acceptor = self._spawn(self._accept_loop, listener)

    def _close_listener(self) -> None:
        listener, acceptor = self._listener, self._acceptor
        self._listener = self._acceptor = None
        if listener is not None:
            _close_quietly(listener)
        if acceptor is not None:
            acceptor.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set() and self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                _close_quietly(client)
                continue
            self.accepted += 1
            with self._lock:
                mode, response = self.mode, self.response
                self._sockets.add(client)
            self._spawn(self._serve, client, mode, response)

    def _serve(self, client: socket.socket, mode: str, response: bytes) -> None:
        try:
            client.settimeout(10)
            if mode == "forward":
                self._forward(client)
            elif mode == "reset":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif mode == "hang":
                self._hang(client)
            elif mode == "plaintext":
                client.recv(4096)
                client.sendall(
                    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"authenticated": true}'
                )
            elif mode in ("http", "trickle", "silent"):
                self._answer_tls(client, response, mode)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(client)
            _close_quietly(client)
            self._slots.release()

    def _forward(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream, timeout=10)
        with self._lock:
            self._sockets.add(upstream)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(client, selectors.EVENT_READ, upstream)
                selector.register(upstream, selectors.EVENT_READ, client)
                while not self._stop.is_set():
                    for key, _ in selector.select(timeout=0.5):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(65536)
                        if not data:
                            return
                        key.data.sendall(data)
        finally:
            with self._lock:
                self._sockets.discard(upstream)
            _close_quietly(upstream)

    def _hang(self, client: socket.socket) -> None:
        """Hold the connection; it closes within one poll once the mode changes (or on stop)."""
        client.settimeout(0.2)
        while not self._stop.is_set() and self.mode == "hang":
            try:
                if not client.recv(65536):
                    return
            except TimeoutError:
                continue

    def _answer_tls(self, client: socket.socket, response: bytes, mode: str) -> None:
        tls = self._tls.wrap_socket(client, server_side=True)
        with self._lock:
            self._sockets.add(tls)
        try:
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                request += chunk
            # Read the request body too: closing with unread bytes sends a TCP reset, which can
            # destroy the canned answer before the client reads it (it then sees a dropped
            # connection, not the 5xx under test).
            head, _, body = request.partition(b"\r\n\r\n")
            length = _content_length(head)
            while len(body) < min(length, 1 << 20):
                chunk = tls.recv(65536)
                if not chunk:
                    return
                body += chunk
            if mode == "http":
                tls.sendall(response)
                return
            if mode == "silent":
                while not self._stop.wait(0.2) and self.mode == "silent":
                    pass
                return
            for index in range(len(response)):
                if self._stop.wait(self.trickle_interval) or self.mode != "trickle":
                    return
                tls.sendall(response[index : index + 1])
        finally:
            with self._lock:
                self._sockets.discard(tls)


def _content_length(head: bytes) -> int:
    """The request's Content-Length (0 when absent or unreadable)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return max(0, int(value.strip()))
            except ValueError:
                return 0
    return 0


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def http_response(
    status: int, body: bytes, *, content_type: str = "application/json", extra: str = ""
) -> bytes:
    reason = http.client.responses.get(status, "Unknown")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


@contextlib.contextmanager
def running_proxy(proxy: FlakyApi) -> Iterator[FlakyApi]:
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()

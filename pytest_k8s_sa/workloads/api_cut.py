"""API cut: a controllable TCP endpoint in front of the kube-apiserver, switched by the suite.

The fail-closed checks (SEC-011..013) put it between the callee and the real apiserver, then switch
it per connection: forward (TLS end to end, the callee sees the apiserver's own certificate), refuse,
reset, hang, or answer garbage. A callee that fails closed grants nothing while it is cut off and
recovers by itself when the cut forwards again.

Why it lives in the standard-library-only workloads package: the same code serves both modes. In
process mode the suite runs it in-process (``pytest_k8s_sa.deploy.apicut.process_mode.FlakyApi``
wraps it, and the callee's ``${KUBECONFIG}`` names it as the server). In pod mode it runs as a pod
(``python -m k8s_sa_workloads.api_cut``, code from the ``k8s-sa-workloads`` ConfigMap) behind a Service named
``kubernetes`` in the callee's namespace, which the callee reaches as ``https://kubernetes:443``; the
suite switches it through a port-forward to its control port.

Environment (pod mode):

* ``UPSTREAM`` (required): ``host:port`` of the real apiserver (the suite passes the ClusterIP of
  ``default/kubernetes``),
* ``CUT_LISTEN_ADDR`` (default ``:8443``): where the cut listens,
* ``LISTEN_ADDR`` (default ``:8444``): the control server: ``GET /healthz``, ``GET /state`` (JSON:
  mode, connections accepted, bytes forwarded from clients, connections per peer address),
  ``POST /mode/<mode>[/<response, base64url>]``,
* ``CERT_FILE``, ``KEY_FILE`` (optional): a serving certificate the callee trusts, for the modes that
  terminate TLS (``http``, ``trickle``, ``silent``, ``review``, ``relay``); without them those modes
  are refused (409),
* ``UPSTREAM_CA_FILE`` (optional): the CA that verifies the real apiserver, for ``relay`` (which
  opens its own TLS connection upstream); ``UPSTREAM_NAME`` (default: the host of ``UPSTREAM``): the
  name its certificate must carry (pod mode: ``kubernetes``).
"""

import base64
import binascii
import contextlib
import http.client
import json
import selectors
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Mapping, Sequence

from .entry import run_main
from .envconfig import ConfigError, env_str, format_hostport, log_event, parse_listen_addr
from .httpserver import SHUTDOWN_POLL_SECONDS, Request, Response, WorkloadServer, bind, json_response

MODES = ("forward", "down", "reset", "hang", "plaintext", "http", "trickle", "silent", "review", "relay")
TLS_MODES = ("http", "trickle", "silent", "review", "relay")
"""Modes that terminate TLS themselves: they need a certificate the callee trusts."""
ATTACKER_PREFIX = "/k8s-sa-attacker/"
"""Paths under this prefix are answered by the cut itself in ``relay`` mode (KEY-005's documents:
a key set and a certificate of a key the attacker holds), never relayed, and counted."""
MAX_COUNTED_PATHS = 64
"""``relay`` counts requests per path for at most this many distinct paths (the rest: ``(other)``)."""
MAX_REQUEST_HEAD_BYTES = 65536
MAX_REQUEST_BODY_BYTES = 1 << 20


class ApiCut:
    """A TCP endpoint the callee uses as its Kubernetes API, switched by the suite.

    Modes (chosen per accepted connection):

    * ``forward``: pass bytes through to the real apiserver (TLS end to end, the callee sees its cert),
    * ``down``: nothing listens on the port (connection refused),
    * ``reset``: accept, then reset the connection,
    * ``hang``: accept, read, never answer (until the mode changes or the cut stops),
    * ``plaintext``: answer the TLS ClientHello with plain-text bytes,
    * ``http``: terminate TLS with a certificate the callee trusts and send ``response`` verbatim,
    * ``trickle``: like ``http`` but one byte every ``trickle_interval`` seconds,
    * ``silent``: terminate TLS, read the request, never answer,
    * ``review``: terminate TLS and answer a TokenReview itself (HTTP 201, ``status`` = the JSON object
      in ``response``, ``spec.audiences`` echoed, never the token); any other request gets a 503. The
      reviewer that lies (SEC-014): ``authenticated: true`` without the callee's audience.
      ``answered_reviews`` counts the reviews it answered.
    * ``relay``: terminate TLS, read one HTTP/1.1 request, count it by path (no query, no header, no
      body is kept), and relay it to the real apiserver over a TLS connection of its own (verified
      against ``upstream_ca_file``), ``Connection: close``, the answer relayed byte for byte. Unlike
      ``forward`` it sees which paths the callee asks for: KEY-004 counts the key-set fetches an
      unknown ``kid`` causes. ``response`` (a JSON object ``{path: text}``) holds documents under
      :data:`ATTACKER_PREFIX` the cut answers itself (KEY-005's ``jku``/``x5u`` targets).
      ``path_counts`` counts the requests it saw.

    Bounded: at most ``max_connections`` at once (more are closed at once), every socket is tracked
    and closed by :meth:`stop`, and all threads are daemons joined with a deadline.
    ``forwarded_bytes`` counts the bytes clients sent through ``forward``: the suite compares it
    around a normal verdict to prove the callee reaches its API through the cut at all.
    """

    MODES = MODES

    def __init__(
        self,
        upstream: tuple[str, int],
        cert_file: str | None,
        key_file: str | None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 32,
        trickle_interval: float = 0.2,
        upstream_ca_file: str | None = None,
        upstream_name: str | None = None,
    ) -> None:
        self.upstream = upstream
        self.upstream_name = upstream_name or upstream[0]
        self.host = host
        self.port = port
        self.mode = "forward"
        self.response = b""
        self.trickle_interval = trickle_interval
        self.accepted = 0
        self.forwarded_bytes = 0
        self.answered_reviews = 0
        self.path_counts: dict[str, int] = {}
        self.peers: dict[str, int] = {}
        self._tls: ssl.SSLContext | None = None
        if cert_file and key_file:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(cert_file, key_file)
        self._upstream_tls: ssl.SSLContext | None = None
        if upstream_ca_file:
            self._upstream_tls = ssl.create_default_context(cafile=upstream_ca_file)
            self._upstream_tls.set_alpn_protocols(["http/1.1"])
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this cut can play (the TLS-terminating ones only with a certificate; ``relay``
        also needs the CA that verifies the apiserver)."""
        modes = MODES if self._tls is not None else tuple(m for m in MODES if m not in TLS_MODES)
        return modes if self._upstream_tls is not None else tuple(m for m in modes if m != "relay")

    def start(self) -> "ApiCut":
        self._listen()
        return self

    def set_mode(self, mode: str, response: bytes = b"") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        if mode not in self.modes:
            needs = "CERT_FILE/KEY_FILE" + (" and UPSTREAM_CA_FILE" if mode == "relay" else "")
            raise ValueError(f"mode {mode!r} terminates TLS and needs {needs}")
        with self._lock:
            previous, self.mode, self.response = self.mode, mode, response
            passing = ("forward", "relay")
            open_sockets = list(self._sockets) if previous in passing and mode != previous else []
        # A client with a kept-alive (or HTTP/2) connection would go on talking to the real apiserver
        # through it: cut every forwarded connection, so its next request meets the new mode (from
        # ``forward`` to ``relay`` too: its key-set fetches are then counted).
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # its relay thread sees EOF and closes it
        if mode == "down" and previous != "down":
            self._close_listener()
        elif mode != "down" and previous == "down":
            self._listen()

    def state(self) -> dict[str, object]:
        with self._lock:
            return {
                "mode": self.mode,
                "modes": list(self.modes),
                "accepted": self.accepted,
                "forwarded_bytes": self.forwarded_bytes,
                "reviews_answered": self.answered_reviews,
                "requests_by_path": dict(self.path_counts),
                "peers": dict(self.peers),
            }

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
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        self.port = listener.getsockname()[1]  # port 0: the kernel's choice, kept for `down` -> `forward`
        listener.listen(64)
        listener.settimeout(SHUTDOWN_POLL_SECONDS)
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
                client, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                _close_quietly(client)
                continue
            with self._lock:
                self.accepted += 1
                self.peers[str(peer[0])] = self.peers.get(str(peer[0]), 0) + 1
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
            elif mode == "relay":
                self._relay(client, response)
            elif mode in TLS_MODES:
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
                    for key, _ in selector.select(timeout=SHUTDOWN_POLL_SECONDS):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(65536)
                        if not data:
                            return
                        if source is client:
                            with self._lock:
                                self.forwarded_bytes += len(data)
                        key.data.sendall(data)
        finally:
            with self._lock:
                self._sockets.discard(upstream)
            _close_quietly(upstream)

    def _relay(self, client: socket.socket, documents: bytes) -> None:
        """One request: counted by path, answered from ``documents`` under :data:`ATTACKER_PREFIX`,
        else relayed to the apiserver over TLS with ``Connection: close`` and its answer relayed back."""
        if self._tls is None or self._upstream_tls is None:
            return
        tls = self._tls.wrap_socket(client, server_side=True)
        with self._lock:
            self._sockets.add(tls)
        try:
            request = read_request(tls)
            if request is None:
                return
            head, body = request
            path = request_path(head)
            with self._lock:
                self.forwarded_bytes += len(head) + len(body)
                key = (
                    path
                    if path in self.path_counts or len(self.path_counts) < MAX_COUNTED_PATHS
                    else "(other)"
                )
                self.path_counts[key] = self.path_counts.get(key, 0) + 1
            if path.startswith(ATTACKER_PREFIX):
                tls.sendall(attacker_document(path, documents))
                return
            if b"transfer-encoding:" in head.lower():
                tls.sendall(http_response(501, b'{"error":"the cut relays Content-Length bodies only"}'))
                return
            raw = socket.create_connection(self.upstream, timeout=10)
            try:
                upstream = self._upstream_tls.wrap_socket(raw, server_hostname=self.upstream_name)
            except (OSError, ssl.SSLError):
                _close_quietly(raw)
                raise
            with self._lock:
                self._sockets.add(upstream)
            try:
                upstream.sendall(closing(head) + body)
                while not self._stop.is_set():
                    data = upstream.recv(65536)
                    if not data:
                        return
                    tls.sendall(data)
            finally:
                with self._lock:
                    self._sockets.discard(upstream)
                _close_quietly(upstream)
        finally:
            with self._lock:
                self._sockets.discard(tls)

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
        if self._tls is None:
            return
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
            if mode == "review":
                answer = review_answer(head, body, response)
                if answer is not None:
                    with self._lock:
                        self.answered_reviews += 1
                tls.sendall(answer or http_response(503, b'{"kind":"Status","status":"Failure","code":503}'))
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


def review_answer(head: bytes, body: bytes, status: bytes) -> "bytes | None":
    """The cut's own answer to a TokenReview request (``status``: a JSON object), or None for any
    other request. The requested audiences are echoed in ``spec``; the token never is (no token in
    an answer, a log or a report).

    The request may be JSON or Kubernetes protobuf (client-go's typed clients send built-in kinds as
    ``application/vnd.kubernetes.protobuf`` and accept JSON back): either way the answer is JSON,
    which every client decodes by the answer's Content-Type."""
    request_line = head.split(b"\r\n", 1)[0].split()
    if len(request_line) < 2 or request_line[0] != b"POST":
        return None
    if not request_line[1].split(b"?", 1)[0].rstrip(b"/").endswith(b"/tokenreviews"):
        return None
    try:
        if _header(head, b"content-type").startswith(PROTOBUF_CONTENT_TYPE):
            audiences: object = _protobuf_review_audiences(body)
        else:
            spec = json.loads(body or b"{}").get("spec") or {}
            audiences = spec.get("audiences") if isinstance(spec, dict) else None
        answer_status = json.loads(status or b"{}")
    except (ValueError, AttributeError):
        return None
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "metadata": {"creationTimestamp": None},
        "spec": {"audiences": audiences} if isinstance(audiences, list) else {},
        "status": answer_status,
    }
    return http_response(201, json.dumps(review).encode())


PROTOBUF_CONTENT_TYPE = b"application/vnd.kubernetes.protobuf"
PROTOBUF_MAGIC = b"k8s\x00"
"""Kubernetes' protobuf envelope: these four bytes, then a ``runtime.Unknown`` message whose field 2
(``raw``) holds the object (k8s.io/apimachinery/pkg/runtime/serializer/protobuf)."""


def _header(head: bytes, name: bytes) -> bytes:
    """One request header's value, lower-cased (empty when absent)."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().lower()
    return b""


def _protobuf_review_audiences(body: bytes) -> list[str]:
    """``spec.audiences`` of a protobuf TokenReview (TokenReview field 2 = spec; TokenReviewSpec
    field 2 = audiences; field 1, the token, is skipped unread); ValueError when it is not one."""
    if not body.startswith(PROTOBUF_MAGIC):
        raise ValueError("no protobuf envelope")
    raw = _field(body[len(PROTOBUF_MAGIC) :], 2)
    spec = _field(raw, 2) if raw is not None else None
    if spec is None:
        return []
    return [value.decode("utf-8") for number, value in _fields(spec) if number == 2 and value is not None]


def _field(message: bytes, wanted: int) -> "bytes | None":
    return next((value for number, value in _fields(message) if number == wanted), None)


def _fields(message: bytes) -> "list[tuple[int, bytes | None]]":
    """The fields of one protobuf message: (number, bytes of a length-delimited field, else None)."""
    out: list[tuple[int, bytes | None]] = []
    index = 0
    while index < len(message):
        key, index = _varint(message, index)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, index = _varint(message, index)
            out.append((number, None))
        elif wire == 2:
            length, index = _varint(message, index)
            if index + length > len(message):
                raise ValueError("truncated protobuf field")
            out.append((number, message[index : index + length]))
            index += length
        elif wire in (1, 5):
            index += 8 if wire == 1 else 4
            out.append((number, None))
        else:
            raise ValueError(f"protobuf wire type {wire} is not read here")
    return out


def _varint(data: bytes, index: int) -> "tuple[int, int]":
    value, shift = 0, 0
    while True:
        if index >= len(data) or shift > 63:
            raise ValueError("bad protobuf varint")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7


def read_request(sock: socket.socket) -> "tuple[bytes, bytes] | None":
    """One HTTP/1.1 request from ``sock``: its head (without the blank line) and its Content-Length
    body; None when the client closed first or sent more than the limits allow."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_REQUEST_HEAD_BYTES:
            return None
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = _content_length(head)
    if length > MAX_REQUEST_BODY_BYTES:
        return None
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head, body[:length]


def request_path(head: bytes) -> str:
    """The path of a request's target (the query dropped: it is never counted or kept)."""
    parts = head.split(b"\r\n", 1)[0].split()
    target = parts[1].decode("latin-1") if len(parts) >= 2 else ""
    if "://" in target:  # absolute form
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    return target.split("?", 1)[0] or "/"


def closing(head: bytes) -> bytes:
    """The request head with ``Connection: close`` in place of any connection header."""
    lines = head.split(b"\r\n")
    hop = (b"connection", b"keep-alive", b"proxy-connection")
    kept = [lines[0]] + [line for line in lines[1:] if line.partition(b":")[0].strip().lower() not in hop]
    return b"\r\n".join([*kept, b"Connection: close", b"", b""])


def attacker_document(path: str, documents: bytes) -> bytes:
    """The cut's own answer for ``path`` under :data:`ATTACKER_PREFIX`: the text ``documents`` (a
    JSON object ``{path: text}``) holds for it, else 404."""
    try:
        texts = json.loads(documents or b"{}")
    except ValueError:
        texts = {}
    text = texts.get(path) if isinstance(texts, dict) else None
    if not isinstance(text, str):
        return http_response(404, b'{"error":"no such document"}')
    kind = "application/json" if text.lstrip().startswith("{") else "application/pem-certificate-chain"
    return http_response(200, text.encode(), content_type=kind)


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
    """A complete HTTP/1.1 answer (``Connection: close``) for the ``http`` and ``trickle`` modes."""
    reason = http.client.responses.get(status, "Unknown")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


# --- pod mode: the control server --------------------------------------------------------------


class ControlApp:
    """``GET /state``, ``POST /mode/<mode>[/<base64url response>]``, ``GET /healthz``."""

    def __init__(self, cut: ApiCut) -> None:
        self.cut = cut

    def handle(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET" and parts == ["healthz"]:
            return Response(200, b"ok")
        if request.method == "GET" and parts == ["state"]:
            return json_response(200, self.cut.state())
        if request.method == "POST" and parts[:1] == ["mode"] and len(parts) in (2, 3):
            try:
                response = base64.urlsafe_b64decode(parts[2]) if len(parts) == 3 else b""
            except (binascii.Error, ValueError):
                return json_response(400, {"error": "the response is not base64url"})
            try:
                self.cut.set_mode(parts[1], response)
            except ValueError as exc:
                return json_response(409, {"error": str(exc)})
            log_event("mode", mode=parts[1], response_bytes=len(response))
            return json_response(200, self.cut.state())
        return json_response(404, {"error": "GET /state, POST /mode/<mode>[/<base64url>], GET /healthz"})

    def summary(self) -> dict[str, object]:
        return {
            "upstream": format_hostport(*self.cut.upstream),
            "cut": format_hostport(self.cut.host, self.cut.port),
            "modes": list(self.cut.modes),
        }

    def close(self) -> None:
        self.cut.stop()


def make_server(environ: Mapping[str, str]) -> WorkloadServer:
    """Start the cut (forwarding) and bind its control server (``server_close`` stops both)."""
    raw = env_str(environ, "UPSTREAM")
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"UPSTREAM must be host:port of the real apiserver, not {raw!r}")
    cert, key = env_str(environ, "CERT_FILE"), env_str(environ, "KEY_FILE")
    if bool(cert) != bool(key):
        raise ConfigError("CERT_FILE and KEY_FILE go together")
    upstream_ca, upstream_name = env_str(environ, "UPSTREAM_CA_FILE"), env_str(environ, "UPSTREAM_NAME")
    listen_host, listen_port = parse_listen_addr(
        env_str(environ, "CUT_LISTEN_ADDR", ":8443"), "CUT_LISTEN_ADDR"
    )
    try:
        cut = ApiCut(
            (host.strip("[]"), int(port)),
            cert or None,
            key or None,
            host=listen_host or "0.0.0.0",  # noqa: S104 - empty host means all interfaces (in a pod)
            port=listen_port,
            upstream_ca_file=upstream_ca or None,
            upstream_name=upstream_name or None,
        )
        cut.start()
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot start the cut: {exc}") from None
    try:
        return bind(parse_listen_addr(env_str(environ, "LISTEN_ADDR", ":8444")), ControlApp(cut))
    except ConfigError:
        cut.stop()
        raise


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("api-cut", argv, __doc__, make_server)


if __name__ == "__main__":
    raise SystemExit(main())

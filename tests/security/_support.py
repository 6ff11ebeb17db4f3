"""Support for the security gates: extra secret-store processes, raw HTTP, a controllable API proxy, load.

Shared by ``tests/security`` and ``benchmarks/load.py`` (which imports it as ``tests.security._support``),
so it depends on the library and the standard library only, never on pytest.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import selectors
import socket
import ssl
import statistics
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from pytest_k8s_sa.cluster import Cluster
from pytest_k8s_sa.deploy import Workload, start_secret_store_process
from pytest_k8s_sa.pki import CertificateAuthority, KeyPair
from pytest_k8s_sa.ports import free_port
from pytest_k8s_sa.process import Process
from pytest_k8s_sa.projector import TokenProjector
from pytest_k8s_sa.tokens import BoundObject
from pytest_k8s_sa.waiting import wait_until

# --- extra secret-store processes --------------------------------------------------------------


@dataclass
class StoreHandle:
    """A secret-store process started by a test, with what the checks look at."""

    workload: Workload
    process: Process
    projector: TokenProjector

    @property
    def url(self) -> str:
        return self.workload.url

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def stats(self) -> dict[str, int]:
        return store_stats(self.url)

    def rss_bytes(self) -> int:
        assert self.process.pid is not None
        return rss_bytes(self.process.pid)

    def stop(self) -> None:
        self.process.stop()
        self.projector.stop()


def launch_store(
    cluster: Cluster,
    workdir: Path,
    *,
    name: str,
    namespace: str,
    service_account: str,
    pod: BoundObject,
    allowed: str,
    audience: str = "secret-store",
    api_url: str | None = None,
    extra_ca: bytes = b"",
    env: Mapping[str, str] | None = None,
) -> StoreHandle:
    """Start one secret store process (``deploy.start_secret_store_process``) for a test.

    ``api_url`` replaces the apiserver's address (e.g. a proxy in front of it); ``extra_ca`` is added
    to the trusted CA bundle (for a proxy that terminates TLS itself); ``env`` sets further variables
    (``REVIEW_TIMEOUT_SECONDS``, ``CACHE_TTL_SECONDS``, ...).
    """
    workload = start_secret_store_process(
        cluster,
        workdir,
        name=name,
        namespace=namespace,
        service_account=service_account,
        pod=pod,
        allowed=allowed,
        audience=audience,
        api_url=api_url,
        extra_ca=extra_ca,
        env=env,
    )
    assert workload.process is not None
    assert workload.projector is not None
    return StoreHandle(workload, workload.process, workload.projector)


def store_stats(url: str) -> dict[str, int]:
    answer = requests.get(f"{url}/debug/stats", timeout=5)
    answer.raise_for_status()
    stats: dict[str, int] = answer.json()
    return stats


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from ``/proc/<pid>/status`` (VmRSS, in bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


# --- raw HTTP ---------------------------------------------------------------------------------


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


def client_id(token: str | bytes) -> bytes:
    """An ``X-Client-Id`` header line."""
    return b"X-Client-Id: " + (token.encode("latin-1") if isinstance(token, str) else token)


# --- the store's log --------------------------------------------------------------------------


class LogWatch:
    """Reads what a process appended to its log since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.exists() else 0

    def new_text(self) -> str:
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # only complete lines; a partial one is read next time
        self._offset += end
        return data[:end].decode("utf-8", errors="replace")

    def new_events(self) -> tuple[str, list[dict[str, object]]]:
        text = self.new_text()
        events = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return text, events


def leaked(text: str, presented: str, *, minimum: int = 20) -> list[str]:
    """Which sensitive parts of ``presented`` (the whole value, its signature segment) occur in ``text``.

    Values shorter than ``minimum`` are not searched for: a 3-character "token" occurs in any log by
    chance, and such a value was never a credential.
    """

    def occurs(value: str) -> bool:
        return value in text or json.dumps(value)[1:-1] in text  # raw, or as a JSON log would escape it

    found = []
    if len(presented) >= minimum and occurs(presented):
        found.append("token")
    segments = presented.split(".")
    if len(segments) == 3 and len(segments[2]) >= minimum and occurs(segments[2]):
        found.append("signature")
    return found


# --- a controllable TCP endpoint in front of the apiserver ------------------------------------


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


# --- concurrent load --------------------------------------------------------------------------


@dataclass
class Mix:
    """What the load sends: kind -> (weight, token source, expected statuses)."""

    kinds: dict[str, tuple[float, Callable[[random.Random], str | None], frozenset[int]]]

    def pick(self, rng: random.Random) -> tuple[str, str | None]:
        names = list(self.kinds)
        kind = rng.choices(names, weights=[self.kinds[n][0] for n in names])[0]
        return kind, self.kinds[kind][1](rng)


@dataclass
class LoadResult:
    threads: int
    seconds: float
    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    unexpected: dict[str, Counter[int]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float, kind: str | None = None) -> float:
        values = self.latencies.get(kind, []) if kind else [v for vs in self.latencies.values() for v in vs]
        if len(values) < 2:
            return values[0] if values else float("nan")
        return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]

    def count(self, kind: str) -> int:
        return sum(self.statuses.get(kind, Counter()).values())

    def summary(self) -> dict[str, object]:
        return {
            "threads": self.threads,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "requests_per_second": round(self.rps, 1),
            "p50_ms": round(self.percentile(0.5) * 1000, 2),
            "p99_ms": round(self.percentile(0.99) * 1000, 2),
            "errors": self.errors,
            "by_kind": {
                kind: {
                    "requests": self.count(kind),
                    "statuses": {str(k): v for k, v in sorted(self.statuses[kind].items())},
                    "p50_ms": round(self.percentile(0.5, kind) * 1000, 2),
                    "p99_ms": round(self.percentile(0.99, kind) * 1000, 2),
                }
                for kind in sorted(self.statuses)
            },
        }


def run_load(
    url: str, mix: Mix, *, threads: int, seconds: float, max_requests: int, seed: int = 0
) -> LoadResult:
    """``threads`` keep-alive clients send ``mix`` for ``seconds`` or ``max_requests`` in all."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lock = threading.Lock()
    result = LoadResult(threads, 0.0)
    budget = iter(range(max_requests))
    start_gate = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        statuses: dict[str, Counter[int]] = {}
        unexpected: dict[str, Counter[int]] = {}
        latencies: dict[str, list[float]] = {}
        errors: list[str] = []
        conn = http.client.HTTPConnection(host, port, timeout=30)
        start_gate.wait()
        try:
            while time.monotonic() < deadline[0]:
                with lock:
                    if next(budget, None) is None:
                        break
                kind, token = mix.pick(rng)
                headers = {} if token is None else {"X-Client-Id": token}
                began = time.perf_counter()
                try:
                    conn.request("GET", "/", headers=headers)
                    answer = conn.getresponse()
                    answer.read()
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(f"{kind}: {type(exc).__name__}: {exc}"[:200])
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                    continue
                latencies.setdefault(kind, []).append(time.perf_counter() - began)
                statuses.setdefault(kind, Counter())[answer.status] += 1
                if answer.status not in mix.kinds[kind][2]:
                    unexpected.setdefault(kind, Counter())[answer.status] += 1
        finally:
            conn.close()
            with lock:
                result.errors += len(errors)
                result.error_samples.extend(errors[:5])
                for kind, counts in statuses.items():
                    result.statuses.setdefault(kind, Counter()).update(counts)
                    result.requests += sum(counts.values())
                for kind, counts in unexpected.items():
                    result.unexpected.setdefault(kind, Counter()).update(counts)
                for kind, values in latencies.items():
                    result.latencies.setdefault(kind, []).extend(values)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    started = time.monotonic()
    deadline[0] = started + seconds
    start_gate.wait()
    for thread in pool:
        thread.join(timeout=seconds + 60)
    result.seconds = time.monotonic() - started
    return result


@contextlib.contextmanager
def running_proxy(proxy: FlakyApi) -> Iterator[FlakyApi]:
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def wait_for_status(url: str, token: str, status: int, timeout: float, message: str) -> None:
    """Until the store answers ``status`` to ``token`` (used for recovery, never for pacing)."""

    def answered() -> bool:
        return requests.get(url, headers={"X-Client-Id": token}, timeout=15).status_code == status

    wait_until(answered, timeout, message, max_interval=0.5, ignore=(requests.RequestException,))


MALFORMED_SAMPLES = ("a.b", "", "not-a-token", "x" * 20000, "a.b.c.d", "Bearer a.b.c")
"""Refused before any TokenReview (shape, size): they must cost the store no API call."""


def forger(issuer: str, namespace: str, name: str, uid: str, kid: str) -> Callable[[random.Random], str]:
    """Fresh tokens for the allow-listed account signed by a key the cluster never saw (each unique).

    Unique on purpose: a refused token is never cached, so each one costs exactly one review, which lets
    the load check account for every TokenReview call.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    lock = threading.Lock()

    def make(_rng: random.Random) -> str:
        t = int(time.time())
        claims = {
            "iss": issuer,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": ["secret-store"],
            "iat": t,
            "nbf": t,
            "exp": t + 3600,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        with lock:
            return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})

    return make


def standard_mix(
    valid: Sequence[str], not_allowed: Sequence[str], forge: Callable[[random.Random], str]
) -> Mix:
    """A few valid tokens, many invalid ones: the load of the issue's gate and of the benchmark."""
    return Mix(
        {
            "valid": (0.35, lambda rng: rng.choice(valid), frozenset({200})),
            "not-allowed": (0.10, lambda rng: rng.choice(not_allowed), frozenset({403})),
            "forged": (0.15, forge, frozenset({403})),
            "malformed": (0.30, lambda rng: rng.choice(MALFORMED_SAMPLES), frozenset({403})),
            "missing": (0.10, lambda rng: None, frozenset({401})),
        }
    )

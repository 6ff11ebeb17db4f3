"""Helpers for the workload unit tests: TLS material, a programmable TokenReview stub, HTTP plumbing."""

import base64
import contextlib
import datetime as dt
import http.client
import http.server
import ipaddress
import json
import os
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from pytest_k8s_sa.workloads.httpserver import WorkloadServer

TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
API_SA = "system:serviceaccount:api:api"
DATA_STORE_SA = "system:serviceaccount:data-store:data-store"
# Every variable a workload reads, so config tests start from a clean environment.
WORKLOAD_ENV = (
    "LISTEN_ADDR",
    "ALLOWED_SERVICE_ACCOUNTS",
    "AUDIENCE",
    "REVIEW_TIMEOUT_SECONDS",
    "CACHE_TTL_SECONDS",
    "MAX_TOKEN_BYTES",
    "K8S_API_URL",
    "K8S_CA_FILE",
    "K8S_TOKEN_FILE",
    "K8S_CLIENT_CERT_FILE",
    "K8S_CLIENT_KEY_FILE",
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "TOKEN_PATH",
    "TOKEN_REFRESH_SECONDS",
    "SECRET_STORE_URL",
    "SECRET_STORE_CONNSTRING",
    "UPSTREAM_TIMEOUT_SECONDS",
    "MAX_HEADER_BYTES",
    "MAX_HEADERS",
    "HEADER_TIMEOUT_SECONDS",
    "MAX_CONNECTIONS",
)


# --- tokens -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(jti: str | None = None, **claims: Any) -> str:
    """A JWT-shaped token with a random signature (only the stub ever "validates" it)."""
    payload = {"jti": jti or secrets.token_hex(8), "sub": API_SA, "iat": 1_800_000_000, "exp": 1_800_003_600}
    payload.update(claims)
    header = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}.{_b64(secrets.token_bytes(64))}"


# --- PKI --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    ca_pem: bytes
    server_cert: Path
    server_key: Path
    client_cert_pem: bytes
    client_key_pem: bytes
    rogue_server_cert: Path  # right name, signed by a CA nobody trusts
    rogue_server_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_pki(directory: Path) -> Pki:
    ca_key, rogue_key = _key(), _key()
    ca = _cert("test-ca", ca_key, None, ca=True)
    rogue = _cert("test-ca", rogue_key, None, ca=True)
    server_key, client_key, rogue_server_key = _key(), _key(), _key()
    server = _cert("apiserver", server_key, (ca, ca_key), usage=ExtendedKeyUsageOID.SERVER_AUTH)
    rogue_server = _cert(
        "apiserver", rogue_server_key, (rogue, rogue_key), usage=ExtendedKeyUsageOID.SERVER_AUTH
    )
    client = _cert("secret-store", client_key, (ca, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    files = {
        "ca.crt": _pem(ca),
        "server.crt": _pem(server),
        "server.key": _pem(server_key),
        "rogue.crt": _pem(rogue_server),
        "rogue.key": _pem(rogue_server_key),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return Pki(
        directory / "ca.crt",
        files["ca.crt"],
        directory / "server.crt",
        directory / "server.key",
        _pem(client),
        _pem(client_key),
        directory / "rogue.crt",
        directory / "rogue.key",
    )


# --- TokenReview stub ---------------------------------------------------------------------------


@dataclass
class Answer:
    """What the stub answers; tests replace it with ``stub.program(...)``."""

    authenticated: bool = True
    username: str = API_SA
    users: dict[str, str] = field(default_factory=dict)  # token -> username, overrides ``username``
    audiences: list[str] | None = None  # None: the requested audiences
    error: str = ""
    jti: str = "stub-jti"
    http_status: int = 201
    raw_body: bytes | None = None
    hold: bool = False  # block until ``stub.release`` is set


@dataclass(frozen=True)
class Call:
    authorization: str | None
    body: dict[str, Any]
    client_cert: bool

    @property
    def token(self) -> str:
        return str(self.body["spec"]["token"])


class TokenReviewStub:
    """An HTTPS TokenReview endpoint on 127.0.0.1 whose answers and delays each test programs."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self.answer = Answer()
        self.calls: list[Call] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != TOKEN_REVIEW_PATH:
                    self.send_error(404)
                    return
                body = json.loads(raw)
                has_cert = isinstance(self.connection, ssl.SSLSocket) and bool(self.connection.getpeercert())
                with stub._lock:
                    stub.calls.append(Call(self.headers.get("Authorization"), body, has_cert))
                    answer = stub.answer
                if answer.hold:
                    stub.release.wait(30)
                payload = answer.raw_body if answer.raw_body is not None else stub._review(answer, body)
                self.send_response(answer.http_status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request: Any, client_address: Any) -> None:
                # TLS handshake in the connection's thread, so a failing client cannot stall accept().
                with contextlib.suppress(OSError):  # clients that time out or reject our CA
                    super().finish_request(context.wrap_socket(request, server_side=True), client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # handshake failures are expected in the untrusted-CA tests

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    @staticmethod
    def _review(answer: Answer, request: dict[str, Any]) -> bytes:
        spec = request.get("spec", {})
        username = answer.users.get(spec.get("token", ""), answer.username)
        user: dict[str, Any] = {
            "username": username,
            "uid": "0b3c1c57-0000-4000-8000-000000000001",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={answer.jti}"]},
        }
        status: dict[str, Any] = {
            "authenticated": answer.authenticated,
            "user": user if answer.authenticated else {},
        }
        if answer.authenticated:
            status["audiences"] = answer.audiences if answer.audiences is not None else spec.get("audiences")
        if answer.error:
            status["error"] = answer.error
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": spec,
            "status": status,
        }
        return json.dumps(review).encode()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def call_count(self) -> int:
        with self._lock:
            return len(self.calls)

    def program(self, **fields: Any) -> None:
        with self._lock:
            self.answer = Answer(**fields)

    def close(self) -> None:
        self.release.set()  # never leave a held request (and its thread) behind
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# --- HTTP helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def request(
    base_url: str,
    path: str = "/",
    *,
    headers: Sequence[tuple[str, str | bytes]] = (),
    method: str = "GET",
    timeout: float = 15,
) -> Reply:
    """One request with exactly the given headers (repeats and raw bytes allowed)."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest(method, path)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return Reply(response.status, response.read(), response.getheader("Content-Type", ""))
    finally:
        conn.close()


def with_token(base_url: str, token: str, path: str = "/") -> Reply:
    return request(base_url, path, headers=[("X-Client-Id", token)])


@contextmanager
def serving(server: WorkloadServer) -> Iterator[str]:
    """Run an in-process workload server in a thread; yields its base URL."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{server.bound_addr}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def stats(base_url: str) -> dict[str, int]:
    """The secret store's counters (reviews made, cache hits, ...)."""
    return dict(request(base_url, "/debug/stats").json)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(check: Callable[[], None], timeout: float = 5.0) -> None:
    """Retry ``check`` until it stops raising AssertionError or the deadline passes."""
    for attempt in Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.02),
        retry=retry_if_exception_type(AssertionError),
        reraise=True,
    ):
        with attempt:
            check()


def kubelet_write(directory: Path, name: str, content: str, stamp: str) -> None:
    """Publish ``content`` the way the kubelet's atomic writer does (``..data`` swapped by rename)."""
    version = directory / f"..{stamp}"
    version.mkdir()
    (version / name).write_text(content)
    staging = directory / "..data_tmp"
    staging.symlink_to(version.name)
    os.replace(staging, directory / "..data")
    link = directory / name
    if not link.is_symlink():
        link.symlink_to(f"..data/{name}")


def log_lines(err: str) -> list[dict[str, Any]]:
    """Parse captured stderr, insisting that every line is one JSON object."""
    return [json.loads(line) for line in err.splitlines() if line.strip()]

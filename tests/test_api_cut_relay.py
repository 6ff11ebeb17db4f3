"""The API cut's ``relay`` mode (KEY-004's counter, KEY-005's attacker documents), without a cluster:
a TLS upstream of this test's own stands in for the apiserver."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_k8s_sa.components.pki import CertificateAuthority
from pytest_k8s_sa.workloads.api_cut import (
    ATTACKER_PREFIX,
    MODES,
    TLS_MODES,
    ApiCut,
    closing,
    request_path,
)


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "connection": self.headers.get("Connection")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[ApiCut, ssl.SSLContext]]:
    ca = CertificateAuthority("relay-test-ca")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    up_cert, up_key = ca.issue("upstream", ip_addresses=("127.0.0.1",), server=True).write(tmp_path, "up")
    cut_cert, cut_key = ca.issue("cut", ip_addresses=("127.0.0.1",), server=True).write(tmp_path, "cut")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(up_cert, up_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cut = ApiCut(
        ("127.0.0.1", server.server_address[1]),
        str(cut_cert),
        str(cut_key),
        upstream_ca_file=str(ca_file),
    ).start()
    try:
        yield cut, ssl.create_default_context(cafile=str(ca_file))
    finally:
        cut.stop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _get(cut: ApiCut, client: ssl.SSLContext, path: str) -> tuple[int, bytes]:
    url = f"https://127.0.0.1:{cut.port}{path}"
    try:
        with urllib.request.urlopen(url, context=client, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_relay_relays_over_tls_and_counts_requests_by_path_without_the_query(relay):
    cut, client = relay
    cut.set_mode("relay")
    for _ in range(3):
        status, body = _get(cut, client, "/openid/v1/jwks?secret=never-kept")
        assert status == 200
        assert json.loads(body) == {"path": "/openid/v1/jwks?secret=never-kept", "connection": "close"}
    _get(cut, client, "/.well-known/openid-configuration")
    assert cut.state()["requests_by_path"] == {"/openid/v1/jwks": 3, "/.well-known/openid-configuration": 1}
    assert "never-kept" not in json.dumps(cut.state())


def test_relay_answers_the_attacker_documents_itself_and_counts_them(relay):
    cut, client = relay
    jwks = json.dumps({"keys": [{"kty": "RSA", "kid": "attacker"}]})
    cut.set_mode("relay", json.dumps({f"{ATTACKER_PREFIX}jwks": jwks}).encode())
    assert _get(cut, client, f"{ATTACKER_PREFIX}jwks") == (200, jwks.encode())
    assert _get(cut, client, f"{ATTACKER_PREFIX}other")[0] == 404
    assert cut.state()["requests_by_path"] == {f"{ATTACKER_PREFIX}jwks": 1, f"{ATTACKER_PREFIX}other": 1}


def test_forward_counts_no_paths(relay):
    cut, client = relay
    assert _get(cut, client, "/openid/v1/jwks")[0] == 200  # TLS end to end: the upstream's certificate
    assert cut.state()["requests_by_path"] == {}
    assert cut.state()["forwarded_bytes"] > 0


def test_relay_needs_the_upstream_ca(tmp_path: Path):
    ca = CertificateAuthority("relay-test-ca")
    cert, key = ca.issue("cut", ip_addresses=("127.0.0.1",), server=True).write(tmp_path, "cut")
    cut = ApiCut(("127.0.0.1", 1), str(cert), str(key))
    assert "relay" in MODES
    assert "relay" in TLS_MODES
    assert "relay" not in cut.modes
    assert "review" in cut.modes
    with pytest.raises(ValueError, match="relay"):
        cut.set_mode("relay")


def test_request_helpers():
    assert request_path(b"GET /a/b?c=d HTTP/1.1\r\nHost: x") == "/a/b"
    assert request_path(b"GET https://h:1/a?x HTTP/1.1") == "/a"
    head = closing(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nKeep-Alive: 5")
    assert head == b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

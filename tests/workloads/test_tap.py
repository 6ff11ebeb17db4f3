"""The token tap: relays every request to the callee unchanged and keeps only the jti it saw.

In process mode the suite runs it in its own process (``LoopbackTap``); in pod mode it runs as a pod
and the suite reads the jti from its status port (``status_server``; the pod layout itself is
exercised in ``test_packaging.py``).
"""

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pytest_k8s_sa.workloads.envconfig import ConfigError, parse_endpoint
from pytest_k8s_sa.workloads.tap import Config, LoopbackTap, TokenTap, credential_jti, status_server

from ._support import closed_port, make_token, request, serving


class Echo(BaseHTTPRequestHandler):
    """A callee that answers 403 with what it received, and a header of its own."""

    protocol_version = "HTTP/1.1"

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        payload = {
            "method": self.command,
            "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body": body,
        }
        data = json.dumps(payload).encode()
        self.send_response(403)
        self.send_header("WWW-Authenticate", 'Bearer realm="callee"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _echo

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def callee() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def tap(callee: str) -> Iterator[LoopbackTap]:
    running = LoopbackTap(callee, "X-Client-Id")
    yield running
    running.close()


def relay(
    url: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest(method, path)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), json.loads(answer.read())
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("X-Client-Id", "{token}", "j-1"),
        ("X-Client-Id", "  {token}  ", "j-1"),
        ("Authorization", "Bearer {token}", "j-1"),
        ("authorization", "bearer {token}", "j-1"),
        ("Authorization", "Basic {token}", None),
        ("Authorization", "{token}", None),
        ("X-Client-Id", "not-a-jwt", None),
        ("X-Client-Id", "a.bm90IGpzb24.c", None),  # payload: "not json"
        ("X-Client-Id", "a.eyJzdWIiOiJ4In0.c", None),  # payload: {"sub":"x"}, no jti
    ],
)
def test_the_jti_of_the_credential_in_the_configured_header(
    header: str, value: str, expected: str | None
) -> None:
    assert credential_jti(value.format(token=make_token("j-1")), header) == expected


def test_requests_are_relayed_unchanged_and_the_jti_is_noted(tap: LoopbackTap) -> None:
    token = make_token("jti-first")
    headers = [("X-Client-Id", token), ("X-Twice", "a"), ("X-Twice", "b"), ("Accept", "*/*")]
    status, answer_headers, echoed = relay(tap.url, "POST", "/some/path?q=1&r=2", headers, b"payload")
    assert status == 403  # the callee's answer, not the tap's
    assert answer_headers["WWW-Authenticate"] == 'Bearer realm="callee"'
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/some/path?q=1&r=2"
    assert echoed["body"] == "payload"
    sent = [pair for pair in echoed["headers"] if pair[0] in ("x-client-id", "x-twice", "accept")]
    assert sent == [["x-client-id", token], ["x-twice", "a"], ["x-twice", "b"], ["accept", "*/*"]]
    assert tap.last_jti == "jti-first"

    relay(tap.url, "GET", "/", [("X-Client-Id", make_token("jti-second"))])
    assert tap.last_jti == "jti-second"
    relay(tap.url, "GET", "/healthz", [])  # no credential: what was noted stays
    assert tap.last_jti == "jti-second"
    assert tap.tap.status() == {"jti": "jti-second", "requests": 2}
    relay(tap.url, "GET", "/", [("X-Client-Id", "garbage")])  # a credential without a jti
    assert tap.last_jti is None


def test_the_token_itself_is_never_kept(tap: LoopbackTap) -> None:
    token = make_token("kept-jti")
    relay(tap.url, "GET", "/", [("X-Client-Id", token)])
    assert tap.last_jti == "kept-jti"
    assert token not in repr(vars(tap.tap))
    assert all(token not in str(value) for value in vars(tap.tap).values())


def test_an_unreachable_callee_is_a_502() -> None:
    running = LoopbackTap(f"http://127.0.0.1:{closed_port()}", "X-Client-Id")
    try:
        reply = request(running.url, headers=[("X-Client-Id", make_token("j-502"))])
    finally:
        running.close()
    assert reply.status == 502
    assert running.last_jti == "j-502"


def test_the_status_port_tells_the_last_jti_and_nothing_else() -> None:
    token_tap = TokenTap(parse_endpoint("http://127.0.0.1:1", "UPSTREAM_URL"), "Authorization", log=False)
    with serving(status_server(token_tap, ("127.0.0.1", 0))) as url:
        assert request(url, "/healthz").status == 200
        assert request(url).json == {"jti": None, "requests": 0}
        token_tap.note("Bearer " + make_token("status-jti"))
        assert request(url).json == {"jti": "status-jti", "requests": 1}
        assert request(url, "/other").status == 404
        assert request(url, method="POST").status == 405


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "UPSTREAM_URL is required"),
        ({"UPSTREAM_URL": "https://callee:8081"}, "must be a http URL"),
        ({"UPSTREAM_URL": "http://callee:8081", "STATUS_ADDR": "nope"}, "STATUS_ADDR"),
        ({"UPSTREAM_URL": "http://callee:8081", "LISTEN_ADDR": ":9000", "STATUS_ADDR": ":9000"}, "different"),
    ],
)
def test_configuration_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env(environ)


def test_configuration_defaults() -> None:
    config = Config.from_env({"UPSTREAM_URL": "http://callee.ns.svc.cluster.local:8081"})
    assert (config.listen, config.status_listen) == (("", 8080), ("", 8090))
    assert config.header == "X-Client-Id"
    assert (config.upstream.host, config.upstream.port) == ("callee.ns.svc.cluster.local", 8081)

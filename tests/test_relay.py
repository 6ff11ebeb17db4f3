"""The port-forward relay: a loopback listener joining each connection to a fresh upstream.

``PortForward`` is this relay with a kubernetes port-forward as the upstream; the relay logic is
tested here against plain local TCP servers (a closed client, an upstream that went away and came
back on the same port, an upstream that refuses). The kubernetes part runs in the conformance suite
on clusters that run pods (local-node, kind).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from pytest_k8s_sa.deploy import Relay, Upstream


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(self.server.prefix + data)  # type: ignore[attr-defined]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def echo_server(port: int = 0, prefix: bytes = b"") -> Iterator[_Server]:
    server = _Server(("127.0.0.1", port), _Echo)
    server.prefix = prefix  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _connect_to(port: int) -> Upstream:
    return Upstream.of_socket(socket.create_connection(("127.0.0.1", port), timeout=5))


def _exchange(relay: Relay, payload: bytes, expect: int | None = None) -> bytes:
    """Send ``payload`` and read until ``expect`` bytes (default: as many as sent) or the end.

    No half-close: like an HTTP client, the client keeps its side open while it waits, and the
    relay ends a connection when either side ends it.
    """
    wanted = len(payload) if expect is None else expect
    received = b""
    with (
        socket.create_connection(("127.0.0.1", relay.local_port), timeout=5) as client,
        contextlib.suppress(OSError),  # a relay that gives up may reset the connection
    ):
        client.sendall(payload)
        while len(received) < wanted and (chunk := client.recv(65536)):
            received += chunk
    return received


@pytest.fixture
def relay_to() -> Iterator[list[Relay]]:
    relays: list[Relay] = []
    yield relays
    for relay in relays:
        relay.close()


def test_relay_carries_data_both_ways_and_survives_a_closed_client(relay_to: list[Relay]) -> None:
    with echo_server() as server:
        relay = Relay(lambda: _connect_to(server.server_address[1]))
        relay_to.append(relay)
        big = bytes(range(256)) * 1200  # larger than one read, in both directions
        assert _exchange(relay, big) == big
        # A client that connects and goes away without a word costs only its own connection.
        abandoned = socket.create_connection(("127.0.0.1", relay.local_port), timeout=5)
        abandoned.close()
        assert _exchange(relay, b"ping") == b"ping"
        assert _exchange(relay, b"pong") == b"pong"


def test_relay_reaches_an_upstream_that_restarted_on_the_same_port(relay_to: list[Relay]) -> None:
    with echo_server(prefix=b"first:") as server:
        port = server.server_address[1]
        relay = Relay(lambda: _connect_to(port))
        relay_to.append(relay)
        assert _exchange(relay, b"a", expect=7) == b"first:a"
    # The upstream is gone (a pod being restarted): this connection fails, the relay stays.
    assert _exchange(relay, b"b") == b""
    with echo_server(port=port, prefix=b"second:"):
        assert _exchange(relay, b"c", expect=8) == b"second:c"


def test_relay_closes_the_client_when_the_upstream_cannot_be_reached(relay_to: list[Relay]) -> None:
    def refuse() -> Upstream:
        raise ConnectionRefusedError("no pod")

    relay = Relay(refuse)
    relay_to.append(relay)
    assert _exchange(relay, b"hello") == b""


def test_closed_relay_stops_listening() -> None:
    relay = Relay(lambda: _connect_to(1))
    port = relay.local_port
    relay.close()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass

"""``http_call``'s deadline covers the whole call, even against a server that trickles its answer.

Socket timeouts bound each read, not the call: before the watchdog, a server sending one byte every
0.2 s held the caller (the secret store's TokenReview, the API service's call to the store) for as
long as it liked. Found by ``tests/security/test_fail_closed.py`` (trickle mode).
"""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pytest_k8s_sa.workloads.envconfig import parse_endpoint
from pytest_k8s_sa.workloads.httpclient import UpstreamError, http_call

TIMEOUT = 1.0


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """Answers every connection with a valid HTTP response, one byte per 0.2 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                for index in range(len(answer)):
                    if stop.wait(0.2):
                        return
                    try:
                        conn.sendall(answer[index : index + 1])
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_a_trickling_answer_times_out_at_the_deadline(trickling_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamError, match="timed out"):
        http_call(parse_endpoint(trickling_server, "test"), "GET", "/", headers={}, timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT + 1.0

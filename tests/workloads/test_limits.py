"""The workloads' limits on what clients can make them hold: head size and lines, head deadline, connections.

Against in-process servers (secret store with the TokenReview stub, API caller), byte for byte over raw
sockets, since ``http.client`` would refuse to send most of these requests.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import pytest

from pytest_k8s_sa.sut import hostile
from pytest_k8s_sa.workloads import api, data_store, secret_store
from pytest_k8s_sa.workloads.envconfig import ConfigError
from pytest_k8s_sa.workloads.httpserver import LimitLog, Limits

from ._support import TokenReviewStub, eventually, log_lines, make_token, with_token
from .conftest import Running

Start = Callable[..., Running]
SLACK = 5.0
"""How late a deadline may fire on a loaded 2-core CI machine; tests bound behaviour, not speed."""


def address(running: Running) -> tuple[str, int]:
    host, port = running.server.server_address[:2]
    return str(host), int(port)


def head(*header_lines: bytes, request_line: bytes = b"GET / HTTP/1.1", close: bool = True) -> bytes:
    """A request head; ``Connection: close`` (last) unless ``close`` is false, so answers end in EOF."""
    lines = (request_line, *header_lines, *[b"Connection: close"] * close)
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def exchange(running: Running, data: bytes, timeout: float = 15.0) -> tuple[bytes, float]:
    """Send ``data``, read until the server closes; the answer and how long the server took."""
    started = time.monotonic()
    with closing(socket.create_connection(address(running), timeout=timeout)) as sock:
        sock.sendall(data)
        return read_until_closed(sock), time.monotonic() - started


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def padded(total: int, *, lines: int = 1) -> bytes:
    """A request head of exactly ``total`` bytes in ``lines`` header lines (plus ``Host``)."""
    base = head(b"Host: t", *[b"X-P%d: " % i for i in range(lines)])
    extra = total - len(base)
    assert extra >= 0
    parts = [b"X-P%d: " % i + b"a" * (extra // lines + (i < extra % lines)) for i in range(lines)]
    data = head(b"Host: t", *parts)
    assert len(data) == total
    return data


# --- configuration --------------------------------------------------------------------------


def test_defaults_bound_the_head_and_connections() -> None:
    assert secret_store.Config.__dataclass_fields__["limits"].default == secret_store.STORE_LIMITS
    store, caller = secret_store.STORE_LIMITS, api.CALLER_LIMITS
    assert store.max_header_bytes == secret_store.MAX_TOKEN_BYTES_LIMIT + 64 * 1024
    assert caller.max_header_bytes == 64 * 1024
    for limits in (store, caller):
        assert (limits.max_headers, limits.header_timeout, limits.max_connections) == (100, 10.0, 64)
        assert limits.header_memory == 16 * 1024 * 1024


def test_limits_come_from_the_environment() -> None:
    env = {
        "MAX_HEADER_BYTES": "4096",
        "MAX_HEADERS": "7",
        "HEADER_TIMEOUT_SECONDS": "2.5",
        "MAX_CONNECTIONS": "9",
    }
    assert Limits.from_env(env) == Limits(4096, 7, 2.5, 9)
    off = {"HEADER_TIMEOUT_SECONDS": "0", "MAX_CONNECTIONS": "0", "HEADER_MEMORY_BYTES": "0"}
    assert Limits.from_env(off) == Limits(header_timeout=0.0, max_connections=0, header_memory=0)
    assert Limits.from_env({"HEADER_MEMORY_BYTES": "1048576"}).header_memory == 1024 * 1024
    assert Limits.from_env({}, secret_store.STORE_LIMITS) == secret_store.STORE_LIMITS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_HEADER_BYTES", "100"),
        ("MAX_HEADER_BYTES", str(512 * 1024 * 1024)),
        ("MAX_HEADER_BYTES", "1e6"),
        ("MAX_HEADERS", "0"),
        ("MAX_HEADERS", "101"),
        ("HEADER_TIMEOUT_SECONDS", "-1"),
        ("HEADER_TIMEOUT_SECONDS", "nan"),
        ("MAX_CONNECTIONS", "-3"),
        ("MAX_CONNECTIONS", "many"),
        ("HEADER_MEMORY_BYTES", "-1"),
    ],
)
def test_bad_limits_are_refused_with_the_variable_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Limits.from_env({name: value})


def test_every_workload_reads_its_limits(tmp_path: Path) -> None:
    env = {"SECRET_STORE_URL": "http://127.0.0.1:1", "MAX_CONNECTIONS": "5", "MAX_HEADER_BYTES": "2048"}
    for config in (api.Config.from_env(env), data_store.Config.from_env(env)):
        assert (config.limits.max_connections, config.limits.max_header_bytes) == (5, 2048)


def test_the_store_reads_its_limits(tmp_path: Path) -> None:
    own_token = tmp_path / "own-token"
    own_token.write_text("store-token")
    env = {
        "ALLOWED_SERVICE_ACCOUNTS": "api:api",
        "K8S_API_URL": "https://127.0.0.1:1",
        "K8S_TOKEN_FILE": str(own_token),
        "HEADER_TIMEOUT_SECONDS": "3",
    }
    limits = secret_store.Config.from_env(env).limits
    assert limits == Limits(secret_store.STORE_LIMITS.max_header_bytes, 100, 3.0, 64)
    assert limits.summary()["header_timeout_seconds"] == 3.0


# --- the request head: bytes and lines ------------------------------------------------------


def test_head_size_limit_is_exact_and_refused_with_431(start_store: Start, stub: TokenReviewStub) -> None:
    store = start_store(limits=Limits(max_header_bytes=4096))
    for lines in (1, 5):
        answer, _ = exchange(store, padded(4096, lines=lines))
        assert status_of(answer) == 401  # read whole: no X-Client-Id, the app's own answer
        answer, _ = exchange(store, padded(4097, lines=lines))
        assert status_of(answer) == 431, answer[:80]
        assert b"Connection: close" in answer
    assert stub.call_count == 0
    assert store.server.limit_log.totals() == {"header-bytes": 2}


def test_header_count_limit_is_exact_and_refused_with_431(start_store: Start) -> None:
    store = start_store(limits=Limits(max_headers=5))
    five = head(b"Host: t", *[b"X-N%d: 1" % i for i in range(3)])  # + Connection: close
    six = head(b"Host: t", *[b"X-N%d: 1" % i for i in range(4)])
    assert status_of(exchange(store, five)[0]) == 401
    assert status_of(exchange(store, six)[0]) == 431


def test_the_standard_librarys_line_bounds_still_hold(start_store: Start) -> None:
    """Even with a larger head limit: request line over 64 KiB 414, a header line over
    ``http.client._MAXLINE`` (the store raises it to 2 MiB) 431, as before the limits."""
    store = start_store(limits=Limits(max_header_bytes=8 * 1024 * 1024))
    long_target = b"GET /" + b"a" * 70_000 + b" HTTP/1.1"
    assert status_of(exchange(store, head(b"Host: t", request_line=long_target))[0]) == 414
    long_line = b"X-Long: " + b"a" * secret_store.HEADER_LINE_LIMIT
    assert status_of(exchange(store, head(b"Host: t", long_line))[0]) == 431
    assert store.server.limit_log.totals() == {"request-line": 1, "header-line": 1}


def test_heads_share_the_header_memory_budget(start_store: Start) -> None:
    store = start_store(limits=Limits(max_header_bytes=1024 * 1024, header_memory=256 * 1024))
    budget = store.server.header_budget
    full = budget.left
    assert status_of(exchange(store, padded(300 * 1024))[0]) == 503  # alone over the budget
    eventually(lambda: assert_equal(budget.left, full))
    with closing(socket.create_connection(address(store), timeout=15)) as hog:
        hog.sendall(b"GET / HTTP/1.1\r\nX-Hog: " + b"a" * 150 * 1024)  # a head that is not finished
        eventually(lambda: assert_less(budget.left, full - 150 * 1024))
        assert status_of(exchange(store, padded(100 * 1024))[0]) == 503  # fits alone, not beside it
    eventually(lambda: assert_equal(budget.left, full))  # the hog left: its share is back
    assert status_of(exchange(store, padded(100 * 1024))[0]) == 401
    eventually(lambda: assert_equal(budget.left, full))
    assert store.server.limit_log.totals() == {"header-memory": 2}


def assert_less(actual: int, bound: int) -> None:
    assert actual < bound


def test_a_token_up_to_the_head_limit_still_gets_the_stores_own_403(start_store: Start) -> None:
    """The default head limit leaves room for the longest token MAX_TOKEN_BYTES may allow."""
    store = start_store()
    token = "a" * secret_store.MAX_TOKEN_BYTES_LIMIT + ".b.c"
    answer, _ = exchange(store, head(b"Host: t", b"X-Client-Id: " + token.encode()))
    assert status_of(answer) == 403


def test_never_ending_oversized_head_is_refused_and_closed(start_store: Start) -> None:
    """The issue's attack, scaled: long lines that never end the block are cut at the limit."""
    store = start_store(limits=Limits(max_header_bytes=256 * 1024))
    outcome = hostile.oversized_headers(store.url, threading.Event(), hold=30)
    assert outcome.ending in hostile.ENDED_BY_SERVER, outcome
    assert outcome.status in (431, None)
    # Cut off long before the 99 MB it would send (what loopback socket buffers take is the slack).
    assert outcome.sent < 20 * 1024 * 1024


def test_limit_log_never_contains_header_values(
    start_store: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    store = start_store(limits=Limits(max_header_bytes=2048, header_timeout=0.5))
    token = make_token()
    answer, _ = exchange(store, head(b"Host: t", b"X-Client-Id: " + token.encode(), b"X-Pad: " + b"a" * 4096))
    assert status_of(answer) == 431
    with closing(socket.create_connection(address(store), timeout=15)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Client-Id: " + token.encode()[:40])
        assert status_of(read_until_closed(sock)) == 408
    err = capsys.readouterr().err
    limits = [line for line in log_lines(err) if line["event"] == "limit"]
    assert {(line["limit"], line["status"]) for line in limits} == {
        ("header-bytes", 431),
        ("header-timeout", 408),
    }
    assert token[:40] not in err
    assert "aaaa" not in err


# --- the request head: deadline -------------------------------------------------------------


def test_trickled_head_gets_408_at_the_deadline_not_per_read(start_store: Start) -> None:
    """A byte every 0.1 s never trips a per-read timeout; the whole head still has 1 s."""
    store = start_store(limits=Limits(header_timeout=1.0))
    outcome = hostile.trickled_headers(store.url, threading.Event(), interval=0.1, hold=30)
    assert (outcome.ending, outcome.status) == ("answered", 408), outcome
    assert 1.0 <= outcome.seconds < 1.0 + SLACK
    assert outcome.sent > 5  # it did keep sending


def test_idle_connection_is_closed_silently_at_the_deadline(start_store: Start) -> None:
    store = start_store(limits=Limits(header_timeout=0.5))
    outcome = hostile.idle_connection(store.url, threading.Event(), hold=30)
    assert (outcome.ending, outcome.status) == ("closed", None), outcome
    assert outcome.seconds < 0.5 + SLACK
    eventually(lambda: assert_equal(store.server.active_connections, 0))


def test_keep_alive_connection_gets_a_fresh_deadline_per_request(start_store: Start) -> None:
    store = start_store(limits=Limits(header_timeout=1.0))
    token = make_token()
    request_bytes = head(b"Host: t", b"X-Client-Id: " + token.encode(), close=False)
    with closing(socket.create_connection(address(store), timeout=15)) as sock:
        file = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(request_bytes)
            status_line = file.readline()
            assert status_line.startswith(b"HTTP/1.1 200"), status_line
            length = 0
            while (line := file.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            file.read(length)
        started = time.monotonic()
        assert file.read() == b""  # then idle: closed without an answer
        assert time.monotonic() - started < 1.0 + SLACK
        file.close()


def test_timeout_zero_switches_the_deadline_off(start_store: Start) -> None:
    store = start_store(limits=Limits(header_timeout=0))
    with closing(socket.create_connection(address(store), timeout=15)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.settimeout(1.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # still open: only the 30 s per-read timeout applies, as before the limits
        sock.sendall(b"Host: t\r\n\r\n")
        sock.settimeout(15)
        assert status_of(read_until_closed_or_answer(sock)) == 401


def read_until_closed_or_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def assert_equal(actual: object, expected: object) -> None:
    assert actual == expected


# --- connections ----------------------------------------------------------------------------


@pytest.fixture
def held() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def test_connections_beyond_the_cap_get_503_and_the_slots_come_back(
    start_store: Start, held: ExitStack
) -> None:
    store = start_store(limits=Limits(max_connections=3))
    for _ in range(3):
        held.enter_context(closing(socket.create_connection(address(store), timeout=15)))
    eventually(lambda: assert_equal(store.server.active_connections, 3))
    with closing(socket.create_connection(address(store), timeout=15)) as extra:
        answer = read_until_closed(extra)
    assert status_of(answer) == 503
    assert b"Connection: close" in answer
    held.close()
    eventually(lambda: assert_equal(store.server.active_connections, 0))
    assert with_token(store.url, make_token()).status == 200
    assert store.server.limit_log.totals()["connections"] >= 1


def test_cap_zero_means_no_cap(start_store: Start, held: ExitStack) -> None:
    store = start_store(limits=Limits(max_connections=0))
    for _ in range(10):
        held.enter_context(closing(socket.create_connection(address(store), timeout=15)))
    eventually(lambda: assert_equal(store.server.active_connections, 10))
    assert with_token(store.url, make_token()).status == 200


def test_api_service_has_the_same_limits(start_caller: Start, tmp_path: Path, held: ExitStack) -> None:
    token_path = tmp_path / "token"
    token_path.write_text(make_token())
    caller = start_caller(
        token_path, "http://127.0.0.1:1", limits=Limits(max_header_bytes=2048, max_connections=2)
    )
    assert status_of(exchange(caller, padded(2049))[0]) == 431
    assert status_of(exchange(caller, head(b"Host: t", request_line=b"GET /healthz HTTP/1.1"))[0]) == 200
    # A slot is released just after the client sees the close: wait, or a held one could be refused.
    eventually(lambda: assert_equal(caller.server.active_connections, 0))
    for _ in range(2):
        held.enter_context(closing(socket.create_connection(address(caller), timeout=15)))
    eventually(lambda: assert_equal(caller.server.active_connections, 2))
    with closing(socket.create_connection(address(caller), timeout=15)) as extra:
        assert status_of(read_until_closed(extra)) == 503


# --- the throttled log and the hostile driver -----------------------------------------------


def test_limit_log_is_throttled_but_counts_everything(capsys: pytest.CaptureFixture[str]) -> None:
    now = [100.0]
    log = LimitLog(interval=1.0, clock=lambda: now[0])
    for _ in range(50):
        log.note("connections", 503)
    now[0] += 1.5
    log.note("connections", 503)
    log.note("header-bytes", 431)
    log.flush()
    lines = [line for line in log_lines(capsys.readouterr().err) if line["event"] == "limit"]
    assert [(line["limit"], line["count"], line["total"]) for line in lines] == [
        ("connections", 1, 1),
        ("connections", 50, 51),
        ("header-bytes", 1, 1),
    ]
    assert log.totals() == {"connections": 51, "header-bytes": 1}


def test_hostile_load_against_a_bounded_store(start_store: Start) -> None:
    """The driver the security test and benchmark use, small and in-process: every hostile
    connection is ended by the server, the valid caller is answered 200 throughout."""
    store = start_store(limits=Limits(max_header_bytes=128 * 1024, header_timeout=0.5, max_connections=16))
    report = hostile.run_hostile_load(
        store.url,
        seconds=2.0,
        oversized=2,
        trickled=2,
        idle=2,
        valid=hostile.valid_caller(store.url, {"X-Client-Id": make_token()}),
        line_bytes=50_000,
        lines=20,
        trickle_interval=0.1,
        hold=20,
    )
    summary = report.summary()
    assert report.threads_left == 0, summary
    assert report.held == 0, summary
    for kind in hostile.KINDS:
        assert report.endings[kind].keys() <= hostile.ENDED_BY_SERVER | {"stopped"}, summary
        assert sum(report.endings[kind][e] for e in hostile.ENDED_BY_SERVER) >= 1, summary
    assert set(report.valid_statuses) == {200}, summary
    assert not report.valid_errors, summary
    # Nothing leaks: every slot and every byte of the shared head budget comes back.
    eventually(lambda: assert_equal(store.server.active_connections, 0), timeout=15)
    eventually(lambda: assert_equal(store.server.header_budget.left, Limits().header_memory))

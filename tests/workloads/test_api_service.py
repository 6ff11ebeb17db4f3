"""The API service (and data store) as callers: relaying, missing tokens, upstream failures, rotation."""

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_k8s_sa.workloads import api, secret_store

from ._support import (
    DATA_STORE_SA,
    TokenReviewStub,
    closed_port,
    eventually,
    kubelet_write,
    log_lines,
    make_token,
    request,
    stats,
)
from .conftest import Running

Start = Callable[..., Running]


@pytest.fixture
def token_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tokens"
    directory.mkdir()
    return directory


@pytest.fixture
def store(start_store: Start) -> Running:
    return start_store(allowed="api:api")


def test_healthz(start_caller: Start, token_dir: Path) -> None:
    caller = start_caller(token_dir / "missing", f"http://127.0.0.1:{closed_port()}")
    reply = request(caller.url, "/healthz")
    assert (reply.status, reply.body) == (200, b"ok")


def test_relays_success_with_its_token(
    start_caller: Start, store: Running, stub: TokenReviewStub, token_dir: Path
) -> None:
    token = make_token()
    (token_dir / "api-token").write_text(token + "\n")
    caller = start_caller(token_dir / "api-token", store.url)
    reply = request(caller.url, "/whatever", method="POST")
    assert (reply.status, reply.body) == (200, secret_store.SUCCESS_BODY)
    assert reply.content_type.startswith("text/plain")
    assert [call.token for call in stub.calls] == [token]


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        ({"username": DATA_STORE_SA}, 403, b"permission denied"),
        ({"http_status": 500, "raw_body": b"down"}, 503, b"token review unavailable"),
    ],
)
def test_relays_refusals_unchanged(
    start_caller: Start,
    store: Running,
    stub: TokenReviewStub,
    token_dir: Path,
    answer: dict[str, object],
    status: int,
    body: bytes,
) -> None:
    (token_dir / "api-token").write_text(make_token())
    caller = start_caller(token_dir / "api-token", store.url)
    stub.program(**answer)
    reply = request(caller.url)
    assert (reply.status, reply.body) == (status, body)


def test_no_token_is_503_without_calling_the_store(
    start_caller: Start, store: Running, token_dir: Path
) -> None:
    caller = start_caller(token_dir / "api-token", store.url)
    reply = request(caller.url)
    assert (reply.status, reply.body) == (503, b"no service-account token available at TOKEN_PATH")
    assert request(caller.url, "/debug/token-info").status == 503
    assert stats(store.url)["requests"] == 0
    (token_dir / "api-token").write_text(make_token())  # appears later: used at once, not after a refresh
    assert request(caller.url).status == 200


@pytest.mark.parametrize("content", ["", "   \n", "two words", "nön-ascii"])
def test_unusable_token_file_counts_as_no_token(
    start_caller: Start, store: Running, token_dir: Path, content: str
) -> None:
    (token_dir / "api-token").write_text(content)
    caller = start_caller(token_dir / "api-token", store.url)
    assert request(caller.url).status == 503
    assert stats(store.url)["requests"] == 0


def test_unreachable_store_is_502(start_caller: Start, token_dir: Path) -> None:
    (token_dir / "api-token").write_text(make_token())
    caller = start_caller(token_dir / "api-token", f"http://127.0.0.1:{closed_port()}")
    reply = request(caller.url)
    assert (reply.status, reply.body) == (502, b"secret store unreachable")


@pytest.fixture
def silent_store() -> Iterator[str]:
    """Accepts connections (kernel backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_store_timeout_is_502_within_the_timeout(
    start_caller: Start, token_dir: Path, silent_store: str
) -> None:
    (token_dir / "api-token").write_text(make_token())
    caller = start_caller(token_dir / "api-token", silent_store, upstream_timeout=0.3)
    started = time.monotonic()
    assert request(caller.url).status == 502
    assert time.monotonic() - started < 2.0


def test_token_info_decodes_claims_without_the_token(start_caller: Start, token_dir: Path) -> None:
    token = make_token(jti="jti-one", iat=1_900_000_000, exp=1_900_000_600)
    (token_dir / "api-token").write_text(token)
    caller = start_caller(token_dir / "api-token", f"http://127.0.0.1:{closed_port()}")
    reply = request(caller.url, "/debug/token-info")
    info = reply.json
    assert reply.status == 200
    assert (info["jti"], info["iat"], info["exp"]) == ("jti-one", 1_900_000_000, 1_900_000_600)
    assert abs(info["loaded_at"] - time.time()) < 60
    assert token.split(".")[1] not in reply.body.decode()


def test_picks_up_rotated_token_after_atomic_symlink_swap(
    start_caller: Start,
    store: Running,
    stub: TokenReviewStub,
    token_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = make_token(jti="first"), make_token(jti="second")
    kubelet_write(token_dir, "api-token", first, "2026_11_28_12_00_00.123456789")
    assert (token_dir / "api-token").is_symlink()
    caller = start_caller(token_dir / "api-token", store.url, token_refresh=0.2)
    assert request(caller.url).status == 200

    kubelet_write(token_dir, "api-token", second, "2026_11_28_12_48_00.987654321")

    def rotated() -> None:
        assert request(caller.url, "/debug/token-info").json["jti"] == "second"

    eventually(rotated, timeout=2.0)  # a few refresh intervals, with slack for a loaded machine
    assert request(caller.url).status == 200
    assert [call.token for call in stub.calls] == [first, second]
    lines = log_lines(capsys.readouterr().err)
    assert [line["jti"] for line in lines if line["event"] == "token-loaded"] == ["first", "second"]
    assert first not in json.dumps(lines)
    assert second.split(".")[2] not in json.dumps(lines)


def test_keeps_last_good_token_when_a_read_fails(token_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = token_dir / "api-token"
    path.write_text(make_token(jti="good"))
    source = api.TokenSource(str(path), 60)
    assert source.refresh()
    path.unlink()
    assert not source.refresh()
    assert not source.refresh()
    held = source.current()
    assert held is not None
    assert held.jti == "good"
    path.write_text(make_token(jti="new"))
    assert source.refresh()
    held = source.current()
    assert held is not None
    assert held.jti == "new"
    events = [line["event"] for line in log_lines(capsys.readouterr().err)]
    assert events == ["token-loaded", "token-read-failed", "token-loaded"]  # failures logged once


def test_refresher_thread_stops_with_the_server(start_caller: Start, token_dir: Path) -> None:
    (token_dir / "api-token").write_text(make_token())
    caller = start_caller(token_dir / "api-token", f"http://127.0.0.1:{closed_port()}", token_refresh=0.05)
    app = caller.server.app
    assert isinstance(app, api.CallerApp)
    thread = app.tokens._thread
    assert thread is not None
    assert thread.is_alive()
    caller.server.server_close()
    assert not thread.is_alive()


def test_data_store_is_refused_by_the_store(
    start_caller: Start, store: Running, stub: TokenReviewStub, token_dir: Path
) -> None:
    """The article's point: a valid token of the wrong service account is refused (not 200)."""
    api_token, data_token = make_token(), make_token(sub=DATA_STORE_SA)
    (token_dir / "api-token").write_text(api_token)
    (token_dir / "data-store-token").write_text(data_token)
    stub.program(users={api_token: "system:serviceaccount:api:api", data_token: DATA_STORE_SA})
    api_caller = start_caller(token_dir / "api-token", store.url)
    data_caller = start_caller(token_dir / "data-store-token", store.url, service="data-store")
    assert request(api_caller.url).status == 200
    reply = request(data_caller.url)
    assert (reply.status, reply.body) == (403, b"permission denied")

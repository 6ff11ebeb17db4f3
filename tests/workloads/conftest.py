"""Fixtures for the workload unit tests: TLS material, the TokenReview stub, in-process servers."""

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from pytest_k8s_sa.workloads import api, secret_store
from pytest_k8s_sa.workloads.apicreds import ApiCredentials
from pytest_k8s_sa.workloads.envconfig import parse_endpoint
from pytest_k8s_sa.workloads.httpserver import WorkloadServer

from ._support import WORKLOAD_ENV, Pki, TokenReviewStub, make_pki, serving


@dataclasses.dataclass(frozen=True)
class Running:
    url: str
    server: WorkloadServer


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def stub(pki: Pki) -> Iterator[TokenReviewStub]:
    server = TokenReviewStub(pki.server_cert, pki.server_key)
    yield server
    server.close()


@pytest.fixture
def store_token_file(tmp_path: Path) -> Path:
    """The secret store's own credential for the API (not a client's token)."""
    path = tmp_path / "store-own-token"
    path.write_text("secret-store-own-bearer-token\n")
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No workload variable leaks in from the machine running the tests (e.g. a CI pod)."""
    for name in WORKLOAD_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def servers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def start_store(
    stub: TokenReviewStub, pki: Pki, store_token_file: Path, servers: ExitStack
) -> Callable[..., Running]:
    """Start a secret store against the stub; keyword arguments override ``secret_store.Config``."""

    def start(
        *, clock: Any = None, cache_size: int = secret_store.CACHE_MAX_ENTRIES, **overrides: Any
    ) -> Running:
        config = secret_store.Config(
            listen=("127.0.0.1", 0),
            allowed=secret_store.AllowList.parse(overrides.pop("allowed", "api:api")),
            api=overrides.pop(
                "api",
                ApiCredentials(stub.url, "test", ca_file=str(pki.ca_file), token_file=str(store_token_file)),
            ),
            review_timeout=overrides.pop("review_timeout", 2.0),
            **overrides,
        )
        kwargs: dict[str, Any] = {"cache_size": cache_size}
        if clock is not None:
            kwargs["clock"] = clock
        server = secret_store.make_server(config, **kwargs)
        return Running(servers.enter_context(serving(server)), server)

    return start


@pytest.fixture
def start_caller(servers: ExitStack) -> Callable[..., Running]:
    """Start an API-style caller; ``store_url`` is where it sends its token."""

    def start(token_path: Path, store_url: str, **overrides: Any) -> Running:
        config = api.Config(
            listen=("127.0.0.1", 0),
            secret_store=parse_endpoint(store_url, "test"),
            token_path=str(token_path),
            **overrides,
        )
        server = api.make_server(config)
        return Running(servers.enter_context(serving(server)), server)

    return start

"""Configuration of the workloads: environment parsing, API credential sources, exit code 2 on errors."""

import base64
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_k8s_sa.workloads import api, data_store, secret_store
from pytest_k8s_sa.workloads.apicreds import in_cluster_url, load_api_credentials
from pytest_k8s_sa.workloads.envconfig import ConfigError, parse_endpoint, parse_listen_addr

from ._support import Pki, TokenReviewStub, make_token, with_token
from .conftest import Running

Start = Callable[..., Running]


def _run_main(
    main: Callable[..., int], capsys: pytest.CaptureFixture[str], argv: list[str] | None = None
) -> str:
    assert main([] if argv is None else argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def store_env(clean_env: pytest.MonkeyPatch, stub: TokenReviewStub, pki: Pki, store_token_file: Path) -> Any:
    """A complete, valid secret-store environment that each test breaks in one place."""
    clean_env.setenv("LISTEN_ADDR", "127.0.0.1:0")
    clean_env.setenv("ALLOWED_SERVICE_ACCOUNTS", "api:api")
    clean_env.setenv("K8S_API_URL", stub.url)
    clean_env.setenv("K8S_CA_FILE", str(pki.ca_file))
    clean_env.setenv("K8S_TOKEN_FILE", str(store_token_file))
    return clean_env


def test_valid_environment_builds_a_store(store_env: pytest.MonkeyPatch) -> None:
    config = secret_store.Config.from_env(os.environ)
    assert config.listen == ("127.0.0.1", 0)
    assert config.allowed.accounts == {("api", "api")}
    assert (config.audience, config.review_timeout, config.cache_ttl, config.max_token_bytes) == (
        "secret-store",
        5.0,
        10.0,
        16384,
    )
    assert config.api.source == "K8S_* variables"
    secret_store.make_server(config).server_close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLOWED_SERVICE_ACCOUNTS": None}, "ALLOWED_SERVICE_ACCOUNTS is not set"),
        ({"ALLOWED_SERVICE_ACCOUNTS": " , "}, "ALLOWED_SERVICE_ACCOUNTS is not set"),
        ({"ALLOWED_SERVICE_ACCOUNTS": "api"}, "entry 'api' is not namespace:name"),
        ({"ALLOWED_SERVICE_ACCOUNTS": "*:api"}, "is not namespace:name"),
        ({"ALLOWED_SERVICE_ACCOUNTS": "api:api:x"}, "is not namespace:name"),
        ({"LISTEN_ADDR": "8081"}, "LISTEN_ADDR='8081' must be host:port"),
        ({"LISTEN_ADDR": ":99999"}, "must be host:port"),
        ({"LISTEN_ADDR": "::1:8081"}, "bracket IPv6"),
        ({"REVIEW_TIMEOUT_SECONDS": "soon"}, "REVIEW_TIMEOUT_SECONDS='soon' is not a number"),
        ({"REVIEW_TIMEOUT_SECONDS": "0"}, "must be greater than 0"),
        ({"REVIEW_TIMEOUT_SECONDS": "nan"}, "must be greater than 0"),
        ({"CACHE_TTL_SECONDS": "-1"}, "CACHE_TTL_SECONDS='-1' must be 0"),
        ({"MAX_TOKEN_BYTES": "0"}, "MAX_TOKEN_BYTES='0' must be an integer"),
        ({"K8S_API_URL": None}, "K8S_API_URL is not"),
        ({"K8S_API_URL": "http://127.0.0.1:6443"}, "must be a https URL"),
        ({"K8S_TOKEN_FILE": "/nonexistent/token"}, "cannot read token file /nonexistent/token"),
        ({"K8S_TOKEN_FILE": None}, "neither a token nor a client certificate"),
        ({"K8S_CLIENT_CERT_FILE": "/x.crt"}, "must be set together"),
        ({"K8S_CA_FILE": "/nonexistent/ca.crt"}, "cannot set up TLS"),
    ],
)
def test_store_configuration_errors_exit_2(
    store_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str | None],
    message: str,
) -> None:
    for name, value in env.items():
        if value is None:
            store_env.delenv(name)
        else:
            store_env.setenv(name, value)
    assert message in _run_main(secret_store.main, capsys)


def test_no_credentials_at_all_exit_2(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("ALLOWED_SERVICE_ACCOUNTS", "api:api")
    assert "no Kubernetes API credentials" in _run_main(secret_store.main, capsys)


def test_port_in_use_exit_2(store_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        store_env.setenv("LISTEN_ADDR", f"127.0.0.1:{busy.getsockname()[1]}")
        assert "cannot listen on 127.0.0.1:" in _run_main(secret_store.main, capsys)


def test_arguments_are_refused_and_help_lists_variables(capsys: pytest.CaptureFixture[str]) -> None:
    assert "configuration is read from the environment" in _run_main(
        secret_store.main, capsys, ["--port", "1"]
    )
    assert secret_store.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "ALLOWED_SERVICE_ACCOUNTS" in out
    assert "unsafe" in out


def test_cache_ttl_is_clamped_to_ten_seconds(store_env: pytest.MonkeyPatch) -> None:
    store_env.setenv("CACHE_TTL_SECONDS", "3600")
    assert secret_store.Config.from_env(os.environ).cache_ttl == 10.0
    store_env.setenv("CACHE_TTL_SECONDS", "0")
    assert secret_store.Config.from_env(os.environ).cache_ttl == 0.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_STORE_URL is not set"),
        ({"SECRET_STORE_URL": "http://a:1", "SECRET_STORE_CONNSTRING": "http://b:1"}, "both set and differ"),
        ({"SECRET_STORE_URL": "ftp://a"}, "must be a http or https URL"),
        ({"SECRET_STORE_URL": "http://a:notaport"}, "is not a valid URL"),
        ({"SECRET_STORE_URL": "http://a:1", "TOKEN_REFRESH_SECONDS": "0"}, "TOKEN_REFRESH_SECONDS='0'"),
        ({"SECRET_STORE_URL": "http://a:1", "UPSTREAM_TIMEOUT_SECONDS": "x"}, "UPSTREAM_TIMEOUT_SECONDS='x'"),
    ],
)
@pytest.mark.parametrize("module", [api, data_store])
def test_caller_configuration_errors_exit_2(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    module: Any,
    env: dict[str, str],
    message: str,
) -> None:
    clean_env.setenv("LISTEN_ADDR", "127.0.0.1:0")
    for name, value in env.items():
        clean_env.setenv(name, value)
    err = _run_main(module.main, capsys)
    assert message in err
    assert err.startswith("data-store:" if module is data_store else "api:")


def test_caller_defaults_and_article_variable_name() -> None:
    env = {"SECRET_STORE_CONNSTRING": "http://secret-store.secret-store.svc:8081"}
    caller = api.Config.from_env(env)
    assert (caller.listen, caller.token_path) == (("", 8080), "/var/run/secrets/tokens/api-token")
    assert (caller.token_refresh, caller.upstream_timeout, caller.service) == (60.0, 5.0, "api")
    assert caller.secret_store == parse_endpoint(env["SECRET_STORE_CONNSTRING"], "x")
    same = {**env, "SECRET_STORE_URL": env["SECRET_STORE_CONNSTRING"]}
    assert api.Config.from_env(same).secret_store == caller.secret_store
    other = data_store.Config.from_env(env)
    assert (other.listen, other.token_path) == (("", 8082), "/var/run/secrets/tokens/data-store-token")
    assert other.service == "data-store"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":8081", ("", 8081)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:80", ("::", 80)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_listen_addr(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen_addr(value) == expected


def test_in_cluster_url_brackets_ipv6() -> None:
    assert in_cluster_url("10.96.0.1", "443") == "https://10.96.0.1:443"
    assert in_cluster_url("fd00:10:96::1", "443") == "https://[fd00:10:96::1]:443"
    assert in_cluster_url("[fd00::1]", "6443") == "https://[fd00::1]:6443"
    assert in_cluster_url("10.96.0.1", "") == ""


# --- credential sources, exercised end to end through the store and the stub -----------------------


def _kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [
            {"name": "other", "cluster": {"server": "https://wrong:1"}},
            {"name": "c", "cluster": cluster},
        ],
        "users": [{"name": "u", "user": user}],
    }
    path.write_text(json.dumps(doc))
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_kubeconfig_with_embedded_ca_and_token(
    start_store: Start, stub: TokenReviewStub, pki: Pki, tmp_path: Path
) -> None:
    path = _kubeconfig(
        tmp_path / "kubeconfig",
        {"server": stub.url, "certificate-authority-data": _b64(pki.ca_pem)},
        {"token": "kubeconfig-static-token"},
    )
    creds = load_api_credentials({"KUBECONFIG": str(path)})
    assert "kubeconfig-static-token" not in repr(creds)
    store = start_store(api=creds)
    assert with_token(store.url, make_token()).status == 200
    assert stub.calls[0].authorization == "Bearer kubeconfig-static-token"


def test_kubeconfig_relative_token_file_is_reread(
    start_store: Start, stub: TokenReviewStub, pki: Pki, tmp_path: Path
) -> None:
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    (tmp_path / "tok").write_text("first\n")
    path = _kubeconfig(
        tmp_path / "kubeconfig",
        {"server": stub.url, "certificate-authority": "ca.crt"},
        {"tokenFile": "tok", "token": "ignored-static"},
    )
    store = start_store(api=load_api_credentials({"KUBECONFIG": str(path)}))
    assert with_token(store.url, make_token()).status == 200
    (tmp_path / "tok").write_text("second\n")
    assert with_token(store.url, make_token()).status == 200
    assert [c.authorization for c in stub.calls] == ["Bearer first", "Bearer second"]


def test_kubeconfig_client_certificate_data(
    start_store: Start, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mtls = TokenReviewStub(pki.server_cert, pki.server_key, client_ca=pki.ca_file)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    try:
        path = _kubeconfig(
            tmp_path / "kubeconfig",
            {"server": mtls.url, "certificate-authority-data": _b64(pki.ca_pem)},
            {
                "client-certificate-data": _b64(pki.client_cert_pem),
                "client-key-data": _b64(pki.client_key_pem),
            },
        )
        store = start_store(api=load_api_credentials({"KUBECONFIG": str(path)}))
        assert list(scratch.iterdir()) == []  # the key was written privately and removed after loading
        assert with_token(store.url, make_token()).status == 200
        [call] = mtls.calls
        assert call.client_cert
        assert call.authorization is None
    finally:
        mtls.close()


def test_in_cluster_credentials(start_store: Start, stub: TokenReviewStub, pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    (tmp_path / "token").write_text("in-cluster-token")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(stub.port)}
    creds = load_api_credentials(env, sa_dir=str(tmp_path))
    assert creds.source == "in-cluster"
    store = start_store(api=creds)
    assert with_token(store.url, make_token()).status == 200
    assert stub.calls[0].authorization == "Bearer in-cluster-token"


def test_credential_source_precedence(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    kubeconfig = _kubeconfig(tmp_path / "kc", {"server": "https://from-kubeconfig:1"}, {"token": "k"})
    in_cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    explicit = {"K8S_API_URL": "https://explicit:6443", "K8S_TOKEN_FILE": str(tmp_path / "token")}
    every = {**in_cluster, "KUBECONFIG": str(kubeconfig), **explicit}
    assert load_api_credentials(every, sa_dir=str(tmp_path)).server == "https://explicit:6443"
    assert (
        load_api_credentials({**in_cluster, "KUBECONFIG": str(kubeconfig)}).server
        == "https://from-kubeconfig:1"
    )
    assert load_api_credentials(in_cluster, sa_dir=str(tmp_path)).server == "https://10.0.0.1:443"


@pytest.mark.parametrize(
    ("cluster", "user", "message"),
    [
        (
            {"server": "https://a:1", "insecure-skip-tls-verify": True},
            {"token": "t"},
            "insecure-skip-tls-verify",
        ),
        ({"server": "https://a:1"}, {"exec": {"command": "aws"}}, "'exec' is not supported"),
        ({"server": "https://a:1"}, {"client-certificate": "c.crt"}, "must be given together"),
        ({"server": "https://a:1"}, {"client-key-data": "%%%"}, "not valid base64"),
        (
            {"server": "https://a:1", "certificate-authority": "x", "certificate-authority-data": "eA=="},
            {},
            "both",
        ),
        ({"server": "http://a:1"}, {"token": "t"}, "must be a https URL"),
        ({"server": "https://a:1"}, {}, "neither a token nor a client certificate"),
    ],
)
def test_kubeconfig_errors(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], message: str
) -> None:
    path = _kubeconfig(tmp_path / "kubeconfig", cluster, user)
    with pytest.raises(ConfigError, match=message):
        load_api_credentials({"KUBECONFIG": str(path)})


def test_kubeconfig_must_be_json_with_a_current_context(tmp_path: Path) -> None:
    yaml = tmp_path / "yaml"
    yaml.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(ConfigError, match=r"not JSON.*K8S_"):
        load_api_credentials({"KUBECONFIG": str(yaml)})
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(ConfigError, match="no current-context"):
        load_api_credentials({"KUBECONFIG": str(empty)})
    with pytest.raises(ConfigError, match="cannot read KUBECONFIG"):
        load_api_credentials({"KUBECONFIG": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="single kubeconfig"):
        load_api_credentials({"KUBECONFIG": f"{empty}:{yaml}"})

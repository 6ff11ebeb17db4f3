"""The SUT file: every mistake is a usage error naming the file and the key; placeholders; digest."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from pytest_k8s_sa.sut import model as sut

GOOD = """
implementation: {name: acme-secret-store, version: "1.4.2", url: "https://example.invalid/acme"}
callee:
  image: registry.example/acme/secret-store:1.4.2
  command: ["./bin/secret-store", "--port=${PORT}"]
  port: 8081
  env: {LISTEN_ADDR: ":${PORT}", AUDIENCE: "${AUDIENCE}", PRICE: "$$5"}
  audience: secret-store
  header: Authorization
  health_path: /healthz
  cache_seconds: 5
caller:
  command: ["./bin/api"]
  port: 8080
  env: {CALLEE: "${CALLEE_URL}"}
  token_path: /var/run/secrets/tokens/api-token
  token_refresh_seconds: 30
  call_path: /call
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sut.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_complete_file_loads(tmp_path):
    path = write(tmp_path, GOOD)
    loaded = sut.load(path)
    assert loaded.implementation.as_dict() == {
        "name": "acme-secret-store",
        "version": "1.4.2",
        "url": "https://example.invalid/acme",
    }
    assert loaded.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.base_dir == tmp_path.resolve()
    callee = loaded.callee
    assert (callee.port, callee.audience, callee.cache_seconds) == (8081, "secret-store", 5.0)
    assert callee.credential_headers("t") == {"Authorization": "Bearer t"}
    values = {"PORT": "4242", "AUDIENCE": "secret-store"}
    assert callee.argv(values) == ["./bin/secret-store", "--port=4242"]
    assert callee.environment(values) == {"LISTEN_ADDR": ":4242", "AUDIENCE": "secret-store", "PRICE": "$5"}
    assert loaded.caller is not None
    assert (loaded.caller.call_path, loaded.caller.token_refresh_seconds) == ("/call", 30.0)


def test_the_digest_follows_the_bytes(tmp_path):
    first = sut.load(write(tmp_path, GOOD)).digest
    second = sut.load(write(tmp_path, GOOD + "\n# a comment\n")).digest
    assert first != second


def test_the_caller_is_optional_and_x_client_id_is_the_default_header(tmp_path):
    loaded = sut.load(write(tmp_path, "implementation: {name: x}\ncallee: {command: [./s], audience: a}\n"))
    assert loaded.caller is None
    assert loaded.callee.credential_headers("t") == {"X-Client-Id": "t"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "must be a YAML mapping"),
        ("[1, 2]", "must be a YAML mapping"),
        ("callee: {command: [x], audience: a}", "implementation: is required"),
        ("implementation: {name: x}\ncallee: {command: [x], audience: a}\ncalee: {}", "calee: unknown key"),
        ("implementation: {name: x}", "callee: is required"),
        ("implementation: {name: x}\ncallee: {command: [x]}", "callee.audience: is required"),
        ("implementation: {name: x}\ncallee: {audience: a}", "callee.image: give `image`"),
        (
            "implementation: {name: x}\ncallee: {command: ./s, audience: a}",
            "callee.command: must be a non-empty list",
        ),
        ("implementation: {name: x}\ncallee: {command: [x], audience: a, port: 70000}", "callee.port: 70000"),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, port: http}",
            "callee.port: must be a number",
        ),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, env: {A: '${NOPE}'}}",
            "callee.env.A: unknown placeholder ${NOPE}",
        ),
        (
            "implementation: {name: x}\ncallee: {command: ['$PORT'], audience: a}",
            "callee.command[0]: write ${P...} with braces",
        ),
        ("implementation: {name: x}\ncallee: {command: [x], audience: a, heder: X}", "did you mean header"),
        ("implementation: {name: x}\ncallee: {command: [x], audience: a, header: 'X Id'}", "callee.header"),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, health_path: healthz}",
            "callee.health_path: must start with /",
        ),
        (
            "implementation: {name: x}\ncallee: {image: i, image_archive: ./nope.tar, audience: a}",
            "callee.image_archive:",
        ),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a}\n"
            "caller: {command: [y], token_path: rel}",
            "caller.token_path: must be an absolute path",
        ),
        ("implementation: {name: x}\ncallee: {command: [x], audience: a, env: {A: {b: 1}}}", "callee.env.A"),
        (
            "implementation: {name: [x]}\ncallee: {command: [x], audience: a}",
            "implementation.name: must be",
        ),
        ("callee: [unclosed", "not valid YAML at line 1"),
    ],
)
def test_mistakes_name_the_file_and_the_key(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(sut.SutError) as error:
        sut.load(path)
    assert str(path) in str(error.value)
    assert fragment in str(error.value)


def test_a_missing_file_says_where_it_came_from(tmp_path):
    with pytest.raises(sut.SutError, match=r"does not exist \(given as --sut"):
        sut.load(tmp_path / "nope.yaml")


def test_the_archive_is_resolved_from_the_file_folder(tmp_path):
    (tmp_path / "img.tar").write_bytes(b"x")
    loaded = sut.load(
        write(
            tmp_path, "implementation: {name: x}\ncallee: {image: i, image_archive: img.tar, audience: a}\n"
        )
    )
    assert loaded.callee.image_archive == (tmp_path / "img.tar").resolve()


def test_the_reference_description_is_a_valid_sut():
    reference = sut.reference()
    assert reference.is_reference
    assert reference.caller is not None
    assert reference.callee.header == "X-Client-Id"
    assert reference.digest.startswith("sha256:")
    assert reference.callee.argv({"PYTHON": "/py"}) == ["/py", "-m", "pytest_k8s_sa.workloads.secret_store"]


def test_the_reference_sut_file_matches_the_built_in_description():
    path = Path(__file__).resolve().parent.parent / "fixtures" / "sut" / "reference.yaml"
    loaded = sut.load(path)
    reference = sut.reference()
    assert loaded.callee.env == reference.callee.env
    assert loaded.callee.command == reference.callee.command
    assert loaded.caller is not None
    assert reference.caller is not None
    assert loaded.caller.env == reference.caller.env

"""The SUT file: every mistake is a usage error naming the file and the key; placeholders; digest."""

from __future__ import annotations

import hashlib
import re
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
    assert loaded.callee.decision_timeout_seconds == 15.0
    assert loaded.callee.verification == "tokenreview"
    assert loaded.callee.key_refresh_seconds == 60.0


def test_a_jwks_callee_declares_its_mode_and_key_refresh(tmp_path):
    callee = "{command: [x, '${JWKS_URL}'], audience: a, verification: jwks, key_refresh_seconds: 900,"
    callee += " env: {I: '${ISSUER_URL}', C: '${CA_FILE}'}}"
    loaded = sut.load(write(tmp_path, f"implementation: {{name: x}}\ncallee: {callee}"))
    assert loaded.callee.verifies_offline
    assert loaded.callee.key_refresh_seconds == 900


@pytest.mark.parametrize("seconds", [0.5, 15, 60])
def test_the_decision_timeout_is_above_0_and_at_most_60(tmp_path, seconds):
    callee = f"{{command: [x], audience: a, decision_timeout_seconds: {seconds}}}"
    text = f"implementation: {{name: x}}\ncallee: {callee}"
    assert sut.load(write(tmp_path, text)).callee.decision_timeout_seconds == seconds


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
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, decision_timeout_seconds: 61}",
            "callee.decision_timeout_seconds: 61 is out of range (0 to 60)",
        ),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, decision_timeout_seconds: 0}",
            "callee.decision_timeout_seconds: 0 must be above 0",
        ),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, decision_timeout_seconds: -1}",
            "callee.decision_timeout_seconds: -1 is out of range",
        ),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, decision_timeout_seconds: soon}",
            "callee.decision_timeout_seconds: must be a number",
        ),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, verification: oidc}",
            "callee.verification: 'oidc' is not a verification mode: write tokenreview",
        ),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, key_refresh_seconds: 901}",
            "callee.key_refresh_seconds: 901 is out of range (0 to 900)",
        ),
        (
            "implementation: {name: x}\ncallee: {command: [x], audience: a, key_refresh_seconds: 0}",
            "callee.key_refresh_seconds: 0 must be above 0",
        ),
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


# --- hostile values ---------------------------------------------------------------------------


@pytest.mark.parametrize("own", [*sut.OTHER_AUDIENCES, "secret-store", "data-store-2"])
def test_other_audiences_never_are_the_callee_s_own(own):
    """A SUT whose audience is one of the suite's built-in "other" audiences (AUD-002: the data
    store's; AUD-004: "other") gets another one instead, so those checks judge the audience."""
    chosen = {preferred: sut.other_audience(own, preferred) for preferred in sut.OTHER_AUDIENCES}
    assert own not in chosen.values()
    assert all(value.startswith(preferred) for preferred, value in chosen.items())
    assert sut.other_audience("secret-store", "data-store") == "data-store"  # unchanged when it differs


def test_the_suite_invents_no_audience_literally():
    """Every audience the checks invent goes through :func:`sut.other_audience` (a literal list of
    audiences in a check could be the SUT's own)."""
    suites = Path(__file__).resolve().parents[1] / "suites"
    literal = re.compile(r"audiences=\[\s*[\"']")
    found = [f"{p.name}:{m.group(0)}" for p in suites.glob("*.py") for m in literal.finditer(p.read_text())]
    assert not found


ALLOWED = ("api-1a2b3c4d-gw0-1", "api")


def test_lookalikes_extend_contain_or_are_part_of_the_allowed_identity():
    kinds = sut.lookalike_identities(*ALLOWED)
    assert set(kinds["name extended"]) == {"api-1a2b3c4d-gw0-1:api-x", "api-1a2b3c4d-gw0-1:xapi"}
    assert set(kinds["namespace extended"]) == {"api-1a2b3c4d-gw0-1-x:api", "xapi-1a2b3c4d-gw0-1:api"}
    # A prefix of the namespace never ends in "-<counter>", so it is no name Names makes.
    assert set(kinds["part"]) == {"api-1a2b3c4d-gw0-1:ap", "api-1a2b3c4d-gw0:api"}


@pytest.mark.parametrize(
    "allowed", [ALLOWED, ("a" * 63, "api"), ("ns", "a"), ("ns", "api.v1"), ("n-s", "a-b"), ("x", "web")]
)
def test_lookalikes_are_valid_names_and_never_the_allowed_identity(allowed):
    for identities in sut.lookalike_identities(*allowed).values():
        for namespace, name in identities.values():
            assert sut.is_namespace_name(namespace), namespace
            assert sut.is_service_account_name(name), name
            assert (namespace, name) != allowed


def test_a_namespace_of_63_characters_is_not_extended():
    assert sut.lookalike_identities("a" * 63, "api")["namespace extended"] == {}


@pytest.mark.parametrize(
    ("name", "namespace_ok", "account_ok"),
    [
        ("api", True, True),
        ("api.v1", False, True),
        ("-api", False, False),
        ("API", False, False),
        ("a" * 64, False, True),
    ],
)
def test_kubernetes_name_rules(name, namespace_ok, account_ok):
    assert sut.is_namespace_name(name) is namespace_ok
    assert sut.is_service_account_name(name) is account_ok


def test_the_allowed_entries_hold_a_dotted_name_whose_pattern_readings_are_listed():
    assert sut.allowed_service_accounts("ns", "api") == "ns:api,ns:caller.v1"
    assert sut.pattern_identities("ns") == {
        "ns:caller-v1": ("ns", "caller-v1"),
        "ns:callerxv1": ("ns", "callerxv1"),
    }
    # A pattern reading is all that grants them: none extends, contains or is part of another entry.
    entries = sut.allowed_service_accounts("ns", "api").split(",")
    for identity in sut.pattern_identities("ns"):
        assert not any(identity.startswith(e) or identity.endswith(e) or identity in e for e in entries)


def test_the_reference_manifest_allows_what_the_sut_deployments_allow():
    """Without a SUT file, pod providers run ``fixtures/manifests``: the same allow-list as a SUT gets."""
    manifest = (Path(__file__).resolve().parents[1] / "fixtures/manifests/30-secret-store.yaml").read_text()
    expected = sut.allowed_service_accounts("${API_NAMESPACE}", "api")
    assert f'ALLOWED_SERVICE_ACCOUNTS, value: "{expected}"' in manifest

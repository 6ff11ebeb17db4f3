"""The system under test (SUT): which callee (and optional caller) the conformance suite judges.

A team points the suite at its own service with a YAML file (``--sut PATH``); without one the
suite judges this project's reference workloads (:func:`reference`). This module only reads and
checks the file, fills placeholders and computes the file's digest for the report; it needs no
pytest and no cluster, so a CI job (or an editor) can validate a SUT file on its own::

    from pytest_k8s_sa.sut.model import load
    sut = load("sut.yaml")          # SutError (a K8sSAError) names the file and the key on a mistake

Every mistake is a :class:`SutError` whose message names the file, the key and what to write
instead: a SUT file is written by hand by someone who has not read this code.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..base.errors import K8sSAError

PLACEHOLDERS = (
    "PORT",
    "AUDIENCE",
    "ALLOWED_SERVICE_ACCOUNTS",
    "KUBECONFIG",
    "NAMESPACE",
    "CALLEE_URL",
    "TOKEN_PATH",
    "PYTHON",
    "ISSUER_URL",
    "JWKS_URL",
    "CA_FILE",
)
"""What ``${NAME}`` may name in ``command`` and ``env``:

* ``PORT``: the port to listen on (process mode: a free loopback port the suite picked; pod mode: ``port``),
* ``AUDIENCE``: the callee's ``audience``,
* ``ALLOWED_SERVICE_ACCOUNTS``: comma-separated ``namespace:name`` entries: the allowed caller and a
  second name with a dot in its namespace (:func:`allowed_service_accounts`),
* ``KUBECONFIG``: process mode: a kubeconfig (JSON) authenticating as the callee's own service
  account (RBAC applies as in a pod); pod mode: empty (use the in-cluster config),
* ``NAMESPACE``: the namespace the workload runs in,
* ``CALLEE_URL``: where the caller reaches the callee,
* ``TOKEN_PATH``: where the caller's projected token is (process mode: a file the emulated kubelet
  keeps fresh; pod mode: ``token_path``),
* ``PYTHON``: the interpreter running the suite (to run Python SUTs from the suite's own venv),
* ``ISSUER_URL``: the cluster's service-account issuer, exactly the ``iss`` its tokens carry (its
  discovery document is at ``${ISSUER_URL}/.well-known/openid-configuration``),
* ``JWKS_URL``: where a ``verification: jwks`` callee fetches the cluster's key set. It goes through
  the suite's API cut (process mode: ``https://127.0.0.1:<cut port>/openid/v1/jwks``; pod mode:
  ``https://kubernetes:443/openid/v1/jwks``), so the key-set outages and fetch counts of the checks
  reach it: fetch keys from here, not from the discovery document's ``jwks_uri``,
* ``CA_FILE``: a PEM bundle that verifies ``JWKS_URL`` (process mode: a file the suite writes; pod
  mode: the service-account volume's ``ca.crt``).

The last three are filled in both verification modes (a TokenReview callee may ignore them).
"""
_PLACEHOLDER = re.compile(r"\$(?:\{(?P<name>[^}]*)\}|(?P<escaped>\$)|(?P<bare>[A-Za-z_]))")
HEADERS_AUTHORIZATION = "Authorization"
TOP_KEYS = ("implementation", "callee", "caller")
IMPLEMENTATION_KEYS = ("name", "version", "url")
WORKLOAD_KEYS = ("image", "image_archive", "command", "port", "env")
CALLEE_KEYS = (
    *WORKLOAD_KEYS,
    "audience",
    "header",
    "health_path",
    "cache_seconds",
    "decision_timeout_seconds",
    "verification",
    "key_refresh_seconds",
)
CALLER_KEYS = (*WORKLOAD_KEYS, "token_path", "token_refresh_seconds", "call_path", "health_path")
REFERENCE_NAME = "pytest-k8s-sa reference workloads"
DECISION_TIMEOUT_SECONDS = 15.0
"""Default of ``callee.decision_timeout_seconds``: how long the callee may take to answer (never with a
grant) while its Kubernetes API is refused, hanging or answering garbage (AVAIL-002)."""
DECISION_TIMEOUT_MAX_SECONDS = 60.0
"""A gate that may wait longer than a minute per request turns an API brownout into an outage."""
VERIFICATIONS = ("tokenreview", "jwks")
"""How the callee verifies a token (``callee.verification``): it asks the TokenReview API for its own
audience (``tokenreview``), or it verifies the JWT offline against the cluster's key set (``jwks``)."""
KEY_REFRESH_SECONDS = 60.0
"""Default of ``callee.key_refresh_seconds``: how long the callee may take to honour a new signing key
or to stop trusting a retired one (KEY-001, KEY-003)."""
KEY_REFRESH_MAX_SECONDS = 900.0
"""Longer than 15 minutes, a retired (perhaps leaked) key stays trusted for too long."""


class SutError(K8sSAError):
    """The SUT file is missing or invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Implementation:
    """Who made the SUT; copied into the report as is."""

    name: str
    version: str | None = None
    url: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "version": self.version, "url": self.url}


@dataclass(frozen=True)
class WorkloadSpec:
    """How one workload of the SUT runs: an image (pod providers) and/or a command (local provider)."""

    image: str | None
    image_archive: Path | None
    command: tuple[str, ...] | None
    port: int
    env: Mapping[str, str]
    health_path: str | None

    def argv(self, values: Mapping[str, str]) -> list[str]:
        return [substitute(part, values) for part in self.command or ()]

    def environment(self, values: Mapping[str, str]) -> dict[str, str]:
        return {name: substitute(value, values) for name, value in self.env.items()}


@dataclass(frozen=True)
class CalleeSpec(WorkloadSpec):
    """The service that receives a caller's token and decides (the secret store)."""

    audience: str = "secret-store"
    header: str = "X-Client-Id"
    cache_seconds: float = 10.0
    decision_timeout_seconds: float = DECISION_TIMEOUT_SECONDS
    verification: str = "tokenreview"
    """``tokenreview`` or ``jwks`` (:data:`VERIFICATIONS`): which checks apply and how they judge."""
    key_refresh_seconds: float = KEY_REFRESH_SECONDS

    @property
    def verifies_offline(self) -> bool:
        """Whether the callee verifies tokens itself against the key set (``jwks``)."""
        return self.verification == "jwks"

    def credential_headers(self, token: str) -> dict[str, str]:
        """The header a caller puts its token in (``Authorization`` uses the Bearer scheme)."""
        if self.header.lower() == HEADERS_AUTHORIZATION.lower():
            return {HEADERS_AUTHORIZATION: f"Bearer {token}"}
        return {self.header: token}

    def credential_line(self, token: bytes) -> bytes:
        """The same as one raw header line (for requests ``requests`` would refuse to send)."""
        if self.header.lower() == HEADERS_AUTHORIZATION.lower():
            return b"Authorization: Bearer " + token
        return self.header.encode("ascii") + b": " + token


@dataclass(frozen=True)
class CallerSpec(WorkloadSpec):
    """The service that sends its projected token to the callee (the API service)."""

    token_path: str = "/var/run/secrets/tokens/api-token"  # noqa: S105 - a path, not a secret
    token_refresh_seconds: float = 60.0
    call_path: str = "/"


@dataclass(frozen=True)
class Sut:
    """A loaded SUT description: the report's ``implementation``/``sut_digest`` and how to run it."""

    implementation: Implementation
    callee: CalleeSpec
    caller: CallerSpec | None
    path: Path | None = None
    """The SUT file (None: the built-in reference description)."""
    digest: str = ""
    """``sha256:<hex>`` of the file's bytes (built-in: of its canonical JSON)."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def base_dir(self) -> Path:
        """Where relative paths and process-mode commands start: the SUT file's folder."""
        return self.path.parent if self.path is not None else Path.cwd()

    @property
    def is_reference(self) -> bool:
        return self.path is None


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Fill ``${NAME}`` from ``values``; ``$$`` is a literal ``$`` (:func:`load` refused unknown names)."""

    def fill(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("bare"):
            return match.group(0)
        name = match.group("name")
        if name not in values:
            raise SutError(f"no value for ${{{name}}} here (known: {', '.join(sorted(values))})")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)


# --- loading ----------------------------------------------------------------------------------


class _Reader:
    """Checks one mapping of the file; every message names the file and the dotted key."""

    def __init__(self, where: str, data: Mapping[str, Any], prefix: str) -> None:
        self.where, self.data, self.prefix = where, data, prefix

    def fail(self, key: str, message: str) -> SutError:
        return SutError(f"{self.where}: {self.prefix}{key}: {message}")

    def only(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                hint = f"; did you mean {_close(str(key), allowed)}?" if _close(str(key), allowed) else ""
                raise self.fail(str(key), f"unknown key (allowed: {', '.join(allowed)}){hint}")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(key, f"must be a string, not {type(value).__name__}")
        text = str(value)
        if not text.strip():
            raise self.fail(key, "must not be empty")
        return text

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, not {value!r}")
        if not minimum <= value <= maximum:
            raise self.fail(key, f"{value} is out of range ({minimum:g} to {maximum:g})")
        return float(value)

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, not {type(value).__name__}")
        return value


def _close(key: str, allowed: tuple[str, ...]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, allowed, n=1)
    return matches[0] if matches else None


def _check_placeholders(reader: _Reader, key: str, text: str) -> None:
    for match in _PLACEHOLDER.finditer(text):
        name = match.group("name")
        if match.group("bare"):
            raise reader.fail(key, f"write ${{{match.group('bare')}...}} with braces (or $$ for a literal $)")
        if name is not None and name not in PLACEHOLDERS:
            raise reader.fail(key, f"unknown placeholder ${{{name}}} (known: {', '.join(PLACEHOLDERS)})")


def _workload(where: str, data: Any, prefix: str, allowed: tuple[str, ...], base: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SutError(f"{where}: {prefix.rstrip('.')}: must be a mapping, not {type(data).__name__}")
    reader = _Reader(where, data, prefix)
    reader.only(allowed)
    image = reader.text("image")
    archive_text = reader.text("image_archive")
    archive = None
    if archive_text is not None:
        archive = (
            (base / archive_text).resolve() if not Path(archive_text).is_absolute() else Path(archive_text)
        )
        if image is None:
            raise reader.fail("image_archive", "needs `image` too: the name the archive's image is run under")
    command_value = data.get("command")
    command: tuple[str, ...] | None = None
    if command_value is not None:
        if isinstance(command_value, str) or not isinstance(command_value, list) or not command_value:
            raise reader.fail(
                "command", 'must be a non-empty list of strings, e.g. ["./bin/store", "--flag"]'
            )
        for index, part in enumerate(command_value):
            if isinstance(part, bool) or not isinstance(part, str | int | float):
                raise reader.fail(f"command[{index}]", f"must be a string, not {type(part).__name__}")
            _check_placeholders(reader, f"command[{index}]", str(part))
        command = tuple(str(part) for part in command_value)
    if image is None and command is None:
        raise reader.fail(
            "image",
            "give `image` (pod providers: local-node, kind, kubeconfig) and/or `command` (local provider)",
        )
    port = int(reader.number("port", 8080, minimum=1, maximum=65535))
    if isinstance(data.get("port"), float):
        raise reader.fail("port", "must be an integer")
    env_value = reader.mapping("env") or {}
    env: dict[str, str] = {}
    for name, value in env_value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise reader.fail(f"env.{name}", "is not a valid environment variable name")
        if value is None or isinstance(value, dict | list):
            raise reader.fail(f"env.{name}", "must be a string (quote numbers and booleans)")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        _check_placeholders(reader, f"env.{name}", text)
        env[name] = text
    health = reader.text("health_path")
    if health is not None and not health.startswith("/"):
        raise reader.fail("health_path", f"must start with / (got {health!r})")
    return {
        "image": image,
        "image_archive": archive,
        "command": command,
        "port": port,
        "env": env,
        "health_path": health,
        "reader": reader,
    }


def _positive_seconds(reader: _Reader, key: str, default: float, maximum: float, meaning: str) -> float:
    """A duration above 0 and at most ``maximum`` (a callee can do nothing in no time); ``meaning``
    says what the seconds are, in the error."""
    value = reader.number(key, default, minimum=0, maximum=maximum)
    if value <= 0:
        raise reader.fail(key, f"{value:g} must be above 0 (at most {maximum:g}): {meaning}")
    return value


def _decision_timeout(reader: _Reader) -> float:
    """``callee.decision_timeout_seconds``: above 0 and at most 60."""
    return _positive_seconds(
        reader,
        "decision_timeout_seconds",
        DECISION_TIMEOUT_SECONDS,
        DECISION_TIMEOUT_MAX_SECONDS,
        "the seconds the callee may take to refuse while its API is down",
    )


def _verification(reader: _Reader) -> str:
    """``callee.verification``: one of :data:`VERIFICATIONS` (default ``tokenreview``)."""
    value = reader.data.get("verification", "tokenreview")
    if value not in VERIFICATIONS:
        raise reader.fail(
            "verification",
            f"{value!r} is not a verification mode: write tokenreview (the callee asks the TokenReview "
            "API) or jwks (it verifies the JWT offline against the cluster's key set)",
        )
    return str(value)


def _key_refresh(reader: _Reader) -> float:
    """``callee.key_refresh_seconds``: above 0 and at most 900."""
    return _positive_seconds(
        reader,
        "key_refresh_seconds",
        KEY_REFRESH_SECONDS,
        KEY_REFRESH_MAX_SECONDS,
        "the seconds the callee may take to honour a new signing key or drop a retired one",
    )


def parse(data: Any, *, where: str, base: Path) -> tuple[Implementation, CalleeSpec, CallerSpec | None]:
    """Check a SUT document (already parsed YAML) and build its parts; ``where`` names it in errors."""
    if not isinstance(data, dict):
        raise SutError(f"{where}: the file must be a YAML mapping with the keys {', '.join(TOP_KEYS)}")
    top = _Reader(where, data, "")
    top.only(TOP_KEYS)
    impl_data = top.mapping("implementation")
    if impl_data is None:
        raise top.fail(
            "implementation", "is required: {name: ..., version: ..., url: ...} (copied into the report)"
        )
    impl = _Reader(where, impl_data, "implementation.")
    impl.only(IMPLEMENTATION_KEYS)
    implementation = Implementation(
        str(impl.text("name", required=True)), impl.text("version"), impl.text("url")
    )
    if data.get("callee") is None:
        raise top.fail("callee", "is required: the service that receives the token and decides")
    callee_fields = _workload(where, data["callee"], "callee.", CALLEE_KEYS, base)
    reader: _Reader = callee_fields.pop("reader")
    header = str(reader.text("header", "X-Client-Id"))
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", header):
        raise reader.fail("header", f"{header!r} is not a valid HTTP header name")
    callee = CalleeSpec(
        **callee_fields,
        audience=str(reader.text("audience", required=True)),
        header=header,
        cache_seconds=reader.number("cache_seconds", 10, minimum=0, maximum=3600),
        decision_timeout_seconds=_decision_timeout(reader),
        verification=_verification(reader),
        key_refresh_seconds=_key_refresh(reader),
    )
    caller: CallerSpec | None = None
    if data.get("caller") is not None:
        caller_fields = _workload(where, data["caller"], "caller.", CALLER_KEYS, base)
        reader = caller_fields.pop("reader")
        token_path = str(reader.text("token_path", "/var/run/secrets/tokens/api-token"))
        if not token_path.startswith("/"):
            raise reader.fail("token_path", f"must be an absolute path in the container (got {token_path!r})")
        call_path = str(reader.text("call_path", "/"))
        if not call_path.startswith("/"):
            raise reader.fail("call_path", f"must start with / (got {call_path!r})")
        caller = CallerSpec(
            **caller_fields,
            token_path=token_path,
            token_refresh_seconds=reader.number("token_refresh_seconds", 60, minimum=0.1, maximum=3600),
            call_path=call_path,
        )
    return implementation, callee, caller


def load(path: str | Path) -> Sut:
    """Read and check the SUT file at ``path``; :class:`SutError` says what is wrong and where."""
    file = Path(path).expanduser()
    try:
        content = file.read_bytes()
    except FileNotFoundError:
        raise SutError(
            f"SUT file {file} does not exist (given as --sut / $K8S_SA_SUT / ini k8s_sa_sut)"
        ) from None
    except OSError as exc:
        raise SutError(f"cannot read the SUT file {file}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SutError(f"{file}: not valid YAML{at}: {problem}") from None
    base = file.resolve().parent
    implementation, callee, caller = parse(data, where=str(file), base=base)
    for spec, key in ((callee, "callee"), (caller, "caller")):
        if spec is not None and spec.image_archive is not None and not spec.image_archive.is_file():
            raise SutError(f"{file}: {key}.image_archive: {spec.image_archive} does not exist")
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    return Sut(implementation, callee, caller, file.resolve(), digest, data)


REFERENCE_DOCUMENT: dict[str, Any] = {
    "implementation": {"name": REFERENCE_NAME, "version": None, "url": None},
    "callee": {
        "command": ["${PYTHON}", "-m", "pytest_k8s_sa.workloads.secret_store"],
        "port": 8081,
        "env": {
            "LISTEN_ADDR": "127.0.0.1:${PORT}",
            "AUDIENCE": "${AUDIENCE}",
            "ALLOWED_SERVICE_ACCOUNTS": "${ALLOWED_SERVICE_ACCOUNTS}",
            "KUBECONFIG": "${KUBECONFIG}",
            "CACHE_TTL_SECONDS": "2",
            "REVIEW_TIMEOUT_SECONDS": "1.5",
        },
        "audience": "secret-store",
        "header": "X-Client-Id",
        "health_path": "/healthz",
        "cache_seconds": 2,
    },
    "caller": {
        "command": ["${PYTHON}", "-m", "pytest_k8s_sa.workloads.api"],
        "port": 8080,
        "env": {
            "LISTEN_ADDR": "127.0.0.1:${PORT}",
            "SECRET_STORE_URL": "${CALLEE_URL}",
            "TOKEN_PATH": "${TOKEN_PATH}",
            "TOKEN_REFRESH_SECONDS": "0.5",
        },
        "token_path": "/var/run/secrets/tokens/api-token",
        "token_refresh_seconds": 0.5,
        "call_path": "/",
        "health_path": "/healthz",
    },
}
"""The reference workloads written as a SUT file would describe them (process mode). Without
``--sut`` the suite deploys them its own way (the manifests in ``fixtures/manifests`` on pod
providers); this description supplies the header, audience, cache and refresh figures the checks use.

Tuned for a short run, each within what the workloads are meant for: a 2 s cache (the secret store
holds at most 10 s; the revocation checks wait for the callee's cache after the apiserver's, so a
10 s cache adds the time between the two), a 1.5 s TokenReview timeout (the "hang" outage waits for
it; a review on loopback takes milliseconds), the token file re-read every 0.5 s (the rotation
check waits for it). The manifests run the store with the same cache."""


def reference() -> Sut:
    """The built-in description of this project's reference workloads."""
    digest_source = json.dumps(REFERENCE_DOCUMENT, sort_keys=True).encode()
    implementation, callee, caller = parse(
        REFERENCE_DOCUMENT, where="<built-in reference SUT>", base=Path.cwd()
    )
    return Sut(
        implementation,
        callee,
        caller,
        None,
        "sha256:" + hashlib.sha256(digest_source).hexdigest(),
        REFERENCE_DOCUMENT,
    )


def python_executable() -> str:
    """``${PYTHON}``: the interpreter running the suite."""
    return sys.executable


# --- hostile values: what the suite invents must never be the SUT's own -----------------------

OTHER_AUDIENCES = ("data-store", "other")
"""The audiences the suite presents as *another* service's (AUD-002: the intruder's token for the data
store; AUD-004: a token for two audiences). :func:`other_audience` makes each differ from the callee's."""
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def other_audience(own: str, preferred: str) -> str:
    """``preferred``, or ``preferred-2``, ``-3``... : an audience that is not the callee's ``own``.

    A token for "another" audience that happens to be the callee's own is valid for it, and the check
    presenting it would fail (or pass) for a reason that is not the audience.
    """
    candidate, suffix = preferred, 2
    while candidate == own:
        candidate, suffix = f"{preferred}-{suffix}", suffix + 1
    return candidate


def is_namespace_name(name: str) -> bool:
    """A valid namespace name: a DNS-1123 label (at most 63 lowercase alphanumerics and ``-``)."""
    return len(name) <= 63 and _DNS_LABEL.fullmatch(name) is not None


def is_service_account_name(name: str) -> bool:
    """A valid service account name: a DNS-1123 subdomain (at most 253 characters, dots allowed)."""
    return len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name) is not None


def _part(text: str) -> str:
    """A proper part of ``text`` that begins it and is a valid name: without its last ``-`` segment
    (``api-1a2b-gw0-1`` -> ``api-1a2b-gw0``; never what :class:`~pytest_k8s_sa.cluster.types.Names`
    makes, whose names end in ``-<counter>``), or without its last character."""
    head, sep, _ = text.rpartition("-")
    part = head if sep and head else text[:-1]
    return part.rstrip("-.")


DOTTED_ALLOWED_NAME = "caller.v1"
"""A second allowed service account in the allowed caller's namespace, whose name holds a dot: an
allow-list that reads its entries as patterns (a regular expression, unescaped) also grants
``caller-v1`` or ``callerxv1`` (ALLOW-006). It need not exist; nothing else resembles it, so only such a
matcher grants its look-alikes. ``fixtures/manifests/30-secret-store.yaml`` lists it too."""


def allowed_service_accounts(namespace: str, name: str) -> str:
    """``${ALLOWED_SERVICE_ACCOUNTS}``: the allowed caller, and the dotted second entry beside it."""
    return f"{namespace}:{name},{namespace}:{DOTTED_ALLOWED_NAME}"


def pattern_identities(namespace: str, name: str = DOTTED_ALLOWED_NAME) -> dict[str, tuple[str, str]]:
    """``namespace:name`` with each dot of ``name`` read as a pattern would: any one character."""
    variants = {name.replace(".", "-"), name.replace(".", "x")} - {name}
    return {
        f"{namespace}:{variant}": (namespace, variant)
        for variant in sorted(variants)
        if is_namespace_name(namespace) and is_service_account_name(variant)
    }


def lookalike_identities(namespace: str, name: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Identities that extend, contain or are a part of the allowed ``namespace:name``, by kind.

    ``{"name extended": {"<ns>:<name>-x": (ns, name + "-x"), ...}, "namespace extended": ...,
    "part": ...}``: each a valid namespace and service account name, none equal to the allowed one.
    An allow-list that matches by prefix, suffix, substring or an unanchored pattern grants one of
    them (ALLOW-003..005); only equality of both parts refuses them all. A variant that would not be a
    valid name (a 63-character namespace cannot be extended) is left out.
    """
    kinds = {
        "name extended": [(namespace, f"{name}-x"), (namespace, f"x{name}")],
        "namespace extended": [(f"{namespace}-x", name), (f"x{namespace}", name)],
        "part": [(namespace, _part(name)), (_part(namespace), name)],
    }
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for kind, pairs in kinds.items():
        valid = {
            f"{ns}:{sa}": (ns, sa)
            for ns, sa in pairs
            if is_namespace_name(ns) and is_service_account_name(sa) and (ns, sa) != (namespace, name)
        }
        out[kind] = valid
    return out

"""Credentials for the Kubernetes API (the secret store's TokenReview), from the environment.

First match wins:

1. ``K8S_API_URL`` (https), optional ``K8S_CA_FILE`` (else the system trust store), and
   ``K8S_TOKEN_FILE`` (re-read on every call, so rotation works) and/or
   ``K8S_CLIENT_CERT_FILE`` + ``K8S_CLIENT_KEY_FILE``.
2. ``KUBECONFIG``: one kubeconfig file in JSON form (JSON is valid kubeconfig YAML, and YAML cannot be
   parsed with the standard library). Relative file paths are relative to the kubeconfig's directory.
3. In a pod: ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` with the mounted service-account
   ``token`` and ``ca.crt``.

Standard library only (see ``__init__``).
"""

import base64
import binascii
import contextlib
import json
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .envconfig import ConfigError, env_str, format_hostport, parse_endpoint
from .httpclient import MAX_RESPONSE_BYTES, HttpResult, UpstreamError, http_call

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_EXPLICIT_VARS = (
    "K8S_API_URL",
    "K8S_CA_FILE",
    "K8S_TOKEN_FILE",
    "K8S_CLIENT_CERT_FILE",
    "K8S_CLIENT_KEY_FILE",
)


# --- Kubernetes API credentials ------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCredentials:
    """How to reach the Kubernetes API as this workload. Secrets are kept out of ``repr``."""

    server: str
    source: str
    ca_file: str | None = None
    ca_data: str | None = None
    token_file: str | None = None
    token: str | None = field(default=None, repr=False)
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: bytes | None = field(default=None, repr=False)
    client_key_data: bytes | None = field(default=None, repr=False)


def in_cluster_url(host: str, port: str) -> str:
    """The API URL from the service variables; IPv6 service IPs must be bracketed in a URL."""
    return f"https://{format_hostport(host.strip('[]'), int(port))}" if port.isdigit() else ""


def load_api_credentials(environ: Mapping[str, str], *, sa_dir: str = SERVICEACCOUNT_DIR) -> ApiCredentials:
    """Pick the credential source (explicit ``K8S_*``, then ``KUBECONFIG``, then in-cluster)."""
    if any(env_str(environ, name) for name in _EXPLICIT_VARS):
        creds = _explicit_credentials(environ)
    elif env_str(environ, "KUBECONFIG"):
        creds = _kubeconfig_credentials(env_str(environ, "KUBECONFIG"))
    elif env_str(environ, "KUBERNETES_SERVICE_HOST"):
        url = in_cluster_url(
            env_str(environ, "KUBERNETES_SERVICE_HOST"), env_str(environ, "KUBERNETES_SERVICE_PORT")
        )
        if not url:
            raise ConfigError(
                "KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not a port number"
            )
        creds = ApiCredentials(
            url,
            "in-cluster",
            ca_file=os.path.join(sa_dir, "ca.crt"),
            token_file=os.path.join(sa_dir, "token"),
        )
    else:
        raise ConfigError(
            "no Kubernetes API credentials: set K8S_API_URL with K8S_CA_FILE and K8S_TOKEN_FILE (or "
            "K8S_CLIENT_CERT_FILE/K8S_CLIENT_KEY_FILE), or KUBECONFIG (JSON), or run in a pod"
        )
    parse_endpoint(creds.server, f"Kubernetes API server ({creds.source})", schemes=("https",))
    if creds.token_file:
        read_token_file(creds.token_file, ConfigError)
    if not (creds.token_file or creds.token or creds.client_cert_file or creds.client_cert_data):
        raise ConfigError(
            f"Kubernetes API credentials from {creds.source} have neither a token nor a client certificate"
        )
    return creds


def _explicit_credentials(environ: Mapping[str, str]) -> ApiCredentials:
    url = env_str(environ, "K8S_API_URL")
    if not url:
        raise ConfigError("K8S_* credential variables are set but K8S_API_URL is not")
    cert, key = env_str(environ, "K8S_CLIENT_CERT_FILE"), env_str(environ, "K8S_CLIENT_KEY_FILE")
    if bool(cert) != bool(key):
        raise ConfigError("K8S_CLIENT_CERT_FILE and K8S_CLIENT_KEY_FILE must be set together")
    return ApiCredentials(
        url,
        "K8S_* variables",
        ca_file=env_str(environ, "K8S_CA_FILE") or None,
        token_file=env_str(environ, "K8S_TOKEN_FILE") or None,
        client_cert_file=cert or None,
        client_key_file=key or None,
    )


def _kubeconfig_credentials(path: str) -> ApiCredentials:
    """Read the current context of a JSON kubeconfig (the subset that needs no plugins)."""
    if os.pathsep in path:
        raise ConfigError(f"KUBECONFIG={path!r}: only a single kubeconfig file is supported")
    try:
        with open(path, "rb") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read KUBECONFIG {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError):
        raise ConfigError(
            f"KUBECONFIG {path} is not JSON: YAML cannot be parsed without third-party packages; "
            "convert it (kubectl config view --raw -o json) or use the K8S_* variables"
        ) from None
    base = os.path.dirname(os.path.abspath(path))
    where = f"KUBECONFIG {path}"
    context_name = doc.get("current-context") if isinstance(doc, dict) else None
    if not context_name or not isinstance(context_name, str):
        raise ConfigError(f"{where} has no current-context")
    context = _named(doc, "contexts", "context", context_name, where)
    cluster = _named(doc, "clusters", "cluster", str(context.get("cluster", "")), where)
    user = _named(doc, "users", "user", str(context.get("user", "")), where)
    if cluster.get("insecure-skip-tls-verify"):
        raise ConfigError(f"{where}: insecure-skip-tls-verify is refused; give certificate-authority(-data)")
    for unsupported in ("exec", "auth-provider", "username", "password"):
        if user.get(unsupported):
            raise ConfigError(
                f"{where}: user field {unsupported!r} is not supported; use a token or a client certificate"
            )

    def file_or_data(section: Mapping[str, Any], key: str) -> tuple[str | None, bytes | None]:
        file_value, data_value = section.get(key), section.get(f"{key}-data")
        if file_value and data_value:
            raise ConfigError(f"{where}: both {key} and {key}-data are set")
        if data_value:
            try:
                return None, base64.b64decode(str(data_value), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"{where}: {key}-data is not valid base64") from None
        return (os.path.join(base, str(file_value)) if file_value else None), None

    ca_file, ca_data = file_or_data(cluster, "certificate-authority")
    cert_file, cert_data = file_or_data(user, "client-certificate")
    key_file, key_data = file_or_data(user, "client-key")
    if bool(cert_file or cert_data) != bool(key_file or key_data):
        raise ConfigError(f"{where}: client-certificate and client-key must be given together")
    token_file = user.get("tokenFile")
    return ApiCredentials(
        str(cluster.get("server", "")),
        where,
        ca_file=ca_file,
        ca_data=ca_data.decode("ascii", "replace") if ca_data else None,
        token_file=os.path.join(base, str(token_file)) if token_file else None,
        token=str(user["token"]) if user.get("token") else None,
        client_cert_file=cert_file,
        client_key_file=key_file,
        client_cert_data=cert_data,
        client_key_data=key_data,
    )


def _named(doc: Mapping[str, Any], section: str, key: str, name: str, where: str) -> Mapping[str, Any]:
    for item in doc.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(key), dict):
            return item[key]  # type: ignore[no-any-return]
    raise ConfigError(f"{where}: {section[:-1]} {name!r} not found")


def read_token_file(path: str, error: type[Exception] = UpstreamError) -> str:
    """Read a bearer token file; re-read on every call so kubelet rotation is picked up."""
    try:
        with open(path, encoding="ascii") as fh:
            token = fh.read(MAX_RESPONSE_BYTES).strip()
    except (OSError, ValueError) as exc:
        raise error(
            f"cannot read token file {path}: {getattr(exc, 'strerror', None) or type(exc).__name__}"
        ) from None
    if not token:
        raise error(f"token file {path} is empty")
    return token


@contextlib.contextmanager
def _private_files(*blobs: bytes | None) -> Iterator[list[str | None]]:
    """Write blobs to mode-0600 files in a private directory, removed on exit.

    Why: ``ssl.SSLContext.load_cert_chain`` only accepts file names, and kubeconfigs often embed the
    client key as ``client-key-data``; the key must not stay on disk longer than the load takes.
    """
    directory = tempfile.mkdtemp(prefix="k8s-sa-")
    try:
        paths: list[str | None] = []
        for index, blob in enumerate(blobs):
            if blob is None:
                paths.append(None)
                continue
            path = os.path.join(directory, f"{index}.pem")
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                fh.write(blob)
            paths.append(path)
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def build_ssl_context(creds: ApiCredentials) -> ssl.SSLContext:
    """A verifying TLS context: only the cluster CA when one is given, else the system trust store."""
    try:
        context = ssl.create_default_context(cafile=creds.ca_file, cadata=creds.ca_data)
        if creds.client_cert_file or creds.client_cert_data:
            with _private_files(creds.client_cert_data, creds.client_key_data) as (cert_tmp, key_tmp):
                cert = cert_tmp or creds.client_cert_file
                key = key_tmp or creds.client_key_file
                assert cert is not None
                context.load_cert_chain(cert, key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot set up TLS for the Kubernetes API ({creds.source}): {exc}") from None
    return context


class KubeApiClient:
    """POSTs JSON to the Kubernetes API with the workload's own credentials."""

    def __init__(self, creds: ApiCredentials, timeout: float) -> None:
        self._creds = creds
        self._timeout = timeout
        self._endpoint = parse_endpoint(creds.server, "Kubernetes API server", schemes=("https",))
        self._context = build_ssl_context(creds)

    def post_json(self, path: str, payload: Mapping[str, object]) -> HttpResult:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        # client-go semantics: a token file, re-read on every use, wins over a static token.
        bearer = read_token_file(self._creds.token_file) if self._creds.token_file else self._creds.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        body = json.dumps(payload).encode()
        return http_call(
            self._endpoint,
            "POST",
            self._endpoint.path.rstrip("/") + path,
            headers=headers,
            body=body,
            timeout=self._timeout,
            context=self._context,
        )

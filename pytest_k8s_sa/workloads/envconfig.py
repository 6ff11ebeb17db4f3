"""Configuration from the environment and JSON log lines: what every workload reads and writes first.

Workloads take their configuration from environment variables only (a pod's ``env``): a value that
does not parse is a :class:`ConfigError`, which ``entry.run_main`` prints as one stderr line and
exits 2 for, never a traceback. Every log line is one JSON object (:func:`log_event`), so parents
discover addresses and decisions by parsing them. Standard library only (see ``__init__``).
"""

import json
import math
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

EXIT_CONFIG = 2


class ConfigError(Exception):
    """Invalid configuration; ``run_main`` prints it as one stderr line and exits 2, never a traceback."""


# --- JSON logging -------------------------------------------------------------------------------

_log_lock = threading.Lock()


def log_event(event: str, **fields: object) -> None:
    """Write one JSON object as one line to stderr.

    Why: parents (tests, log collectors) discover addresses and decisions by parsing these lines, so
    every line must be complete JSON. Callers must never pass tokens or request headers.
    """
    line = json.dumps({"event": event, **fields, "ts": round(time.time(), 3)}, default=str)
    with _log_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


# --- configuration ----------------------------------------------------------------------------


def env_str(environ: Mapping[str, str], name: str, default: str = "") -> str:
    """Return the stripped value; empty counts as unset because manifests often render ``value: ""``."""
    return environ.get(name, "").strip() or default


def env_float(
    environ: Mapping[str, str],
    name: str,
    default: float,
    *,
    allow_zero: bool = False,
    maximum: float = 3600.0,
) -> float:
    """Parse a finite, non-negative number of seconds (zero only when ``allow_zero``)."""
    raw = env_str(environ, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    lowest = "0" if allow_zero else "greater than 0"
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero) or value > maximum:
        raise ConfigError(f"{name}={raw!r} must be {lowest} and at most {maximum:g}")
    return value


def env_int(environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    """Parse an integer within ``[minimum, maximum]``."""
    raw = env_str(environ, name)
    if not raw:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise ConfigError(f"{name}={raw!r} must be an integer from {minimum} to {maximum}")
    return int(raw)


def format_hostport(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals bracketed, as URLs and ``LISTEN_ADDR`` expect."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_listen_addr(value: str, name: str = "LISTEN_ADDR") -> tuple[str, int]:
    """Parse ``host:port``; an empty host means all interfaces and port 0 asks the kernel for one."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{name}={value!r}: bracket IPv6 addresses, e.g. [::1]:8080")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{name}={value!r} must be host:port (e.g. :8080 or 127.0.0.1:0)")
    return host, int(port)


@dataclass(frozen=True)
class Endpoint:
    """A parsed http(s) URL: where to connect and which path to ask for."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{format_hostport(self.host, self.port)}{self.path}"


def parse_endpoint(url: str, name: str, *, schemes: Sequence[str] = ("http", "https")) -> Endpoint:
    """Parse and validate a URL from configuration so bad values fail at start, not on first use."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name}={url!r} is not a valid URL") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{name}={url!r} must be a {' or '.join(schemes)} URL such as https://host:port")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Endpoint(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)

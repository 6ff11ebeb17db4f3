"""Support for the security gates: extra secret-store processes, raw HTTP, a controllable API proxy, load.

Store processes and the load generator live in :mod:`pytest_k8s_sa.deploy.loadgen` (benchmarks use them
too) and are re-exported here; this module depends on the library and the standard library only.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import requests

from pytest_k8s_sa.base.waiting import wait_until
from pytest_k8s_sa.deploy import start_secret_store_process
from pytest_k8s_sa.deploy.apicut.process_mode import FlakyApi, http_response, make_test_ca, running_proxy
from pytest_k8s_sa.deploy.loadgen import (
    MALFORMED_SAMPLES,
    LoadResult,
    Mix,
    StoreHandle,
    forger,
    run_load,
    standard_mix,
    store_beside,
    store_stats,
)
from pytest_k8s_sa.sut.hostile import rss_bytes
from pytest_k8s_sa.sut.rawhttp import RawAnswer, raw_request

__all__ = [
    "MALFORMED_SAMPLES",
    "FlakyApi",
    "LoadResult",
    "LogWatch",
    "Mix",
    "RawAnswer",
    "StoreHandle",
    "client_id",
    "forger",
    "healthy",
    "http_response",
    "leaked",
    "make_test_ca",
    "raw_request",
    "rss_bytes",
    "run_load",
    "running_proxy",
    "standard_mix",
    "start_secret_store_process",
    "store_beside",
    "store_stats",
    "wait_for_status",
    "wait_until",
]
"""What the security tests import from here (some re-exported from the package)."""

# --- extra secret-store processes --------------------------------------------------------------


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


# --- raw HTTP ---------------------------------------------------------------------------------


def client_id(token: str | bytes) -> bytes:
    """An ``X-Client-Id`` header line."""
    return b"X-Client-Id: " + (token.encode("latin-1") if isinstance(token, str) else token)


# --- the store's log --------------------------------------------------------------------------


class LogWatch:
    """Reads what a process appended to its log since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.exists() else 0

    def new_text(self) -> str:
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # only complete lines; a partial one is read next time
        self._offset += end
        return data[:end].decode("utf-8", errors="replace")

    def new_events(self) -> tuple[str, list[dict[str, object]]]:
        text = self.new_text()
        events = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return text, events


def leaked(text: str, presented: str, *, minimum: int = 20) -> list[str]:
    """Which sensitive parts of ``presented`` (the whole value, its signature segment) occur in ``text``.

    Values shorter than ``minimum`` are not searched for: a 3-character "token" occurs in any log by
    chance, and such a value was never a credential.
    """

    def occurs(value: str) -> bool:
        return value in text or json.dumps(value)[1:-1] in text  # raw, or as a JSON log would escape it

    found = []
    if len(presented) >= minimum and occurs(presented):
        found.append("token")
    segments = presented.split(".")
    if len(segments) == 3 and len(segments[2]) >= minimum and occurs(segments[2]):
        found.append("signature")
    return found


# --- concurrent load --------------------------------------------------------------------------


def wait_for_status(url: str, token: str, status: int, timeout: float, message: str) -> None:
    """Until the store answers ``status`` to ``token`` (used for recovery, never for pacing)."""

    def answered() -> bool:
        return requests.get(url, headers={"X-Client-Id": token}, timeout=15).status_code == status

    wait_until(answered, timeout, message, max_interval=0.5, ignore=(requests.RequestException,))

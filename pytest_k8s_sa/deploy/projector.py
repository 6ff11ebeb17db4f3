"""EMULATED kubelet token projection, for workloads that run as local processes.

On the local provider no kubelet runs, so this module plays the kubelet's part for the projected
service-account token volume, and only for that:

* the Pod object exists (created by the caller), so every token is bound to a real pod UID,
* the token comes from the real TokenRequest API, bound to that pod, with the volume's audience
  and ``expirationSeconds``, exactly as ``pkg/kubelet/token/token_manager.go`` requests it,
* it is written with the kubelet's atomic layout (``pkg/volume/util/atomic_writer.go``):
  ``<file> -> ..data/<file>``, ``..data -> ..<timestamp>.<random>``, swapped through ``..data_tmp``,
* it is refreshed once 80% of its lifetime has passed (or on :meth:`TokenProjector.refresh_now`),
  and the old token is not revoked (it stays valid until its own ``exp``).

What is *not* emulated: jitter, the 24-hour cap, fsGroup ownership, the volume mount itself.
Every conformance check that relies on this module reports fidelity ``emulated-kubelet``.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import threading
from pathlib import Path

import kubernetes
import urllib3

from ..cluster.tokens import BoundObject, Token, request_token

FIDELITY = "emulated-kubelet"
REFRESH_FRACTION = 0.8
"""The kubelet refreshes a projected token once 80% of its TTL has passed."""


def write_atomically(directory: Path, files: dict[str, bytes], mode: int = 0o644) -> Path:
    """Write ``files`` into ``directory`` the way the kubelet's AtomicWriter does.

    Readers that open ``directory/<name>`` always see a complete, consistent set of files: the
    switch from the old set to the new one is a single ``rename`` of the ``..data`` symlink.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y_%m_%d_%H_%M_%S.%f")
    payload = directory / f"..{stamp}.{secrets.token_hex(4)}"
    payload.mkdir(mode=0o755)
    for name, content in files.items():
        target = payload / name
        target.write_bytes(content)
        target.chmod(mode)
    data, data_tmp = directory / "..data", directory / "..data_tmp"
    old = os.readlink(data) if data.is_symlink() else None
    data_tmp.unlink(missing_ok=True)
    data_tmp.symlink_to(payload.name)
    data_tmp.rename(data)  # the atomic switch
    for name in files:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / name)
    if old and old != payload.name:
        shutil.rmtree(directory / old, ignore_errors=True)
    return payload


class TokenProjector:
    """One projected ``serviceAccountToken`` volume source of one pod (emulated kubelet)."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        namespace: str,
        service_account: str,
        pod: BoundObject,
        directory: Path,
        filename: str = "token",
        audience: str | None = None,
        expiration_seconds: int = 600,
        extra_files: dict[str, bytes] | None = None,
    ) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.service_account = service_account
        self.pod = pod
        self.directory = directory
        self.filename = filename
        self.audience = audience
        self.expiration_seconds = expiration_seconds
        self.extra_files = dict(extra_files or {})
        self.history: list[Token] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.directory / self.filename

    @property
    def current(self) -> Token:
        return self.history[-1]

    def refresh_now(self) -> Token:
        """Request a fresh token and swap it in, as the kubelet does when a refresh is due."""
        with self._lock:
            token = request_token(
                self.api_client,
                self.namespace,
                self.service_account,
                audiences=[self.audience] if self.audience else None,
                expiration_seconds=self.expiration_seconds,
                bound_object=self.pod,
            )
            write_atomically(self.directory, {self.filename: token.raw.encode(), **self.extra_files})
            self.history.append(token)
            self._wake.set()
            return token

    def install(self, token: Token) -> None:
        """Swap ``token`` in as if the kubelet had just requested it; the next refresh is then due at
        80% of *its* lifetime. The project's tests install a short-lived token minted with the
        cluster's key (TokenRequest allows no less than 600 s) to see a refresh within seconds."""
        with self._lock:
            write_atomically(self.directory, {self.filename: token.raw.encode(), **self.extra_files})
            self.history.append(token)
            self._wake.set()

    def _due_in(self) -> float:
        token = self.current
        issued, expires = float(token.claims["iat"]), float(token.claims["exp"])
        due = issued + REFRESH_FRACTION * (expires - issued)
        return max(0.0, due - dt.datetime.now(dt.UTC).timestamp())

    def start(self) -> Token:
        """Write the first token and keep refreshing it in a background thread."""
        token = self.refresh_now()
        self._thread = threading.Thread(target=self._run, name=f"projector-{self.filename}", daemon=True)
        self._thread.start()
        return token

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            if self._wake.wait(timeout=self._due_in()) or self._stop.is_set():
                continue  # refreshed by hand (or stopping): compute the next due time again
            try:
                self.refresh_now()
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError):
                # The kubelet retries too; keep the old token meanwhile. Connection errors included:
                # the apiserver may be restarting (a signing-key rotation), and this thread must live on.
                self._stop.wait(timeout=5.0)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

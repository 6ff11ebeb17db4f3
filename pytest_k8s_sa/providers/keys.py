"""The :class:`~pytest_k8s_sa.providers.base.KeyControl` of the providers that run kube-apiserver.

The key set itself (files, which key signs, which verify) is :mod:`pytest_k8s_sa.components.signingkeys`; this
module adds the step around it: change the files, restart the apiserver, under a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..components.signingkeys import KeySetState, SigningKeys


@dataclass(frozen=True)
class KeyChange:
    """What one rotation step did, as evidence: key ids and how long the apiserver took."""

    signing_kid: str
    verifying_kids: list[str]
    restart_seconds: float


class ApiServerKeyControl:
    """:class:`~pytest_k8s_sa.providers.base.KeyControl` for a control plane this run started.

    ``restart``: stops the kube-apiserver and starts it again with the same flags (whose files now hold
    the new key set), returning once ``/readyz`` answers 200 (with a deadline); etcd keeps running, so
    every object survives. ``lock``: held for the whole step, so no other process of the run attaches
    to, or rotates, the cluster meanwhile.
    """

    def __init__(self, keys: SigningKeys, restart: Callable[[], None], lock: Path) -> None:
        self.keys = keys
        self._restart = restart
        self._lock = FileLock(str(lock))

    def _step(self, change: Callable[[], KeySetState]) -> KeyChange:
        with self._lock:
            state = change()
            started = time.monotonic()
            self._restart()
            seconds = round(time.monotonic() - started, 2)
        return KeyChange(self.keys.kid(state.signing), [self.keys.kid(n) for n in state.verifying], seconds)

    def add_signing_key(self) -> KeyChange:
        return self._step(self.keys.add)

    def retire_old_keys(self) -> KeyChange:
        return self._step(self.keys.retire)

    def restore_original_key(self) -> KeyChange:
        return self._step(self.keys.restore)

    def signing_kid(self) -> str:
        return self.keys.kid(self.keys.state().signing)

    def verifying_kids(self) -> list[str]:
        return [self.keys.kid(n) for n in self.keys.state().verifying]

    @property
    def rotated(self) -> bool:
        """Whether the key set differs from the one the cluster started with."""
        state = self.keys.state()
        return state.signing != state.original or state.verifying != list(range(state.count))

"""Rotation of the service-account signing key on a control plane this run started (local, local-node).

The kube-apiserver reads two kinds of key file once, at start: ``--service-account-signing-key-file``
(the one private key TokenRequest signs with) and ``--service-account-key-file`` (every public key
it accepts a signature from; one file may hold several PEM keys). Rotating the key is therefore
"write the new files, restart the apiserver", which is what an operator of a real control plane does
too. :class:`SigningKeys` keeps the key set on disk so that any process of the run (an xdist worker
that did not start the cluster, too) can rotate it:

* ``keys/<n>.key`` / ``keys/<n>.pub``: every key pair the cluster has had, ``0`` the original;
* ``keys.json``: which key signs and which keys verify;
* the two paths the apiserver's flags name never change (``sa.key``: the signing key now, ``sa.crt``:
  the public keys that verify now, plus the legacy key below); both are replaced atomically, so
  :func:`pytest_k8s_sa.cluster.tokens.mint_token` (which reads ``sa.key`` on every call) follows the current
  key by itself.

The kube-controller-manager's ``--service-account-private-key-file`` signs *legacy* Secret tokens.
It has a key pair of its own here (``sa-legacy.*``, listed in ``sa.crt`` at all times) and takes no
part in the rotation: legacy tokens keep verifying through it, and new legacy Secrets keep being
filled, while the TokenRequest key is rotated. (kubeadm clusters share one key for both; rotating
there also means restarting the controller manager, and Kubernetes never re-signs the tokens already
in Secrets.)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import K8sSAError
from .pki import key_id_of_pem, public_key_pem, service_account_signing_key

KEYS_DIR = "keys"
STATE_FILE = "keys.json"


def _replace(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Write ``path`` through a temporary file and a rename: readers see the old or the new bytes."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    tmp.replace(path)


@dataclass
class KeySetState:
    """Which keys sign and verify now (``keys.json``)."""

    signing: int = 0
    verifying: list[int] = field(default_factory=lambda: [0])
    count: int = 1
    original: int = 0

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


class SigningKeys:
    """The service-account key set of one control plane, on disk next to its PKI.

    ``signing_key`` / ``public_keys``: the paths the apiserver's flags name; ``legacy_public_key``: the
    controller manager's key, always verified. Use :meth:`initialise` once when the PKI is written.
    """

    def __init__(self, signing_key: Path, public_keys: Path, legacy_public_key: Path) -> None:
        self.signing_key = signing_key
        self.public_keys = public_keys
        self.legacy_public_key = legacy_public_key
        self.directory = signing_key.parent / KEYS_DIR

    @property
    def _state_path(self) -> Path:
        return self.directory / STATE_FILE

    def initialise(self, original_key_pem: bytes) -> None:
        """Record the key the cluster was started with as key ``0`` and write the flag files."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._store(0, original_key_pem)
        self._apply(KeySetState())

    def state(self) -> KeySetState:
        try:
            return KeySetState(**json.loads(self._state_path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise K8sSAError(f"the signing-key state {self._state_path} is unreadable: {exc}") from None

    def _store(self, number: int, key_pem: bytes) -> None:
        _replace(self.directory / f"{number}.key", key_pem)
        _replace(self.directory / f"{number}.pub", public_key_pem(key_pem), mode=0o644)

    def public_pem(self, number: int) -> bytes:
        return (self.directory / f"{number}.pub").read_bytes()

    def kid(self, number: int) -> str:
        return key_id_of_pem(self.public_pem(number))

    def _apply(self, state: KeySetState) -> None:
        """Write the flag files for ``state`` (signing key first would not matter: the apiserver is
        restarted afterwards and reads both), then the state itself."""
        bundle = b"".join(self.public_pem(n) for n in state.verifying) + self.legacy_public_key.read_bytes()
        _replace(self.public_keys, bundle, mode=0o644)
        _replace(self.signing_key, (self.directory / f"{state.signing}.key").read_bytes())
        _replace(self._state_path, state.to_json().encode(), mode=0o644)

    def add(self) -> KeySetState:
        """A new key signs from now on; every key that verified still does (the overlap)."""
        state = self.state()
        number = state.count
        self._store(number, service_account_signing_key().key_pem)
        state = KeySetState(number, [*state.verifying, number], state.count + 1, state.original)
        self._apply(state)
        return state

    def retire(self) -> KeySetState:
        """Only the signing key verifies (besides the legacy key, which is not rotated)."""
        state = self.state()
        state = KeySetState(state.signing, [state.signing], state.count, state.original)
        self._apply(state)
        return state

    def restore(self) -> KeySetState:
        """The original key signs again and every key the cluster ever had verifies, so no token
        issued during a rotation stops working for the rest of the run."""
        state = self.state()
        state = KeySetState(state.original, list(range(state.count)), state.count, state.original)
        self._apply(state)
        return state

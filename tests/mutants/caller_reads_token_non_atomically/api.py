"""Mutant caller: keeps the token file open and re-reads it in place (seek to 0, read).

That is right for a file rewritten in place and wrong for the kubelet's atomic writer, which swaps a
``..data`` symlink to a new directory: the open descriptor keeps reading the old, unlinked file, so
the caller never sees a rotated token.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import api as ref

_handles: dict[int, int] = {}
_reference_refresh = ref.TokenSource.refresh


def refresh(self: ref.TokenSource) -> bool:
    fd = _handles.get(id(self))
    if fd is None:
        try:
            fd = _handles[id(self)] = os.open(self.path, os.O_RDONLY)  # MUTATION: opened once
        except OSError:
            return _reference_refresh(self)
    value = os.pread(fd, ref.MAX_RESPONSE_BYTES, 0).decode("ascii", "replace").strip()
    if not value:
        return False
    with self._lock:
        if self._current is not None and self._current.value == value:
            return True
        claims = ref.token_claims(value)
        self._current = ref.HeldToken(
            value, claims.get("jti"), claims.get("exp"), claims.get("iat"), self._wall_clock()
        )
    ref.log_event("token-loaded", path=self.path, jti=claims.get("jti"))
    return True


ref.TokenSource.refresh = refresh  # type: ignore[method-assign]
raise SystemExit(ref.main())

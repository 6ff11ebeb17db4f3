"""Mutant caller: reads its token file once at start and keeps that token for ever.

It works until the kubelet rotates the token (at 80% of its lifetime), then keeps sending the old one
until it expires, and every call fails.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import api as ref

_reference_refresh = ref.TokenSource.refresh


def refresh(self: ref.TokenSource) -> bool:
    if self._current is not None:  # MUTATION: never again once one is held
        return True
    return _reference_refresh(self)


ref.TokenSource.refresh = refresh  # type: ignore[method-assign]
raise SystemExit(ref.main())

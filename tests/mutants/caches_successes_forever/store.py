"""Mutant: caches successful reviews for a day: past the token's exp, past its pod's deletion.

The reference clamps its cache to 10 s (the apiserver's own success cache); this one does not.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref

_reference_init = ref.ReviewCache.__init__


def init(self: ref.ReviewCache, ttl: float, max_entries: int, clock, wait_limit: float) -> None:  # type: ignore[no-untyped-def]
    _reference_init(self, 86400.0, max_entries, clock, wait_limit)  # MUTATION: a day, whatever exp says


ref.ReviewCache.__init__ = init  # type: ignore[method-assign]
raise SystemExit(ref.main())

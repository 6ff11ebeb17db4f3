"""Mutant: the allow-list entries are regular expressions matched without an end anchor.

``re.match(allowed, user)`` anchors only the start: ``ns:api-x`` passes because ``ns:api`` is allowed."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


def allows(self: ref.AllowList, namespace: str, name: str) -> bool:
    user = f"{namespace}:{name}"
    # MUTATION: re.match (no end anchor, and the entry read as a pattern) instead of equality.
    return self.any_service_account or any(re.match(entry, user) for entry in self.describe())


ref.AllowList.allows = allows  # type: ignore[method-assign]
raise SystemExit(ref.main())

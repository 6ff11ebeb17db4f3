"""Mutant: the allow-list grants any `namespace:name` that contains an allowed entry.

``strings.Contains(user, allowed)``: ``ns:api-x`` and ``xns:api`` pass because ``ns:api`` is allowed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


def allows(self: ref.AllowList, namespace: str, name: str) -> bool:
    user = f"{namespace}:{name}"
    # MUTATION: a substring match instead of equality.
    return self.any_service_account or any(entry in user for entry in self.describe())


ref.AllowList.allows = allows  # type: ignore[method-assign]
raise SystemExit(ref.main())

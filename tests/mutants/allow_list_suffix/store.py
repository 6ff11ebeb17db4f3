"""Mutant: the allow-list grants any `namespace:name` that ends with an allowed entry.

``strings.HasSuffix(user, allowed)``: ``xns:api`` passes because ``ns:api`` is allowed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


def allows(self: ref.AllowList, namespace: str, name: str) -> bool:
    user = f"{namespace}:{name}"
    # MUTATION: a suffix match instead of equality.
    return self.any_service_account or any(user.endswith(entry) for entry in self.describe())


ref.AllowList.allows = allows  # type: ignore[method-assign]
raise SystemExit(ref.main())

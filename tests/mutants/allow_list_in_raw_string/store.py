"""Mutant: the presented identity is looked up in the raw comma-separated allow-list text.

``user in os.environ[ALLOWED_SERVICE_ACCOUNTS]``: ``ns:ap`` passes because ``ns:api`` is allowed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


def allows(self: ref.AllowList, namespace: str, name: str) -> bool:
    # MUTATION: a substring of the allow-list text instead of one of its entries.
    return self.any_service_account or f"{namespace}:{name}" in ",".join(self.describe())


ref.AllowList.allows = allows  # type: ignore[method-assign]
raise SystemExit(ref.main())

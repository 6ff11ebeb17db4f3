"""Mutant: the allow-list compares only the service account's name, not its namespace.

Anyone who may create a service account called ``api`` in any namespace passes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


def allows(self: ref.AllowList, namespace: str, name: str) -> bool:
    # MUTATION: the namespace is ignored.
    return self.any_service_account or any(name == allowed for _, allowed in self.accounts)


ref.AllowList.allows = allows  # type: ignore[method-assign]
raise SystemExit(ref.main())

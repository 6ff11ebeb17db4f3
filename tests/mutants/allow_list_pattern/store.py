"""Mutant: the allow-list entries are regular expressions, anchored at both ends but not escaped.

``re.fullmatch(allowed, user)``: a dot in an allowed name matches any character, so ``ns:caller-v1``
passes because ``ns:caller.v1`` is allowed.
"""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


def allows(self: ref.AllowList, namespace: str, name: str) -> bool:
    user = f"{namespace}:{name}"
    # MUTATION: the entry read as a pattern (re.escape forgotten) instead of compared for equality.
    return self.any_service_account or any(re.fullmatch(entry, user) for entry in self.describe())


ref.AllowList.allows = allows  # type: ignore[method-assign]
raise SystemExit(ref.main())

"""Mutant: no allow-list; every service account with a valid token for the audience gets in."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import secret_store as ref


def allows(self: ref.AllowList, namespace: str, name: str) -> bool:
    return True  # MUTATION


ref.AllowList.allows = allows  # type: ignore[method-assign]
raise SystemExit(ref.main())

"""The reference API service (the caller), unchanged: the control every caller mutant is compared with."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _reference  # noqa: F401

from pytest_k8s_sa.workloads import api

raise SystemExit(api.main())

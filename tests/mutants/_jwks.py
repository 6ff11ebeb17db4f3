"""Makes the jwks control's :class:`OfflineStore` importable for the jwks mutants.

Why not ``import store``: each mutant's own program is a ``store.py`` too (the SUT files run
``store.py``), so the control is loaded from its path under a name of its own.
"""

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parent / "jwks_reference" / "store.py"
_SPEC = importlib.util.spec_from_file_location("jwks_reference_store", _PATH)
assert _SPEC is not None
assert _SPEC.loader is not None
control = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = control
_SPEC.loader.exec_module(control)

OfflineStore = control.OfflineStore
main = control.main
REFETCH_COOLDOWN_SECONDS = control.REFETCH_COOLDOWN_SECONDS

"""Makes the reference workloads importable for the mutant programs in this folder.

Why a path insertion rather than an installed package: a mutant runs as a plain process (the SUT
file's ``command``, cwd = its folder) under whichever ``python3`` the SUT runner finds, not
necessarily the project's venv. The reference workloads are standard-library only, so the repository
root on ``sys.path`` is all they need.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

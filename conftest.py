"""Project-wide test configuration: the plugin itself comes from its pytest11 entry point."""

import os
from pathlib import Path

pytest_plugins = ["pytester"]

# pytester points HOME at a temporary folder; pin the cache (built binaries, process registry,
# port reservations) to the real one first, so inner pytest runs reuse the binaries instead of
# building them again, and share the registry that the orphan sweep reads.
os.environ.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))

"""Free loopback ports that stay free between choosing them and a child process binding them.

Asking the kernel for port 0 and closing the socket leaves a window in which another process
(another pytest-xdist worker, or a concurrent CI job) may be handed the same port. As in envtest,
a chosen port is reserved for a while with a lock file that every user of this module respects.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from .paths import cache_root

RESERVATION_SECONDS = 120.0


def _reservations() -> Path:
    path = cache_root() / "ports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _reserve(port: int) -> bool:
    marker = _reservations() / f"{port}.lock"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - marker.stat().st_mtime < RESERVATION_SECONDS:
                return False
            marker.unlink()
        except FileNotFoundError:
            pass
        return _reserve(port)
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    return True


def free_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A TCP port on ``host`` that is free now and reserved for this caller for two minutes."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if _reserve(port):
            return port
    raise OSError(f"no free port on {host} after {attempts} attempts")

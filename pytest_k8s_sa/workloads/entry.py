"""The workloads' common ``main``: configuration from the environment, one server, clean stops.

``python -m k8s_sa_workloads.<service>`` ends in :func:`run_main`: ``--help`` prints the service's
usage, any other argument or a :class:`~.envconfig.ConfigError` exits 2 with one stderr line, and the
server logs ``starting``, ``listening`` (once the signal handlers are installed) and ``stopped``.
Standard library only.
"""

import os
import sys
from collections.abc import Callable, Mapping, Sequence

from .envconfig import EXIT_CONFIG, ConfigError, log_event
from .httpserver import WorkloadServer, serve_until_signalled


def run_main(
    service: str,
    argv: Sequence[str] | None,
    usage: str | None,
    build: Callable[[Mapping[str, str]], WorkloadServer],
) -> int:
    """The common ``main``: configuration comes from the environment only; errors exit 2 in one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]):
        print(usage or service)
        return 0
    if args:
        print(
            f"{service}: unexpected arguments {args!r}; configuration is read from the environment (--help)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        server = build(os.environ)
    except ConfigError as exc:
        print(f"{service}: configuration error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_CONFIG
    log_event("starting", service=service, **server.app.summary(), limits=server.limits.summary())

    def listening() -> None:
        log_event("listening", service=service, addr=server.bound_addr)

    serve_until_signalled(server, ready=listening)
    log_event("stopped", service=service)
    return 0

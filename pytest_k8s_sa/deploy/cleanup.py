"""One way to undo what a deployment made: a :class:`contextlib.ExitStack` whose callbacks never raise.

Every deploy path registers its undo steps here as it goes (a namespace, a binding, a process, a
port-forward), so a failure halfway undoes exactly what was made, in reverse order. A cleanup that
fails (an object already gone, a connection already closed) is swallowed: it must not hide the
remaining cleanups, nor replace the error or the test outcome that led to the teardown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..base.process import Process


class Cleanups(contextlib.ExitStack):
    """An exit stack for teardown steps; :meth:`defer` registers one that cannot raise."""

    def __init__(self) -> None:
        super().__init__()
        self._processes: list[Process] = []

    def stop_on_exit(self, process: Process) -> None:
        """Stop ``process`` on exit in its turn, like ``defer(process.stop)``; in addition every
        process registered so is sent SIGTERM together as the exit begins, so they shut down at
        once instead of one after another (each workload takes ~50 ms), while the other steps still
        run in reverse order."""
        self._processes.append(process)
        self.defer(process.stop)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        for process in self._processes:
            with contextlib.suppress(Exception):
                process.terminate()
        return bool(super().__exit__(exc_type, exc, traceback))

    def defer(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Run ``function(*args, **kwargs)`` on exit, ignoring any exception it raises."""

        def quietly() -> None:
            with contextlib.suppress(Exception):
                function(*args, **kwargs)

        self.callback(quietly)

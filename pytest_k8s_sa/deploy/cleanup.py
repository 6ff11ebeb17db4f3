"""One way to undo what a deployment made: a :class:`contextlib.ExitStack` whose callbacks never raise.

Every deploy path registers its undo steps here as it goes (a namespace, a binding, a process, a
port-forward), so a failure halfway undoes exactly what was made, in reverse order. A cleanup that
fails (an object already gone, a connection already closed) is swallowed: it must not hide the
remaining cleanups, nor replace the error or the test outcome that led to the teardown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any


class Cleanups(contextlib.ExitStack):
    """An exit stack for teardown steps; :meth:`defer` registers one that cannot raise."""

    def defer(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Run ``function(*args, **kwargs)`` on exit, ignoring any exception it raises."""

        def quietly() -> None:
            with contextlib.suppress(Exception):
                function(*args, **kwargs)

        self.callback(quietly)

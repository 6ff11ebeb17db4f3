"""The project's own tests: the ``host_commands`` marker (see ``tests/host_commands.py``)."""

from __future__ import annotations

import pytest
from host_commands import host_problem


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "host_commands(*commands, root=False): the test runs these host commands (and needs root); "
        "it skips naming the missing ones and the apt-get line that installs them",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("host_commands"):
        problem = host_problem(tuple(mark.args), root=bool(mark.kwargs.get("root", False)))
        if problem is not None:
            pytest.skip(problem)

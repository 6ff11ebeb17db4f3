"""The ``host_commands`` marker's message: it names what is missing and how to install it."""

from __future__ import annotations

import os
import sys

import pytest
from host_commands import LOCAL_NODE, PACKAGES, host_problem

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="host commands are a Linux matter")


def test_missing_commands_are_named_with_their_apt_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    problem = host_problem(("iptables", "conntrack", "docker", "dockerd"))
    assert problem == (
        "missing host commands iptables, conntrack, docker, dockerd: "
        "`apt-get install -y iptables conntrack docker.io`"
    )


def test_present_commands_pass(monkeypatch, tmp_path):
    command = tmp_path / "iptables"
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert host_problem(("iptables",)) is None


def test_root_is_asked_for_when_missing(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert host_problem((), root=True) == "needs root"


def test_an_unknown_command_is_a_usage_error():
    with pytest.raises(ValueError, match="no Debian package known"):
        host_problem(("iptabels",))


def test_the_local_node_list_is_known():
    assert set(LOCAL_NODE) <= set(PACKAGES)


def test_the_marker_skips_through_the_conftest(pytester, monkeypatch):
    """An inner run with this directory's conftest: a missing command is a skip that names it."""
    here = os.path.dirname(os.path.abspath(__file__))
    pytester.makeconftest(
        f"""
        import importlib.util, sys
        sys.path.insert(0, {here!r})
        _spec = importlib.util.spec_from_file_location("project_tests_conftest", {here!r} + "/conftest.py")
        _outer = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_outer)
        pytest_configure = _outer.pytest_configure
        pytest_runtest_setup = _outer.pytest_runtest_setup
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.host_commands("conntrack")
        def test_needs_conntrack():
            raise AssertionError("ran without conntrack")
        """
    )
    monkeypatch.setenv("PATH", str(pytester.path))
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*missing host commands conntrack: `apt-get install -y conntrack`*"])

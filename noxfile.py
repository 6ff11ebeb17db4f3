"""Developer and CI entry points: `nox -s tests`, `nox -s conformance`, `nox -s lint`, `nox -s bench`."""

from __future__ import annotations

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]
PYTHON = "3.11"


def _install(session: nox.Session, extras: str = "test") -> None:
    session.install("-e", f".[{extras}]")
    # Build (or find in ~/.cache/pytest-k8s-sa) the control-plane binaries before pytest runs, so
    # the build's progress is shown here instead of being captured inside a fixture.
    session.run("k8s-sa", "build")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The project's own tests, on the embedded local control plane, two xdist workers."""
    _install(session)
    session.run("pytest", "tests", "-n", "2", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """The conformance suite (fast profile) on the embedded local cluster, with its JSON report."""
    _install(session)
    args = session.posargs or ["--conformance-profile", "fast"]
    session.run(
        "pytest",
        "suites",
        "-p",
        "no:cacheprovider",
        "--conformance-report",
        "reports/conformance.json",
        "--junitxml",
        "reports/conformance-junit.xml",
        *args,
    )


@nox.session(python=PYTHON)
def conformance_node(session: nox.Session) -> None:
    """The conformance suite on a real node (--k8s-provider local-node; Linux, root).

    Needs `apt-get install -y runc containernetworking-plugins iptables mmdebstrap`. The first run
    builds kubelet, kube-proxy, kube-scheduler, containerd, CoreDNS and the images into
    ~/.cache/pytest-k8s-sa (several minutes cold); later runs start the node in ~15 s.
    """
    _install(session)
    args = session.posargs or ["--conformance-profile", "fast"]
    session.run(
        "pytest",
        "suites",
        "--k8s-provider",
        "local-node",
        "-p",
        "no:cacheprovider",
        "--conformance-report",
        "reports/node.json",
        "--junitxml",
        "reports/node-junit.xml",
        *args,
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy --strict on the package."""
    session.install("-e", ".[test,lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: control-plane start, per-test fixture cost, the fast suite end to end."""
    _install(session)
    session.run("python", "benchmarks/run.py", *session.posargs)

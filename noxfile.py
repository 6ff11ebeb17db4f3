"""Developer and CI entry points: `nox -s tests`, `nox -s conformance`, `nox -s lint`, `nox -s bench`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]
PYTHON = "3.11"


def _install(session: nox.Session, extras: str | None = "test") -> None:
    session.install("-e", f".[{extras}]" if extras else ".")
    # Build (or find in ~/.cache/pytest-k8s-sa) the control-plane binaries before pytest runs, so
    # the build's progress is shown here instead of being captured inside a fixture.
    session.run("k8s-sa", "build")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The project's own tests, on the embedded local control plane, two xdist workers."""
    _install(session)
    # tests/test_upstream_e2e.py runs two upstream specs: build (or find) the e2e binary here, with
    # its progress shown (about 1 min with a warm Go build cache; ~20 min with an empty one).
    session.run("k8s-sa", "upstream-e2e", "--build-only")
    session.run("pytest", "tests", "-n", "2", "-p", "no:cacheprovider", *session.posargs)


def _conformance(session: nox.Session, report: str, *provider: str, profile: str = "fast") -> None:
    # What a team gating its service installs: the package, not the project's test extras.
    _install(session, extras=None)
    args = session.posargs or ["--conformance-profile", profile]
    session.run(
        "pytest",
        "suites",
        *provider,
        "-p",
        "no:cacheprovider",
        "--k8s-start-early",  # the local cluster boots while pytest imports (other providers: ignored)
        "--conformance-report",
        f"reports/{report}.json",
        "--junitxml",
        f"reports/{report}-junit.xml",
        *args,
    )


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """The conformance suite (fast profile) on the embedded local cluster, with its JSON report."""
    _conformance(session, "conformance")


@nox.session(python=PYTHON)
def conformance_full(session: nox.Session) -> None:
    """The whole full profile on the embedded local cluster, report in reports/full.json.

    About 11 minutes, nearly all of it waiting: EXP-004 holds a real 600 s token until the apiserver
    refuses it and ROT-003 waits for the refresh at 80 % of one; .ci/run runs it in the background.
    """
    _conformance(session, "full", profile="full")


@nox.session(python=PYTHON)
def conformance_node(session: nox.Session) -> None:
    """The conformance suite on a real node (--k8s-provider local-node; Linux, root).

    Needs `apt-get install -y runc containernetworking-plugins iptables mmdebstrap conntrack`. The first
    run builds kubelet, kube-proxy, kube-scheduler, containerd, CoreDNS and the images into
    ~/.cache/pytest-k8s-sa (several minutes cold); later runs start the node in about 12 s.
    """
    _conformance(session, "node", "--k8s-provider", "local-node")


@nox.session(python=PYTHON)
def conformance_kind(session: nox.Session) -> None:
    """The conformance suite (fast profile) on a kind cluster that pytest-kind creates (--kind-cluster).

    Needs Docker: a running engine, or (root, Linux) Debian's `docker.io` and `mmdebstrap`, with which
    the project starts its own dockerd. The node image kindest/node:v<version> is built first, here,
    so its progress shows (`k8s-sa kind-image`; cached by content). pytest then starts (or finds)
    the engine itself, creates the cluster, runs the suite, deletes the cluster and stops what it
    started.
    """
    _install(session)
    started = session.run("k8s-sa", "docker", "up", silent=True)
    try:
        session.run("k8s-sa", "kind-image")
    finally:
        # The last line of `k8s-sa docker up` says whether it started an engine (progress goes before).
        if str(started).strip().splitlines()[-1:] == ["started"]:
            session.run("k8s-sa", "docker", "down")
    _conformance(session, "kind", "--kind-cluster")


@nox.session(python=PYTHON)
def upstream_e2e(session: nox.Session) -> None:
    """Upstream Kubernetes' service-account e2e specs (SIG Auth) via `k8s-sa upstream-e2e`.

    Default: the `local` provider (API-only specs pass; pod specs are not applicable, no node).
    `nox -s upstream_e2e -- --k8s-provider local-node` runs every spec on a real node (Linux, root,
    the conformance_node packages); `-- --kubeconfig PATH` checks an existing cluster; `-- --slow`
    adds the [Slow] token-rotation spec (~9 min). Results: reports/upstream-e2e-<provider>/.
    """
    _install(session)
    session.run("k8s-sa", "upstream-e2e", *(session.posargs or ["--k8s-provider", "local"]))


@nox.session(python=PYTHON)
def conformance_go_example(session: nox.Session) -> None:
    """The conformance suite (fast) against examples/go-secret-store as a real pod on local-node, in
    both verification modes: sut.yaml (TokenReview) and sut-jwks.yaml (offline, against the cluster's
    key set; reports/go-example-jwks.json).

    Runs the Go store's unit tests, then builds it (a static binary and a one-layer OCI archive);
    the SUT files load the archive into the node. Exits non-zero if any `must` check fails. Linux and
    root, as conformance_node.
    """
    _install(session)
    session.run("go", "-C", "examples/go-secret-store", "test", "./...", external=True)
    session.run("python", "examples/go-secret-store/build.py")
    failed = []
    for report, sut in (("go-example", "sut.yaml"), ("go-example-jwks", "sut-jwks.yaml")):
        try:  # both modes run even when the first fails
            _conformance(
                session,
                report,
                "--k8s-provider",
                "local-node",
                "--sut",
                f"examples/go-secret-store/{sut}",
            )
        except CommandFailed:
            failed.append(sut)
    if failed:
        session.error(f"not conformant: {', '.join(failed)}")


MYPY_TESTS_FLAGS = (
    "--allow-untyped-defs",
    "--allow-incomplete-defs",
    "--allow-untyped-calls",
    "--no-warn-unused-ignores",
)


def _test_modules() -> list[str]:
    """tests/ for mypy: every test module and helper, not the conftest files (pytest loads each as
    ``conftest``, a name mypy would see twice) and not the mutants (programs run by path)."""
    root = Path("tests")
    return sorted(
        str(path)
        for path in root.rglob("*.py")
        if path.name != "conftest.py" and "mutants" not in path.parts and "data" not in path.parts
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format), mypy --strict on the package and the conformance suite, pylint's
    redefined-outer-name (which ruff lacks: a local name hiding an imported one broke EXP-004), and
    the layers (lint-imports).

    The import-linter contracts in pyproject.toml ([tool.importlinter]) are ARCHITECTURE.md's
    layers: an import from a lower layer into a higher one, or a circle, fails here.
    """
    session.install("-e", ".[test,lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    # tests/ too, its test functions unannotated (pytest injects fixtures by name): what it imports
    # must exist and be called rightly, which catches a re-export lost when a module moves.
    session.run("mypy", *MYPY_TESTS_FLAGS, *_test_modules())
    session.run("lint-imports")
    session.run(
        "pylint", "pytest_k8s_sa", "suites", "tests", "benchmarks", "examples", "conftest.py", "noxfile.py"
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """All benchmarks (about 12 min): control plane, fixtures, fast suite, load, 20 flake runs, node.

    Results land in benchmarks/results/*.json; BENCHMARKS.md quotes them with date and machine.
    """
    _install(session)
    session.run("python", "benchmarks/run.py")
    session.run("python", "benchmarks/load.py")
    session.run("python", "benchmarks/hostile_connections.py")
    session.run("python", "benchmarks/flakes.py")
    if os.geteuid() == 0 and sys.platform == "linux":
        session.run("python", "benchmarks/node.py")
    else:
        session.log("benchmarks/node.py skipped: the local-node provider needs root on Linux")


@nox.session(python=PYTHON)
def versions(session: nox.Session) -> None:
    """Versions proven: build the latest patch of each of 1.34-1.37 and run the fast profile on it.

    `nox -s versions` runs on local; `nox -s versions -- --providers local,local-node` adds a real
    node (Linux, root). Results in benchmarks/results/versions.json; not part of CI (one build each,
    several minutes per version). Options: `python benchmarks/versions.py --help`.
    """
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/versions.py", *session.posargs)

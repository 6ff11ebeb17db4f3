"""The built wheel carries the conformance suite: a fresh venv with only the wheel runs it from anywhere.

As a new user would: ``pip wheel .``, a new venv, ``pip install`` the wheel (its dependencies come from
the machine's pip configuration and cache), then the fast profile from an empty folder outside the
repository, once with ``k8s-sa conformance``, once with ``pytest --pyargs`` and a SUT file, and once
against a team's own service in another language: ``examples/go-secret-store`` built with the venv's
python (its build script needs only the installed package and Go) and judged through its ``sut.yaml``.
Plain subprocesses throughout (the kubernetes client must not share this interpreter). Slow (a few
minutes: the install and three suite runs), and part of ``nox -s tests`` on purpose: CI must run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
GO_EXAMPLE = ROOT / "examples" / "go-secret-store"
SHIPPED = (
    "pytest_k8s_sa/suites/conftest.py",
    "pytest_k8s_sa/suites/test_security.py",
    "pytest_k8s_sa/manifests/30-secret-store.yaml",
    "pytest_k8s_sa/sut_files/reference.yaml",
    "pytest_k8s_sa/workloads/secret_store.py",
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "K8S_SA_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    # The built control-plane binaries are shared through the cache (as for any user on this machine).
    env.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    env["HOME"] = os.environ.get("HOME", str(tmp_path))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with only the wheel built from this checkout (and its dependencies)."""
    base = tmp_path_factory.mktemp("wheel")
    env = _clean_env(base)
    dist = base / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)], base, env, 600
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("pytest_k8s_sa-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in SHIPPED if name not in names]
    assert not missing, f"the wheel lacks {missing}"
    target = base / "venv"
    venv.create(target, with_pip=True)
    pip = _run([str(target / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], base, env, 900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    env["PATH"] = f"{target / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return target, env


def _report(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def test_k8s_sa_conformance_runs_the_installed_suite_from_an_empty_folder(installed, tmp_path):
    target, env = installed
    folder = tmp_path / "anywhere"
    folder.mkdir()
    result = _run(
        [str(target / "bin" / "k8s-sa"), "conformance", "--conformance-report", "report.json"],
        folder,
        env,
        1200,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    report = _report(folder / "report.json")
    assert report["implementation"]["name"] == "pytest-k8s-sa reference workloads"
    assert report["summary_by_level"]["must"]["failed"] == 0
    assert report["summary_by_level"]["must"]["passed"] >= 25
    assert not (folder / ".pytest_cache").exists()
    site = _run(
        [str(target / "bin" / "python"), "-c", "import pytest_k8s_sa; print(pytest_k8s_sa.__file__)"],
        folder,
        env,
        60,
    )
    assert str(target) in site.stdout, "the suite must come from the venv, not the checkout"


def test_pytest_pyargs_with_a_sut_file(installed, tmp_path):
    target, env = installed
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    sut_file = folder / "sut.yaml"
    sut_file.write_text((ROOT / "fixtures" / "sut" / "reference.yaml").read_text())
    result = _run(
        [
            str(target / "bin" / "python"),
            "-m",
            "pytest",
            "--pyargs",
            "pytest_k8s_sa.suites",
            "-p",
            "no:cacheprovider",
            "--sut",
            "sut.yaml",
            "--conformance-report",
            "report.json",
        ],
        folder,
        env,
        1200,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    report = _report(folder / "report.json")
    assert report["sut_file"] == str(sut_file.resolve())
    assert report["sut_digest"].startswith("sha256:")
    assert report["summary_by_level"]["must"]["failed"] == 0


@pytest.mark.skipif(shutil.which("go") is None, reason="building examples/go-secret-store needs Go on PATH")
def test_go_secret_store_judged_from_the_wheel(installed, tmp_path):
    """A second-language SUT, as a team outside this repository would run it: build, SUT file, suite.

    The example's files are copied to a folder outside the repository and its binary is built there
    (``build.py --out-dir``) with the venv's python, so neither the build nor the suite can reach the
    checkout. Local provider, so the callee runs as a process (``command`` in ``sut.yaml``).
    """
    target, env = installed
    folder = tmp_path / "acme"
    folder.mkdir()
    shutil.copy(GO_EXAMPLE / "sut.yaml", folder / "sut.yaml")
    python = str(target / "bin" / "python")
    built = _run([python, str(GO_EXAMPLE / "build.py"), "--out-dir", str(folder)], folder, env, 1200)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert (folder / "bin" / "secret-store").is_file()
    conformance = [str(target / "bin" / "k8s-sa"), "conformance", "--sut", "sut.yaml"]
    result = _run(
        [*conformance, "--conformance-report", "report.json"],
        folder,
        env,
        1200,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    report = _report(folder / "report.json")
    assert report["implementation"]["name"] == "go-secret-store"
    assert report["sut_file"] == str((folder / "sut.yaml").resolve())
    must = report["summary_by_level"]["must"]
    assert must["failed"] == 0
    assert must["passed"] >= 20
    # No caller in this SUT file: the caller's checks skip and say so, they do not pass vacuously.
    rotation = [check for check in report["checks"] if check["id"] == "ROT-001"]
    assert rotation
    assert rotation[0]["outcome"] == "skipped"
    assert "caller" in (rotation[0]["message"] or "")

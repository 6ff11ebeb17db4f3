"""Binary discovery precedence and the errors users see (no Go build runs here)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from pytest_k8s_sa.base.errors import BinaryNotFoundError, BuildError
from pytest_k8s_sa.components import binaries

ALL = ("etcd", "kube-apiserver", "kube-controller-manager")


def _fake_bins(folder, names=ALL):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = folder / name
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    return folder


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("K8S_SA_BIN_DIR", raising=False)
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)


def test_cache_is_used_when_nothing_else_is_named(tmp_path):
    _fake_bins(binaries.version_cache_dir(binaries.DEFAULT_K8S_VERSION))
    found = binaries.find_binaries(build=False)
    assert set(found.sources.values()) == {"cache"}


def test_precedence_explicit_over_env_over_kubebuilder_over_cache(tmp_path, monkeypatch):
    _fake_bins(binaries.version_cache_dir(binaries.DEFAULT_K8S_VERSION))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(_fake_bins(tmp_path / "kb", ("etcd", "kube-apiserver"))))
    mixed = binaries.find_binaries(build=False)
    assert mixed.sources == {
        "etcd": "$KUBEBUILDER_ASSETS",
        "kube-apiserver": "$KUBEBUILDER_ASSETS",
        "kube-controller-manager": "cache",
    }

    monkeypatch.setenv("K8S_SA_BIN_DIR", str(_fake_bins(tmp_path / "env")))
    assert set(binaries.find_binaries(build=False).sources.values()) == {"$K8S_SA_BIN_DIR"}

    explicit = binaries.find_binaries(explicit_dir=_fake_bins(tmp_path / "explicit"), build=False)
    assert set(explicit.sources.values()) == {"--k8s-bin-dir"}
    assert explicit.etcd == tmp_path / "explicit" / "etcd"


def test_a_named_folder_missing_a_binary_is_an_error_listing_where_it_looked(tmp_path):
    folder = _fake_bins(tmp_path / "partial", ("etcd",))
    with pytest.raises(BinaryNotFoundError) as missing:
        binaries.find_binaries(explicit_dir=folder)
    text = str(missing.value)
    assert "kube-apiserver, kube-controller-manager" in text
    assert f"--k8s-bin-dir: {folder}" in text
    assert "cache:" in text
    assert "k8s-sa build" in text


def test_non_executable_files_do_not_count(tmp_path):
    folder = _fake_bins(tmp_path / "bins")
    (folder / "etcd").chmod(0o644)
    with pytest.raises(BinaryNotFoundError, match="etcd"):
        binaries.find_binaries(explicit_dir=folder)


@pytest.mark.parametrize("version", ["1.33.0", "2.0.0", "latest", "1.37"])
def test_unsupported_or_malformed_versions_are_refused(version):
    with pytest.raises(BuildError):
        binaries.find_binaries(version, build=False)


def test_building_without_go_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BuildError, match="not on PATH"):
        binaries.find_binaries(progress=lambda message: None)


def test_pinned_wrapper_module_ships_with_the_package():
    module = binaries._pinned_module(binaries.DEFAULT_K8S_VERSION)
    assert module is not None
    gomod = (module / "go.mod").read_text()
    assert f"k8s.io/kubernetes v{binaries.DEFAULT_K8S_VERSION}" in gomod
    assert "k8s.io/client-go => k8s.io/client-go v0.37.2" in gomod


def _pinned_versions():
    root = Path(binaries.__file__).parents[1] / "gobuild"
    named = (re.fullmatch(r"(?:node-)?v(1\.\d+\.\d+)", d.name) for d in root.iterdir())
    return sorted({match[1] for match in named if match})


@pytest.mark.parametrize("version", _pinned_versions())
def test_every_pinned_module_builds_the_version_it_is_named_after(version):
    """A pinned wrapper (control plane, and node when present) requires exactly its kubernetes
    version, replaces every staging module with the matching v0.MINOR.PATCH and lists its tools."""
    minor, patch = version.split(".")[1:]
    root = Path(binaries.__file__).parents[1] / "gobuild"
    control = root / f"v{version}"
    assert (control / "go.mod").is_file()
    assert (control / "go.sum").is_file()
    folders: dict[Path, Iterable[str]] = {control: binaries.COMPONENTS.values()}
    if (root / f"node-v{version}").is_dir():
        folders[root / f"node-v{version}"] = binaries.node_module_packages()
    for folder, packages in folders.items():
        gomod = (folder / "go.mod").read_text()
        required = rf"^\s*(require\s+)?k8s\.io/kubernetes v{re.escape(version)}( //.*)?$"
        assert re.search(required, gomod, flags=re.M), folder
        replaced = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \1 (v\S+)$", gomod, flags=re.M)
        assert replaced, folder
        assert {v for _, v in replaced} == {f"v0.{minor}.{patch}"}, folder
        for package in packages:
            assert f"\t{package}\n" in gomod, (folder, package)
        assert (folder / "go.sum").stat().st_size > 0


def test_cli_build_with_a_bad_version_exits_2_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_k8s_sa.cli", "build", "--k8s-version", "9.9.9"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "k8s-sa: error:" in proc.stderr
    assert "Traceback" not in proc.stderr

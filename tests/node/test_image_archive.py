"""What ``load_image_archive`` reads from an archive before importing it (no node needed)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from pytest_k8s_sa.base.errors import K8sSAError
from pytest_k8s_sa.components.node.containerd import archive_image_names, normalize_reference


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_docker_archive_names_come_from_repo_tags(tmp_path: Path) -> None:
    manifest = [{"Config": "c.json", "RepoTags": ["my-service:1", "example.com/team/x:2"], "Layers": []}]
    archive = _tar(tmp_path / "d.tar", {"manifest.json": json.dumps(manifest).encode()})
    assert archive_image_names(archive) == ["my-service:1", "example.com/team/x:2"]


def test_oci_archive_names_come_from_annotations(tmp_path: Path) -> None:
    index = {
        "schemaVersion": 2,
        "manifests": [{"annotations": {"io.containerd.image.name": "k8s-sa.local/python:3.11"}}],
    }
    archive = _tar(tmp_path / "o.tar", {"index.json": json.dumps(index).encode(), "oci-layout": b"{}"})
    assert archive_image_names(archive) == ["k8s-sa.local/python:3.11"]


def test_bad_archives_are_clear_errors(tmp_path: Path) -> None:
    not_tar = tmp_path / "x.tar"
    not_tar.write_bytes(b"this is no tarball")
    with pytest.raises(K8sSAError, match="not a readable image archive"):
        archive_image_names(not_tar)
    with pytest.raises(K8sSAError, match="neither an OCI image archive"):
        archive_image_names(_tar(tmp_path / "empty.tar", {"README": b"hi"}))
    untagged: list[dict[str, object]] = [{"Config": "c.json", "RepoTags": None, "Layers": []}]
    with pytest.raises(K8sSAError, match="names no image"):
        archive_image_names(_tar(tmp_path / "u.tar", {"manifest.json": json.dumps(untagged).encode()}))
    with pytest.raises(K8sSAError, match="not a readable image archive"):
        archive_image_names(tmp_path / "missing.tar")


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("python:3.11", "docker.io/library/python:3.11"),
        ("team/app", "docker.io/team/app:latest"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost/app:1", "localhost/app:1"),
        ("host:5000/app@sha256:ab", "host:5000/app@sha256:ab"),
    ],
)
def test_references_are_normalized_as_containerd_names_them(name: str, normalized: str) -> None:
    assert normalize_reference(name) == normalized

"""Image archives of the reference workloads, for running the suite in pod mode with a SUT file.

A team hands the suite an image (and maybe an archive of it); these archives play that part for the
reference workloads: the node's Debian python image plus a layer with ``/app/k8s_sa_workloads``, one
archive per workload, each with its own entrypoint (pod mode runs the image's entrypoint). The
caller's image has no ``cat``, like a distroless image: the suite must read its token file without
exec in the pod. Built with the node's own OCI writer, no registry and no Docker. Usable as a script:
``python tests/node/sut_images.py OUT_DIR [MUTANT]`` writes the archives and a ``sut.yaml`` next to them.

With ``MUTANT`` (a folder of ``tests/mutants`` whose ``store.py`` replaces the secret store) the callee
image runs that mutant instead: the same program the process-mode mutant runs, with the reference
workloads importable as ``pytest_k8s_sa.workloads`` (a stub ``pytest_k8s_sa`` package holding only
them, standard library only), so a mutant is judged in pod mode too.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
from pathlib import Path

import yaml

import pytest_k8s_sa.workloads as workloads
from pytest_k8s_sa.components.node.images import _DEFAULT_PATH, ImageConfig, python_image, write_oci_archive

IMAGES = {
    "secret_store": "localhost/k8s-sa/reference-secret-store:sut",
    "api": "localhost/k8s-sa/reference-api:sut",
}
MUTANTS = Path(__file__).resolve().parents[1] / "mutants"


def _base_layer(archive: Path) -> bytes:
    """The single (gzip) layer of one of the node's own image archives, uncompressed."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        digest = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{digest}"))  # type: ignore[arg-type]
        layer = manifest["layers"][0]["digest"].split(":", 1)[1]
        return gzip.decompress(tar.extractfile(f"blobs/sha256/{layer}").read())  # type: ignore[union-attr]


def _with_workloads(layer: bytes, mutant: str | None = None) -> bytes:
    sources = Path(workloads.__file__).parent
    files = {f"app/k8s_sa_workloads/{p.name}": p for p in sorted(sources.glob("*.py"))}
    if mutant is not None:
        files.update({f"app/pytest_k8s_sa/workloads/{p.name}": p for p in sorted(sources.glob("*.py"))})
        files["app/tests/mutants/_reference.py"] = MUTANTS / "_reference.py"
        files[f"app/tests/mutants/{mutant}/store.py"] = MUTANTS / mutant / "store.py"
    buffer = io.BytesIO(layer)
    with tarfile.open(fileobj=buffer, mode="a") as tar:
        for arcname, source in files.items():
            info = tar.gettarinfo(str(source), arcname=arcname)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with source.open("rb") as handle:
                tar.addfile(info, handle)
        if mutant is not None:
            stub = tarfile.TarInfo("app/pytest_k8s_sa/__init__.py")  # empty: the workloads only
            tar.addfile(stub, io.BytesIO(b""))
    return buffer.getvalue()


WITHOUT_IN_CALLER = frozenset({"usr/bin/cat"})
"""Taken out of the caller's image (Debian's /bin is a link to /usr/bin)."""


def _without(layer: bytes, names: frozenset[str]) -> bytes:
    """The layer without the members ``names`` (paths relative to the root, no leading ``./``)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(layer)) as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in source.getmembers():
            if member.name.removeprefix("./").lstrip("/") in names:
                continue
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
    return out.getvalue()


def build(out_dir: Path, mutant: str | None = None) -> Path:
    """Write both archives and a SUT file for them into ``out_dir``; return the SUT file.

    ``mutant``: the callee image runs ``tests/mutants/<mutant>/store.py`` instead of the secret store.
    """
    if mutant is not None and not (MUTANTS / mutant / "store.py").is_file():
        raise ValueError(f"no callee mutant {mutant!r} in {MUTANTS} (a folder with a store.py)")
    out_dir.mkdir(parents=True, exist_ok=True)
    layer = _with_workloads(_base_layer(python_image()), mutant)
    layers = {"secret_store": layer, "api": _without(layer, WITHOUT_IN_CALLER)}
    images = dict(IMAGES)
    archives = {}
    for module, name in IMAGES.items():
        entrypoint: tuple[str, ...] = ("python3", "-m", f"k8s_sa_workloads.{module}")
        if mutant is not None and module == "secret_store":
            entrypoint = ("python3", f"/app/tests/mutants/{mutant}/store.py")
            name = images[module] = f"localhost/k8s-sa/mutant-{mutant.replace('_', '-')}:sut"
        config = ImageConfig(
            entrypoint=entrypoint,
            env=(_DEFAULT_PATH, "PYTHONPATH=/app", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"),
        )
        archives[module] = write_oci_archive(out_dir / f"{module}.oci.tar", [name], layers[module], config)
    implementation = "reference workloads as images" if mutant is None else f"mutant {mutant} as images"
    sut = {
        "implementation": {"name": implementation, "version": "0.1.0"},
        "callee": {
            "image": images["secret_store"],
            "image_archive": archives["secret_store"].name,
            "port": 8081,
            "env": {
                "LISTEN_ADDR": ":${PORT}",
                "AUDIENCE": "${AUDIENCE}",
                "ALLOWED_SERVICE_ACCOUNTS": "${ALLOWED_SERVICE_ACCOUNTS}",
            },
            "audience": "secret-store",
            "header": "X-Client-Id",
            "health_path": "/healthz",
            "cache_seconds": 10,
        },
        "caller": {
            "image": IMAGES["api"],
            "image_archive": archives["api"].name,
            "port": 8080,
            "env": {
                "LISTEN_ADDR": ":${PORT}",
                "SECRET_STORE_URL": "${CALLEE_URL}",
                "TOKEN_PATH": "${TOKEN_PATH}",
                "TOKEN_REFRESH_SECONDS": "2",
            },
            "token_path": "/var/run/secrets/tokens/api-token",
            "token_refresh_seconds": 2,
            "call_path": "/",
            "health_path": "/healthz",
        },
    }
    path = out_dir / "sut.yaml"
    path.write_text(yaml.safe_dump(sut, sort_keys=False))
    return path


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))

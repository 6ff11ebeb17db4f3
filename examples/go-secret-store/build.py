"""Build the Go secret store: a static binary (``bin/secret-store``) and a one-layer OCI image archive.

    python examples/go-secret-store/build.py [--out-dir DIR]

Needs Go and the Go module proxy (``go.mod``/``go.sum`` pin client-go v0.37.2); no Docker, no
registry. The archive (``secret-store.oci.tar``, image ``localhost/k8s-sa/go-secret-store:0.1.0``) is
written with the project's own OCI writer
(:func:`pytest_k8s_sa.components.node.images.write_oci_archive`), the one the local-node provider
uses for its pause and CoreDNS images, so it needs this project installed (``pip install -e .``)
but not the ``k8s-sa`` command. ``sut.yaml`` names both files relative to itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pytest_k8s_sa.components.node.images import ImageConfig, layer_from_files, write_oci_archive

HERE = Path(__file__).resolve().parent
IMAGE = "localhost/k8s-sa/go-secret-store:0.1.0"
ENTRYPOINT = "/secret-store"


def build_binary(out: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        sys.exit("build.py: `go` is not on PATH; install Go >= 1.26 (the Kubernetes builds need it too)")
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    print(f"building {out} (CGO_ENABLED=0, client-go from the Go module proxy) ...", flush=True)
    command = [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."]
    if subprocess.run(command, cwd=HERE, env=env, check=False).returncode != 0:
        sys.exit("build.py: `go build` failed (see above)")
    return out


def build_archive(binary: Path, out: Path) -> Path:
    layer = layer_from_files({ENTRYPOINT: binary})
    write_oci_archive(out, [IMAGE], layer, ImageConfig(entrypoint=(ENTRYPOINT,)))
    print(f"image {IMAGE}: {out} ({out.stat().st_size // 2**20} MiB)", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where bin/ and the archive go")
    args = parser.parse_args(argv)
    binary = build_binary(args.out_dir / "bin" / "secret-store")
    build_archive(binary, args.out_dir / "secret-store.oci.tar")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

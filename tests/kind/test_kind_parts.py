"""The parts of kind-without-a-registry that run without Docker: configuration, guard, runtime, files.

The live path (dockerd, node image, cluster) is exercised by ``nox -s conformance_kind``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_k8s_sa.base.errors import K8sSAError
from pytest_k8s_sa.components import controlplane
from pytest_k8s_sa.components.node.host import Runner
from pytest_k8s_sa.components.node.network import RESERVED_RANGE
from pytest_k8s_sa.kind import config, docker, nodeimage

PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", RESERVED_RANGE)]


def test_every_project_range_avoids_private_ranges_and_local_node():
    ranges = [
        docker.GUARDED_RANGE,
        docker.BRIDGE_IP,
        docker.ADDRESS_POOL,
        config.POD_SUBNET,
        config.SERVICE_SUBNET,
    ]
    guarded = ipaddress.ip_network(docker.GUARDED_RANGE)
    assert isinstance(guarded, ipaddress.IPv4Network)
    for value in ranges:
        network = ipaddress.ip_interface(value).network
        assert isinstance(network, ipaddress.IPv4Network), value
        assert not any(network.overlaps(p) for p in PRIVATE), value
        assert network.subnet_of(guarded), f"{value} is outside the guarded {guarded}"


def test_cluster_config_has_the_subnets_and_one_node(tmp_path):
    path = config.write_cluster_config(tmp_path / "kind.yaml", "100.98.0.0/16", "100.99.0.0/16")
    data = yaml.safe_load(path.read_text())
    assert data["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert data["networking"] == {"podSubnet": "100.98.0.0/16", "serviceSubnet": "100.99.0.0/16"}
    assert data["nodes"] == [{"role": "control-plane"}]


def test_cluster_config_with_an_audit_folder_turns_the_review_log_on(tmp_path):
    """The folder is mounted into the node and into kube-apiserver, with the local control plane's
    flags and policy, for either kubeadm API version kind may generate (kind applies the matching one)."""
    path = config.write_cluster_config(
        tmp_path / "kind.yaml", "100.98.0.0/16", "100.99.0.0/16", audit_dir=tmp_path / "audit"
    )
    data = yaml.safe_load(path.read_text())
    assert data["nodes"] == [
        {
            "role": "control-plane",
            "extraMounts": [{"hostPath": str(tmp_path / "audit"), "containerPath": config.AUDIT_MOUNT}],
        }
    ]
    assert (tmp_path / "audit" / "policy.yaml").read_text() == controlplane.REVIEW_AUDIT_POLICY
    flags = controlplane.review_audit_flags(config.AUDIT_MOUNT)
    patches = {p["version"]: yaml.safe_load(p["patch"]) for p in data["kubeadmConfigPatchesJSON6902"]}
    assert {p["kind"] for p in data["kubeadmConfigPatchesJSON6902"]} == {"ClusterConfiguration"}
    as_list = [op["value"] for op in patches["v1beta4"] if op["path"] == "/apiServer/extraArgs/-"]
    assert as_list == [{"name": k, "value": v} for k, v in flags.items()]
    v1beta3 = [op for op in patches["v1beta3"] if "extraArgs" in op["path"]]
    as_map = {op["path"].rsplit("/", 1)[1]: op["value"] for op in v1beta3}
    assert as_map == flags
    for ops in patches.values():
        (volume,) = next(op["value"] for op in ops if op["path"] == "/apiServer/extraVolumes")
        assert volume["hostPath"] == volume["mountPath"] == config.AUDIT_MOUNT
    # Without the folder, as before: nothing mounted, nothing patched.
    assert "kubeadmConfigPatchesJSON6902" not in config.cluster_config()


@pytest.mark.parametrize(
    ("pods", "services", "message"),
    [("not-a-cidr", "100.99.0.0/16", "not a network"), ("100.98.0.0/15", "100.99.0.0/16", "overlaps")],
)
def test_cluster_config_refuses_bad_subnets(pods, services, message):
    with pytest.raises(K8sSAError, match=message):
        config.cluster_config(pods, services)


def test_daemon_config_keeps_forwarding_off_and_dns_local(tmp_path):
    data = docker.daemon_config(tmp_path / "runc")
    assert data["ip-forward"] is False
    assert data["dns"] == ["127.0.0.1"]
    assert data["default-runtime"] == "k8s-sa-runc"
    assert data["runtimes"]["k8s-sa-runc"]["path"] == str(tmp_path / "runc")


class FakeHost(Runner):
    """Records commands; answers the guard's checks as a host would once the guard is in place."""

    def __call__(self, *argv: str, check: bool = True, timeout: float = 60.0) -> str:
        super().__call__(*argv, check=check, timeout=timeout)
        if argv[:4] == ("ip", "-4", "route", "show"):
            added = any(a[:5] == ["ip", "-4", "route", "add", "unreachable"] for a in self.history)
            return f"unreachable {docker.GUARDED_RANGE}" if added else ""
        if argv[:3] == ("iptables", "-w", "-S"):
            return "-A X -j REJECT" if any("REJECT" in a for a in self.history) else ""
        return ""

    def ok(self, *argv: str) -> bool:
        self.history.append(list(argv))
        if argv[:3] == ("iptables", "-w", "-C"):
            return ["iptables", "-w", "-I", argv[3], "1", *argv[4:]] in self.history
        if argv[:4] == ("iptables", "-w", "-n", "-L"):
            return ["iptables", "-w", "-N", argv[4]] in self.history
        return True


def test_guard_rejects_by_default_and_covers_every_chain():
    host = FakeHost(dry_run=True)
    guard = docker.DockerGuard(host)
    assert guard.problems()  # nothing installed yet
    guard.install()
    assert guard.problems() == []
    rules = [a for a in host.history if a[:4] == ["iptables", "-w", "-A", docker.GUARD_CHAIN]]
    assert rules[-1][-3:] == ["REJECT", "--reject-with", "icmp-net-prohibited"]
    assert [r[5] for r in rules[:-1]] == list(docker.ALLOWED_INTERFACES)
    jumps = {(a[3], a[5]) for a in host.history if a[:3] == ["iptables", "-w", "-I"]}
    assert jumps == {(c, m) for c in ("OUTPUT", "FORWARD", "DOCKER-USER") for m in ("-d", "-s")}


def _bounding_set_lacks() -> set[str]:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
    source = (docker.FILES / "bin" / "k8s-sa-runc").read_text()
    names = source.split("NAMES = (\n")[1].split(").split()")[0]
    all_names = "".join(part.strip().strip('"') for part in names.splitlines()).split()
    return {f"CAP_{n}" for bit, n in enumerate(all_names) if not bounding & (1 << bit)}


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_runc_wrapper_drops_only_what_the_bounding_set_lacks(tmp_path):
    caps = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_CHECKPOINT_RESTORE"]
    spec = {"process": {"capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")}}}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    env = {**os.environ, "K8S_SA_REAL_RUNC": shutil.which("true") or "/bin/true"}
    wrapper = docker.FILES / "bin" / "k8s-sa-runc"
    argv = [sys.executable, str(wrapper), "--root", "/x", "create", "--bundle", str(tmp_path), "id"]
    subprocess.run(argv, env=env, check=True)
    result = json.loads((tmp_path / "config.json").read_text())["process"]["capabilities"]
    expected = [c for c in caps if c not in _bounding_set_lacks()]
    assert result["bounding"] == result["effective"] == result["permitted"] == expected


def test_entrypoint_and_helpers_are_valid_shell():
    for name in ("k8s-sa-node-entrypoint", "k8s-sa-kubelet-cgroups"):
        path = nodeimage.FILES / "bin" / name
        assert os.access(path, os.X_OK), f"{name} is not executable"
        shell = "bash" if "bash" in path.read_text().splitlines()[0] else "sh"
        subprocess.run([shell, "-n", str(path)], check=True)


def test_cni_manifest_carries_kind_template_marker_and_subnet():
    text = (nodeimage.FILES / "manifests" / "default-cni.yaml").read_text()
    assert "would you kindly template this file" in text  # kind templates only manifests with it
    assert "{{ .PodSubnet }}" in text
    doc = yaml.safe_load(text.replace("@TOOLS_IMAGE@", "img").replace("{{ .PodSubnet }}", "100.98.0.0/16"))
    assert doc["kind"] == "DaemonSet"
    assert doc["spec"]["template"]["spec"]["hostNetwork"] is True


def test_overlay_holds_what_kind_reads(tmp_path):
    binary = tmp_path / "bin"
    binary.write_bytes(b"\x7fELF")
    names = [f.name for f in nodeimage.NodeBinaries.__dataclass_fields__.values()]
    binaries = nodeimage.NodeBinaries(**dict.fromkeys(names, binary))
    staging = tmp_path / "root"
    nodeimage._overlay(staging, binaries, "1.37.2", "registry.k8s.io/pause:3.10.2")
    assert (staging / "kind/version").read_text().strip() == "v1.37.2"
    for path in ("usr/bin/kubeadm", "usr/bin/kubelet", "usr/bin/kubectl", "kind/manifests/default-cni.yaml"):
        assert (staging / path).is_file(), path
    assert (
        'sandbox_image = "registry.k8s.io/pause:3.10.2"'
        in (staging / "etc/containerd/config.toml").read_text()
    )
    assert "@TOOLS_IMAGE@" not in (staging / "kind/manifests/default-cni.yaml").read_text()
    link = staging / "etc/systemd/system/multi-user.target.wants/kubelet.service"
    assert os.readlink(link) == "/etc/systemd/system/kubelet.service"
    assert nodeimage.default_image("v1.37.2") == "kindest/node:v1.37.2"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize(("owner", "adopted"), [("dead", True), ("none", False), ("alive", False)])
def test_engine_of_a_killed_run_is_adopted(tmp_path, monkeypatch, owner, adopted):
    """A dockerd whose owner is gone is taken over (and stopped at the end); others are only used."""
    from pytest_k8s_sa.base.process import process_start_time

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(docker, "engine_answers", lambda timeout=20.0: True)
    monkeypatch.setattr(docker, "up", lambda **kwargs: pytest.fail("nothing should be started"))
    engine = subprocess.Popen(["sleep", "60"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        owners = {"dead": (gone.pid, "1"), "none": (None, None), "alive": (os.getpid(), None)}
        owner_pid, owner_start = owners[owner]
        if owner == "alive":
            owner_start = process_start_time(os.getpid())
        docker._write_state(
            {
                "pid": engine.pid,
                "start_time": process_start_time(engine.pid),
                "owner_pid": owner_pid,
                "owner_start_time": owner_start,
            }
        )
        assert docker.ours_running() == engine.pid
        assert docker.ensure(owner_pid=424242) is adopted
        if adopted:
            assert docker._read_state()["owner_pid"] == 424242
    finally:
        engine.kill()
        engine.wait()

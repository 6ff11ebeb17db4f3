"""A Docker engine for kind where none runs: Debian's ``dockerd``, started and stopped by the project.

On a workstation whose Docker answers, nothing here runs. Otherwise, as root with ``dockerd``
installed (``apt-get install -y docker.io``; this module installs nothing), :func:`up` starts it
with the project's ``daemon.json``:

* networks from 100.96.0.0/14 only (``bip`` 100.96.0.1/24, pool 100.97.0.0/16 in /24s; kind's pod
  and service subnets are 100.98.0.0/16 and 100.99.0.0/16, see :mod:`.config`): shared address
  space (RFC 6598), none of 10/8, 172.16/12, 192.168/16 and apart from local-node's 198.18.0.0/15;
* ``ip-forward: false``: the host keeps ``ip_forward`` and the FORWARD policy as they are, so the
  local-node provider (and everything else on the host) is unaffected, and nothing is routed out;
* an egress guard installed *before* the engine starts, like local-node's: an ``unreachable`` route
  for 100.96.0.0/14 (Docker's more specific bridge routes win) and chain ``K8S-SA-DOCKER-GUARD``,
  jumped to from OUTPUT, FORWARD and DOCKER-USER, rejecting every packet to or from the range that
  would leave by an interface other than ``lo``, ``docker0`` or a Docker bridge (``br-*``);
* the runtime ``files/bin/k8s-sa-runc``, a runc wrapper that drops the capabilities this host's
  bounding set lacks (``docker run --privileged``, which kind always uses, fails otherwise);
* ``dns: [127.0.0.1]``: containers never get the host's resolvers.

The engine's pid and the pid of the process that owns it go to ``~/.cache/pytest-k8s-sa/docker/
state.json``; :func:`down` stops it by that pid (SIGTERM, then SIGKILL) and removes the bridges,
iptables rules and guard it left. A run killed with SIGKILL leaves the engine running with a dead
owner: the next :func:`ensure` adopts it, and stops it when that run ends.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..base.errors import K8sSAError
from ..base.paths import cache_root
from ..base.process import process_start_time
from ..base.waiting import WaitTimeout, wait_until
from ..components.node.host import Runner

GUARDED_RANGE = "100.96.0.0/14"
BRIDGE_IP = "100.96.0.1/24"
ADDRESS_POOL = "100.97.0.0/16"
GUARD_CHAIN = "K8S-SA-DOCKER-GUARD"
GUARD_COMMENT = "pytest-k8s-sa docker egress guard"
ALLOWED_INTERFACES = ("lo", "docker0", "br-+")
_JUMP_CHAINS = ("OUTPUT", "FORWARD", "DOCKER-USER")
_DOCKER_CHAINS = ("DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER")
FILES = Path(__file__).parent / "files"


class DockerError(K8sSAError):
    """No Docker engine answers and none can be started here."""


def state_dir() -> Path:
    return cache_root() / "docker"


def _state_file() -> Path:
    return state_dir() / "state.json"


def daemon_config(runtime: Path) -> dict[str, Any]:
    """The project's ``daemon.json`` (see the module docstring for why each entry is there)."""
    return {
        "bip": BRIDGE_IP,
        "default-address-pools": [{"base": ADDRESS_POOL, "size": 24}],
        "ip-forward": False,
        "dns": ["127.0.0.1"],
        "runtimes": {"k8s-sa-runc": {"path": str(runtime)}},
        "default-runtime": "k8s-sa-runc",
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "2"},
    }


def engine_answers(timeout: float = 20.0) -> bool:
    """True when ``docker version`` reaches a server (``$DOCKER_HOST`` or the default socket)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        proc = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


# --- the guard ---------------------------------------------------------------------------------


class DockerGuard:
    """Unreachable route and REJECT rules for :data:`GUARDED_RANGE`; idempotent, removable."""

    def __init__(self, runner: Runner | None = None) -> None:
        self.run = runner or Runner()

    @staticmethod
    def _jump(match: str) -> list[str]:
        return [match, GUARDED_RANGE, "-m", "comment", "--comment", GUARD_COMMENT, "-j", GUARD_CHAIN]

    def install(self) -> None:
        existing = self.run("ip", "-4", "route", "show", "exact", GUARDED_RANGE).strip()
        if existing and not existing.startswith("unreachable"):
            raise DockerError(
                f"the host already routes {GUARDED_RANGE} ({existing!r}); the project's Docker networks "
                "will not share that range"
            )
        if not existing:
            self.run("ip", "-4", "route", "add", "unreachable", GUARDED_RANGE)
        for chain in (GUARD_CHAIN, "DOCKER-USER"):
            if not self.run.ok("iptables", "-w", "-n", "-L", chain):
                self.run("iptables", "-w", "-N", chain)
        self.run("iptables", "-w", "-F", GUARD_CHAIN)
        for interface in ALLOWED_INTERFACES:
            self.run("iptables", "-w", "-A", GUARD_CHAIN, "-o", interface, "-j", "RETURN")
        self.run("iptables", "-w", "-A", GUARD_CHAIN, "-j", "REJECT", "--reject-with", "icmp-net-prohibited")
        for chain in _JUMP_CHAINS:
            for match in ("-d", "-s"):
                if not self.run.ok("iptables", "-w", "-C", chain, *self._jump(match)):
                    self.run("iptables", "-w", "-I", chain, "1", *self._jump(match))

    def problems(self) -> list[str]:
        found = []
        route = self.run("ip", "-4", "route", "show", "exact", GUARDED_RANGE).strip()
        if not route.startswith("unreachable"):
            found.append(f"no `unreachable {GUARDED_RANGE}` route (found {route!r})")
        if not self.run.ok("iptables", "-w", "-n", "-L", GUARD_CHAIN) or "-j REJECT" not in self.run(
            "iptables", "-w", "-S", GUARD_CHAIN
        ):
            found.append(f"iptables chain {GUARD_CHAIN} is missing or has no REJECT rule")
        for chain in _JUMP_CHAINS:
            for match in ("-d", "-s"):
                if not self.run.ok("iptables", "-w", "-C", chain, *self._jump(match)):
                    found.append(f"no jump from {chain} ({match} {GUARDED_RANGE}) to {GUARD_CHAIN}")
        return found

    def remove(self) -> None:
        for chain in _JUMP_CHAINS:
            for match in ("-d", "-s"):
                while self.run.ok("iptables", "-w", "-C", chain, *self._jump(match)):
                    self.run("iptables", "-w", "-D", chain, *self._jump(match))
        if self.run.ok("iptables", "-w", "-n", "-L", GUARD_CHAIN):
            self.run("iptables", "-w", "-F", GUARD_CHAIN)
            self.run("iptables", "-w", "-X", GUARD_CHAIN)
        route = self.run("ip", "-4", "route", "show", "exact", GUARDED_RANGE).strip()
        if route.startswith("unreachable"):
            self.run("ip", "-4", "route", "del", "unreachable", GUARDED_RANGE)


# --- the engine --------------------------------------------------------------------------------


def _read_state() -> dict[str, Any]:
    try:
        data = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state: dict[str, Any]) -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    partial = _state_file().with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2))
    partial.rename(_state_file())


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""The dockerd this process started: reaped here, so it never lingers as a zombie."""


def _alive(pid: object, start_time: object) -> bool:
    if not isinstance(pid, int):
        return False
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False
    current = process_start_time(pid)
    if current is None or current != start_time:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def ours_running() -> int | None:
    """The pid of the dockerd this project started, if it still runs."""
    state = _read_state()
    pid = state.get("pid")
    return pid if _alive(pid, state.get("start_time")) and isinstance(pid, int) else None


def _write_runtime() -> Path:
    real = shutil.which("runc") or "/usr/sbin/runc"
    if not Path(real).is_file():
        raise DockerError("runc is missing: `apt-get install -y docker.io` installs it with the engine.")
    python = "/usr/bin/python3" if Path("/usr/bin/python3").is_file() else sys.executable
    text = (FILES / "bin" / "k8s-sa-runc").read_text()
    text = text.replace("#!/usr/bin/python3", f"#!{python}", 1).replace("@REAL_RUNC@", real)
    path = state_dir() / "k8s-sa-runc"
    path.write_text(text)
    path.chmod(0o755)
    return path


def up(*, owner_pid: int | None = None, progress: Any = None, timeout: float = 90.0) -> bool:
    """Start the project's dockerd unless an engine answers; True when this call started it.

    ``owner_pid``: the process whose end should stop the engine (recorded for :func:`ensure`'s
    adoption after a crash); None for ``k8s-sa docker up`` (stopped by ``k8s-sa docker down``).
    """
    say = progress or (lambda message: print(f"[k8s-sa] {message}", file=sys.stderr, flush=True))
    if engine_answers():
        return False
    dockerd = shutil.which("dockerd")
    if sys.platform != "linux" or os.geteuid() != 0:
        raise DockerError(
            "no Docker engine answers. Start yours (Docker Desktop, `systemctl start docker`), or run as "
            "root on Linux with Debian's docker.io installed so the project can start dockerd itself."
        )
    if dockerd is None:
        raise DockerError(
            "no Docker engine answers and `dockerd` is not installed: `apt-get install -y docker.io` "
            "(the project then starts and stops it itself; it installs nothing on its own)."
        )
    started = time.monotonic()
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "daemon.json"
    config.write_text(json.dumps(daemon_config(_write_runtime()), indent=2))
    guard = DockerGuard()
    guard.install()
    log = (directory / "dockerd.log").open("ab")
    say(f"no Docker engine answers; starting {dockerd} (config {config}, log {directory / 'dockerd.log'})")
    proc = subprocess.Popen(
        [dockerd, f"--config-file={config}"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    _CHILDREN[proc.pid] = proc
    _write_state(
        {
            "pid": proc.pid,
            "start_time": process_start_time(proc.pid),
            "owner_pid": owner_pid,
            "owner_start_time": process_start_time(owner_pid) if owner_pid else None,
        }
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise DockerError(f"dockerd exited with code {proc.returncode}:\n{_log_tail()}")
        return engine_answers(timeout=5)

    try:
        wait_until(ready, timeout, "dockerd did not answer")
    except (WaitTimeout, DockerError) as exc:
        down()
        raise DockerError(f"{exc}\n{_log_tail()}") from None
    problems = guard.problems()
    if problems:
        down()
        raise DockerError(
            "the Docker egress guard is incomplete, engine stopped:\n  " + "\n  ".join(problems)
        )
    say(f"dockerd {proc.pid} answers after {time.monotonic() - started:.1f}s")
    return True


def _log_tail(lines: int = 20) -> str:
    try:
        text = (state_dir() / "dockerd.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def ensure(owner_pid: int, progress: Any = None) -> bool:
    """An engine for this run: the user's, ours left by a killed run (adopted), or a new one.

    True when this run owns the engine and must call :func:`down` at its end.
    """
    state = _read_state()
    if ours_running() is not None:
        owner = state.get("owner_pid")
        if owner is None or _alive(owner, state.get("owner_start_time")):
            # Started by `k8s-sa docker up`, or owned by a run that is still going: just use it.
            if engine_answers():
                return False
            if shutil.which("docker") is None:
                raise DockerError(
                    "no Docker engine answers: the `docker` CLI is not on PATH "
                    "(`apt-get install -y docker.io`)"
                )
            raise DockerError(
                f"no Docker engine answers although the project's dockerd {state.get('pid')} runs: stop it "
                f"with `k8s-sa docker down` and retry (its log: {state_dir() / 'dockerd.log'})"
            )
        # Started for a run that was killed: this run takes it over and stops it at its end.
        state.update(owner_pid=owner_pid, owner_start_time=process_start_time(owner_pid))
        _write_state(state)
        if engine_answers():
            return True
        down()
    return up(owner_pid=owner_pid, progress=progress)


def _docker_bridges() -> list[str]:
    """The Linux bridges of the engine's bridge networks (queried while it still runs)."""
    docker = shutil.which("docker")
    if docker is None:
        return []
    proc = subprocess.run(
        [docker, "network", "ls", "--quiet", "--filter", "driver=bridge", "--no-trunc"],
        capture_output=True,
        text=True,
        check=False,
    )
    bridges = []
    for network_id in proc.stdout.split():
        inspect = subprocess.run(
            [docker, "network", "inspect", "--format", "{{json .Options}}", network_id],
            capture_output=True,
            text=True,
            check=False,
        )
        options = json.loads(inspect.stdout.strip() or "{}") or {}
        bridges.append(str(options.get("com.docker.network.bridge.name") or f"br-{network_id[:12]}"))
    return bridges


def _remove_kind_nodes() -> None:
    """Every kind node container of our engine (clusters a killed run left): the engine is ours."""
    docker = shutil.which("docker")
    if docker is None:
        return
    listed = subprocess.run(
        [docker, "ps", "--all", "--quiet", "--filter", "label=io.x-k8s.kind.cluster"],
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.stdout.split():
        subprocess.run(
            [docker, "rm", "--force", "--volumes", *listed.stdout.split()], capture_output=True, check=False
        )


def down(grace: float = 30.0) -> bool:
    """Stop the dockerd this project started (by pid) and remove what it left; True if one ran."""
    state = _read_state()
    pid = ours_running()
    runner = Runner()
    bridges = _docker_bridges() if pid is not None else []
    if pid is not None:
        _remove_kind_nodes()
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not _alive(pid, state.get("start_time")), grace, "dockerd did not stop")
        except WaitTimeout:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not _alive(pid, state.get("start_time")), 10, "dockerd did not die")
    if state:
        for bridge in {*bridges, *_bridges_in_range(runner), "docker0"}:
            runner("ip", "link", "del", bridge, check=False)
        _remove_docker_rules(runner)
        DockerGuard(runner).remove()
        with contextlib.suppress(OSError):
            _state_file().unlink()
    return pid is not None


def _bridges_in_range(runner: Runner) -> set[str]:
    """Docker bridges (``docker0``, ``br-*``) holding an address of our range, even with the engine gone."""

    guarded = ipaddress.ip_network(GUARDED_RANGE)
    found = set()
    for line in runner("ip", "-4", "-o", "addr", "show", check=False).splitlines():
        words = line.split()
        if len(words) < 4 or not (words[1] == "docker0" or words[1].startswith("br-")):
            continue
        if ipaddress.ip_interface(words[3]).ip in guarded:
            found.add(words[1])
    return found


def _remove_docker_rules(runner: Runner) -> None:
    """The rules and chains a stopped dockerd leaves in the filter and nat tables."""
    for table in ("filter", "nat"):
        rules = runner("iptables", "-w", "-t", table, "-S", check=False).splitlines()
        for rule in rules:
            words = rule.split()
            if '"' in rule or len(words) < 3 or words[0] != "-A" or words[1] in _DOCKER_CHAINS:
                continue
            touches_docker = any(w in _DOCKER_CHAINS for w in words) or "docker0" in words
            touches_range = any(w.startswith(("100.96.", "100.97.")) for w in words)
            if touches_docker or (touches_range and GUARD_CHAIN not in words):
                runner("iptables", "-w", "-t", table, "-D", *words[1:], check=False)
        for chain in _DOCKER_CHAINS:
            if runner.ok("iptables", "-w", "-t", table, "-n", "-L", chain):
                runner("iptables", "-w", "-t", table, "-F", chain, check=False)
                runner("iptables", "-w", "-t", table, "-X", chain, check=False)

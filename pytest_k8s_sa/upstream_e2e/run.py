"""Run upstream's SIG Auth e2e specs against a cluster and collect the results.

The e2e binary is run as upstream runs it (``--kubeconfig``, ``--report-dir``, ginkgo's focus and
skip), serially (two cores are shared here), its output going to ``<report-dir>/e2e.log``. Progress:
one line per finished spec, from ginkgo's verbose output.

What it creates in the cluster is what upstream's framework creates: one namespace per spec
(labelled ``e2e-framework``), removed by the framework after the spec, and the few cluster-scoped
objects some specs make and clean up themselves. :func:`leftover_namespaces` lists the e2e
namespaces that appeared during the run and are still there afterwards; the command deletes them.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kubernetes

from ..base.errors import K8sSAError
from ..providers.base import ClusterInfo
from .build import E2EBinaries
from .results import FAILED, E2EResult, SpecResult, parse_junit

DEFAULT_FOCUS = r"ServiceAccount|TokenRequest|TokenReview|[Ii]ssuer|NodeAuthenticator"
"""The service-account specs of SIG Auth: ServiceAccounts (mount, projection, issuer discovery,
lifecycle, TokenRequest + TokenReview) and NodeAuthenticator (the kubelet delegates SA tokens)."""

_SKIP_ALWAYS = (r"\[Serial\]", r"\[Disruptive\]", r"Feature:OffByDefault")
_SKIP_SLOW = r"\[Slow\]"

POD_SPECS = "|".join(
    re.escape(text)
    for text in (
        "should mount an API token into pods",
        "should mount projected service account token",
        "should set ownership",
        "InClusterConfig with token rotation",
        "ServiceAccountIssuerDiscovery should support OIDC discovery",
        "NodeAuthenticator",
        "NodeAuthorizer",
        "Projected PodCertificate",
        "ClusterTrustBundle",
        "can restrict access by-node",
    )
)
"""SIG Auth specs (v1.37) that run pods or need a Node: not applicable on a cluster without nodes
(the ``local`` provider). Every other spec talks to the API server only."""

NO_NODE_REASON = "needs a node (runs pods); this cluster has none (local: no kubelet)"

Progress = Callable[[str], None]


def default_skip(*, slow: bool = False) -> str:
    """``[Serial]``, ``[Disruptive]``, ``Feature:OffByDefault`` and, unless ``slow``, ``[Slow]``."""
    return "|".join(_SKIP_ALWAYS if slow else (_SKIP_SLOW, *_SKIP_ALWAYS))


@dataclass(frozen=True)
class RunOptions:
    focus: str = DEFAULT_FOCUS
    skip: str = ""
    report_dir: Path = Path("reports/upstream-e2e")
    repo_list: Path | None = None
    """``$KUBE_TEST_REPO_LIST`` for the binary: locally built images (None: upstream's names)."""
    runs_pods: bool = True
    timeout_minutes: int = 60


def validate_regex(pattern: str, what: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise K8sSAError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from None
    return pattern


def e2e_argv(binaries: E2EBinaries, info: ClusterInfo, options: RunOptions) -> list[str]:
    """The e2e binary's command line (the skip gains :data:`POD_SPECS` on clusters without nodes)."""
    skip = options.skip
    if not options.runs_pods:
        skip = f"{skip}|{POD_SPECS}" if skip else POD_SPECS
    argv = [
        str(binaries.e2e_test),
        f"--kubeconfig={info.kubeconfig}",
        "--provider=skeleton",
        f"--kubectl-path={binaries.kubectl}",
        f"--report-dir={options.report_dir}",
        f"--e2e-output-dir={options.report_dir}",
        f"--ginkgo.focus={options.focus}",
        f"--ginkgo.timeout={options.timeout_minutes}m",
        "--ginkgo.v",
        "--ginkgo.no-color",
    ]
    if skip:
        argv.append(f"--ginkgo.skip={skip}")
    return argv


_DONE = re.compile(r"^(•|S) (\[(?P<state>[A-Z]+)\] )?\[(?P<seconds>[\d.]+) seconds\]")


def run_specs(binaries: E2EBinaries, info: ClusterInfo, options: RunOptions, progress: Progress) -> E2EResult:
    """Run the binary, wait for it, and parse ``junit_01.xml`` (a clear error when it is missing)."""
    options.report_dir.mkdir(parents=True, exist_ok=True)
    junit = options.report_dir / "junit_01.xml"
    junit.unlink(missing_ok=True)
    log_path = options.report_dir / "e2e.log"
    env = {k: v for k, v in os.environ.items() if k != "KUBE_TEST_REPO_LIST"}
    if options.repo_list is not None:
        env["KUBE_TEST_REPO_LIST"] = str(options.repo_list)
    argv = e2e_argv(binaries, info, options)
    progress(f"running upstream SIG Auth specs (focus {options.focus!r}); log: {log_path}")
    started = time.monotonic()
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        ) as proc,
    ):
        assert proc.stdout is not None
        current = ""
        try:
            for line in proc.stdout:
                log.write(line)
                stripped = line.strip()
                if stripped.startswith("[sig-"):
                    current = stripped  # the spec's header, printed when it starts
                match = _DONE.match(stripped)
                if match and current:
                    state = (match["state"] or "PASSED").lower()
                    progress(f"{state} in {float(match['seconds']):.1f}s: {current}")
                    current = ""
            code = proc.wait()
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    seconds = round(time.monotonic() - started, 1)
    if not junit.is_file():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise K8sSAError(f"the e2e binary exited {code} without writing {junit}; end of {log_path}:\n{tail}")
    specs = parse_junit(
        junit,
        focus=options.focus,
        skip=options.skip,
        not_applicable="" if options.runs_pods else POD_SPECS,
        not_applicable_reason=NO_NODE_REASON,
    )
    if code != 0 and not any(s.outcome == FAILED for s in specs):
        # Ginkgo failed the run without a failed spec in the report (interrupted, timed out, bad flag):
        # still a failure, never a green run.
        reason = f"the e2e binary exited {code}; see {log_path}"
        specs.append(SpecResult("[e2e run]", FAILED, seconds, reason))
    return E2EResult(
        specs=specs,
        provider=info.provider,
        focus=options.focus,
        skip=options.skip,
        not_applicable_reason="" if options.runs_pods else NO_NODE_REASON,
        seconds=seconds,
        exit_code=code,
    )


def e2e_namespaces(api_client: kubernetes.client.ApiClient, *, live_only: bool = False) -> set[str]:
    """Namespaces upstream's framework made (it labels each with ``e2e-framework``).

    ``live_only``: leave out those already being deleted.
    """
    core = kubernetes.client.CoreV1Api(api_client)
    return {
        ns.metadata.name
        for ns in core.list_namespace(label_selector="e2e-framework").items
        if not (live_only and ns.metadata.deletion_timestamp)
    }


def remove_leftover_namespaces(
    api_client: kubernetes.client.ApiClient, before: set[str], progress: Progress
) -> list[str]:
    """Delete e2e namespaces created during the run that the framework did not remove.

    Namespaces that existed before the run are never touched (another run may own them).
    """
    core = kubernetes.client.CoreV1Api(api_client)
    leftovers = sorted(e2e_namespaces(api_client, live_only=True) - before)
    for name in leftovers:
        try:
            core.delete_namespace(name)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
    if leftovers:
        progress(f"deleted {len(leftovers)} e2e namespace(s) the framework left: {', '.join(leftovers)}")
    return leftovers

"""Failure artifacts: what explains a failed check once the run (and its cluster) is gone.

For each failed check, a folder ``<artifacts>/<ID>/`` with:

* ``logs/<role>.log``: the last lines of the callee's and the caller's logs (and the intruder's),
  named by role (``callee``, ``caller``, ``intruder``; a workload without a role by its name);
* ``pods.txt`` (pod mode): each workload pod's phase, container states, events and log tail;
* ``events.txt`` (pod mode): the events of the workloads' namespaces;
* ``tokens.json``: every token that appeared in those texts, reduced to its ``jti`` and claims;
* ``reviews.json`` (where the provider configures kube-apiserver: local, local-node, kind): the review
  transcript, every TokenReview the apiserver answered while the check ran, from its audit log: who
  asked (the callee, the suite), the token reduced to its ``jti`` and claims, the audiences asked
  for, and the answer (authenticated, user, audiences, error);
* ``check.json``: the check's evidence and message.

Every text goes through :func:`~.redact.redact_text` first, so the files hold no token. At the end
of the run the report's outputs and this folder are packed into one ``.tar.gz`` for CI upload.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .redact import JWT, redact, redact_text, token_summary

LOG_TAIL_LINES = 200
REVIEW_LIMIT = 200
"""At most this many reviews (the last) in a check's transcript; the rest are counted."""
SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:]) + "\n"


def _tokens_in(texts: Iterable[str]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for text in texts:
        for match in JWT.finditer(text):
            summary = token_summary(match.group(0))
            seen.setdefault(str(summary.get("jti") or match.group(0)[-12:]), summary)
    return [summary for summary in seen.values() if summary]


def _pod_facts(pod: Any) -> list[str]:
    """What ``kubectl describe pod`` would add to :func:`~..deploy.pods.describe_pod`: where the pod
    runs, as whom, from which image, its conditions and its projected token volumes (audience and
    lifetime: what a rotation or audience failure turns on)."""
    spec, status = pod.spec, pod.status
    lines = [
        f"  node {spec.node_name}, pod IP {status.pod_ip if status else None}, "
        f"service account {spec.service_account_name}",
    ]
    if status and status.conditions:
        lines.append("  conditions: " + ", ".join(f"{c.type}={c.status}" for c in status.conditions))
    for container in (status.container_statuses if status else None) or []:
        lines.append(
            f"  {container.name}: image {container.image} ({container.image_id}), ready {container.ready}, "
            f"restarts {container.restart_count}"
        )
    for volume in spec.volumes or []:
        for source in (volume.projected.sources if volume.projected else None) or []:
            token = source.service_account_token
            if token is not None:
                lines.append(
                    f"  volume {volume.name}: service-account token {token.path}, "
                    f"audience {token.audience or '(the API audiences)'}, "
                    f"expirationSeconds {token.expiration_seconds}"
                )
    return lines


def _pod_texts(deployment: Any, api_client: Any) -> dict[str, str]:
    """Pod mode: each workload's pod described (by role), and the events of the workloads'
    namespaces in time order."""
    import kubernetes

    from ..deploy.pods import describe_pod

    core = kubernetes.client.CoreV1Api(api_client)
    described, events = [], []
    roles = _roles(deployment, "name")
    namespaces = sorted({w.namespace for w in deployment.workloads})
    for workload in deployment.workloads:
        if workload.pod is None:
            continue
        role = roles.get(workload.name, workload.name)
        try:
            pod = core.read_namespaced_pod(workload.pod.name, workload.namespace)
            text = "\n".join([describe_pod(core, pod), *_pod_facts(pod)])
        except Exception as exc:  # a pod gone by now is a finding too
            text = f"pod {workload.namespace}/{workload.pod.name}: not readable: {type(exc).__name__}: {exc}"
        described.append(f"## {role} ({workload.name})\n{text}\n")
    for namespace in namespaces:
        with contextlib.suppress(Exception):
            for event in core.list_namespaced_event(namespace).items:
                involved = event.involved_object
                at = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
                events.append(
                    (
                        str(at),
                        f"{at} {namespace} {event.type} {event.reason} "
                        f"{involved.kind}/{involved.name}: {event.message}",
                    )
                )
    lines = [line for _, line in sorted(events)[-200:]]
    return {"pods.txt": "\n".join(described), "events.txt": "\n".join(lines) + "\n"}


def _received_at(event: Mapping[str, Any]) -> float | None:
    stamp = event.get("requestReceivedTimestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _reviewed_token(token: Any) -> dict[str, Any]:
    """What the transcript keeps of a reviewed token: a JWT's ``jti`` and claims; of anything else
    (a malformed or opaque value) only its length, since an opaque token may still be a credential."""
    if isinstance(token, str) and JWT.fullmatch(token):
        return token_summary(token) or {"undecodable_jwt": True}
    return {"not_a_jwt": True, "length": len(token) if isinstance(token, str) else 0}


def review_transcript(log: Path, since: float, roles: Mapping[str, str]) -> dict[str, Any] | None:
    """The TokenReviews kube-apiserver answered since ``since`` (Unix time), read from its audit log
    (:data:`~pytest_k8s_sa.components.controlplane.REVIEW_AUDIT_POLICY`); None when there is no log.

    ``roles`` names the reviewers the run knows (``system:serviceaccount:ns:name`` -> ``callee``, the
    suite's own user -> ``suite``; anyone else is ``other``), so a reader sees at once which reviews
    the callee asked for and which the suite itself made. The last :data:`REVIEW_LIMIT` are kept, the
    earlier ones counted. Where xdist workers share one cluster, the other workers' reviews of the
    same moments are there too (the suite's user is theirs as well; their workloads are ``other``):
    the log is the apiserver's, not this check's.
    """
    if not log.is_file():
        return None
    reviews: list[dict[str, Any]] = []
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            at = _received_at(event)
            if event.get("stage") not in ("ResponseComplete", "Panic") or at is None or at < since:
                continue
            request = event.get("requestObject") or {}
            answer = event.get("responseObject") or {}
            status = answer.get("status") or {}
            username = str((event.get("user") or {}).get("username", ""))
            reviews.append(
                {
                    "at": event["requestReceivedTimestamp"],
                    "reviewer": roles.get(username, "other"),
                    "reviewer_username": username,
                    "token": _reviewed_token((request.get("spec") or {}).get("token")),
                    "audiences_asked": (request.get("spec") or {}).get("audiences"),
                    "code": (event.get("responseStatus") or {}).get("code"),
                    "authenticated": status.get("authenticated"),
                    "user": (status.get("user") or {}).get("username"),
                    "audiences": status.get("audiences"),
                    "error": status.get("error"),
                }
            )
    return {
        "source": "kube-apiserver audit log (every TokenReview, request and answer)",
        "since": dt.datetime.fromtimestamp(since, dt.UTC).isoformat(),
        "reviews_before_these": max(0, len(reviews) - REVIEW_LIMIT),
        "reviews": reviews[-REVIEW_LIMIT:],
    }


ROLES = ("caller", "callee", "intruder")


def _roles(deployment: Any | None, attribute: str = "username") -> dict[str, str]:
    """Each role's ``attribute`` -> the role: its identity (``system:serviceaccount:ns:name``), or
    with ``attribute="name"`` its workload name (what ``Deployment.logs`` is keyed by)."""
    out = {}
    for role in ROLES:
        with contextlib.suppress(Exception):
            out[str(getattr(getattr(deployment, role), attribute))] = role
    return out


def collect(
    deployment: Any | None,
    api_client: Any | None,
    pod_mode: bool,
    review_log: Path | None = None,
    since: float | None = None,
    suite_username: str | None = None,
) -> dict[str, str]:
    """The texts that explain a failure now (log tails, pods, events, the review transcript since
    ``since`` when ``review_log`` is given, the suite's own reviews named ``suite``), keyed by file
    name, redacted."""
    files: dict[str, str] = {}
    if deployment is not None:
        with contextlib.suppress(Exception):
            roles = _roles(deployment, "name")
            for name, text in deployment.logs().items():
                files[f"logs/{SAFE_ID.sub('_', roles.get(name, name))}.log"] = tail(text)
        if pod_mode and api_client is not None:
            files.update(_pod_texts(deployment, api_client))
    tokens = _tokens_in(files.values())
    cleaned = {name: redact_text(text) for name, text in files.items() if text.strip()}
    if tokens:
        cleaned["tokens.json"] = json.dumps(redact(tokens), indent=2) + "\n"
    if review_log is not None and since is not None:
        roles = {**({suite_username: "suite"} if suite_username else {}), **_roles(deployment)}
        transcript = review_transcript(review_log, since, roles)
        if transcript is not None:
            cleaned["reviews.json"] = json.dumps(redact(transcript), indent=2) + "\n"
    return cleaned


def write(folder: Path, check_id: str, files: dict[str, str], check: dict[str, Any]) -> Path:
    """Write one failed check's artifacts under ``folder/<ID>/``; returns that folder."""
    target = folder / SAFE_ID.sub("_", check_id)
    for name, text in {
        **files,
        "check.json": json.dumps(redact(check), indent=2, default=str) + "\n",
    }.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def bundle(archive: Path, members: Iterable[Path]) -> Path | None:
    """Pack the existing ``members`` (files or folders) into ``archive`` (.tar.gz), named by their
    base names; None when there is nothing to pack."""
    present = [m for m in members if m.exists()]
    if not present:
        return None
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as packed:
        for member in present:
            packed.add(member, arcname=member.name)
    return archive

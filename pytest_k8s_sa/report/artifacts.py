"""Failure artifacts: what explains a failed check once the run (and its cluster) is gone.

For each failed check, a folder ``<artifacts>/<ID>/`` with:

* ``logs/<workload>.log``: the last lines of the callee's and the caller's logs (and the intruder's);
* ``pods.txt`` (pod mode): each workload pod's phase, container states, events and log tail;
* ``events.txt`` (pod mode): the events of the workloads' namespaces;
* ``tokens.json``: every token that appeared in those texts, reduced to its ``jti`` and claims;
* ``check.json``: the check's evidence and message.

Every text goes through :func:`~.redact.redact_text` first, so the files hold no token. At the end
of the run the report's outputs and this folder are packed into one ``.tar.gz`` for CI upload.
"""

from __future__ import annotations

import contextlib
import json
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .redact import JWT, redact, redact_text, token_summary

LOG_TAIL_LINES = 200
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


def _pod_texts(deployment: Any, api_client: Any) -> dict[str, str]:
    """Pod mode: each workload's pod described, and the events of the workloads' namespaces."""
    import kubernetes

    from ..deploy.pods import describe_pod

    core = kubernetes.client.CoreV1Api(api_client)
    described, events = [], []
    namespaces = sorted({w.namespace for w in deployment.workloads})
    for workload in deployment.workloads:
        if workload.pod is None:
            continue
        with contextlib.suppress(Exception):
            pod = core.read_namespaced_pod(workload.pod.name, workload.namespace)
            described.append(f"## {workload.name}\n{describe_pod(core, pod)}\n")
    for namespace in namespaces:
        with contextlib.suppress(Exception):
            for event in core.list_namespaced_event(namespace).items[-100:]:
                involved = event.involved_object
                events.append(
                    f"{namespace} {event.last_timestamp or event.event_time} {event.type} {event.reason} "
                    f"{involved.kind}/{involved.name}: {event.message}"
                )
    return {"pods.txt": "\n".join(described), "events.txt": "\n".join(events) + "\n"}


def collect(deployment: Any | None, api_client: Any | None, pod_mode: bool) -> dict[str, str]:
    """The texts that explain a failure now (log tails, pods, events), keyed by file name, redacted."""
    files: dict[str, str] = {}
    if deployment is not None:
        with contextlib.suppress(Exception):
            for name, text in deployment.logs().items():
                files[f"logs/{SAFE_ID.sub('_', name)}.log"] = tail(text)
        if pod_mode and api_client is not None:
            files.update(_pod_texts(deployment, api_client))
    tokens = _tokens_in(files.values())
    cleaned = {name: redact_text(text) for name, text in files.items() if text.strip()}
    if tokens:
        cleaned["tokens.json"] = json.dumps(redact(tokens), indent=2) + "\n"
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

"""``k8s-sa conformance --rerun-failed REPORT``: exactly the failed checks of an earlier report.

The earlier report names the failed checks, the SUT file and the profile; the new run selects those
checks (``--conformance-checks``) and, unless the command line says otherwise, judges the same SUT
file in the same profile. Every other argument is pytest's, as for ``k8s-sa conformance``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..base.errors import K8sSAError

FLAG = "--rerun-failed"


class RerunError(K8sSAError):
    """The report to re-run cannot be used: the message says why."""


def _has(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def rerun_args(pytest_args: list[str]) -> tuple[list[str], list[str] | None]:
    """``(arguments, failed ids)``: ``pytest_args`` without ``--rerun-failed REPORT`` and with the
    selection of the report's failed checks; unchanged (and None) without the flag."""
    args = list(pytest_args)
    path = None
    for index, arg in enumerate(args):
        if arg == FLAG:
            if index + 1 >= len(args):
                raise RerunError(f"{FLAG} needs the path of an earlier --conformance-report")
            path = args[index + 1]
            del args[index : index + 2]
            break
        if arg.startswith(FLAG + "="):
            path = arg.split("=", 1)[1]
            del args[index]
            break
    if path is None:
        return pytest_args, None
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        failed = sorted(c["id"] for c in report["checks"] if c["outcome"] == "failed")
    except OSError as exc:
        raise RerunError(f"{FLAG}: cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise RerunError(f"{FLAG}: {path} is not a conformance report (--conformance-report JSON)") from None
    if _has(args, "--conformance-checks"):
        raise RerunError(f"{FLAG} selects the checks itself: drop --conformance-checks")
    extra = ["--conformance-checks", ",".join(failed)]
    if report.get("sut_file") and not _has(args, "--sut"):
        extra += ["--sut", str(report["sut_file"])]
    if report.get("profile") and not _has(args, "--conformance-profile"):
        extra += ["--conformance-profile", str(report["profile"])]
    return [*args, *extra], failed

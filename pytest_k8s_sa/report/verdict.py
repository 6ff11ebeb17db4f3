"""The overall result of a run, as a team states it for a named implementation, mode and profile.

* ``not-conformant``: a ``must`` check failed (with ``--conformance-strict``, any check failed);
* ``conformant-with-findings``: every ``must`` check that ran passed, but a ``should`` check failed,
  or an applicable check was skipped (this environment could not judge it: the provider lacks the
  signing key, a log cannot be read), or the run selected only some checks;
* ``conformant``: every applicable check of the profile ran and passed.

``not-applicable`` checks (outside the profile, the mode, or what the SUT declares) never count.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

RESULTS = ("conformant", "conformant-with-findings", "not-conformant")
OUTCOMES = ("passed", "failed", "skipped", "not-applicable")


def overall(
    checks: Iterable[dict[str, Any]], *, strict: bool, partial: bool = False
) -> tuple[str, list[str]]:
    """``(result, reasons)``: the result and one sentence per reason, worst first."""
    checks = list(checks)
    failed_must = [c["id"] for c in checks if c["outcome"] == "failed" and c["level"] == "must"]
    failed_should = [c["id"] for c in checks if c["outcome"] == "failed" and c["level"] != "must"]
    skipped = [c["id"] for c in checks if c["outcome"] == "skipped"]
    reasons = []
    if failed_must:
        reasons.append(f"must-level checks failed: {', '.join(failed_must)}")
    if failed_should:
        fatal = " (fatal: --conformance-strict)" if strict else ""
        reasons.append(f"should-level checks failed{fatal}: {', '.join(failed_should)}")
    if skipped:
        reasons.append(f"checks could not be judged here (skipped): {', '.join(skipped)}")
    if partial:
        reasons.append("only some checks were selected: a verdict for the selection, not the profile")
    if not checks:
        reasons.append("no check ran")
    if failed_must or (strict and failed_should) or not checks:
        return "not-conformant", reasons
    if reasons:
        return "conformant-with-findings", reasons
    return "conformant", ["every applicable check passed"]

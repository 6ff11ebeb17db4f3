"""Flake hunt: run the conformance suite's ``fast`` profile N times in a row, report every failure.

``python benchmarks/flakes.py [--runs 20]`` runs ``python -m pytest suites -q -p no:cacheprovider
--conformance-profile fast`` as a fresh subprocess each time (its own control plane, as a user would run
it), then prints the failures (target: zero) and the median and worst wall time, and writes
``benchmarks/results/flakes.json``. The exit status is 1 if any run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
_OUTCOME = re.compile(r"^(FAILED|ERROR) (\S+)", re.MULTILINE)
_SUMMARY = re.compile(
    r"^=*\s*(.*(?:\d+ (?:passed|failed|errors?|skipped|deselected)|no tests ran).*?)\s*=*$", re.MULTILINE
)


def run_once(index: int, timeout: float, extra: list[str]) -> dict[str, object]:
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "suites",
        "-q",
        "-p",
        "no:cacheprovider",
        "--conformance-profile",
        "fast",
        "-rfE",
        *extra,
    ]
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = (
            (exc.stdout or b"").decode(errors="replace")
            if isinstance(exc.stdout, bytes)
            else (exc.stdout or "")
        )
        code = None
    seconds = time.perf_counter() - started
    failures = sorted(set(f"{kind} {test}" for kind, test in _OUTCOME.findall(output)))
    summaries = _SUMMARY.findall(output)
    record: dict[str, object] = {
        "run": index,
        "exit_code": code,
        "seconds": round(seconds, 2),
        "summary": summaries[-1] if summaries else None,
        "failures": failures,
    }
    if code != 0:
        record["output_tail"] = output[-4000:]
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before one run counts as hung")
    parser.add_argument("--output", type=Path, default=RESULTS / "flakes.json")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()

    runs = []
    for index in range(1, args.runs + 1):
        record = run_once(index, args.timeout, args.pytest_args)
        runs.append(record)
        status = "ok" if record["exit_code"] == 0 else f"FAILED (exit {record['exit_code']})"
        print(f"run {index}/{args.runs}: {status} in {record['seconds']} s: {record['summary']}", flush=True)
        for failure in record["failures"]:  # type: ignore[attr-defined]
            print(f"    {failure}")

    seconds = [float(r["seconds"]) for r in runs]  # type: ignore[arg-type]
    failed_runs = [r for r in runs if r["exit_code"] != 0]
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": "python -m pytest suites -q -p no:cacheprovider --conformance-profile fast",
        "runs": args.runs,
        "failed_runs": len(failed_runs),
        "failures": sorted({f for r in failed_runs for f in r["failures"]}),  # type: ignore[attr-defined]
        "median_seconds": round(statistics.median(seconds), 2),
        "worst_seconds": round(max(seconds), 2),
        "best_seconds": round(min(seconds), 2),
        "each": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\n{args.runs} runs, {len(failed_runs)} failed; median {results['median_seconds']} s, "
        f"worst {results['worst_seconds']} s; written to {args.output}"
    )
    return 1 if failed_runs else 0


if __name__ == "__main__":
    raise SystemExit(main())

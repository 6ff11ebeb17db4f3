"""``k8s-sa checks``: print the check catalogue (all of it, or the checks and areas named)."""

from __future__ import annotations

import argparse
import sys

from . import load
from .render import FORMATS, render


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    checks = sub.add_parser(
        "checks",
        help="print the conformance check catalogue: requirement, why, sources and fix of every check",
        description="Print the check catalogue. With one id and the table format, that check in full.",
    )
    checks.add_argument("--format", choices=FORMATS, default="table", help="default table")
    checks.add_argument(
        "select", nargs="*", metavar="ID|AREA", help="only these checks or areas (e.g. SEC-003 REV)"
    )


def run(args: argparse.Namespace) -> int:
    catalogue = load()
    entries = catalogue.select(args.select) if args.select else None
    sys.stdout.write(render(catalogue, args.format, entries))
    return 0

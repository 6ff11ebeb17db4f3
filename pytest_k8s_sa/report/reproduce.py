"""The exact command line that reproduces a run: what was typed, where, with which K8S_SA_* settings."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ENV_PREFIX = "K8S_SA_"
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY")
"""Environment variables whose value is never copied (none of the plugin's options is one today)."""


def command_of(argv: Sequence[str], invocation_args: Sequence[str]) -> list[str]:
    """The argv a user types again: ``k8s-sa conformance ...`` when that is how the run started,
    else ``python -m pytest`` with the arguments pytest received."""
    program = Path(argv[0]).name if argv else ""
    if program == "k8s-sa" or (len(argv) > 1 and argv[1] == "conformance" and "k8s" in program):
        return ["k8s-sa", *argv[1:]]
    return ["python", "-m", "pytest", *invocation_args]


def reproduce(
    invocation_args: Sequence[str], cwd: str | Path, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``{command, argv, cwd, env}``: ``command`` is one shell line (env, cd and the command)."""
    environ = os.environ if environ is None else environ
    argv = command_of(sys.argv, invocation_args)
    env = {
        k: v
        for k, v in sorted(environ.items())
        if k.startswith(ENV_PREFIX) and not any(word in k for word in SECRET_WORDS)
    }
    assignments = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    line = " ".join([f"cd {shlex.quote(str(cwd))} &&", *assignments, shlex.join(argv)])
    return {"command": line, "argv": argv, "cwd": str(cwd), "env": env}

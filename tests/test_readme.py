"""The README's third-party example runs as written, against the real local control plane."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_passes(pytester):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    pytester.makepyfile(test_readme_example=blocks[0])
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_readme_starts_with_the_two_commands_ci_runs():
    lines = README.read_text().splitlines()
    commands = [line.split("#")[0].strip() for line in lines[2:6] if line.startswith("python3")]
    ci = (README.parent / ".ci" / "run").read_text()
    assert len(commands) == 2
    for command in commands:
        assert command in ci

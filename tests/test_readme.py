"""The README as executable truth: every Python code block runs as a third party would run it.

Each ```python block becomes one test. It is written into a fresh folder outside this repository
(no conftest, no pyproject of ours) and run in a plain subprocess with the interpreter of this
environment, so ``pytest_k8s_sa`` comes from the installed package (its ``pytest11`` entry point),
never from the checkout:

* a block that defines tests (``def test_...``) is a test file: ``python -m pytest`` runs it, and
  every test in it must pass (a skip or a failure fails this test). A first line ``# name.py``
  names the file;
* a block whose first line is ``# conftest.py`` is written next to every test-file block after it
  (until the next such block), as a third party would keep both in one folder;
* any other block is a script: ``python block.py`` must exit 0.

A block that is not meant to run (a fragment, pseudo-code, an excerpt of a longer program) is
marked on the line right before its fence, and reported here as skipped with that reason::

    <!-- readme-test: skip because it is only an excerpt of conftest.py -->
    ```python
    ...
    ```

The marker is an HTML comment, so it does not show on the rendered page; the reason is required.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
PYTHON_INFO = ("python", "py", "python3")
FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
SKIP_MARK = re.compile(r"^\s*<!--\s*readme-test:\s*skip\b(?P<reason>.*?)-->\s*$")
FILE_NAME = re.compile(r"^#\s*(?P<name>[\w.-]+\.py)\s*$")
TESTS = re.compile(r"^(?:async\s+)?def test_|^class Test", re.M)


@dataclass(frozen=True)
class Block:
    line: int
    """1-based line of the opening fence in README.md."""
    code: str
    skip_reason: str | None

    @property
    def given_name(self) -> str | None:
        """The file name a first line ``# name.py`` gives the block."""
        named = FILE_NAME.match(self.code.splitlines()[0]) if self.code.strip() else None
        return named.group("name") if named else None

    @property
    def file_name(self) -> str:
        if self.given_name:
            return self.given_name
        return f"test_readme_line_{self.line}.py" if self.is_test_file else f"readme_line_{self.line}.py"

    @property
    def is_test_file(self) -> bool:
        return bool(TESTS.search(self.code)) and not self.is_conftest

    @property
    def is_conftest(self) -> bool:
        return self.given_name == "conftest.py"


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, in order. Fences of other languages are skipped
    whole (a ```python line inside a ```markdown block is not a block); a fence closes only with
    the same character, at least as long, and no info string (CommonMark)."""
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, info = opening.group("fence"), opening.group("info").strip()
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            if (
                closing
                and closing.group("fence")[0] == fence[0]
                and len(closing.group("fence")) >= len(fence)
                and not closing.group("info").strip()
            ):
                break
            body.append(lines[end])
            end += 1
        language = info.split()[0].lower() if info else ""
        if language in PYTHON_INFO:
            previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            mark = SKIP_MARK.match(previous)
            reason = mark.group("reason").strip(" :-") if mark else None
            blocks.append(Block(index + 1, "\n".join(body) + "\n", reason if mark else None))
        index = end + 1
    return blocks


BLOCKS = python_blocks(README.read_text())


def _conftest_for(block: Block) -> Block | None:
    """The last runnable ``# conftest.py`` block before ``block``, if any."""
    before = [b for b in BLOCKS if b.line < block.line and b.is_conftest and b.skip_reason is None]
    return before[-1] if before else None


def _params() -> list[Any]:
    params: list[Any] = []
    for block in BLOCKS:
        if block.is_conftest:
            continue  # runs with the test-file blocks after it
        marks = []
        if block.skip_reason is not None:
            marks.append(pytest.mark.skip(reason=f"README line {block.line}: {block.skip_reason}"))
        params.append(pytest.param(block, id=f"line-{block.line}-{block.file_name}", marks=marks))
    return params


def _third_party_env() -> dict[str, str]:
    """This environment, minus anything that would import the checkout instead of the package."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}


@pytest.mark.parametrize("block", _params())
def test_readme_python_block_runs(block: Block, tmp_path: Path):
    path = tmp_path / block.file_name
    path.write_text(block.code)
    conftest = _conftest_for(block)
    if block.is_test_file and conftest is not None:
        (tmp_path / "conftest.py").write_text(conftest.code)
    if block.is_test_file:
        junit = tmp_path / "junit.xml"
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}", path.name]
    else:
        argv = [sys.executable, path.name]
    proc = subprocess.run(
        argv, cwd=tmp_path, env=_third_party_env(), capture_output=True, text=True, timeout=600, check=False
    )
    output = f"README line {block.line}: {' '.join(argv[1:])}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, output
    if block.is_test_file:
        suite = ET.parse(junit).getroot()  # noqa: S314 - the report of our own subprocess
        suite = suite if suite.tag == "testsuite" else suite[0]
        counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
        assert counts["tests"] > 0, output
        assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, (counts, output)


def test_readme_has_runnable_python_and_reasons_for_the_rest():
    assert any(block.skip_reason is None for block in BLOCKS), "the README has no runnable python block"
    for block in BLOCKS:
        assert block.skip_reason != "", f"README line {block.line}: a skip marker needs a reason"
        if block.is_conftest and block.skip_reason is None:
            assert any(b.is_test_file and b.line > block.line for b in BLOCKS), (
                f"README line {block.line}: a conftest.py block with no test block after it never runs"
            )


def test_the_plugin_comes_from_the_installed_package():
    """The blocks rely on the package being installed, as a third party has it: its entry point."""
    entry_points = importlib.metadata.distribution("pytest-k8s-sa").entry_points
    assert any(ep.group == "pytest11" and ep.value == "pytest_k8s_sa.plugin.entry" for ep in entry_points)


SHIPPED_ONLY = {"pytest_k8s_sa.suites"}
"""Names that exist only in the built wheel (``setup.py`` copies ``suites/`` in); test_wheel.py runs it."""


def _resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and fetch the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(dotted)


def test_readme_names_the_package_where_it_is():
    """Every ``pytest_k8s_sa.…`` name the README promises (modules, ``ControlPlane``, the fixtures'
    Protocols, ``REPORT_SCHEMA``) imports from there, and every ``pytest_k8s_sa/…`` path exists:
    when a module moves to another layer, the README moves with it or this fails."""
    text = README.read_text()
    names = sorted(set(re.findall(r"(?<![\w.])pytest_k8s_sa(?:\.[A-Za-z_]\w*)+", text)) - SHIPPED_ONLY)
    assert "pytest_k8s_sa.components.controlplane.ControlPlane" in names
    assert "pytest_k8s_sa.plugin.fixtures.ProjectedTokenFactory" in names
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{name}: {exc}")
    assert not missing, missing
    root = README.parent
    paths = sorted(set(re.findall(r"(?<![\w/])pytest_k8s_sa(?:/[\w.<>-]+)+/?", text)))
    assert paths, "the README names no file of the package"
    gone = [p for p in paths if "<" not in p and not (root / p).exists()]
    assert not gone, gone


def test_extractor_reads_fences_as_commonmark_does():
    text = "\n".join(
        [
            "````markdown",
            "```python",
            "not a block: inside another fence",
            "```",
            "````",
            "<!-- readme-test: skip because it is a fragment -->",
            "",
            "```python title",
            "x = 1",
            "```",
            "~~~py",
            "# test_named.py",
            "def test_x():",
            "    pass",
            "~~~",
            "```pycon",
            ">>> 1",
            "```",
        ]
    )
    blocks = python_blocks(text)
    assert [(b.line, b.skip_reason) for b in blocks] == [(8, "because it is a fragment"), (11, None)]
    assert blocks[0].code == "x = 1\n"
    assert not blocks[0].is_test_file
    assert blocks[1].is_test_file
    assert blocks[1].file_name == "test_named.py"


def test_readme_starts_with_the_two_commands_ci_runs():
    lines = README.read_text().splitlines()
    commands = [line.split("#")[0].strip() for line in lines[2:6] if line.startswith("python3")]
    ci = (README.parent / ".ci" / "run").read_text()
    assert len(commands) == 2
    for command in commands:
        assert command in ci

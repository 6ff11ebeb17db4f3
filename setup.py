"""Build hook: the conformance suite and its data ship inside the package.

The repository keeps ``suites/`` and ``fixtures/`` at the top level (the project's layout); a wheel
needs them under ``pytest_k8s_sa/`` so that ``pip install pytest-k8s-sa`` can run the suite from any
folder. ``build_py`` copies them there (``suites`` -> ``pytest_k8s_sa/suites``, ``fixtures/manifests``
-> ``pytest_k8s_sa/manifests``, ``fixtures/sut`` -> ``pytest_k8s_sa/sut_files``). Editable installs
need no copy: :mod:`pytest_k8s_sa.base.paths` finds the top-level folders of the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"suites": "suites", "fixtures/manifests": "manifests", "fixtures/sut": "sut_files"}


class BuildPyWithSuite(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for source, target in SHIPPED.items():
            destination = Path(self.build_lib) / "pytest_k8s_sa" / target
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithSuite})

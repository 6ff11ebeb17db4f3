"""The plugin's entry point (``pytest11: k8s_sa``): its options, an early start, then the rest.

Small on purpose. pytest imports it with every other installed plugin, before it parses the command
line; the rest of the plugin (:mod:`.hooks`, which imports the kubernetes client, and through it
:mod:`.fixtures` and :mod:`.conformance`) is registered from ``pytest_load_initial_conftests``, once
:mod:`.early` has had the chance to start the local cluster, so that the imports overlap its start.
"""

from __future__ import annotations

import pytest

from . import early, options

HOOKS = "pytest_k8s_sa.plugin.hooks"


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    options.register(parser, pluginmanager)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before any conftest: start early if asked, then register the rest of the plugin (conftests
    and tests use its fixtures)."""
    early.begin(early_config)
    _register_the_rest(early_config.pluginmanager)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """For a configuration made without ``pytest_load_initial_conftests``: register the rest now."""
    _register_the_rest(config.pluginmanager)


def _register_the_rest(pluginmanager: pytest.PytestPluginManager) -> None:
    if not pluginmanager.has_plugin(HOOKS):
        pluginmanager.import_plugin(HOOKS)

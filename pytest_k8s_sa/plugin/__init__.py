"""The pytest layer: what only exists inside a pytest run.

:mod:`.hooks` is the ``pytest11`` entry point (options, the session cluster, the SUT file, hooks);
:mod:`.options` is the option table (flag, ini key, env var) that becomes a
:class:`~pytest_k8s_sa.providers.settings.Settings`; :mod:`.fixtures` the per-test fixtures and the
Protocols of what they return; :mod:`.conformance` the ``conformance`` marker, the evidence
recorder and the JSON report. Everything below this package works without pytest.
"""

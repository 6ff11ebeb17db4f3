"""What a conformance run hands its readers, built from one report dictionary (format version 3).

* :mod:`.schema`: the JSON Schema of the report (``report-v3.schema.json``, shipped) and validation;
* :mod:`.verdict`: the overall ``result`` (conformant / conformant-with-findings / not-conformant);
* :mod:`.redact`: no token leaves a run (JWTs become ``<token jti=..., sub=...>``);
* :mod:`.reproduce`: the command line that reproduces the run;
* :mod:`.markdown`: the summary for CI job pages (``--conformance-summary``, ``$GITHUB_STEP_SUMMARY``);
* :mod:`.html`: one self-contained HTML file with filters and a timeline (``--conformance-html``);
* :mod:`.timeline`: the inline SVG of when tokens were granted and refused.

The pytest side (collecting checks, writing the files) is :mod:`pytest_k8s_sa.plugin.conformance`; nothing
here imports pytest.
"""

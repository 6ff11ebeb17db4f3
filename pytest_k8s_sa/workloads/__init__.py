"""Reference workloads for the conformance suite: a secret store and two callers (API, data store).

Why a separate, standard-library-only package: the same files are mounted into pods from a ConfigMap as
the package ``k8s_sa_workloads`` and run in a stock ``python:3.11`` image with no pip packages. So these
modules import only the standard library and each other (relatively), never the rest of
``pytest_k8s_sa``. Run one with ``python -m k8s_sa_workloads.secret_store`` (or ``.api``, ``.data_store``);
``--help`` lists the environment variables it reads.

The services (``secret_store``, ``api``, ``data_store``, and the suite's helpers ``tap`` and
``api_cut``) share their plumbing, one module per concern: ``envconfig`` (environment parsing, JSON
log lines), ``httpclient`` (calls with a deadline and a size limit), ``apicreds`` (Kubernetes API
credentials), ``httpserver`` (the server and the limits on what a client can make it hold) and
``entry`` (the common ``main``).
"""
